// The request pipeline: one client request (or Upgrade) through a closed list of named phases. Every
// rule of the data plane lives in exactly one phase here, and every front end (HTTP/1.1 requests,
// Upgrades; HTTP/2 streams next) runs the same phases through its Downstream:
//
//   1. earlyFilter       header count, per-client limits, request target, declared body size, loops
//   2. resolveTarget     Host (or the target's authority) -> project/port by convention; public-only
//                        is the table's (the edge builds only public ports); pinning (host, or the
//                        header where allowed); edge.forward-to
//   3. pickPeer          a pinned instance or the balancer's pick, with affinity; 503 when none
//   4. upstreamHeaders   header hygiene towards the instance (x-forwarded-*, via, request id)
//   5. forward           the request body read up to a bound first (a slow client holds no upstream
//                        connection), the per-client cap on streaming uploads, then one Attempt per
//                        try (attempt.ts): queueing for a connection, retries, rescue, deadlines
//   6. responseHeaders   header hygiene towards the client (hop-by-hop, x-wharf-*, cookie, HSTS)
//   7. finish            the access record, once per exchange
//
// Request outcomes (passive health, attempt metrics) flow back through `outcome` only, and only for
// what an upstream did: a request refused before a byte left for the instance is the request's fault.

import type { Duplex, Readable } from 'node:stream';
import { Transform } from 'node:stream';
import {
  affinityCookieHeader,
  describeNoEndpoint,
  type PickInput,
  type PickResult,
  pickEndpoint,
  pinEndpoint,
  readCookie,
} from '../balancing/index.ts';
import type { AttemptError } from '../model/outcome.ts';
import type { Endpoint, EndpointId, PortRoute, ProjectRoute } from '../model/routes.ts';
import { resolve } from '../routing/match.ts';
import { newRequestId } from '../util/request-id.ts';
import { Attempt } from './attempt.ts';
import { BodyBuffer, type BufferOutcome, type BufferOwner } from './body-buffer.ts';
import type { Downstream, ErrorAnswer } from './downstream.ts';
import { isConnectFailure } from './errors.ts';
import type { Forwarder } from './forward.ts';
import { grpcMessage, grpcStatusFor } from './grpc.ts';
import { downstreamRawHeaders, rawHeader, upstreamRequestHeaders } from './headers.ts';
import { ReplayableBody } from './replay.ts';
import { type Inspected, inspect, requestTarget } from './request-head.ts';

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** Methods Wharf itself answers `OPTIONS *` with: what any instance behind it may accept. */
const ALLOW = 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS';

/** A phase's decision to answer the client itself. */
interface Rejection {
  readonly status: number;
  /** The access log's `error` (and the reason code in logs). */
  readonly error: string;
  readonly body: ErrorAnswer;
  readonly headers?: Record<string, string>;
}

export class Exchange implements BufferOwner {
  readonly started: number;
  readonly startedHr = performance.now();
  readonly clientIp: string;
  readonly trusted: boolean;
  readonly h: Inspected;
  readonly method: string;
  readonly idempotent: boolean;
  readonly bodyless: boolean;
  requestId = '';
  /** The authority the request named (Host, or an absolute target's), as received. */
  host = '';
  /** The target to send upstream: always origin form. */
  path: string;
  project?: ProjectRoute;
  /** The route attempts go to: the project's port, or (edge.forward-to) the internal tier's. */
  route?: PortRoute;
  /** Strict pin: never another instance. */
  pinned = false;
  /** The project and port the client asked for (in forward mode `route` is the internal tier's). */
  projectName?: string;
  portName?: string;
  /** The instance the client named (host or header): strict here, passed on in forward mode. */
  pin?: string;
  stickyToken?: string;
  tried?: Set<EndpointId>;
  attempts = 0;
  current?: Attempt;
  lastError?: string;
  bytesOut = 0;
  limited?: Readable;
  /** h2c attempts: the body's start, kept for a retry after a refused stream. */
  replay?: ReplayableBody;
  overLimit = false;
  /** The request body, when it was read whole before forwarding (see the forward phase). */
  bufferedBody?: Buffer;
  private reader?: BodyBuffer;
  upstreamMs?: number;
  /** The longest wait for response headers: the route's timeout, or a shorter `grpc-timeout`. */
  responseTimeoutMs = 0;
  /** How attempts reach the instances: HTTP/1.1 (undici) or h2c (h2-upstream.ts). */
  upstreamProtocol: 'http1' | 'h2c' = 'http1';
  /** The client takes trailers (gRPC, `TE: trailers`) over HTTP/2: the response ends with them. */
  trailers = false;
  /** A gRPC trailers-only answer went out in one HEADERS frame: nothing follows. */
  trailersOnly = false;
  finished = false;
  clientGone = false;
  /** Why `body-idle` is armed on the client's connection: its upload, or a response it reads slowly. */
  private stall: 'none' | 'upload' | 'download' = 'none';

