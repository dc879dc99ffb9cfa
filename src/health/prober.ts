// Active probes on their own connections: HTTP GET (status in the expected ranges), a TCP connect,
// or a gRPC health check (grpc-probe.ts, which keeps its sessions the way this file keeps HTTP
// connections and shares its budget and error reasons; the two modules import each other, for
// functions called at probe time only).
// Never the proxy's pools: a pool full of slow requests must not delay a probe, and a probe must not
// take a pooled connection that a request could use.
//
// HTTP probes of a target with a ProbeSession keep their connection alive between probes (issue 24:
// a connection per probe put 5,000 sockets a second into TIME_WAIT at 5,000 endpoints). The probe
// timeout bounds the answer on a kept connection exactly as on a new one, so a hung process is still
// found; after any failure the next probe opens a fresh connection. Connections the prober closes
// itself (a failure, a target that is gone, a TCP check) end with a reset, so they leave no TIME_WAIT
// behind (HAProxy closes its checks the same way).
//
// The prober does not time itself out: the caller owns time (so tests can use a fake clock) and
// aborts the signal at the deadline; the prober then destroys its socket at once.

import { readFileSync } from 'node:fs';
import net from 'node:net';
import type { HealthCheckKind, StatusRange } from '../model/settings.ts';
import { grpcProbe } from './grpc-probe.ts';
import { DONE, INVALID, ResponseReader, STATUS } from './http-response.ts';

export interface ProbeTarget {
  /** `host:port`, IPv6 hosts bracketed. */
  readonly address: string;
  /** HTTP path, or null for a TCP connect check (or a gRPC one, with `check`). */
  readonly path: string | null;
  /** What the probe asks; absent: HTTP when there is a path, a TCP connect when there is not. */
  readonly check?: HealthCheckKind;
  /** gRPC service asked about when `check` is `grpc`; `''` or absent: the whole server. */
  readonly grpcService?: string;
  /** Host header of an HTTP probe: `<project>.<domain>`. */
  readonly host: string;
  readonly expect: readonly StatusRange[];
  /** Where the prober keeps this target's connection between probes. Absent: one connection per probe. */
  readonly session?: ProbeSession;
}

/**
 * How long a learned server idle timeout is believed. An idle connection also ends when its process
 * dies, which looks the same from here; a restarted process (same address) gets its connections
 * kept again after this long.
 */
export const SERVER_IDLE_MEMORY_MS = 600_000;

/** What the prober keeps for one target between its probes (see HttpConn). */
export class ProbeSession {
  /** The kept connection: idle between probes, or busy with one. */
  conn: unknown = undefined;
  /** The shortest idle time after which the server closed a kept connection, in ms (none seen: infinite). */
  serverIdleMs = Number.POSITIVE_INFINITY;
  /** When serverIdleMs was last lowered (performance.now() ms). */
  serverIdleAt = 0;
  /**
   * Expected time to the next probe, set by the probe loop. A connection the server would close before
   * then is closed at once instead (with a reset): waiting for the server's close would leave TIME_WAIT
   * in the server and, through a node's conntrack, beside it.
   */
  nextGapMs = 0;
}

export interface ProbeResult {
  readonly ok: boolean;
  /** `ok (200)`, `status 503`, `connect refused`, `reset`, ... */
  readonly reason: string;
  readonly status?: number;
  /**
   * The probe could not be made from here (no file descriptor, no local port): it says nothing about
   * the instance, so it counts neither way (only evidence from an upstream may count against one).
   */
  readonly local?: boolean;
}

/**
 * What a prober needs to be told to stop: an AbortSignal is one. The health checker passes a
 * lighter object of its own (an AbortController per probe, 800 probes a second, was a good part of
 * the probes' garbage).
 */
export interface ProbeSignal {
  readonly aborted: boolean;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

export interface Prober {
  probe(target: ProbeTarget, signal: ProbeSignal): Promise<ProbeResult>;
  /** The target is gone: close whatever the prober keeps for it. */
  forget?(target: ProbeTarget): void;
}

/** ProbeCancel.stage: how far the probe's connection got, so a deadline can say "connect timeout". */
export const STAGE_UNKNOWN = 0;
export const STAGE_CONNECTING = 1;
export const STAGE_CONNECTED = 2;

/** A one-shot ProbeSignal: `abort()` calls the listeners once. */
export class ProbeCancel implements ProbeSignal {
  aborted = false;
  /** Set by the network prober; a fake prober leaves it unknown. */
  stage = STAGE_UNKNOWN;
  private first: (() => void) | undefined;
  private more: (() => void)[] | undefined;

