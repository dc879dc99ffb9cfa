// The HTTP/2 front end: an http2 server that never listens itself; FrontServer hands it the
// connections that negotiated `h2` by ALPN or opened with the HTTP/2 preface (cleartext, prior
// knowledge). Each stream becomes an H2Downstream and runs the same pipeline as HTTP/1.1.
//
// HTTP/2 hygiene lives here, at the connection level: bounded concurrent streams, header list size
// and count, session memory, and the floods HTTP/2 invites. node (nghttp2) closes a session on
// CONTINUATION floods (the header list bound), PING and SETTINGS floods (outstanding ack limits) and
// too many invalid frames; the rapid-reset attack (CVE-2023-44487) costs a server only what it starts
// for each stream before the reset, here an upstream request, so each session has a budget of
// streams its client may cancel before their answer: past it, GOAWAY(ENHANCE_YOUR_CALM).

import http2, {
  type Http2Server,
  constants as h2,
  type IncomingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import { H2Downstream } from './downstream.ts';
import type { Forwarder } from './forward.ts';

export interface H2Options {
  readonly maxHeaderBytes: number;
  readonly maxHeaders: number;
  readonly clientIdleMs: number;
  /** SETTINGS_MAX_CONCURRENT_STREAMS announced to clients. */
  readonly maxConcurrentStreams: number;
  /** Streams a client may cancel before their answer, as a burst; the budget refills per second. */
  readonly resetBurst?: number;
  readonly resetsPerSecond?: number;
}

/** Per-session count of premature resets: a token bucket, refilled by time. */
class ResetBudget {
  private tokens: number;
  private at = performance.now();

  constructor(
    private readonly burst: number,
    private readonly perSecond: number,
  ) {
    this.tokens = burst;
  }

  /** Takes one token; false when the client has cancelled too many streams too fast. */
  take(): boolean {
    const now = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.perSecond);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

export class H2Front {
  readonly server: Http2Server;
  readonly sessions = new Set<ServerHttp2Session>();
  /** Sessions closed for abuse (rapid reset), for tests and metrics. */
  abusiveSessions = 0;

  constructor(
    private readonly fw: Forwarder,
    private readonly opts: H2Options,
  ) {
    this.server = http2.createServer({
      maxHeaderListPairs: opts.maxHeaders + 8,
      maxSessionMemory: 32,
      // Streams refused for exceeding SETTINGS_MAX_CONCURRENT_STREAMS before the session is torn down.
      maxSessionRejectedStreams: 100,
      maxSessionInvalidFrames: 100,
      maxOutstandingPings: 10,
      unknownProtocolTimeout: 10_000,
      settings: {
        enablePush: false,
        maxConcurrentStreams: opts.maxConcurrentStreams,
        maxHeaderListSize: opts.maxHeaderBytes,
      },
    });
    this.server.on('session', (s) => this.onSession(s));
    this.server.on(
      'stream',
      (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, rawHeaders: string[]) =>
        this.onStream(stream, headers, flags, rawHeaders),
    );
    this.server.on('sessionError', () => {});
  }

  private onSession(session: ServerHttp2Session): void {
    this.sessions.add(session);
    session.on('error', () => {});
    session.once('close', () => this.sessions.delete(session));
    // An idle connection (no stream for client-idle) is closed with GOAWAY, as HTTP/1.1 keep-alive is.
    session.setTimeout(this.opts.clientIdleMs, () => session.close());
    const budget = new ResetBudget(this.opts.resetBurst ?? 200, this.opts.resetsPerSecond ?? 100);
    session.on('stream', (stream: ServerHttp2Stream) => {
      stream.once('close', () => {
        // The client reset the stream before any answer: count it against the budget.
        if (stream.rstCode === h2.NGHTTP2_CANCEL && !stream.headersSent && !budget.take()) {
          this.abusiveSessions++;
          // GOAWAY says why, then the connection goes: at once when its streams are done, or when
          // the flush had its chance (destroying right away would drop the GOAWAY unsent).
          session.goaway(h2.NGHTTP2_ENHANCE_YOUR_CALM);
          session.close();
          setTimeout(() => session.destroy(), 200).unref();
        }
      });
    });
  }

  private onStream(
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    flags: number,
    raw: string[],
  ): void {
    const method = String(headers[':method'] ?? '');
    if (method === 'CONNECT') {
      // Extended CONNECT (RFC 8441 WebSockets over HTTP/2) is not offered: SETTINGS do not enable it.
      stream.respond({ ':status': 405, 'content-type': 'application/json' });
      stream.end(JSON.stringify({ error: 'method not allowed', reason: 'CONNECT is not supported' }));
      return;
    }
    const authority = headers[':authority'] ?? headers.host;
    // Regular headers with `:authority` as `host` (RFC 9113 §8.3.1: it replaces Host), so the pipeline
    // reads HTTP/2 requests exactly as HTTP/1.1 ones.
    const rawHeaders: string[] = authority === undefined ? [] : ['host', String(authority)];
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i];
      if (name.charCodeAt(0) === 58 /* : */ || name === 'host') continue;
      rawHeaders.push(name, raw[i + 1]);
    }
    const endStream = (flags & h2.NGHTTP2_FLAG_END_STREAM) !== 0;
    const down = new H2Downstream(stream, method, String(headers[':path'] ?? ''), rawHeaders, endStream);
    this.fw.handleStream(down);
  }

  /** SIGTERM: GOAWAY to every client; streams in flight finish, no new ones start. */
  drain(): void {
    for (const s of this.sessions) if (!s.closed) s.close();
  }

  /** The drain deadline passed: cut whatever is still open. */
  destroyAll(): void {
    for (const s of this.sessions) s.destroy();
  }
}