  constructor(
    readonly fw: Forwarder,
    readonly down: Downstream,
    /** `Expect: 100-continue`: answer 100 once a peer is chosen. */
    readonly expectContinue: boolean,
    /** The protocol an Upgrade asks for (`websocket`), or undefined for a plain request. */
    readonly upgrade?: string,
  ) {
    this.started = fw.opts.clock.now();
    this.clientIp = fw.clientIp(down.socket);
    this.trusted = fw.opts.trusted(this.clientIp);
    this.h = inspect(down.rawHeaders, this.trusted);
    this.method = down.method;
    this.idempotent = IDEMPOTENT.has(this.method);
    this.bodyless = !down.hasBody(this.h);
    this.path = down.url;
  }

  run(): void {
    this.requestId = this.h.requestId || newRequestId();
    this.down.onAbort(() => this.onClientClose());
    const rejected = this.earlyFilter() ?? this.resolveTarget();
    if (rejected) return this.reject(rejected);
    const pick = this.pickPeer();
    if (pick) this.forward(pick.endpoint, pick.issueCookie);
  }

  // ---- 1. early filter -----------------------------------------------------------------------

  private earlyFilter(): Rejection | undefined {
    const { opts } = this.fw;
    if (this.down.rawHeaders.length > opts.maxHeaders * 2) {
      return reject(431, 'too-many-headers', `more than ${opts.maxHeaders} header fields`, {
        connection: 'close',
      });
    }
    const limits = opts.limits;
    if (limits?.active) {
      if (limits.tooManyConnections(this.clientIp))
        return reject(429, 'client-connections', 'too many connections from this client', {
          connection: 'close',
        });
      if (!limits.allowRequest(this.clientIp))
        return reject(429, 'client-rate', 'request rate limit exceeded', { 'retry-after': '1' });
    }
    const target = requestTarget(this.path);
    if (target.form === 'absolute') {
      this.host = target.authority;
      this.path = target.path;
    } else {
      this.host = this.h.host ?? '';
      if (target.form === 'asterisk') {
        // About the server, not a resource: answered here (as nginx does), never sent upstream.
        if (this.method === 'OPTIONS')
          return { status: 200, error: 'options-asterisk', body: { reason: '' }, headers: { allow: ALLOW } };
        return reject(400, 'bad-target', `"*" is a request target only for OPTIONS, not ${this.method}`);
      }
      if (target.form === 'invalid') return reject(400, 'bad-target', target.reason);
    }
    if (
      opts.maxBodyBytes > 0 &&
      this.h.contentLength !== undefined &&
      Number(this.h.contentLength) > opts.maxBodyBytes
    ) {
      return reject(413, 'payload-too-large', `request body over ${opts.maxBodyBytes} bytes`);
    }
    if (this.h.via?.split(',').some((t) => t.trim() === opts.tier)) {
      // This tier already handled the request once: a project whose instances are Wharf itself.
      return reject(508, 'loop-detected', `the request came back to the ${opts.tier} tier (routing loop)`);
    }
    return undefined;
  }

  // ---- 2. resolve target ---------------------------------------------------------------------

