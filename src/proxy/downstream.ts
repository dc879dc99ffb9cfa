// The client's side of one exchange, whatever carried it: the request pipeline (exchange.ts) reads the
// request and answers through this interface only, so every rule it applies holds for every front
// end. Three implementations: an HTTP/1.1 request/response pair; an HTTP/1.1 Upgrade, answered as raw
// bytes on the socket node hands over; and an HTTP/2 stream.

import { type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http';
import { constants as h2, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { Duplex, Readable } from 'node:stream';
import { errorTitle, sendError } from './errors.ts';
import type { Inspected } from './request-head.ts';

export type ClientProtocol = 'http/1.1' | 'h2';

/** A JSON error answer: `{"error", "reason", "project", "port", "instance"}`. */
export interface ErrorAnswer {
  readonly reason: string;
  readonly project?: string;
  readonly port?: string;
  readonly instance?: string;
}

export interface Downstream {
  readonly protocol: ClientProtocol;
  readonly method: string;
  /** The request target as received (origin, absolute or asterisk form). */
  readonly url: string;
  /** Request headers, flat `[name, value, ...]`; HTTP/2's `:authority` appears as `host`. */
  readonly rawHeaders: string[];
  /** The client's connection (for HTTP/2, the session's). */
  readonly socket: Socket;
  /** The request body as it arrives (the request itself, or the HTTP/2 stream). */
  readonly body: Readable;
  /** Whether the response head has gone out (an error can then only cut the response). */
  readonly headersSent: boolean;
  /** The status sent, once headersSent. */
  readonly statusCode: number;
  /** Whether the request has a body to forward (HTTP/1.1: its framing headers; HTTP/2: no END_STREAM). */
  hasBody(h: Inspected): boolean;
  /** Whether the whole request body has been received. */
  bodyComplete(): boolean;
  /** Request bytes read from the client connection so far (for the access log's bytesIn). */
  bytesRead(): number;
  /** Calls `cb` once if the client goes away before the response has been written in full. */
  onAbort(cb: () => void): void;
  /** Arms (ms > 0) or disarms (0) the longest silence allowed on the client's side. */
  idleTimeout(ms: number): void;
  /** `100 Continue` for a client that sent `Expect: 100-continue` (only once a peer is chosen). */
  writeContinue(): void;
  /** The response head; `trailers`: the response will end with trailers (end() passes them). */
  writeHead(status: number, headers: string[], trailers?: boolean): void;
  /** False when the client's side is full: call onDrain and wait. */
  write(chunk: Buffer): boolean;
  onDrain(cb: () => void): void;
  end(trailers?: [string, string][]): void;
  /** Ends the exchange with a JSON error; returns the body's size. */
  error(status: number, body: ErrorAnswer, headers: Record<string, string>): number;
  /** A response with no body but its headers (gRPC's trailers-only answers, `OPTIONS *`). */
  headersOnly(status: number, headers: Record<string, string>): void;
  /** Cuts a response already under way, so the client cannot take it for complete. */
  destroy(err?: Error): void;
  /**
   * Upgrades only, after the 101 went out: joins the client's connection and `upstream` byte for
   * byte; `onBytesOut` counts what reaches the client, `onEnd` runs once when both have closed.
   */
  tunnel?(upstream: Duplex, onBytesOut: (n: number) => void, onEnd: () => void): void;
}

function http1HasBody(h: Inspected): boolean {
  return h.chunked || (h.contentLength !== undefined && h.contentLength !== '0');
}

/** What both HTTP/1.1 downstreams read from node's IncomingMessage. */
abstract class Http1Request {
  readonly protocol = 'http/1.1';

  constructor(readonly req: IncomingMessage) {}

  get method(): string {
    return this.req.method ?? 'GET';
  }

  get url(): string {
    return this.req.url ?? '/';
  }

  get rawHeaders(): string[] {
    return this.req.rawHeaders;
  }

  get socket(): Socket {
    return this.req.socket;
  }

  get body(): Readable {
    return this.req;
  }
}

/** An HTTP/1.1 request and its ServerResponse. */
export class Http1Downstream extends Http1Request implements Downstream {
  private readonly startBytes: number;

  constructor(
    req: IncomingMessage,
    readonly res: ServerResponse,
  ) {
    super(req);
    this.startBytes = req.socket.bytesRead;
  }

  get headersSent(): boolean {
    return this.res.headersSent;
  }

  get statusCode(): number {
    return this.res.statusCode;
  }

  hasBody(h: Inspected): boolean {
    return http1HasBody(h);
  }

  bodyComplete(): boolean {
    return this.req.complete;
  }

  bytesRead(): number {
    return this.req.socket ? this.req.socket.bytesRead - this.startBytes : 0;
  }

  onAbort(cb: () => void): void {
    this.res.on('close', () => {
      if (!this.res.writableFinished) cb();
    });
  }

  idleTimeout(ms: number): void {
    this.req.socket?.setTimeout(ms);
  }

  writeContinue(): void {
    this.res.writeContinue();
  }

  writeHead(status: number, headers: string[]): void {
    this.res.writeHead(status, headers);
  }

  write(chunk: Buffer): boolean {
    return this.res.write(chunk);
  }

  onDrain(cb: () => void): void {
    this.res.once('drain', cb);
  }

  end(trailers?: [string, string][]): void {
    if (trailers) this.res.addTrailers(trailers);
    this.res.end();
  }

  error(status: number, body: ErrorAnswer, headers: Record<string, string>): number {
    return sendError(this.res, status, body, headers);
  }

  headersOnly(status: number, headers: Record<string, string>): void {
    this.res.writeHead(status, { ...headers, 'content-length': '0' });
    this.res.end();
  }

  destroy(err?: Error): void {
    this.res.destroy(err);
  }
}

/**
 * An HTTP/1.1 Upgrade (WebSocket). node hands over the raw socket: a 101 is written as bytes and the
 * socket is then tunnelled; any other answer (an error of ours, or an upstream that declined to
 * switch) is written as a plain response ending with the connection.
 */
export class UpgradeDownstream extends Http1Request implements Downstream {
  headersSent = false;
  statusCode = 0;
  private readonly startBytes: number;

  constructor(
    req: IncomingMessage,
    readonly rawSocket: Duplex,
    /** Bytes the client sent after its handshake (already read by node's parser). */
    readonly head: Buffer,
  ) {
    super(req);
    this.startBytes = (rawSocket as Socket).bytesRead ?? 0;
    rawSocket.on('error', () => rawSocket.destroy());
  }

  hasBody(h: Inspected): boolean {
    return http1HasBody(h);
  }

  bodyComplete(): boolean {
    return this.req.complete;
  }

  bytesRead(): number {
    return ((this.rawSocket as Socket).bytesRead ?? 0) - this.startBytes;
  }

  onAbort(cb: () => void): void {
    this.rawSocket.once('close', () => {
      if (this.statusCode !== 101) cb();
    });
  }

  idleTimeout(ms: number): void {
    (this.rawSocket as Duplex & { setTimeout?: (ms: number) => void }).setTimeout?.(ms);
  }

  writeContinue(): void {}

  writeHead(status: number, headers: string[]): void {
    this.headersSent = true;
    this.statusCode = status;
    let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
    for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
    // Anything but a switch ends with the connection: the body is delimited by the close.
    if (status !== 101) head += 'connection: close\r\n';
    this.rawSocket.write(`${head}\r\n`);
  }

  write(chunk: Buffer): boolean {
    return this.rawSocket.write(chunk);
  }

  onDrain(cb: () => void): void {
    this.rawSocket.once('drain', cb);
  }

  end(): void {
    this.rawSocket.end();
  }

  error(status: number, body: ErrorAnswer, headers: Record<string, string>): number {
    const payload = JSON.stringify({ error: errorTitle(status), ...body });
    const length = Buffer.byteLength(payload);
    this.headersOnly(status, {
      'content-type': 'application/json',
      'content-length': String(length),
      'cache-control': 'no-store',
      ...headers,
    });
    if (this.rawSocket.writable) this.rawSocket.end(payload);
    return length;
  }

  headersOnly(status: number, headers: Record<string, string>): void {
    if (!this.rawSocket.writable) return void this.rawSocket.destroy();
    const flat: string[] = [];
    for (const k in headers) if (k !== 'connection') flat.push(k, headers[k]);
    if (headers['content-length'] === undefined) flat.push('content-length', '0');
    this.writeHead(status, flat);
    if (headers['content-length'] === undefined || headers['content-length'] === '0') this.rawSocket.end();
  }

  destroy(): void {
    this.rawSocket.destroy();
  }

  tunnel(upstream: Duplex, onBytesOut: (n: number) => void, onEnd: () => void): void {
    const client = this.rawSocket;
    if (this.head.length > 0) upstream.write(this.head);
    // Upgraded connections live as long as the peers want; the server's idle timers no longer apply.
    this.idleTimeout(0);
    upstream.on('error', () => client.destroy());
    upstream.on('data', (chunk: Buffer) => onBytesOut(chunk.length));
    let open = 2;
    const closed = () => {
      if (--open === 0) onEnd();
    };
    upstream.once('close', () => {
      client.destroy();
      closed();
    });
    client.once('close', () => {
      upstream.destroy();
      closed();
    });
    upstream.pipe(client);
    client.pipe(upstream);
  }
}

/**
 * Headers a response over HTTP/2 must not carry (RFC 9113 §8.2.2): node refuses them, and they mean
 * nothing on a multiplexed connection. Header hygiene drops them already; this is the last guard for
 * answers of our own.
 */
const H2_CONNECTION_SPECIFIC = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
]);

