// HTTP/2 in cleartext (h2c, prior knowledge) to one upstream address: the protocol of gRPC services
// and of ports marked `kubernetes.io/h2c`. node:http2 sessions, each carrying many requests at once;
// a request is dispatched to the same handler interface undici uses (attempt.ts), so the pipeline
// does not care which protocol took its attempt.
//
// Why not undici's h2: a proxy must know whether an instance processed a request before retrying it
// elsewhere. HTTP/2 says so precisely (RST_STREAM REFUSED_STREAM, or a GOAWAY whose last stream id is
// below ours: RFC 9113 §8.7), and node:http2 shows both; it also hands over trailers as they came.

import http2, { type ClientHttp2Session, type ClientHttp2Stream, constants as h2 } from 'node:http2';
import net from 'node:net';
import type { Readable } from 'node:stream';

/** The subset of undici's dispatch handler that Attempt implements. */
export interface UpstreamHandler {
  onConnect(abort: (err?: Error) => void): void;
  onHeaders(status: number, rawHeaders: (Buffer | string)[], resume: () => void): boolean;
  onData(chunk: Buffer): boolean;
  onComplete(rawTrailers: (Buffer | string)[] | null): void;
  onError(err: Error): void;
}

export interface H2Request {
  readonly method: string;
  readonly path: string;
  /** Flat `[name, value, ...]` with `host` (sent as `:authority`). */
  readonly headers: string[];
  /** A stream, or a body read whole beforehand (see body-buffer.ts). */
  readonly body: Readable | Buffer | null;
}

export interface H2OriginOptions {
  readonly connectTimeoutMs: number;
  readonly idleTimeoutMs: number;
  /** Sessions opened at most when every open one is at the peer's concurrent-stream limit. */
  readonly maxSessions: number;
}

/** An error with the `code` errors.ts classifies (blameOf, classifyError). */
function codeError(message: string, code: string): Error & { code: string } {
  return Object.assign(new Error(message), { code });
}

/**
 * The instance refused the stream before processing it: RST_STREAM(REFUSED_STREAM), or a stream above
 * a GOAWAY's last stream id. Safe to retry for any method (errors.ts: isRefusedStream).
 */
export const REFUSED_STREAM = 'H2_REFUSED_STREAM';

/** Connection-specific headers HTTP/2 forbids (RFC 9113 §8.2.2); hygiene drops them, this is the guard. */
const FORBIDDEN = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'host',
]);

class Session {
  readonly session: ClientHttp2Session;
  connected = false;
  /** GOAWAY received or closing: takes no new streams. */
  draining = false;
  active = 0;
  private readonly pending: (() => void)[] = [];
  private idleTimer?: NodeJS.Timeout;

  constructor(
    readonly origin: H2Origin,
    host: string,
    port: number,
    private readonly opts: H2OriginOptions,
  ) {
    let connectTimer: NodeJS.Timeout | undefined;
    this.session = http2.connect(`http://${origin.address}`, {
      createConnection: () => {
        const socket = net.connect({ host, port });
        socket.setNoDelay(true);
        connectTimer = setTimeout(
          () => socket.destroy(codeError(`connect timeout to ${origin.address}`, 'UND_ERR_CONNECT_TIMEOUT')),
          opts.connectTimeoutMs,
        );
        return socket;
      },
      settings: { enablePush: false },
    });
    const s = this.session;
    s.once('connect', () => {
      clearTimeout(connectTimer);
      this.connected = true;
      for (const start of this.pending.splice(0)) start();
      this.idleCheck();
    });
    s.on('error', (err: Error) => {
      clearTimeout(connectTimer);
      // Before the connection: every waiting request fails with the socket's error (refused,
      // timed out), which is the instance's fault and safe to retry anywhere.
      this.fail(err);
    });
    s.on('goaway', () => {
      this.draining = true;
    });
    s.once('close', () => {
      clearTimeout(connectTimer);
      clearTimeout(this.idleTimer);
      this.draining = true;
      this.fail(codeError(`connection to ${origin.address} closed`, 'ECONNRESET'));
      origin.forget(this);
    });
  }

  /** Whether the peer lets one more stream start now. */
  get full(): boolean {
    const max = this.connected ? (this.session.remoteSettings.maxConcurrentStreams ?? 100) : 100;
    return this.active + this.pending.length >= max;
  }

  private fail(err: Error): void {
    const waiting = this.pending.splice(0);
    this.failed = err;
    for (const start of waiting) start();
  }

  /** Set once the session failed: requests started after that fail with it at once. */
  failed?: Error;

  request(req: H2Request, handler: UpstreamHandler): void {
    clearTimeout(this.idleTimer);
    if (this.connected || this.failed) this.start(req, handler);
    else this.pending.push(() => this.start(req, handler));
  }

  private start(req: H2Request, handler: UpstreamHandler): void {
    if (this.failed || this.session.destroyed || this.session.closed) {
      const err = this.failed ?? codeError('HTTP/2 session closed', 'ECONNRESET');
      handler.onConnect(() => {});
      handler.onError(err);
      return;
    }
    const headers: Record<string, string | string[]> = {
      ':method': req.method,
      ':path': req.path,
      ':scheme': 'http',
    };
    const raw = req.headers;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i].toLowerCase();
      if (name === 'host') headers[':authority'] = raw[i + 1];
      else if (!FORBIDDEN.has(name) && (name !== 'te' || raw[i + 1].trim().toLowerCase() === 'trailers')) {
        const prev = headers[name];
        headers[name] =
          prev === undefined ? raw[i + 1] : Array.isArray(prev) ? [...prev, raw[i + 1]] : [prev, raw[i + 1]];
      }
    }
    let stream: ClientHttp2Stream;
    try {
      stream = this.session.request(headers, { endStream: req.body === null });
    } catch (err) {
      handler.onConnect(() => {});
      handler.onError(
        Object.assign(err as Error, { code: (err as { code?: string }).code ?? 'UND_ERR_INVALID_ARG' }),
      );
      return;
    }
    this.active++;
    new StreamExchange(this, stream, req, handler);
  }

  streamClosed(): void {
    this.active--;
    this.idleCheck();
  }

  private idleCheck(): void {
    if (this.active > 0 || this.pending.length > 0) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      if (this.active === 0) this.session.close();
    }, this.opts.idleTimeoutMs);
    this.idleTimer.unref();
  }
}