  private resolveTarget(): Rejection | undefined {
    const { opts } = this.fw;
    const table = opts.table();
    // Internal tier and trusted hops may pin by header; outside clients only where the project opts in.
    const pinAnywhere = this.trusted || opts.tier === 'internal';
    const r = resolve(table, opts.domain, this.host, pinAnywhere ? this.h.pin : undefined);
    if (!r.ok) {
      return {
        status: r.status,
        error: r.status === 400 ? 'bad-host' : 'not-found',
        body: { reason: r.reason, project: r.project, port: r.port },
      };
    }
    let instance = r.instance;
    if (instance === undefined && this.h.pin && !pinAnywhere && r.project.settings.allowPinHeader)
      instance = this.h.pin;
    this.project = r.project;
    this.projectName = r.project.name;
    this.portName = r.route.port;
    if (table.forwardTo !== undefined) {
      // Edge in front of the internal tier: the edge only checks that the project and port are
      // public, then hands the request, Host and pin kept, to an internal replica, which routes
      // (and pins) by convention.
      this.pin = instance;
      if (!table.forward) {
        return {
          status: 503,
          error: 'internal-tier-unavailable',
          body: {
            reason: 'the internal tier is not available',
            project: this.projectName,
            port: this.portName,
          },
          headers: { 'retry-after': '1' },
        };
      }
      this.route = table.forward;
    } else {
      this.route = r.route;
      if (instance !== undefined) {
        this.pinned = true;
        this.pin = instance;
      }
    }
    const route = this.route;
    opts.budget.request(route.project, route.port);
    const grpcMs = this.h.grpcTimeoutMs;
    const routeMs = route.settings.timeoutMs;
    this.responseTimeoutMs = grpcMs !== undefined && (routeMs <= 0 || grpcMs < routeMs) ? grpcMs : routeMs;
    // Upgrades are HTTP/1.1 by definition; `auto` keeps the client's protocol.
    const p = this.upgrade !== undefined ? 'http1' : route.protocol;
    this.upstreamProtocol = p === 'auto' ? (this.down.protocol === 'h2' ? 'h2c' : 'http1') : p;
    this.trailers = this.down.protocol === 'h2' && (this.h.grpc || this.h.teTrailers === true);
    if (this.h.grpc && this.upstreamProtocol === 'http1') {
      return {
        status: 502,
        error: 'grpc-needs-h2c',
        body: {
          reason: `port "${route.port}" is reached over HTTP/1.1, and gRPC needs HTTP/2: give the port appProtocol grpc or kubernetes.io/h2c, or set wharf.io/protocol`,
          project: this.projectName,
          port: this.portName,
        },
      };
    }
    return undefined;
  }

  // ---- 3. pick peer --------------------------------------------------------------------------

  /** The endpoint for the next attempt; when there is none, the client has been answered. */
  pickPeer(): PickResult | undefined {
    if (this.pinned) {
      // The client named the instance itself, so naming it back reveals nothing.
      const route = this.route!;
      const pin = pinEndpoint(route, this.pin!, this.fw.opts.health);
      if ('endpoint' in pin) return { endpoint: pin.endpoint, issueCookie: false };
      const gone = !route.byInstance.has(this.pin!);
      this.reject({
        status: 503,
        error: gone ? 'pinned-instance-gone' : 'pinned-instance-unhealthy',
        body: {
          reason: gone ? `instance "${this.pin}" does not exist or has no port "${route.port}"` : pin.reason,
          project: this.projectName,
          port: this.portName,
          instance: this.pin,
        },
        headers: gone ? undefined : { 'retry-after': '1' },
      });
      return undefined;
    }
    const pick = pickEndpoint(this.pickInput());
    if (!pick) this.noEndpoint();
    return pick;
  }

  private pickInput(): PickInput {
    const route = this.route!;
    const aff = route.settings.affinity;
    let hashKey: string | undefined;
    if (aff.kind === 'ip') hashKey = this.clientIp;
    else if (aff.kind === 'header') hashKey = rawHeader(this.down.rawHeaders, aff.header);
    else if (aff.kind === 'cookie' && this.stickyToken === undefined)
      this.stickyToken = readCookie(this.h.cookie, this.fw.cookie) ?? '';
    return {
      route,
      health: this.fw.opts.health,
      inflight: this.fw.inflight,
      exclude: this.tried,
      stickyToken: this.stickyToken || undefined,
      hashKey,
    };
  }