/** An HTTP/2 request stream: the stream is both the request body and the response. */
export class H2Downstream implements Downstream {
  readonly protocol = 'h2';
  headersSent = false;
  statusCode = 0;
  /** The whole response has been handed to the stream. */
  private ended = false;
  private readonly startBytes: number;
  /** The connection's byte count when last read (see bytesRead). */
  private lastBytes: number;
  /**
   * The session's connection, taken while the stream is new (a session torn down has none). It is
   * node's proxy of the socket, which throws (ERR_HTTP2_SOCKET_UNBOUND) once the session has let go
   * of it: read it only while the stream is new, or through bytesRead().
   */
  readonly socket: Socket;

  constructor(
    readonly stream: ServerHttp2Stream,
    readonly method: string,
    readonly url: string,
    readonly rawHeaders: string[],
    /** The HEADERS frame ended the stream: there is no request body. */
    private readonly endStream: boolean,
  ) {
    this.socket = stream.session?.socket as Socket;
    this.startBytes = this.socket?.bytesRead ?? 0;
    this.lastBytes = this.startBytes;
    stream.on('error', () => {});
  }

  get body(): Readable {
    return this.stream;
  }

  hasBody(): boolean {
    return !this.endStream;
  }

  bodyComplete(): boolean {
    return this.endStream || this.stream.readableEnded;
  }

