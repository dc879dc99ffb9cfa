// The standard gRPC health check (grpc/grpc doc/health-checking.md) as an active probe: a unary
// `grpc.health.v1.Health/Check` over HTTP/2 in cleartext with prior knowledge (h2c), what Envoy's
// `grpc_health_check` and Kubernetes' `grpc:` probes send. An instance passes only with HTTP 200,
// `grpc-status: 0` and a HealthCheckResponse of SERVING: a server without the health service
// (UNIMPLEMENTED), a service it does not know (NOT_FOUND) or one it reports NOT_SERVING fails.
//
// The two messages have one field each, so they are encoded and decoded here by hand: a protobuf
// library (and a .proto at run time) for three bytes each way is not worth a dependency.
//
// Sessions live like the HTTP probes' connections (prober.ts, issue 24): a target with a ProbeSession
// keeps its HTTP/2 session between probes (idle, unref'd, counted in the same budget of idle kept
// connections); after any failure the next probe opens a new one; one older than CONN_MAX_AGE_MS is
// retired; a probe that finds the kept session busy (an early second probe on a hung server) opens
// its own, for that probe only. A session this side gives up on ends with a TCP reset. The caller
// owns time: at its deadline it aborts the signal and the session is reset at once.

import http2 from 'node:http2';
import net from 'node:net';
import {
  CONN_MAX_AGE_MS,
  countKeptIdle,
  keptIdleRoom,
  learnServerIdle,
  type ProbeResult,
  type ProbeSession,
  type ProbeSignal,
  type ProbeTarget,
  probeFailure,
  resetSocket,
  STAGE_CONNECTED,
  STAGE_CONNECTING,
  setStage,
  splitAddress,
  worthKeeping,
} from './prober.ts';

export const HEALTH_CHECK_PATH = '/grpc.health.v1.Health/Check';

/** gRPC status codes by number (grpc/grpc doc/statuscodes.md), for failure reasons. */
const GRPC_CODES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
];

/** HealthCheckResponse.ServingStatus by number. */
const SERVING_STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];
export const SERVING = 1;

/** A health answer is a few bytes; anything much larger is not one (and is not buffered). */
const MAX_BODY = 4096;

function varint(n: number): number[] {
  const out: number[] = [];
  for (; n >= 0x80; n = Math.floor(n / 128)) out.push((n % 128) | 0x80);
  out.push(n);
  return out;
}

/**
 * The request body: one length-prefixed gRPC message (flag 0: uncompressed, 4-byte big-endian
 * length) holding HealthCheckRequest { string service = 1 }. An empty service (the whole server) is
 * proto3's default and is not sent: the message is empty.
 */
export function encodeHealthCheckRequest(service: string): Buffer {
  const name = Buffer.from(service, 'utf8');
  const field = name.length === 0 ? [] : [0x0a, ...varint(name.length)];
  const length = field.length + name.length;
  const frame = Buffer.alloc(5 + length);
  frame.writeUInt32BE(length, 1);
  frame.set(field, 5);
  name.copy(frame, 5 + field.length);
  return frame;
}

/** A varint at `pos`: its value and the position after it, or undefined when it runs past the end. */
function readVarint(buf: Buffer, pos: number): { value: number; next: number } | undefined {
  let value = 0;
  let scale = 1;
  for (let i = pos; i < buf.length && i < pos + 10; i++) {
    value += (buf[i] & 0x7f) * scale;
    scale *= 128;
    if ((buf[i] & 0x80) === 0) return { value, next: i + 1 };
  }
  return undefined;
}

/**
 * The ServingStatus in a response body: exactly one uncompressed length-prefixed message holding
 * HealthCheckResponse { ServingStatus status = 1 }. Unknown fields are skipped (a newer server may
 * add some); a missing status is proto3's default, UNKNOWN (0).
 */
export function decodeHealthCheckResponse(body: Buffer): { status: number } | { error: string } {
  if (body.length < 5) return { error: body.length === 0 ? 'no message' : 'truncated message' };
  if (body[0] !== 0) return { error: 'compressed message' };
  const length = body.readUInt32BE(1);
  if (body.length !== 5 + length)
    return { error: body.length < 5 + length ? 'truncated message' : 'more than one message' };
  const msg = body.subarray(5);
  let status = 0;
  let pos = 0;
  while (pos < msg.length) {
    const key = readVarint(msg, pos);
    if (!key || key.value < 8) return { error: 'bad protobuf' };
    const field = Math.floor(key.value / 8);
    const wire = key.value % 8;
    pos = key.next;
    if (wire === 0) {
      const v = readVarint(msg, pos);
      if (!v) return { error: 'bad protobuf' };
      if (field === 1) status = v.value;
      pos = v.next;
    } else if (wire === 2) {
      const len = readVarint(msg, pos);
      if (!len) return { error: 'bad protobuf' };
      pos = len.next + len.value;
    } else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else return { error: 'bad protobuf' };
    if (pos > msg.length) return { error: 'bad protobuf' };
  }
  return { status };
}