  private noEndpoint(): void {
    this.lastError ??= 'no-healthy-instance';
    this.reject({
      status: 503,
      error: this.lastError,
      body: { reason: describeNoEndpoint(this.pickInput()), project: this.projectName, port: this.portName },
      headers: { 'retry-after': '1' },
    });
  }

  // ---- 4. rewrite upstream request -----------------------------------------------------------

  upstreamHeaders(): string[] {
    const opts = this.fw.opts;
    return upstreamRequestHeaders(this.down.rawHeaders, {
      clientIp: this.clientIp,
      proto: opts.proto,
      host: this.host,
      hostOverride: this.host !== this.h.host ? this.host : undefined,
      requestId: this.requestId,
      untrusted: !this.trusted,
      // Only the edge's forward mode passes a pin on: an instance itself never sees the header.
      pin: this.pinned ? undefined : this.pin,
      via: this.h.via === undefined ? opts.tier : `${this.h.via}, ${opts.tier}`,
    });
  }

  // ---- 5. forward ----------------------------------------------------------------------------

  private forward(endpoint: Endpoint, issueCookie: boolean): void {
    if (this.expectContinue) this.down.writeContinue();
    if (this.bodyless) return this.dispatch(endpoint, issueCookie);
    this.watchStall('upload');
    const bound = this.fw.opts.bodyBufferBytes;
    // gRPC streams are conversations (a bidirectional call waits for answers before it sends more):
    // their messages go as they come. Upgrades have no body to wait for.
    if (bound > 0 && this.upgrade === undefined && !this.h.grpc) {
      // Read the body (up to the bound) before taking a connection: see body-buffer.ts. The peer
      // picked so far only said there is one (and let Expect: 100-continue be answered).
      this.reader = new BodyBuffer(this.down.body, bound, this);
      return;
    }
    this.streamBody(endpoint, issueCookie);
  }

  bodyBuffered(outcome: BufferOutcome): void {
    const reader = this.reader!;
    this.reader = undefined;
    if (this.clientGone || this.finished) return;
    const max = this.fw.opts.maxBodyBytes;
    if (max > 0 && reader.size > max) {
      return this.reject(reject(413, 'payload-too-large', `request body over ${max} bytes`));
    }
    if (outcome === 'failed') {
      // The client went away (its close may be reported after its body's), or broke the framing.
      // An HTTP/2 stream that failed was reset: nobody is left to answer.
      if (this.down.protocol !== 'http/1.1' || this.down.socket?.destroyed !== false)
        return this.onClientClose();
      return this.reject(reject(400, 'bad-request', 'the request body ended before it was complete'));
    }
    if (outcome === 'complete') {
      this.bufferedBody = reader.body;
      this.uploadDone();
    }
    // The pick was made before the body arrived: pick again now, on the load and health of now.
    const pick = this.pickPeer();
    if (!pick) return;
    if (outcome === 'complete') this.dispatch(pick.endpoint, pick.issueCookie);
    else this.streamBody(pick.endpoint, pick.issueCookie);
  }

  /** Sends the request with its body streaming from the client, within the per-client cap. */
  private streamBody(endpoint: Endpoint, issueCookie: boolean): void {
    // Once the upload is in, the client has nothing to send: the wait is the upstream's, which the
    // route's timeout bounds. Left armed, body-idle would cut a client whose upstream thinks longer.
    this.down.body.once('end', () => this.uploadDone());
    const cap = this.fw.opts.uploadsPerClient;
    // h2c upstreams multiplex streams: an upload holds no connection there (H2Origin).
    if (this.upstreamProtocol !== 'h2c' && this.capsUploads()) {
      const up = this.fw.opts.pools.get(endpoint.address);
      if (up.uploadsFrom(this.clientIp) >= cap) {
        return this.reject({
          status: 429,
          error: 'client-uploads',
          body: {
            reason: `this client already streams ${cap} uploads to this instance`,
            project: this.projectName,
            port: this.portName,
          },
          headers: { 'retry-after': '1' },
        });
      }
    }
    this.dispatch(endpoint, issueCookie);
  }