  /**
   * Bytes the whole connection read meanwhile: HTTP/2 has no per-stream count (an approximation).
   * A stream that ends with its connection (the client closed it with streams open) is finished
   * after the session let go of the socket: the count stays where it was last seen.
   */
  bytesRead(): number {
    try {
      this.lastBytes = this.socket?.bytesRead ?? this.lastBytes;
    } catch {
      // ERR_HTTP2_SOCKET_UNBOUND
    }
    return this.lastBytes - this.startBytes;
  }

  onAbort(cb: () => void): void {
    this.stream.once('close', () => {
      // A stream the client reset (or whose session went away) before the response ended. (A reset
      // stream reads as writableFinished, so the end is our own flag.)
      if (!this.ended || this.stream.rstCode !== h2.NGHTTP2_NO_ERROR) cb();
    });
  }

  idleTimeout(ms: number): void {
    this.stream.setTimeout(ms, ms > 0 ? () => this.stream.close(h2.NGHTTP2_CANCEL) : undefined);
  }

  writeContinue(): void {}

  writeHead(status: number, headers: string[], trailers = false): void {
    if (this.stream.destroyed || this.stream.headersSent) return;
    this.headersSent = true;
    this.statusCode = status;
    const out: Record<string, string | string[]> = { ':status': String(status) };
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i].toLowerCase();
      if (H2_CONNECTION_SPECIFIC.has(name)) continue;
      const prev = out[name];
      out[name] =
        prev === undefined
          ? headers[i + 1]
          : Array.isArray(prev)
            ? [...prev, headers[i + 1]]
            : [prev, headers[i + 1]];
    }
    this.stream.respond(out, { waitForTrailers: trailers });
  }

  write(chunk: Buffer): boolean {
    return this.stream.write(chunk);
  }

  onDrain(cb: () => void): void {
    this.stream.once('drain', cb);
  }

  end(trailers?: [string, string][]): void {
    this.ended = true;
    if (this.stream.destroyed) return;
    if (this.stream.listenerCount('wantTrailers') === 0) {
      this.stream.once('wantTrailers', () => {
        const out: Record<string, string> = {};
        for (const [k, v] of trailers ?? []) {
          const name = k.toLowerCase();
          if (!H2_CONNECTION_SPECIFIC.has(name)) out[name] = v;
        }
        // With no trailers to send, an empty HEADERS frame still ends the stream cleanly.
        this.stream.sendTrailers(out);
      });
    }
    this.stream.end();
  }

  error(status: number, body: ErrorAnswer, headers: Record<string, string>): number {
    const payload = JSON.stringify({ error: errorTitle(status), ...body });
    this.ended = true;
    if (this.stream.destroyed || this.stream.headersSent) {
      this.stream.destroy();
      return 0;
    }
    this.headersSent = true;
    this.statusCode = status;
    const out: Record<string, string> = {
      ':status': String(status),
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(payload)),
      'cache-control': 'no-store',
    };
    for (const k in headers) if (!H2_CONNECTION_SPECIFIC.has(k)) out[k] = headers[k];
    this.stream.respond(out);
    this.stream.end(payload);
    return Buffer.byteLength(payload);
  }

  headersOnly(status: number, headers: Record<string, string>): void {
    this.ended = true;
    if (this.stream.destroyed || this.stream.headersSent) return void this.stream.destroy();
    this.headersSent = true;
    this.statusCode = status;
    const out: Record<string, string> = { ':status': String(status) };
    for (const k in headers) if (!H2_CONNECTION_SPECIFIC.has(k)) out[k] = headers[k];
    this.stream.respond(out, { endStream: true });
  }

  destroy(): void {
    // RST_STREAM(INTERNAL_ERROR): the client sees the response as failed, not as complete.
    if (!this.stream.destroyed) this.stream.close(h2.NGHTTP2_INTERNAL_ERROR);
  }
}
