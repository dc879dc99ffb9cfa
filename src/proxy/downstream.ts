// The client's side of one exchange, whatever carried it: the request pipeline (exchange.ts) reads the
// request and answers through this interface only, so every rule it applies holds for every front
// end. Two implementations here: an HTTP/1.1 request/response pair, and an HTTP/1.1 Upgrade, whose
// answer is written as raw bytes on the socket node handed over.

import { type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { errorTitle, sendError } from './errors.ts';

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
  /** The request, as node parsed it (method, url, rawHeaders, the body stream). */
  readonly req: IncomingMessage;
  /** Whether the response head has gone out (an error can then only cut the response). */
  readonly headersSent: boolean;
  /** The status sent, once headersSent. */
  readonly statusCode: number;
  /** Request bytes read from the client connection so far (for the access log's bytesIn). */
  bytesRead(): number;
  /** Calls `cb` once if the client goes away before the response has been written in full. */
  onAbort(cb: () => void): void;
  /** Arms (ms > 0) or disarms (0) the longest silence allowed on the client's connection. */
  idleTimeout(ms: number): void;
  /** `100 Continue` for a client that sent `Expect: 100-continue` (only once a peer is chosen). */
  writeContinue(): void;
  writeHead(status: number, headers: string[]): void;
  /** False when the client's side is full: call onDrain and wait. */
  write(chunk: Buffer): boolean;
  onDrain(cb: () => void): void;
  end(trailers?: [string, string][]): void;
  /** Ends the exchange with a JSON error; returns the body's size. */
  error(status: number, body: ErrorAnswer, headers: Record<string, string>): number;
  /** Cuts a response already under way, so the client cannot take it for complete. */
  destroy(err?: Error): void;
  /**
   * Upgrades only, after the 101 went out: joins the client's connection and `upstream` byte for
   * byte; `onBytesOut` counts what reaches the client, `onEnd` runs once when both have closed.
   */
  tunnel?(upstream: Duplex, onBytesOut: (n: number) => void, onEnd: () => void): void;
}

/** An HTTP/1.1 request and its ServerResponse. */
export class Http1Downstream implements Downstream {
  readonly protocol = 'http/1.1';
  private readonly startBytes: number;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
  ) {
    this.startBytes = req.socket.bytesRead;
  }

  get headersSent(): boolean {
    return this.res.headersSent;
  }

  get statusCode(): number {
    return this.res.statusCode;
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

  destroy(err?: Error): void {
    this.res.destroy(err);
  }
}

/**
 * An HTTP/1.1 Upgrade (WebSocket). node hands over the raw socket: a 101 is written as bytes and the
 * socket is then tunnelled; any other answer (an error of ours, or an upstream that declined to
 * switch) is written as a plain response ending with the connection.
 */
export class UpgradeDownstream implements Downstream {
  readonly protocol = 'http/1.1';
  headersSent = false;
  statusCode = 0;
  private readonly startBytes: number;
  private closed = false;

  constructor(
    readonly req: IncomingMessage,
    readonly socket: Duplex,
    /** Bytes the client sent after its handshake (already read by node's parser). */
    readonly head: Buffer,
  ) {
    this.startBytes = (socket as Socket).bytesRead ?? 0;
    socket.on('error', () => socket.destroy());
    socket.once('close', () => {
      this.closed = true;
    });
  }

  /** The client hung up (the exchange checks before it starts a tunnel). */
  get gone(): boolean {
    return this.closed || this.socket.destroyed;
  }

  bytesRead(): number {
    return ((this.socket as Socket).bytesRead ?? 0) - this.startBytes;
  }

  onAbort(cb: () => void): void {
    this.socket.once('close', () => {
      if (!this.headersSent || this.statusCode !== 101) cb();
    });
  }

  idleTimeout(ms: number): void {
    (this.socket as Duplex & { setTimeout?: (ms: number) => void }).setTimeout?.(ms);
  }

  writeContinue(): void {}

  writeHead(status: number, headers: string[]): void {
    this.headersSent = true;
    this.statusCode = status;
    let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
    for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
    // Anything but a switch ends with the connection: the body is delimited by the close.
    if (status !== 101) head += 'connection: close\r\n';
    this.socket.write(`${head}\r\n`);
  }

  write(chunk: Buffer): boolean {
    return this.socket.write(chunk);
  }

  onDrain(cb: () => void): void {
    this.socket.once('drain', cb);
  }

  end(): void {
    this.socket.end();
  }

  error(status: number, body: ErrorAnswer, headers: Record<string, string>): number {
    const payload = JSON.stringify({ error: errorTitle(status), ...body });
    const length = Buffer.byteLength(payload);
    if (!this.socket.writable) {
      this.socket.destroy();
      return 0;
    }
    this.headersSent = true;
    this.statusCode = status;
    let head =
      `HTTP/1.1 ${status} ${errorTitle(status)}\r\ncontent-type: application/json\r\n` +
      `content-length: ${length}\r\ncache-control: no-store\r\nconnection: close\r\n`;
    for (const k in headers) if (k !== 'connection') head += `${k}: ${headers[k]}\r\n`;
    this.socket.end(`${head}\r\n${payload}`);
    return length;
  }

  destroy(): void {
    this.socket.destroy();
  }

  tunnel(upstream: Duplex, onBytesOut: (n: number) => void, onEnd: () => void): void {
    const client = this.socket;
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