  /** Whether this request's streaming upload counts towards its client's cap (Upstream.uploadsFrom). */
  capsUploads(): boolean {
    const opts = this.fw.opts;
    return opts.uploadsPerClient > 0 && !opts.trustedProxy(this.clientIp);
  }

  /** Whether the request body streams from the client while an attempt is under way. */
  get streaming(): boolean {
    return !this.bodyless && this.bufferedBody === undefined;
  }

  /** Whether the request body could be sent again: none, in memory, not read yet, or all kept (h2c). */
  bodyReplayable(): boolean {
    return (
      this.bodyless ||
      this.bufferedBody !== undefined ||
      !this.down.body.readableDidRead ||
      (this.replay !== undefined && !this.replay.overflow)
    );
  }

  dispatch(endpoint: Endpoint, issueCookie: boolean): void {
    this.attempts++;
    const a = new Attempt(this, endpoint, issueCookie);
    this.current = a;
    a.send();
  }

  /**
   * Whether a failed attempt may be tried again elsewhere; takes a token from the retry budget when
   * it may. A refused or timed-out connect reached nothing, so any method qualifies; otherwise only
   * idempotent requests whose body (if any) was never read.
   */
  mayRetry(a: Attempt, error: AttemptError | 'status' | 'queued'): boolean {
    if (this.pinned || this.clientGone) return false;
    const route = this.route!;
    if (this.attempts > route.settings.retries) return false;
    const bodySafe = this.bodyReplayable();
    // Nothing left for the instance when the connect failed or the attempt never left the queue.
    const unsent = error === 'queued' || (error !== 'status' && isConnectFailure(error));
    const allowed = unsent ? bodySafe : this.idempotent && bodySafe;
    if (!allowed) return false;
    this.tried ??= new Set();
    this.tried.add(a.endpoint.id);
    if (!route.endpoints.some((e) => !this.tried!.has(e.id))) return false;
    // Moving a request off an instance that was just ejected adds no load to the outage: it is
    // the request's first real chance, so it does not draw on the retry budget.
    if (a.abortedWith === 'rescue') return true;
    return this.fw.opts.budget.tryRetry(route.project, route.port);
  }

  /** Sends the next attempt to another instance; false when none is eligible any more. */
  redispatch(prev: Attempt): boolean {
    const pick = pickEndpoint(this.pickInput());
    if (!pick) return false;
    this.dispatch(pick.endpoint, pick.issueCookie || prev.issueCookie);
    return true;
  }

  /**
   * Arms `body-idle` on the client's connection while a body crosses it: an upload (until it is all
   * in), or a response the client reads slower than it arrives (for the rest of the exchange).
   * Silence there is a stalled client, and the connection is closed. When an HTTP/1.1 response ends
   * node swaps in the keep-alive timeout.
   */
  watchStall(kind: 'upload' | 'download'): void {
    if (this.stall === kind || this.stall === 'download') return;
    const armed = this.stall !== 'none';
    this.stall = kind;
    const ms = this.fw.opts.bodyIdleMs;
    if (!armed && ms > 0) this.down.idleTimeout(ms);
  }

  private uploadDone(): void {
    this.current?.uploadEnded();
    if (this.stall !== 'upload') return;
    this.stall = 'none';
    this.down.idleTimeout(0);
  }

  /** Whether undici has taken the whole request body (the response deadline starts then). */
  requestBodyTaken(): boolean {
    return !this.streaming || this.requestBody().readableEnded;
  }

  /** Whether undici has paused the request body: the upstream connection takes no more for now. */
  uploadHeldBack(): boolean {
    return this.requestBody().isPaused();
  }

  /** Request bytes read from the client's connection so far. */
  clientBytesRead(): number {
    return this.down.bytesRead();
  }

  /** The stream undici reads the request body from: the client's, or its size-limited copy. */
  private requestBody(): Readable {
    return this.limited ?? this.down.body;
  }

