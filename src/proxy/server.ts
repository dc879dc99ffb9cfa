// The front listener: node:http with hardened limits, the hooks that turn malformed traffic into the
// right 4xx, and a graceful drain for SIGTERM.

import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { clientAddress } from '../util/client-address.ts';
import { listen } from '../util/listen.ts';
import { uniformSocketShape } from '../util/socket-shape.ts';
import type { CertificateStore } from './certificates.ts';
import { errorTitle, sendError } from './errors.ts';
import type { Forwarder } from './forward.ts';
import type { ClientLimits } from './limits.ts';

export interface FrontOptions {
  readonly maxHeaderBytes: number;
  readonly maxHeaders: number;
  readonly requestHeadersMs: number;
  readonly clientIdleMs: number;
  readonly limits?: ClientLimits;
  /** Terminate TLS (HTTP/1.1 by ALPN), certificates chosen by SNI from the store. */
  readonly tls?: { readonly store: CertificateStore; readonly minVersion: 'TLSv1.2' | 'TLSv1.3' };
}

/** Modern defaults: TLS 1.2+ with forward-secret AEAD suites only (TLS 1.3 suites are all fine). */
const CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

function rawReply(socket: Duplex, status: number, reason: string): void {
  if (!socket.writable) return void socket.destroy();
  const body = JSON.stringify({ error: errorTitle(status), reason });
  socket.end(
    `HTTP/1.1 ${status} ${errorTitle(status)}\r\ncontent-type: application/json\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

export class FrontServer {
  readonly server: http.Server | https.Server;
  private draining = false;

  constructor(fw: Forwarder, opts: FrontOptions) {
    const httpOptions: http.ServerOptions = {
      maxHeaderSize: opts.maxHeaderBytes,
      // Slow clients that never finish their headers are cut here (slowloris).
      headersTimeout: opts.requestHeadersMs,
      // A whole request may legitimately take long (a 1 GiB upload); stalls are caught by the idle timeout.
      requestTimeout: 0,
      // node checks header deadlines on this period (30 s by default), which would let a slowloris
      // client hold a socket for up to 30 s past the deadline.
      connectionsCheckingInterval: Math.min(1000, Math.max(100, Math.floor(opts.requestHeadersMs / 4))),
      keepAliveTimeout: opts.clientIdleMs,
      // Reject rather than tolerate: ambiguous framing is how request smuggling starts.
      insecureHTTPParser: false,
      requireHostHeader: false,
      joinDuplicateHeaders: false,
    };
    const t = opts.tls;
    const contextOptions = t ? { minVersion: t.minVersion, ciphers: CIPHERS, honorCipherOrder: true } : {};
    const server = t
      ? https.createServer({
          ...httpOptions,
          ...contextOptions,
          SNICallback: t.store.sniCallback,
          ALPNProtocols: ['http/1.1'],
        })
      : http.createServer(httpOptions);
    // Clients without SNI get the listener's default context: keep it the store's fallback.
    if (t)
      t.store.onFallback((pem) => (server as https.Server).setSecureContext({ ...contextOptions, ...pem }));
    if (t) server.on('tlsClientError', (_err: Error, socket: Socket) => socket.destroy());
    // node keeps at most this many fields; one more than the limit is enough to see the excess and
    // answer 431 below, instead of node's silent truncation.
    server.maxHeadersCount = opts.maxHeaders + 1;
    // No socket timeout while a request is in flight: node would refresh its timer on every read and
    // write (about 1% of an HTTPS request's CPU). Every phase has its own deadline instead: headers
    // (headersTimeout), idle keep-alive (keepAliveTimeout), the upstream's answer (the route's
    // timeout, kept by the forwarder's sweep), and a stalled upload or reader (the forwarder arms
    // `body-idle` only then).
    server.timeout = 0;
    // Every rule about a request (limits, routing, hygiene, logging) is the pipeline's (exchange.ts),
    // for requests and Upgrades alike; the listener only decides how the connection ends.
    const handle = (req: IncomingMessage, res: ServerResponse, expectContinue: boolean) => {
      if (this.draining) res.shouldKeepAlive = false;
      fw.handle(req, res, expectContinue);
    };
    server.on('request', (req, res) => handle(req, res, false));
    server.on('checkContinue', (req, res) => handle(req, res, true));
    server.on('checkExpectation', (req, res) => {
      sendError(res, 417, { reason: 'only Expect: 100-continue is supported' }, { connection: 'close' });
      fw.logListenerAnswer(req.socket, 417, 'expectation-failed', req);
    });
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      fw.handleUpgrade(req, socket, head),
    );
    server.on('connect', (req: IncomingMessage, socket: Duplex) => {
      rawReply(socket, 405, 'CONNECT is not supported');
      fw.logListenerAnswer(req.socket, 405, 'connect-not-supported', req);
    });
    // Answered here, and logged (Forwarder.logListenerAnswer): node could not make a request of it.
    const refuse = (socket: Duplex, status: number, error: string, reason: string) => {
      if (socket.writable) fw.logListenerAnswer(socket as Socket, status, error);
      rawReply(socket, status, reason);
    };
    server.on('clientError', (err: Error & { code?: string }, socket: Duplex) => {
      switch (err.code) {
        case 'HPE_HEADER_OVERFLOW':
          return refuse(socket, 431, 'header-overflow', 'request header section too large');
        case 'ERR_HTTP_REQUEST_TIMEOUT':
          return refuse(socket, 408, 'request-headers-timeout', 'request headers not received in time');
        case 'ECONNRESET':
        case 'EPIPE':
          return void socket.destroy();
        default:
          return refuse(
            socket,
            400,
            `malformed-request:${err.code ?? 'parse-error'}`,
            `malformed request (${err.code ?? 'parse error'})`,
          );
      }
    });
    uniformSocketShape(server);
    server.on('connection', (socket: Socket) => {
      socket.setNoDelay(true);
      if (opts.limits?.active) socket.once('close', opts.limits.connectionOpened(clientAddress(socket)));
    });
    this.server = server;
  }

  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    return listen(this.server, host, port);
  }

  /**
   * Stops accepting, lets in-flight requests finish (their responses say `Connection: close`),
   * closes idle keep-alive connections at once and everything else when `drainMs` runs out.
   */
  async drain(drainMs: number): Promise<void> {
    this.draining = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    const idleSweep = setInterval(() => this.server.closeIdleConnections(), 50);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.server.closeAllConnections();
        resolve();
      }, drainMs);
    });
    await Promise.race([closed, deadline]);
    clearInterval(idleSweep);
    clearTimeout(timer);
  }
}

/** A plain-HTTP listener that sends every request to the same URL over https (308 keeps the method). */
export function createRedirectServer(httpsPort: number): http.Server {
  const server = http.createServer({ headersTimeout: 10_000, requestTimeout: 10_000 }, (req, res) => {
    const host = (req.headers.host ?? '').replace(/:\d+$/, '');
    if (!/^[a-zA-Z0-9.-]+$/.test(host))
      return sendError(res, 400, { reason: 'missing or invalid Host header' });
    const port = httpsPort === 443 ? '' : `:${httpsPort}`;
    res.writeHead(308, { location: `https://${host}${port}${req.url ?? '/'}`, 'content-length': '0' });
    res.end();
  });
  uniformSocketShape(server);
  return server;
}