  addEventListener(_type: 'abort', listener: () => void): void {
    if (this.aborted) return;
    if (!this.first) this.first = listener;
    else if (this.more) this.more.push(listener);
    else this.more = [listener];
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    if (this.first === listener) this.first = undefined;
    else if (this.more) {
      const i = this.more.indexOf(listener);
      if (i >= 0) this.more.splice(i, 1);
    }
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    const first = this.first;
    const more = this.more;
    this.first = undefined;
    this.more = undefined;
    first?.();
    if (more) for (const fn of more) fn();
  }
}

export function splitAddress(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  let host = address.slice(0, colon);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return { host, port: Number(address.slice(colon + 1)) };
}

export function statusExpected(status: number, expect: readonly StatusRange[]): boolean {
  for (const r of expect) if (status >= r.from && status <= r.to) return true;
  return false;
}

function describeError(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ECONNREFUSED':
      return 'connect refused';
    case 'ECONNRESET':
    case 'EPIPE':
      return 'reset';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'host unreachable';
    case 'ETIMEDOUT':
      return 'connect timeout';
    case 'HPE_INVALID_CONSTANT':
    case 'HPE_INVALID_STATUS':
    case 'HPE_INVALID_HEADER_TOKEN':
      return 'invalid response';
    default:
      return err.code ? `error ${err.code}` : `error: ${err.message}`;
  }
}

/** Errors of this host, not of the instance probed. */
const LOCAL_ERRORS: ReadonlySet<string> = new Set(['EMFILE', 'ENFILE', 'EADDRNOTAVAIL', 'ENOBUFS', 'ENOMEM']);

export function probeFailure(err: NodeJS.ErrnoException): ProbeResult {
  if (err.code && LOCAL_ERRORS.has(err.code))
    return { ok: false, reason: `local error ${err.code}`, local: true };
  return { ok: false, reason: describeError(err) };
}

/**
 * Idle kept connections in this thread, and how many may be: half the file descriptors this process
 * may open (the rest are the proxy's), so keeping connections can never starve the proxy or a probe
 * of a descriptor. Past it, a probe's connection closes after its answer, as one without a session.
 */
let keptIdle = 0;
let keptBudget = defaultKeptBudget();

function defaultKeptBudget(): number {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (m) return Math.floor(Number(m[1]) / 2);
  } catch {}
  return Number.POSITIVE_INFINITY;
}

/** Sets the number of idle kept connections allowed (tests); returns the previous one. */
export function setKeptBudget(n: number): number {
  const prev = keptBudget;
  keptBudget = n;
  return prev;
}

/** Whether one more idle kept connection fits the budget (gRPC sessions share it: grpc-probe.ts). */
export function keptIdleRoom(): boolean {
  return keptIdle < keptBudget;
}

/** A kept connection of another kind went idle (1) or stopped being idle (-1). */
export function countKeptIdle(delta: 1 | -1): void {
  keptIdle += delta;
}

/** Idle kept connections now (tests, the benchmark). */
export function keptConnections(): number {
  return keptIdle;
}

const ABORTED: ProbeResult = Object.freeze({ ok: false, reason: 'aborted' });
const INVALID_RESPONSE: ProbeResult = Object.freeze({ ok: false, reason: 'invalid response' });
const HANG_UP: ProbeResult = Object.freeze({ ok: false, reason: 'reset' });
const TCP_OK: ProbeResult = Object.freeze({ ok: true, reason: 'ok (tcp)' });

export function setStage(signal: ProbeSignal, stage: number): void {
  if (signal instanceof ProbeCancel) signal.stage = stage;
}

/** Closes a socket this side gives up on: a reset once connected (no TIME_WAIT), a plain destroy before. */
export function resetSocket(sock: net.Socket): void {
  if (sock.destroyed) return;
  if (sock.connecting) return void sock.destroy();
  try {
    sock.resetAndDestroy();
  } catch {
    sock.destroy();
  }
}

function connect(address: string): net.Socket {
  const { host, port } = splitAddress(address);
  return net.connect({ host, port });
}

function tcpProbe(target: ProbeTarget, signal: ProbeSignal): Promise<ProbeResult> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(ABORTED);
    setStage(signal, STAGE_CONNECTING);
    const sock = connect(target.address);
    const done = (r: ProbeResult) => {
      signal.removeEventListener('abort', onAbort);
      resetSocket(sock);
      resolve(r);
    };
    const onAbort = () => done(ABORTED);
    signal.addEventListener('abort', onAbort, { once: true });
    sock.once('connect', () => {
      setStage(signal, STAGE_CONNECTED);
      done(TCP_OK);
    });
    sock.on('error', (err) => done(probeFailure(err)));
  });
}