  /**
   * The request body for undici. With a body limit, a chunked body is counted as it streams and cut
   * at the limit (a declared Content-Length over the limit was refused by the early filter).
   */
  body(): Readable | Buffer | null {
    if (this.bodyless) return null;
    if (this.bufferedBody !== undefined) return this.bufferedBody;
    const source = this.limitedBody();
    // h2c attempts keep the start of the body: a refused stream may then go elsewhere (replay.ts).
    if (this.upstreamProtocol !== 'h2c') return source;
    this.replay ??= new ReplayableBody(source);
    return this.replay.next() ?? source;
  }

  /** The client's body, counted against `limits.max-body-bytes` when its length was not declared. */
  private limitedBody(): Readable {
    const max = this.fw.opts.maxBodyBytes;
    // A declared Content-Length over the limit was refused early; a body without one is counted.
    if (max <= 0 || (this.h.contentLength !== undefined && !this.h.chunked)) return this.down.body;
    if (this.limited) return this.limited;
    let seen = 0;
    const ex = this;
    this.limited = this.down.body.pipe(
      new Transform({
        transform(chunk: Buffer, _enc, cb) {
          seen += chunk.length;
          if (seen > max) {
            ex.overLimit = true;
            return cb(new Error('request body over the limit'));
          }
          cb(null, chunk);
        },
      }),
    );
    return this.limited;
  }

  /**
   * The one way request outcomes flow back: passive health and attempt metrics, for what an
   * upstream did (a status, or a failure the upstream caused).
   */
  outcome(a: Attempt, status: number | undefined, error: AttemptError | undefined, durationMs: number): void {
    a.observe(status ?? error ?? 'reset', durationMs);
    this.fw.opts.health.report({ endpoint: a.endpoint.id, status, error, durationMs });
  }

  // ---- 6. rewrite response -------------------------------------------------------------------

  /** The client's response head from the upstream's raw headers. */
  responseHeaders(a: Attempt, rawHeaders: readonly (Buffer | string)[], upgrade?: string): string[] {
    const opts = this.fw.opts;
    // A flat [name, value, ...] list: repeated names (set-cookie) are simply repeated.
    const out = downstreamRawHeaders(
      rawHeaders,
      !opts.instanceHeader,
      this.requestId,
      opts.instanceHeader ? a.endpoint.instance : undefined,
    );
    if (upgrade !== undefined) out.push('connection', 'upgrade', 'upgrade', upgrade);
    const hsts = this.project?.settings.hstsMaxAge ?? 0;
    if (hsts > 0 && opts.proto === 'https') out.push('strict-transport-security', `max-age=${hsts}`);
    if (a.issueCookie) {
      // Secure when the client's side of the chain is https, even if this hop is plain HTTP.
      const secure = opts.proto === 'https' || this.h.httpsBefore === true;
      out.push('set-cookie', affinityCookieHeader(this.fw.cookie, a.endpoint.token, secure));
    }
    return out;
  }

  /** Writes the client's response head for an upstream answer (phase 6 applied). */
  respond(a: Attempt, status: number, rawHeaders: readonly (Buffer | string)[]): void {
    const headers = this.responseHeaders(a, rawHeaders);
    if (this.trailers && this.h.grpc && hasName(rawHeaders, 'grpc-status')) {
      // gRPC trailers-only: the status is in this one HEADERS frame, which ends the stream.
      this.trailersOnly = true;
      const out: Record<string, string> = {};
      for (let i = 0; i < headers.length; i += 2) out[headers[i]] = headers[i + 1];
      this.down.headersOnly(status, out);
      return;
    }
    this.down.writeHead(status, headers, this.trailers);
  }

  /**
   * The upstream switched protocols: answer 101 and join the two connections byte for byte until
   * either side closes. The access record is written when the tunnel ends.
   */
  tunnel(a: Attempt, rawHeaders: readonly (Buffer | string)[], upstream: Duplex): void {
    const down = this.down;
    if (this.clientGone || !down.tunnel) {
      upstream.destroy();
      return;
    }
    const upgrade = upgradeToken(rawHeaders) ?? this.upgrade ?? 'websocket';
    down.writeHead(101, this.responseHeaders(a, rawHeaders, upgrade));
    down.tunnel(
      upstream,
      (n) => {
        this.bytesOut += n;
      },
      () => this.finish(101),
    );
  }