/** One request on one stream: feeds the handler the way undici would. */
class StreamExchange {
  private done = false;
  private responded = false;
  private trailers: string[] | null = null;

  constructor(
    private readonly owner: Session,
    private readonly stream: ClientHttp2Stream,
    req: H2Request,
    private readonly handler: UpstreamHandler,
  ) {
    handler.onConnect((err) => this.abort(err));
    stream.on('response', (headers) => this.onResponse(headers));
    stream.on('data', (chunk: Buffer) => {
      if (this.done) return;
      if (!handler.onData(chunk)) stream.pause();
    });
    stream.on('trailers', (trailers) => {
      this.trailers = flatten(trailers);
    });
    stream.on('end', () => this.finish());
    stream.on('error', (err: Error & { code?: string }) => this.error(this.errorFor(err)));
    stream.once('close', () => {
      owner.streamClosed();
      if (!this.done) this.error(this.errorFor());
    });
    if (Buffer.isBuffer(req.body)) stream.end(req.body);
    else if (req.body) {
      req.body.on('error', (err) => {
        if (!this.done) stream.close(h2.NGHTTP2_CANCEL);
        this.error(err);
      });
      req.body.pipe(stream);
    }
  }

  private onResponse(headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader): void {
    if (this.done) return;
    const status = Number(headers[':status']);
    if (status < 200) return;
    this.responded = true;
    const raw: string[] = [];
    for (const name in headers) {
      if (name.charCodeAt(0) === 58 /* : */) continue;
      const v = headers[name];
      if (Array.isArray(v)) for (const one of v) raw.push(name, one);
      else if (v !== undefined) raw.push(name, String(v));
    }
    this.handler.onHeaders(status, raw, () => this.stream.resume());
  }

  private finish(): void {
    if (this.done) return;
    if (!this.responded)
      return this.error(codeError('the stream ended without a response', 'UND_ERR_SOCKET'));
    this.done = true;
    this.handler.onComplete(this.trailers);
  }

  private abort(err?: Error): void {
    if (this.done) return;
    if (!this.stream.destroyed) this.stream.close(h2.NGHTTP2_CANCEL);
    this.error(err ?? codeError('aborted', 'UND_ERR_ABORTED'));
  }

  /** Why the stream ended without a complete response: refused (retry-safe) or reset. */
  private errorFor(err?: Error & { code?: string }): Error {
    const rst = this.stream.rstCode;
    if (rst === h2.NGHTTP2_REFUSED_STREAM)
      return codeError('the instance refused the stream (REFUSED_STREAM)', REFUSED_STREAM);
    if (
      err?.code === 'ERR_HTTP2_GOAWAY_SESSION' ||
      (err === undefined && this.owner.draining && !this.responded)
    )
      return codeError('the instance went away before processing the stream (GOAWAY)', REFUSED_STREAM);
    if (
      err &&
      (err as { code?: string }).code &&
      !String((err as { code?: string }).code).startsWith('ERR_HTTP2')
    )
      return err;
    return codeError(err?.message ?? `the stream was reset (code ${rst ?? 'none'})`, 'ECONNRESET');
  }

  private error(err: Error): void {
    if (this.done) return;
    this.done = true;
    if (!this.stream.destroyed) this.stream.close(h2.NGHTTP2_CANCEL);
    this.handler.onError(err);
  }
}

function flatten(headers: http2.IncomingHttpHeaders): string[] {
  const raw: string[] = [];
  for (const name in headers) {
    const v = headers[name];
    if (Array.isArray(v)) for (const one of v) raw.push(name, one);
    else if (v !== undefined) raw.push(name, String(v));
  }
  return raw;
}

/** Every HTTP/2 session to one upstream address. */
export class H2Origin {
  private readonly sessions: Session[] = [];
  private readonly host: string;
  private readonly port: number;

  constructor(
    readonly address: string,
    private readonly opts: H2OriginOptions,
  ) {
    const colon = address.lastIndexOf(':');
    this.host = address.slice(0, colon).replace(/^\[|\]$/g, '');
    this.port = Number(address.slice(colon + 1));
  }

  dispatch(req: H2Request, handler: UpstreamHandler): void {
    let best: Session | undefined;
    for (const s of this.sessions) {
      if (s.draining || s.failed) continue;
      if (!s.full) {
        best = s;
        break;
      }
      if (!best || s.active < best.active) best = s;
    }
    if (!best || (best.full && this.sessions.length < this.opts.maxSessions)) {
      best = new Session(this, this.host, this.port, this.opts);
      this.sessions.push(best);
    }
    best.request(req, handler);
  }

  forget(s: Session): void {
    const i = this.sessions.indexOf(s);
    if (i >= 0) this.sessions.splice(i, 1);
  }

  /** Graceful: GOAWAY; streams in flight finish. */
  async close(): Promise<void> {
    await Promise.all(
      this.sessions.map(
        (s) =>
          new Promise<void>((resolve) => (s.session.closed ? resolve() : s.session.close(() => resolve()))),
      ),
    );
  }

  async destroy(): Promise<void> {
    for (const s of [...this.sessions]) s.session.destroy();
  }
}