/**
 * A kept connection carries probes for at most this long; the next probe opens a new one. A process
 * whose listener stopped accepting (a full accept queue, descriptors exhausted) may still answer on
 * an old connection: a fresh connect at least once a minute finds it. New connections per second
 * stay at most the number of targets divided by this.
 */
export const CONN_MAX_AGE_MS = 60_000;

/** Keep a connection unless the server is known to close it before the next probe is due. */
export function worthKeeping(s: ProbeSession, now = performance.now()): boolean {
  if (now - s.serverIdleAt > SERVER_IDLE_MEMORY_MS) s.serverIdleMs = Number.POSITIVE_INFINITY;
  return s.nextGapMs < s.serverIdleMs * 0.8;
}

/** The server closed an idle probe connection after `idleMs`. */
export function learnServerIdle(s: ProbeSession, idleMs: number, now = performance.now()): void {
  if (now - s.serverIdleAt > SERVER_IDLE_MEMORY_MS) s.serverIdleMs = Number.POSITIVE_INFINITY;
  if (idleMs < s.serverIdleMs) s.serverIdleMs = idleMs;
  s.serverIdleAt = now;
}

/** The read buffer of every HTTP probe connection of this thread (a read is parsed before the next). */
const READ_BUFFER = Buffer.allocUnsafe(16_384);

const IDLE = 0;
const BUSY = 1;
/** The verdict is given; the rest of the response is read so the connection can be kept. */
const DRAINING = 2;
const DEAD = 3;

/**
 * One HTTP probe connection. With a session it carries probe after probe: between probes it is
 * idle (unref'd, so it never keeps a process alive) and a server that closes it, or sends anything
 * unasked, just ends it. Without one (or when the session's connection is busy with another probe)
 * it carries one probe and closes at the verdict.
 */
class HttpConn {
  private readonly sock: net.Socket;
  private st = BUSY;
  private exchanges = 0;
  private idleSince = 0;
  private readonly reader = new ResponseReader();
  private resolve: ((r: ProbeResult) => void) | undefined;
  private signal: ProbeSignal | undefined;
  /** Bytes of the current response have arrived. */
  private got = false;
  private readonly request: Buffer;
  private readonly onAbort = () => this.fail(ABORTED);
  readonly born = performance.now();

  constructor(
    private readonly target: ProbeTarget,
    private readonly session: ProbeSession | undefined,
  ) {
    const close = session ? '' : 'Connection: close\r\n';
    this.request = Buffer.from(
      `GET ${target.path ?? '/'} HTTP/1.1\r\nHost: ${target.host}\r\nUser-Agent: wharf-health\r\nAccept: */*\r\n${close}\r\n`,
      'latin1',
    );
    const { host, port } = splitAddress(target.address);
    // Reads land in one buffer shared by every probe connection of this thread and are parsed at
    // once: no buffer allocated per read (10,000 kept connections each holding the remains of
    // its own read buffers cost about 20 KB apiece), no stream machinery per chunk.
    const sock = net.connect({
      host,
      port,
      onread: {
        buffer: READ_BUFFER,
        callback: (n: number, buf: Uint8Array) => {
          this.onData(Buffer.prototype.toString.call(buf, 'latin1', 0, n));
          return true;
        },
      },
    });
    this.sock = sock;
    sock.once('connect', () => {
      if (this.signal) setStage(this.signal, STAGE_CONNECTED);
    });
    sock.on('end', () => this.onEnd());
    sock.on('close', () => this.onEnd());
    sock.on('error', (err) => this.onError(err));
  }

  /** Moves between states, keeping the count of idle kept connections. */
  private get state(): number {
    return this.st;
  }

  private set state(next: number) {
    if (this.st === IDLE) keptIdle--;
    if (next === IDLE) keptIdle++;
    this.st = next;
  }

  /** Whether this connection may carry a probe now. */
  get idle(): boolean {
    return this.state === IDLE && !this.sock.destroyed;
  }

  /** True while a probe waits on it (so a parallel probe must open its own connection). */
  get busy(): boolean {
    return this.state === BUSY;
  }

  run(signal: ProbeSignal, resolve: (r: ProbeResult) => void): void {
    this.exchanges++;
    this.state = BUSY;
    if (this.exchanges > 1) this.reader.reset();
    this.got = false;
    this.resolve = resolve;
    this.signal = signal;
    setStage(signal, this.sock.connecting ? STAGE_CONNECTING : STAGE_CONNECTED);
    signal.addEventListener('abort', this.onAbort, { once: true });
    this.sock.ref();
    this.sock.write(this.request);
  }

