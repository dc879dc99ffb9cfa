// The front listener: one port for HTTP/1.1 and HTTP/2 (TLS by ALPN, cleartext by the preface),
// node:http with hardened limits and the hooks that turn malformed traffic into the right 4xx, and a
// graceful drain for SIGTERM.

import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import net, { type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { clientAddress } from '../util/client-address.ts';
import { listen } from '../util/listen.ts';
import { uniformSocketShape } from '../util/socket-shape.ts';
import type { CertificateStore } from './certificates.ts';
import { errorTitle, sendError } from './errors.ts';
import type { Forwarder } from './forward.ts';
import { H2Front } from './h2-server.ts';
import type { ClientLimits } from './limits.ts';
import { type ProxyAcceptOptions, proxyProtocolServer } from './proxy-accept.ts';

export interface FrontOptions {
  readonly maxHeaderBytes: number;
  readonly maxHeaders: number;
  readonly requestHeadersMs: number;
  readonly clientIdleMs: number;
  readonly limits?: ClientLimits;
  /** HTTP/2: SETTINGS_MAX_CONCURRENT_STREAMS per client connection (default 100). */
  readonly maxConcurrentStreams?: number;
  /** Terminate TLS (HTTP/2 or HTTP/1.1 by ALPN), certificates chosen by SNI from the store. */
  readonly tls?: { readonly store: CertificateStore; readonly minVersion: 'TLSv1.2' | 'TLSv1.3' };
  /** Read a PROXY protocol header from trusted peers before TLS/HTTP (proxy-accept.ts). */
  readonly proxyProtocol?: ProxyAcceptOptions;
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

/** The first bytes of every HTTP/2 connection (RFC 9113 §3.4): `PRI * HTTP/2.0`. */
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/**
 * The data plane's listener. One port serves HTTP/1.1 and HTTP/2: with TLS, by ALPN (`h2` preferred,
 * `http/1.1` for clients that offer only that); in cleartext, by the connection's first bytes (the
 * HTTP/2 preface, which gRPC clients in a cluster send with prior knowledge). Neither protocol's
 * server listens itself: this listener accepts and hands each connection to one of them.
 */
export class FrontServer {
  readonly listener: net.Server | tls.Server;
  /** The HTTP/1.1 server (requests, Upgrades) for the connections that speak it. */
  readonly h1: http.Server;
  readonly h2: H2Front;
  /** With the PROXY protocol: the TCP server that binds, reads the header and hands over to `listener`. */
  readonly acceptor?: net.Server;
  readonly proxyProtocol?: ProxyAcceptOptions;
  private draining = false;

  constructor(fw: Forwarder, opts: FrontOptions) {
    const h1 = http.createServer({
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
    });
    // node keeps at most this many fields; one more than the limit is enough to see the excess and
    // answer 431 in the pipeline, instead of node's silent truncation.
    h1.maxHeadersCount = opts.maxHeaders + 1;
    // No socket timeout while a request is in flight: node would refresh its timer on every read and
    // write (about 1% of an HTTPS request's CPU). Every phase has its own deadline instead: headers
    // (headersTimeout), idle keep-alive (keepAliveTimeout), the upstream's answer (the route's
    // timeout, kept by the forwarder's sweep), and a stalled upload or reader (the forwarder arms
    // `body-idle` only then).
    h1.timeout = 0;
    // Every rule about a request (limits, routing, hygiene, logging) is the pipeline's (exchange.ts),
    // for requests, Upgrades and HTTP/2 streams alike; a listener only decides how connections end.
    const handle = (req: IncomingMessage, res: ServerResponse, expectContinue: boolean) => {
      if (this.draining) res.shouldKeepAlive = false;
      fw.handle(req, res, expectContinue);
    };
    h1.on('request', (req, res) => handle(req, res, false));
    h1.on('checkContinue', (req, res) => handle(req, res, true));
    h1.on('checkExpectation', (req, res) => {
      sendError(res, 417, { reason: 'only Expect: 100-continue is supported' }, { connection: 'close' });
      fw.logListenerAnswer(req.socket, 417, 'expectation-failed', req);
    });
    h1.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      fw.handleUpgrade(req, socket, head),
    );
    h1.on('connect', (req: IncomingMessage, socket: Duplex) => {
      rawReply(socket, 405, 'CONNECT is not supported');
      fw.logListenerAnswer(req.socket, 405, 'connect-not-supported', req);
    });
    // Answered here, and logged (Forwarder.logListenerAnswer): node could not make a request of it.
    const refuse = (socket: Duplex, status: number, error: string, reason: string) => {
      if (socket.writable) fw.logListenerAnswer(socket as Socket, status, error);
      rawReply(socket, status, reason);
    };
    h1.on('clientError', (err: Error & { code?: string }, socket: Duplex) => {
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
    this.h1 = h1;
    this.h2 = new H2Front(fw, {
      maxHeaderBytes: opts.maxHeaderBytes,
      maxHeaders: opts.maxHeaders,
      clientIdleMs: opts.clientIdleMs,
      maxConcurrentStreams: opts.maxConcurrentStreams ?? 100,
    });

    const t = opts.tls;
    if (t) {
      const contextOptions = { minVersion: t.minVersion, ciphers: CIPHERS, honorCipherOrder: true };
      const listener = tls.createServer({
        ...contextOptions,
        SNICallback: t.store.sniCallback,
        // HTTP/2 first for clients that offer both (browsers, curl, gRPC).
        ALPNProtocols: ['h2', 'http/1.1'],
        handshakeTimeout: opts.requestHeadersMs,
      });
      // Clients without SNI get the listener's default context: keep it the store's fallback.
      t.store.onFallback((pem) => listener.setSecureContext({ ...contextOptions, ...pem }));
      listener.on('tlsClientError', (_err: Error, socket: Socket) => socket.destroy());
      listener.on('secureConnection', (socket: tls.TLSSocket) => {
        if (socket.alpnProtocol === 'h2') this.h2.server.emit('connection', socket);
        else h1.emit('connection', socket);
      });
      this.listener = listener;
    } else {
      this.listener = net.createServer((socket) => this.sniff(socket, opts.requestHeadersMs));
    }
    // On the HTTP/1.1 server, as on the admin port: after node's own connection listener.
    uniformSocketShape(h1);
    this.listener.on('connection', (socket: Socket) => {
      socket.setNoDelay(true);
      if (opts.limits?.active) socket.once('close', opts.limits.connectionOpened(clientAddress(socket)));
    });
    this.proxyProtocol = opts.proxyProtocol;
    if (opts.proxyProtocol) this.acceptor = proxyProtocolServer(this.listener, opts.proxyProtocol);
  }

  /**
   * Cleartext: reads the connection's first bytes and hands it to HTTP/2 (the preface) or HTTP/1.1
   * (anything else), with the bytes put back. A connection that sends nothing gets the header
   * deadline, as an HTTP/1.1 client that never finishes its headers does.
   */
  private sniff(socket: Socket, deadlineMs: number): void {
    let seen: Buffer = Buffer.alloc(0);
    // A timer, not socket.setTimeout: that would give these sockets an own `timeout` property the
    // admin port's sockets lack (see util/socket-shape.ts).
    const deadline = setTimeout(() => socket.destroy(), deadlineMs);
    socket.once('close', () => clearTimeout(deadline));
    socket.on('error', () => socket.destroy());
    const onData = (chunk: Buffer) => {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
      const n = Math.min(seen.length, H2_PREFACE.length);
      const h2 = seen.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
      // A prefix of the preface may still become either: wait for the rest (PRI is no HTTP/1.1 method).
      if (h2 && n < H2_PREFACE.length && n < 3) return;
      socket.off('data', onData);
      socket.pause();
      clearTimeout(deadline);
      socket.unshift(seen);
      if (h2) {
        // Left paused: the HTTP/2 session reads what was put back when it starts.
        this.h2.server.emit('connection', socket);
      } else {
        this.h1.emit('connection', socket);
        socket.resume();
      }
    };
    socket.on('data', onData);
  }

  async listen(host: string, port: number): Promise<{ host: string; port: number }> {
    const address = await listen(this.acceptor ?? this.listener, host, port);
    // The HTTP/1.1 server's header deadlines start with its 'listening' (it never binds itself).
    this.h1.emit('listening');
    return address;
  }

  /**
   * Stops accepting, lets in-flight requests finish (HTTP/1.1 responses say `Connection: close`,
   * HTTP/2 clients get GOAWAY), closes idle keep-alive connections at once and everything else when
   * `drainMs` runs out.
   */
  async drain(drainMs: number): Promise<void> {
    this.draining = true;
    // With an acceptor the listener never bound: the acceptor counts the connections until they end.
    const closed = new Promise<void>((resolve) => (this.acceptor ?? this.listener).close(() => resolve()));
    if (this.acceptor) this.listener.close(() => {});
    this.h1.closeIdleConnections();
    this.h2.drain();
    const idleSweep = setInterval(() => this.h1.closeIdleConnections(), 50);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.h1.closeAllConnections();
        this.h2.destroyAll();
        resolve();
      }, drainMs);
    });
    await Promise.race([closed, deadline]);
    clearInterval(idleSweep);
    clearTimeout(timer);
    // Stops the HTTP/1.1 server's connection checks (it was never bound, so close() only reports that).
    this.h1.close(() => {});
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