/** `12 (UNIMPLEMENTED)`: a gRPC status as a reason shows it. */
function grpcCode(code: number): string {
  const name = GRPC_CODES[code];
  return name ? `${code} (${name})` : String(code);
}

/** What came back for one Check call. */
export interface GrpcAnswer {
  /** HTTP `:status`. */
  readonly httpStatus: number;
  /** `grpc-status` from the trailers, or from the headers of a trailers-only answer. */
  readonly grpcStatus: string | undefined;
  readonly body: Buffer;
}

/** The verdict on one answer: healthy iff HTTP 200, grpc-status 0 and SERVING. */
export function grpcVerdict(a: GrpcAnswer): ProbeResult {
  if (a.httpStatus !== 200) return { ok: false, reason: `http status ${a.httpStatus}`, status: a.httpStatus };
  if (a.grpcStatus === undefined) return { ok: false, reason: 'invalid response (no grpc-status)' };
  if (!/^\d{1,3}$/.test(a.grpcStatus)) return { ok: false, reason: 'invalid response (bad grpc-status)' };
  const code = Number(a.grpcStatus);
  if (code !== 0) return { ok: false, reason: `grpc status ${grpcCode(code)}` };
  const r = decodeHealthCheckResponse(a.body);
  if ('error' in r) return { ok: false, reason: `invalid response (${r.error})` };
  if (r.status === SERVING) return { ok: true, reason: 'ok (SERVING)' };
  return { ok: false, reason: SERVING_STATUS[r.status] ?? `serving status ${r.status}` };
}

const ABORTED: ProbeResult = Object.freeze({ ok: false, reason: 'aborted' });
const RESET: ProbeResult = Object.freeze({ ok: false, reason: 'reset' });

/** A failed stream or session as a reason: the network error under HTTP/2's wrapping when there is one. */
function streamFailure(err: NodeJS.ErrnoException): ProbeResult {
  const cause = (err as { cause?: NodeJS.ErrnoException }).cause;
  if (cause?.code && !cause.code.startsWith('ERR_HTTP2')) return probeFailure(cause);
  switch (err.code) {
    case 'ERR_HTTP2_ERROR':
    case 'ERR_HTTP2_SESSION_ERROR':
      // The peer does not speak HTTP/2 with prior knowledge (an HTTP/1.1 server answers 400 and closes).
      return { ok: false, reason: 'invalid response (not h2c)' };
    case 'ERR_HTTP2_STREAM_ERROR':
    case 'ERR_HTTP2_STREAM_CANCEL':
    case 'ERR_HTTP2_GOAWAY_SESSION':
    case 'ERR_HTTP2_INVALID_SESSION':
      return RESET;
    default:
      return probeFailure(err);
  }
}

const IDLE = 0;
const BUSY = 1;
const DEAD = 2;

/** One HTTP/2 session to a target: probe after probe with a ProbeSession, else one probe. */
class GrpcConn {
  private readonly sock: net.Socket;
  private readonly h2: http2.ClientHttp2Session;
  private st = BUSY;
  private probes = 0;
  private idleSince = 0;
  readonly born = performance.now();
  // The probe in progress.
  private stream: http2.ClientHttp2Stream | undefined;
  private resolve: ((r: ProbeResult) => void) | undefined;
  private signal: ProbeSignal | undefined;
  private httpStatus = 0;
  private grpcStatus: string | undefined;
  private chunks: Buffer[] = [];
  private size = 0;
  private readonly onAbort = () => this.fail(ABORTED);

  constructor(
    private readonly target: ProbeTarget,
    private readonly session: ProbeSession | undefined,
  ) {
    const { host, port } = splitAddress(target.address);
    // Our own socket under the session, so a session given up on can end with a reset.
    this.sock = net.connect({ host, port });
    this.h2 = http2.connect(`http://${target.address}`, {
      createConnection: () => this.sock,
      settings: { enablePush: false },
    });
    this.h2.once('connect', () => {
      if (this.signal) setStage(this.signal, STAGE_CONNECTED);
    });
    // Failures usually reach the probe through its stream first; an idle session that fails just ends.
    this.h2.on('error', (err: NodeJS.ErrnoException) => (this.resolve ? this.failed(err) : this.close()));
    this.h2.on('close', () => this.onSessionClose());
  }

  private get state(): number {
    return this.st;
  }

  /** Moves between states, keeping the count of idle kept connections (shared with HTTP probes). */
  private set state(next: number) {
    if (this.st === IDLE) countKeptIdle(-1);
    if (next === IDLE) countKeptIdle(1);
    this.st = next;
  }

  /** Whether this session may carry a probe now. */
  get idle(): boolean {
    return this.state === IDLE && !this.h2.closed && !this.h2.destroyed;
  }

  get busy(): boolean {
    return this.state === BUSY;
  }