  /** Ends the connection (the target is gone, or the connection is of no further use). */
  close(): void {
    this.state = DEAD;
    if (this.session?.conn === this) this.session.conn = undefined;
    resetSocket(this.sock);
  }

  private onData(chunk: string): void {
    if (this.state === IDLE || this.state === DEAD) {
      // Nothing was asked (a 408 before an idle close, say): the connection cannot be trusted.
      return this.close();
    }
    this.got = true;
    const r = this.reader.feed(chunk);
    if (r & INVALID) return this.fail(INVALID_RESPONSE);
    if (r & STATUS) {
      const status = this.reader.status;
      this.settle(
        statusExpected(status, this.target.expect)
          ? { ok: true, reason: `ok (${status})`, status }
          : { ok: false, reason: `status ${status}`, status },
      );
      // Only the session's own connection is worth reading to the end; a spare one closes now.
      if (this.session?.conn !== this || !this.reader.reusable) return this.close();
      this.state = DRAINING;
    }
    if (r & DONE) this.finished();
  }

  /** The response ended: keep the connection for the next probe, or close it. */
  private finished(): void {
    const s = this.session;
    if (!s || s.conn !== this || !this.reader.reusable || !worthKeeping(s) || keptIdle >= keptBudget) {
      return this.close();
    }
    this.state = IDLE;
    this.idleSince = performance.now();
    this.sock.unref();
  }

  private onEnd(): void {
    if (this.state === DEAD) return;
    if (this.state === IDLE) {
      // The server closed an idle probe connection: remember after how long, then let it go.
      const s = this.session;
      if (s) learnServerIdle(s, performance.now() - this.idleSince, performance.now());
      this.state = DEAD;
      if (s?.conn === this) s.conn = undefined;
      this.sock.destroy();
      return;
    }
    if (this.state === BUSY && this.retryable()) return this.retry();
    // Closed before a status line: what node:http calls "socket hang up".
    this.fail(HANG_UP);
  }

  private onError(err: NodeJS.ErrnoException): void {
    if (this.state === DEAD) return;
    if (this.state === BUSY && (err.code === 'ECONNRESET' || err.code === 'EPIPE') && this.retryable())
      return this.retry();
    this.fail(probeFailure(err));
  }

  /**
   * A kept connection the server closed just as the probe was sent (the keep-alive race) says
   * nothing about the instance: the probe is sent again, once, on a fresh connection.
   */
  private retryable(): boolean {
    return this.exchanges > 1 && !this.got && this.resolve !== undefined;
  }

  private retry(): void {
    const { signal, resolve } = this;
    this.detach();
    this.close();
    if (!signal || !resolve) return;
    const fresh = new HttpConn(this.target, this.session);
    if (this.session && this.session.conn === undefined) this.session.conn = fresh;
    fresh.run(signal, resolve);
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
  }
}

/**
 * HTTP GET on a raw socket: the request is one write, and the verdict is the status line. Probing
 * 50,000 endpoints, node:http's client machinery (a request object, an agent, a parser) per probe
 * was most of the probe's cost in CPU and garbage; here a kept connection costs one write and one
 * read per probe, and a refused connection one socket.
 */
function httpProbe(target: ProbeTarget, signal: ProbeSignal): Promise<ProbeResult> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(ABORTED);
    const session = target.session;
    let conn = session?.conn as HttpConn | undefined;
    if (conn && !conn.busy && (!conn.idle || performance.now() - conn.born > CONN_MAX_AGE_MS)) {
      // Still reading the previous answer's body (not worth waiting for), or old enough to retire.
      conn.close();
      conn = undefined;
    }
    if (!conn?.idle) {
      conn = new HttpConn(target, session);
      if (session && session.conn === undefined) session.conn = conn;
    }
    conn.run(signal, resolve);
  });
}

/** What a target's probe asks (targets without `check` say it with their path). */
export function probeKind(target: Pick<ProbeTarget, 'check' | 'path'>): HealthCheckKind {
  return target.check ?? (target.path === null ? 'tcp' : 'http');
}

/** The real prober: an HTTP GET, a TCP connect or a gRPC health check, as the target says. */
export const netProber: Prober = {
  probe(target, signal) {
    switch (probeKind(target)) {
      case 'tcp':
        return tcpProbe(target, signal);
      case 'grpc':
        return grpcProbe(target, signal);
      default:
        return httpProbe(target, signal);
    }
  },
  forget(target) {
    // An HttpConn or a gRPC session: either closes the same way.
    (target.session?.conn as { close(): void } | undefined)?.close();
  },
};