  // ---- answers of our own, and 7. the access record ------------------------------------------

  /** The client's upload broke off (it aborted or its connection failed): the request's fault. */
  requestFailed(): boolean {
    const body = this.down.body;
    return !this.bodyless && !this.down.bodyComplete() && (body.destroyed || body.errored != null);
  }

  /** A failure after the response head went out: cut the response so it cannot pass for whole. */
  cut(err: Error, kind: string): void {
    this.down.destroy(err);
    this.finish(this.down.statusCode, kind);
  }

  onClientClose(): void {
    this.clientGone = true;
    this.current?.abort('client-gone');
    if (!this.finished) this.finish(499, 'client-closed');
  }

  reject(r: Rejection): void {
    this.lastError = r.error;
    if (this.clientGone) return this.finish(499, 'client-closed');
    const headers: Record<string, string> = { 'x-request-id': this.requestId, ...r.headers };
    // A body the client already started sending is not wanted: close after answering instead of
    // reading what may be gigabytes.
    if (!this.bodyless && !this.down.body.readableEnded) headers.connection = 'close';
    if (this.h.grpc) this.down.headersOnly(200, grpcError(r, headers));
    else if (r.status === 200)
      this.down.headersOnly(200, headers); // OPTIONS *: an empty success
    else this.bytesOut += this.down.error(r.status, r.body, headers);
    this.finish(r.status, r.error);
  }

  /** An attempt's failure as the client's answer. */
  fail(a: Attempt, kind: string, status: number, reason: string): void {
    const showInstance = this.fw.opts.instanceHeader || this.pinned;
    this.reject({
      status,
      error: kind,
      body: {
        reason,
        project: this.projectName,
        port: this.portName,
        instance: showInstance ? a.endpoint.instance : undefined,
      },
    });
  }

  finish(status: number, error?: string): void {
    if (this.finished) return;
    this.finished = true;
    const onAccess = this.fw.opts.onAccess;
    if (!onAccess) return;
    onAccess({
      time: this.started,
      requestId: this.requestId,
      client: this.clientIp,
      host: this.host || (this.h.host ?? ''),
      method: this.method,
      path: this.down.url,
      status,
      bytesIn: this.down.bytesRead(),
      bytesOut: this.bytesOut,
      durationMs: performance.now() - this.startedHr,
      upstreamMs: this.upstreamMs,
      project: this.projectName,
      port: this.portName,
      instance: this.current?.endpoint.instance,
      attempts: this.attempts,
      error: error ?? this.lastError,
      protocol: this.upgrade === undefined ? this.down.protocol : `${this.down.protocol}+upgrade`,
    });
  }
}

/** An answer of ours to a gRPC client: a trailers-only response carrying the gRPC status. */
function grpcError(r: Rejection, headers: Record<string, string>): Record<string, string> {
  const where = r.body.project ? ` (${r.body.project}${r.body.port ? `/${r.body.port}` : ''})` : '';
  const out: Record<string, string> = {
    'content-type': 'application/grpc',
    'grpc-status': String(grpcStatusFor(r.status, r.error)),
    'grpc-message': grpcMessage(`${r.error}: ${r.body.reason}${where}`),
  };
  for (const k in headers) if (k !== 'connection' && k !== 'content-length') out[k] = headers[k];
  return out;
}

function reject(status: number, error: string, reason: string, headers?: Record<string, string>): Rejection {
  return { status, error, body: { reason }, headers };
}

/** The value of header `name` (lowercase) in an upstream's raw headers (buffers or strings). */
function rawValue(raw: readonly (Buffer | string)[], name: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i];
    if (k.length === name.length && k.toString().toLowerCase() === name) return raw[i + 1].toString();
  }
  return undefined;
}

function hasName(raw: readonly (Buffer | string)[], name: string): boolean {
  return rawValue(raw, name) !== undefined;
}

/** The `Upgrade` value of an upstream's 101. */
function upgradeToken(raw: readonly (Buffer | string)[]): string | undefined {
  return rawValue(raw, 'upgrade');
}