  run(signal: ProbeSignal, resolve: (r: ProbeResult) => void): void {
    this.probes++;
    this.state = BUSY;
    this.resolve = resolve;
    this.signal = signal;
    this.httpStatus = 0;
    this.grpcStatus = undefined;
    this.chunks = [];
    this.size = 0;
    setStage(signal, this.h2.connecting ? STAGE_CONNECTING : STAGE_CONNECTED);
    signal.addEventListener('abort', this.onAbort, { once: true });
    this.h2.ref();
    let stream: http2.ClientHttp2Stream;
    try {
      stream = this.h2.request(
        {
          ':method': 'POST',
          ':path': HEALTH_CHECK_PATH,
          ':authority': this.target.host,
          'content-type': 'application/grpc',
          te: 'trailers',
          'user-agent': 'wharf-health',
        },
        { endStream: false },
      );
    } catch (err) {
      // The session closed under the probe (a GOAWAY just now).
      return this.failed(err as NodeJS.ErrnoException);
    }
    this.stream = stream;
    stream.on('response', (headers) => {
      if (stream !== this.stream) return;
      this.httpStatus = Number(headers[':status']);
      // Trailers-only: an error answer carries grpc-status in its headers.
      const g = headers['grpc-status'];
      if (typeof g === 'string') this.grpcStatus = g;
    });
    stream.on('data', (chunk: Buffer) => {
      if (stream !== this.stream) return;
      this.size += chunk.length;
      if (this.size > MAX_BODY) return this.fail({ ok: false, reason: 'invalid response (too large)' });
      this.chunks.push(chunk);
    });
    stream.on('trailers', (trailers) => {
      if (stream !== this.stream) return;
      const g = trailers['grpc-status'];
      if (typeof g === 'string') this.grpcStatus = g;
    });
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (stream === this.stream) this.failed(err);
    });
    stream.on('close', () => {
      if (stream !== this.stream) return;
      if (this.httpStatus === 0) return this.failed(null);
      this.answered();
    });
    stream.end(encodeHealthCheckRequest(this.target.grpcService ?? ''));
  }

  /** The stream ended with an answer: judge it, then keep the session for the next probe or close it. */
  private answered(): void {
    const verdict = grpcVerdict({
      httpStatus: this.httpStatus,
      grpcStatus: this.grpcStatus,
      body: this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks),
    });
    if (!verdict.ok) return this.fail(verdict);
    this.settle(verdict);
    const s = this.session;
    if (!s || s.conn !== this || !this.idleUsable() || !worthKeeping(s) || !keptIdleRoom())
      return this.close();
    this.state = IDLE;
    this.idleSince = performance.now();
    this.h2.unref();
  }

  private idleUsable(): boolean {
    return !this.h2.closed && !this.h2.destroyed;
  }

  /** The stream failed before an answer (`err` null: it closed without one). */
  private failed(err: NodeJS.ErrnoException | null): void {
    // A kept session the server closed just as the probe was sent (the keep-alive race) says nothing
    // about the instance: the probe is sent again, once, on a new session.
    if (this.probes > 1 && this.httpStatus === 0 && this.resolve && !this.signal?.aborted)
      return this.retry();
    this.fail(err ? streamFailure(err) : RESET);
  }

  private retry(): void {
    const { signal, resolve } = this;
    this.detach();
    this.close();
    if (!signal || !resolve) return;
    const fresh = new GrpcConn(this.target, this.session);
    if (this.session && this.session.conn === undefined) this.session.conn = fresh;
    fresh.run(signal, resolve);
  }

  private onSessionClose(): void {
    if (this.state === IDLE) {
      // The server closed an idle session (GOAWAY after its idle timeout): remember after how long.
      const s = this.session;
      if (s) learnServerIdle(s, performance.now() - this.idleSince, performance.now());
    }
    if (this.state !== BUSY) return this.close();
    // A probe in flight hears of it through its stream.
  }

  /** Ends the session (a failure, a target that is gone, or no further use for it). */
  close(): void {
    if (this.state === DEAD) return;
    this.state = DEAD;
    if (this.session?.conn === this) this.session.conn = undefined;
    const stream = this.stream;
    this.stream = undefined;
    if (stream && !stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
    // A reset leaves no TIME_WAIT behind, but only on a session still whole: one that is being torn
    // down (a session error) still holds the socket's handle, and a reset under it never completes.
    if (!this.h2.destroyed) resetSocket(this.sock);
    this.h2.destroy();
  }

  private fail(r: ProbeResult): void {
    this.settle(r);
    this.close();
  }

  private settle(r: ProbeResult): void {
    const resolve = this.resolve;
    this.detach();
    resolve?.(r);
  }

  private detach(): void {
    this.signal?.removeEventListener('abort', this.onAbort);
    this.signal = undefined;
    this.resolve = undefined;
    this.stream = undefined;
  }
}

/** One gRPC health check of `target`, on its kept session when it has an idle one. */
export function grpcProbe(target: ProbeTarget, signal: ProbeSignal): Promise<ProbeResult> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(ABORTED);
    const session = target.session;
    let conn = session?.conn as GrpcConn | undefined;
    if (conn && !conn.busy && (!conn.idle || performance.now() - conn.born > CONN_MAX_AGE_MS)) {
      conn.close();
      conn = undefined;
    }
    if (!conn?.idle) {
      conn = new GrpcConn(target, session);
      if (session && session.conn === undefined) session.conn = conn;
    }
    conn.run(signal, resolve);
  });
}
