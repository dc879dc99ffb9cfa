// The data plane's request path: route -> pick -> dispatch through undici -> stream back -> report one
// outcome per attempt. It reads the current table once per request and never writes shared state
// except in-flight counters and the outcome sink.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Readable, Transform } from 'node:stream';
import { type Dispatcher, errors as undiciErrors } from 'undici';
import {
  affinityCookieHeader,
  affinityCookieName,
  describeNoEndpoint,
  type PickInput,
  pickEndpoint,
  readCookie,
} from '../balancing/index.ts';
import type { AccessRecord } from '../model/access.ts';
import type { AttemptRecord, AttemptResult } from '../model/attempt.ts';
import type { HealthView } from '../model/health.ts';
import type { AttemptError, AttemptOutcome } from '../model/outcome.ts';
import type { Endpoint, EndpointId, PortRoute, ProjectRoute, RouteTable } from '../model/routes.ts';
import type { Tier } from '../routing/build.ts';
import { resolve } from '../routing/match.ts';
import type { Clock } from '../util/clock.ts';
import { newRequestId } from '../util/request-id.ts';
import { classifyError, isConnectFailure, sendError, statusForError } from './errors.ts';
import { downstreamRawHeaders, sameName, upstreamRequestHeaders } from './headers.ts';
import type { RetryBudget } from './retry-budget.ts';
import type { UpstreamPools } from './upstreams.ts';

export interface HealthSink extends HealthView {
  report(outcome: AttemptOutcome): void;
  /** A request has waited unusually long there: probe it now instead of at the next interval. */
  suspect?(id: EndpointId): void;
}

/** An attempt without response headers after this long asks health/ for an early probe. */
const SUSPECT_AFTER_MS = 250;
/** How often the forwarder looks over its in-flight attempts: deadlines and early probes. */
const SWEEP_MS = 100;

export interface ForwarderOptions {
  readonly domain: string;
  readonly tier: Tier;
  readonly proto: 'http' | 'https';
  /** Add `x-wharf-instance` to responses and name instances in error bodies. */
  readonly instanceHeader: boolean;
  /** Longest silence inside a body: the upstream's response (the sweep) and the client's side (watchStall). */
  readonly bodyIdleMs: number;
  readonly maxBodyBytes: number;
  readonly table: () => RouteTable;
  readonly health: HealthSink;
  readonly pools: UpstreamPools;
  readonly budget: RetryBudget;
  readonly clock: Clock;
  /** Whether x-forwarded-* and x-wharf-* from this client may be believed (edge: trusted CIDRs only). */
  readonly trusted: (clientIp: string) => boolean;
  readonly onAccess?: (rec: AccessRecord) => void;
  /**
   * Once per upstream attempt, when its response headers arrive or it ends without them (metrics,
   * dashboard): the instance that took it, its outcome, how long it took, whether it was a retry.
   */
  readonly onAttempt?: (a: AttemptRecord) => void;
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** Marks an attempt aborted on purpose (client gone, rescue), so its error is not the upstream's fault. */
class Aborted extends Error {
  constructor(readonly why: 'client-gone' | 'rescue') {
    super(why);
  }
}

export function clientAddress(req: IncomingMessage): string {
  const a = req.socket.remoteAddress ?? '';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

/** Request headers the forwarder needs, collected in one pass over rawHeaders. */
interface Inspected {
  host?: string;
  contentLength?: string;
  chunked: boolean;
  pin?: string;
  cookie?: string;
  requestId?: string;
  /** `x-wharf-via`: the Wharf tiers this request already passed (loop detection). */
  via?: string;
  /** A trusted hop in front (the edge) received this request over https. */
  httpsBefore?: boolean;
}

function inspect(raw: string[], trusted: boolean): Inspected {
  const out: Inspected = { chunked: false };
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i];
    switch (k.length) {
      case 4:
        if (out.host === undefined && sameName(k, 'host')) out.host = raw[i + 1];
        break;
      case 6:
        if (sameName(k, 'cookie')) out.cookie = out.cookie ? `${out.cookie}; ${raw[i + 1]}` : raw[i + 1];
        break;
      case 11:
        if (trusted && sameName(k, 'x-wharf-via')) out.via = raw[i + 1];
        break;
      case 12:
        if (trusted && sameName(k, 'x-request-id')) out.requestId = raw[i + 1];
        break;
      case 14:
        if (sameName(k, 'content-length')) out.contentLength = raw[i + 1];
        break;
      case 16:
        if (sameName(k, 'x-wharf-instance')) out.pin = raw[i + 1].trim().toLowerCase();
        break;
      case 17:
        if (sameName(k, 'transfer-encoding')) out.chunked = true;
        else if (trusted && sameName(k, 'x-forwarded-proto'))
          out.httpsBefore = raw[i + 1].trim().toLowerCase() === 'https';
        break;
    }
  }
  return out;
}

export class Forwarder {
  /** Outstanding attempts per endpoint: the balancer's load signal and the rescue registry. */
  private readonly inflightByEndpoint = new Map<EndpointId, Set<Attempt>>();
  readonly inflight = (id: EndpointId): number => this.inflightByEndpoint.get(id)?.size ?? 0;
  private readonly cookieName: string;

  private sweepTimer?: NodeJS.Timeout;

  constructor(readonly opts: ForwarderOptions) {
    this.cookieName = affinityCookieName(opts.tier);
    this.sweepTimer = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweepTimer.unref();
  }

  /**
   * Every SWEEP_MS, over the in-flight attempts:
   * - Deadlines. An attempt past the route's `timeout` without response headers, or silent for
   *   `body-idle` inside the upstream's body, is failed with undici's own timeout error, so retries,
   *   passive health and the 504 follow as if undici had raised it. Not undici's headersTimeout and
   *   bodyTimeout: with two different values, undici arms a fresh timer object per request (two per
   *   request) that stays in its timer list for up to a second, so each one survives two scavenges.
   *   That promoted about 4 MB/s to the old generation at 22k rps, a mark-compact every 12 s or so,
   *   and each window with one had a p99 of 13-19 ms against 5-6 ms without (bench/README.md).
   * - Early probes. A hung instance accepts connections and answers nothing: rather than wait for the
   *   next probe interval, a request waiting there past SUSPECT_AFTER_MS asks for a probe now, so
   *   ejection (and the rescue of those requests) follows within about a probe timeout.
   */
  private sweep(): void {
    const now = performance.now();
    const late: Attempt[] = [];
    for (const [id, set] of this.inflightByEndpoint) {
      let suspected = false;
      for (const a of set) {
        if (a.checkDeadline(now)) late.push(a);
        else if (!suspected && !a.responded && now - a.sentAt > SUSPECT_AFTER_MS) {
          this.opts.health.suspect?.(id);
          suspected = true;
        }
      }
    }
    // Failing an attempt may retry it elsewhere (changing the sets), so not while iterating them.
    for (const a of late) a.timeOut();
  }

  close(): void {
    clearInterval(this.sweepTimer);
  }

  /** Entry point for node:http 'request' (and 'checkContinue'). */
  handle(req: IncomingMessage, res: ServerResponse, expectContinue = false): void {
    new Exchange(this, req, res, expectContinue).start();
  }

  /** Called by health/ when an endpoint is ejected: idempotent requests waiting there move elsewhere. */
  rescue(id: EndpointId): number {
    const set = this.inflightByEndpoint.get(id);
    if (!set) return 0;
    let n = 0;
    for (const a of [...set]) if (a.rescue()) n++;
    return n;
  }

  track(a: Attempt): void {
    let set = this.inflightByEndpoint.get(a.endpoint.id);
    if (!set) {
      set = new Set();
      this.inflightByEndpoint.set(a.endpoint.id, set);
    }
    set.add(a);
  }

  untrack(a: Attempt): void {
    const set = this.inflightByEndpoint.get(a.endpoint.id);
    if (!set) return;
    set.delete(a);
    if (set.size === 0) this.inflightByEndpoint.delete(a.endpoint.id);
  }

  get cookie(): string {
    return this.cookieName;
  }
}

/** One client request and its upstream attempts. */
class Exchange {
  readonly started: number;
  readonly startedHr = performance.now();
  readonly clientIp: string;
  readonly trusted: boolean;
  readonly h: Inspected;
  readonly method: string;
  readonly idempotent: boolean;
  readonly bodyless: boolean;
  requestId = '';
  project?: ProjectRoute;
  route?: PortRoute;
  /** Strict pin: never another instance. */
  pinned = false;
  /** The project and port the client asked for (in forward mode `route` is the internal tier's). */
  projectName?: string;
  portName?: string;
  /** Forward mode: the pin to pass on to the internal tier. */
  forwardPin?: string;
  stickyToken?: string;
  tried?: Set<EndpointId>;
  attempts = 0;
  current?: Attempt;
  lastError?: string;
  bytesOut = 0;
  limited?: Readable;
  overLimit = false;
  upstreamMs?: number;
  finished = false;
  clientGone = false;
  /** Why `body-idle` is armed on the client's socket: its upload, or a response it reads slowly. */
  private stall: 'none' | 'upload' | 'download' = 'none';
  readonly bytesReadAtStart: number;

  constructor(
    readonly fw: Forwarder,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly expectContinue: boolean,
  ) {
    this.started = fw.opts.clock.now();
    this.clientIp = clientAddress(req);
    this.trusted = fw.opts.trusted(this.clientIp);
    this.h = inspect(req.rawHeaders, this.trusted);
    this.method = req.method ?? 'GET';
    this.idempotent = IDEMPOTENT.has(this.method);
    const cl = this.h.contentLength;
    this.bodyless = !this.h.chunked && (cl === undefined || cl === '0');
    this.bytesReadAtStart = req.socket.bytesRead;
  }

  start(): void {
    const { opts } = this.fw;
    this.requestId = this.h.requestId || newRequestId();
    this.res.on('close', () => this.onClientClose());
    if (
      opts.maxBodyBytes > 0 &&
      this.h.contentLength !== undefined &&
      Number(this.h.contentLength) > opts.maxBodyBytes
    ) {
      this.reply(413, 'payload-too-large', `request body over ${opts.maxBodyBytes} bytes`);
      return;
    }
    if (this.h.via?.split(',').some((t) => t.trim() === opts.tier)) {
      // This tier already handled the request once: a project whose instances are Wharf itself.
      this.replyBody(508, 'loop-detected', {
        reason: `the request came back to the ${opts.tier} tier (routing loop)`,
      });
      return;
    }
    const table = opts.table();
    // Internal tier and trusted hops may pin by header; outside clients only where the project opts in.
    const pinAnywhere = this.trusted || opts.tier === 'internal';
    const r = resolve(table, opts.domain, this.h.host, pinAnywhere ? this.h.pin : undefined);
    if (!r.ok) {
      this.replyBody(r.status, r.status === 400 ? 'bad-host' : 'not-found', {
        reason: r.reason,
        project: r.project,
        port: r.port,
      });
      return;
    }
    let instance = r.instance;
    if (instance === undefined && this.h.pin && !pinAnywhere && r.project.settings.allowPinHeader)
      instance = this.h.pin;
    this.project = r.project;
    this.projectName = r.project.name;
    this.portName = r.route.port;
    if (table.forwardTo !== undefined) return this.startForward(table.forward, instance);
    this.route = r.route;
    opts.budget.request(r.route.project, r.route.port);
    let endpoint: Endpoint | undefined;
    let issueCookie = false;
    if (instance !== undefined) {
      this.pinned = true;
      endpoint = r.route.byInstance.get(instance);
      // The client named the instance itself, so naming it back reveals nothing.
      if (!endpoint) {
        this.replyBody(503, 'pinned-instance-gone', {
          reason: `instance "${instance}" does not exist or has no port "${r.route.port}"`,
          project: r.project.name,
          port: r.route.port,
          instance,
        });
        return;
      }
      const state = opts.health.state(endpoint.id);
      if (state === 'unhealthy') {
        const why = opts.health.status(endpoint.id)?.reason ?? 'unhealthy';
        this.replyBody(
          503,
          'pinned-instance-unhealthy',
          {
            reason: `instance "${instance}" is unhealthy: ${why}`,
            project: r.project.name,
            port: r.route.port,
            instance,
          },
          { 'retry-after': '1' },
        );
        return;
      }
    } else {
      const pick = this.pick();
      if (!pick) return this.noEndpoint();
      endpoint = pick.endpoint;
      issueCookie = pick.issueCookie;
    }
    this.go(endpoint, issueCookie);
  }

  /**
   * Edge tier in front of the internal tier: the edge only checks that the project and port are public,
   * then hands the request, Host unchanged, to an internal replica, which routes (and pins) by convention.
   */
  startForward(forward: PortRoute | undefined, pin: string | undefined): void {
    this.forwardPin = pin;
    if (!forward) {
      this.replyBody(
        503,
        'internal-tier-unavailable',
        { reason: 'the internal tier is not available', project: this.projectName, port: this.portName },
        { 'retry-after': '1' },
      );
      return;
    }
    this.route = forward;
    this.fw.opts.budget.request(forward.project, forward.port);
    const pick = this.pick();
    if (!pick) return this.noEndpoint();
    this.go(pick.endpoint, pick.issueCookie);
  }

  go(endpoint: Endpoint, issueCookie: boolean): void {
    if (this.expectContinue) this.res.writeContinue();
    if (!this.bodyless) {
      this.watchStall('upload');
      // Once the upload is in, the client has nothing to send: the wait is the upstream's, which the
      // route's timeout bounds. Left armed, body-idle would cut a client whose upstream thinks longer.
      this.req.once('end', () => this.uploadDone());
    }
    this.dispatch(endpoint, issueCookie);
  }

  /**
   * Arms `body-idle` on the client's socket while a body crosses it: an upload (until it is all in),
   * or a response the client reads slower than it arrives (for the rest of the exchange). Silence
   * there is a stalled client, and node closes the socket. When the response ends node swaps in the
   * keep-alive timeout.
   */
  watchStall(kind: 'upload' | 'download'): void {
    if (this.stall === kind || this.stall === 'download') return;
    const armed = this.stall !== 'none';
    this.stall = kind;
    const ms = this.fw.opts.bodyIdleMs;
    if (!armed && ms > 0) this.req.socket?.setTimeout(ms);
  }

  private uploadDone(): void {
    if (this.stall !== 'upload') return;
    this.stall = 'none';
    this.req.socket?.setTimeout(0);
  }

  /** Whether undici has taken the whole request body (the response deadline starts then). */
  requestBodyTaken(): boolean {
    return this.bodyless || this.requestBody().readableEnded;
  }

  /** Whether undici has paused the request body: the upstream connection takes no more for now. */
  uploadHeldBack(): boolean {
    return this.requestBody().isPaused();
  }

  /** The stream undici reads the request body from: the client's, or its size-limited copy. */
  private requestBody(): Readable {
    return this.limited ?? this.req;
  }

  /**
   * The request body for undici. With a body limit, a chunked body is counted as it streams and cut
   * at the limit (a declared Content-Length over the limit was refused before routing).
   */
  body(): Readable {
    const max = this.fw.opts.maxBodyBytes;
    if (max <= 0 || !this.h.chunked) return this.req;
    if (this.limited) return this.limited;
    let seen = 0;
    const ex = this;
    this.limited = this.req.pipe(
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

  pickInput(): PickInput {
    const route = this.route!;
    const aff = route.settings.affinity;
    let hashKey: string | undefined;
    if (aff.kind === 'ip') hashKey = this.clientIp;
    else if (aff.kind === 'header') {
      const v = this.req.headers[aff.header];
      hashKey = Array.isArray(v) ? v[0] : v;
    } else if (aff.kind === 'cookie' && this.stickyToken === undefined) {
      this.stickyToken = readCookie(this.h.cookie, this.fw.cookie) ?? '';
    }
    return {
      route,
      health: this.fw.opts.health,
      inflight: this.fw.inflight,
      exclude: this.tried,
      stickyToken: this.stickyToken || undefined,
      hashKey,
    };
  }

  pick() {
    return pickEndpoint(this.pickInput());
  }

  noEndpoint(): void {
    const reason = describeNoEndpoint(this.pickInput());
    this.lastError ??= 'no-healthy-instance';
    this.replyBody(
      503,
      this.lastError,
      { reason, project: this.projectName, port: this.portName },
      { 'retry-after': '1' },
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
  mayRetry(a: Attempt, error: AttemptError | 'status'): boolean {
    if (this.pinned || this.clientGone) return false;
    const route = this.route!;
    if (this.attempts > route.settings.retries) return false;
    const bodySafe = this.bodyless || !this.req.readableDidRead;
    const allowed = error !== 'status' && isConnectFailure(error) ? bodySafe : this.idempotent && bodySafe;
    if (!allowed) return false;
    this.tried ??= new Set();
    this.tried.add(a.endpoint.id);
    if (!route.endpoints.some((e) => !this.tried!.has(e.id))) return false;
    // Moving a request off an instance that was just ejected adds no load to the outage: it is
    // the request's first real chance, so it does not draw on the retry budget.
    if (a.abortedWith?.why === 'rescue') return true;
    return this.fw.opts.budget.tryRetry(route.project, route.port);
  }

  /** Sends the next attempt to another instance; false when none is eligible any more. */
  redispatch(prev: Attempt): boolean {
    const pick = this.pick();
    if (!pick) return false;
    this.dispatch(pick.endpoint, pick.issueCookie || prev.issueCookie);
    return true;
  }

  onClientClose(): void {
    if (this.res.writableFinished) return;
    this.clientGone = true;
    this.current?.abort(new Aborted('client-gone'));
    if (!this.finished) this.finish(499, 'client-closed');
  }

  reply(status: number, error: string, reason: string): void {
    this.replyBody(status, error, { reason });
  }

  replyBody(
    status: number,
    error: string,
    body: { reason: string; project?: string; port?: string; instance?: string },
    headers?: Record<string, string>,
  ): void {
    this.lastError = error;
    const extra: Record<string, string> = { 'x-request-id': this.requestId, ...headers };
    if (this.clientGone) return this.finish(499, 'client-closed');
    // A body the client already started sending is not wanted: close after answering instead of
    // reading what may be gigabytes.
    if (!this.bodyless && !this.req.readableEnded) extra.connection = 'close';
    this.bytesOut += sendError(this.res, status, body, extra);
    this.finish(status, error);
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
      host: this.h.host ?? '',
      method: this.method,
      path: this.req.url ?? '',
      status,
      bytesIn: this.req.socket ? this.req.socket.bytesRead - this.bytesReadAtStart : 0,
      bytesOut: this.bytesOut,
      durationMs: performance.now() - this.startedHr,
      upstreamMs: this.upstreamMs,
      project: this.projectName,
      port: this.portName,
      instance: this.current?.endpoint.instance,
      attempts: this.attempts,
      error: error ?? this.lastError,
    });
  }
}

/**
 * One upstream attempt; also its undici dispatch handler (one object, no per-callback closures).
 *
 * It implements undici's original callbacks (onConnect, onHeaders, onData, onComplete, onError), which
 * undici 7 still calls directly. They hand over the response headers as raw buffers, which become the
 * client's headers in one pass (downstreamRawHeaders). The newer onResponseStart API goes through a
 * wrapper that first parses them into an object, which would then be copied, filtered and iterated by
 * node again: about 5% of the instructions of a proxied request (bench/README.md).
 */
class Attempt implements Dispatcher.DispatchHandler {
  private abortUpstream?: (err?: Error) => void;
  private resumeUpstream?: () => void;
  sentAt = 0;
  responded = false;
  /** When the current wait for response headers began (0: not waiting); see waitStart. */
  private waitingSince = 0;
  /** Whether a sweep has seen the request body all taken. */
  private sawBodyTaken = false;
  /** The client socket's bytesRead at the last sweep: whether the upload moved since. */
  private bytesReadSeen = -1;
  /** Response body chunks so far, and the count the last sweep saw: progress without a clock read. */
  private chunks = 0;
  private chunksSeen = 0;
  /** When a sweep (or the headers) last saw the upstream's body move, or the client hold it back. */
  private lastDataAt = 0;
  /** Paused by the client's backpressure: silence then is the client's, not the upstream's. */
  private paused = false;
  /** The timeout error checkDeadline found; timeOut() fails the attempt with it. */
  private overdue?: Error;
  /** A 502/503 being retried: its body is drained, not forwarded. */
  discarding = false;
  abortedWith?: Aborted;
  done = false;
  /** onAttempt has had this attempt (once: a failure after the headers is not another attempt). */
  private observed = false;
  private drainBound?: () => void;

  constructor(
    readonly ex: Exchange,
    readonly endpoint: Endpoint,
    readonly issueCookie: boolean,
  ) {}

  send(): void {
    const ex = this.ex;
    const fw = ex.fw;
    const req = ex.req;
    const headers = upstreamRequestHeaders(req.rawHeaders, {
      clientIp: ex.clientIp,
      proto: fw.opts.proto,
      host: ex.h.host ?? '',
      requestId: ex.requestId,
      untrusted: !ex.trusted,
      pin: ex.forwardPin,
      via: ex.h.via === undefined ? fw.opts.tier : `${ex.h.via}, ${fw.opts.tier}`,
    });
    fw.track(this);
    this.sentAt = performance.now();
    // `servername` is accepted by undici's Request but missing from its DispatchOptions type. Only TLS
    // upstreams use it; given, undici skips deriving it from the Host header with an IP-address test.
    const options: Dispatcher.DispatchOptions & { servername: string } = {
      path: req.url ?? '/',
      method: ex.method as Dispatcher.HttpMethod,
      headers,
      body: ex.bodyless ? null : ex.body(),
      // Both deadlines are the forwarder's sweep's (see Forwarder.sweep); 0 arms no undici timer.
      headersTimeout: 0,
      bodyTimeout: 0,
      idempotent: ex.idempotent,
      blocking: false,
      servername: this.endpoint.host,
    };
    fw.opts.pools.get(this.endpoint.address).dispatch(options, this);
  }

  abort(reason: Aborted): void {
    if (this.done || this.abortedWith) return;
    this.abortedWith = reason;
    this.abortUpstream?.(reason);
  }

  /** In-flight rescue: only before any response byte and only where a retry is safe. */
  rescue(): boolean {
    const ex = this.ex;
    if (this.done || this.responded || ex.pinned || !ex.idempotent) return false;
    if (!ex.bodyless && ex.req.readableDidRead) return false;
    this.abort(new Aborted('rescue'));
    return true;
  }

  /**
   * Whether this attempt is past a deadline at `now` (the sweep calls it): the route's `timeout` while
   * waiting for response headers (see waitStart), then `body-idle` between chunks of the response
   * body. Both count only once undici has the request on a connection, as its own timers did: time
   * queued for a pooled connection is the pool's, and connecting has its own timeout.
   */
  checkDeadline(now: number): boolean {
    if (this.done || this.abortedWith || this.overdue || !this.abortUpstream) return false;
    const ex = this.ex;
    if (!this.responded) {
      this.waitingSince = this.waitStart(now);
      const limit = ex.route!.settings.timeoutMs;
      if (limit > 0 && this.waitingSince > 0 && now - this.waitingSince >= limit)
        this.overdue = new undiciErrors.HeadersTimeoutError();
    } else {
      const limit = ex.fw.opts.bodyIdleMs;
      // Silence while paused is the client's (watchStall judges that), so it restarts the count.
      if (this.chunks !== this.chunksSeen || this.paused) {
        this.chunksSeen = this.chunks;
        this.lastDataAt = now;
      } else if (limit > 0 && now - this.lastDataAt >= limit)
        this.overdue = new undiciErrors.BodyTimeoutError();
    }
    return this.overdue !== undefined;
  }

  /**
   * When the current wait for response headers began, as the sweep at `now` sees it (0: not waiting).
   * Without a body, when undici took the request (onConnect). With one, when the body was all taken:
   * while the client is still sending, the pace is the client's, which `body-idle` judges. Unless the
   * upstream has stopped taking the body (undici holds it back and nothing arrived since the last
   * sweep): that is waiting for the upstream too, and gets its 504 as it did under undici's timer.
   */
  private waitStart(now: number): number {
    const ex = this.ex;
    if (ex.bodyless) return this.waitingSince;
    if (ex.requestBodyTaken()) {
      if (this.sawBodyTaken) return this.waitingSince;
      this.sawBodyTaken = true;
      return now;
    }
    const read = ex.req.socket?.bytesRead ?? 0;
    const stuck = read === this.bytesReadSeen && ex.uploadHeldBack();
    this.bytesReadSeen = read;
    return stuck ? this.waitingSince || now : 0;
  }

  /** Fails the attempt with the error checkDeadline found, through undici (which closes the socket). */
  timeOut(): void {
    if (this.done || !this.overdue) return;
    this.abortUpstream?.(this.overdue);
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abortUpstream = abort;
    if (this.ex.bodyless) this.waitingSince = performance.now();
    if (this.abortedWith) abort(this.abortedWith);
  }

  onHeaders(status: number, rawHeaders: Buffer[], resume: () => void): boolean {
    if (status < 200) return true; // 1xx informational: 100 was answered by us; others are not forwarded
    this.resumeUpstream = resume;
    const ex = this.ex;
    this.responded = true;
    this.lastDataAt = performance.now();
    ex.upstreamMs = this.lastDataAt - this.sentAt;
    this.report(status, undefined, ex.upstreamMs);
    if ((status === 502 || status === 503) && ex.mayRetry(this, 'status')) {
      this.discarding = true;
      return true;
    }
    const res = ex.res;
    if (res.headersSent || ex.clientGone) return true;
    const opts = ex.fw.opts;
    // A flat [name, value, ...] list: repeated names (set-cookie) are simply repeated.
    const out = downstreamRawHeaders(rawHeaders, !opts.instanceHeader, ex.requestId);
    if (opts.instanceHeader) out.push('x-wharf-instance', this.endpoint.instance);
    const hsts = ex.project?.settings.hstsMaxAge ?? 0;
    if (hsts > 0 && opts.proto === 'https') out.push('strict-transport-security', `max-age=${hsts}`);
    if (this.issueCookie) {
      // Secure when the client's side of the chain is https, even if this hop is plain HTTP.
      const secure = opts.proto === 'https' || ex.h.httpsBefore === true;
      out.push('set-cookie', affinityCookieHeader(ex.fw.cookie, this.endpoint.token, secure));
    }
    res.writeHead(status, out);
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.chunks++;
    if (this.discarding) return true;
    const ex = this.ex;
    ex.bytesOut += chunk.length;
    if (ex.res.write(chunk)) return true;
    ex.watchStall('download');
    this.paused = true;
    this.drainBound ??= () => {
      this.paused = false;
      this.resumeUpstream?.();
    };
    ex.res.once('drain', this.drainBound);
    return false;
  }

  onComplete(rawTrailers: Buffer[] | string[] | null): void {
    this.settle();
    const ex = this.ex;
    if (this.discarding) {
      if (ex.redispatch(this)) return;
      // Every other instance became unavailable meanwhile; the drained 5xx cannot be replayed.
      return this.fail('upstream-5xx', 502);
    }
    if (rawTrailers && rawTrailers.length > 0) ex.res.addTrailers(pairs(rawTrailers));
    ex.res.end();
    ex.finish(ex.res.statusCode);
  }

  onError(err: Error & { code?: string }): void {
    this.settle();
    const ex = this.ex;
    const aborted = this.abortedWith ?? (err instanceof Aborted ? err : undefined);
    // Not evidence against the upstream, but time spent there: observe/ counts it on this instance.
    if (aborted?.why === 'rescue') this.observe('rescued');
    else if (aborted || ex.clientGone) this.observe('cancelled');
    if (aborted?.why === 'client-gone' || ex.clientGone) return; // finish() ran in onClientClose
    if (ex.overLimit && !this.responded) {
      return ex.replyBody(413, 'payload-too-large', {
        reason: `request body over ${ex.fw.opts.maxBodyBytes} bytes`,
        project: ex.projectName,
        port: ex.portName,
      });
    }
    const kind: AttemptError = aborted?.why === 'rescue' ? 'response-timeout' : classifyError(err);
    if (!aborted) this.report(undefined, kind);
    ex.lastError = aborted ? 'rescued' : kind;
    if (this.discarding) {
      if (ex.redispatch(this)) return;
      return this.fail(kind, statusForError(kind));
    }
    if (!this.responded) {
      if (ex.mayRetry(this, kind) && ex.redispatch(this)) return;
      return this.fail(kind, statusForError(kind));
    }
    // Mid-body failure: the status line is gone; cut the response so the client sees it incomplete.
    ex.res.destroy(err);
    ex.finish(ex.res.statusCode, kind);
  }

  private fail(kind: string, status: number): void {
    const ex = this.ex;
    const showInstance = ex.fw.opts.instanceHeader || ex.pinned;
    ex.replyBody(status, kind, {
      reason: describeFailure(kind, ex.attempts),
      project: ex.projectName,
      port: ex.portName,
      instance: showInstance ? this.endpoint.instance : undefined,
    });
  }

  private settle(): void {
    if (this.done) return;
    this.done = true;
    this.ex.fw.untrack(this);
  }

  private observe(outcome: AttemptResult, durationMs = performance.now() - this.sentAt): void {
    if (this.observed) return;
    this.observed = true;
    const e = this.endpoint;
    this.ex.fw.opts.onAttempt?.({
      project: e.project,
      port: e.port,
      instance: e.instance,
      outcome,
      durationMs,
      retry: this.ex.attempts > 1,
    });
  }

  private report(status?: number, error?: AttemptError, durationMs = performance.now() - this.sentAt): void {
    this.observe(status ?? error ?? 'reset', durationMs);
    this.ex.fw.opts.health.report({
      endpoint: this.endpoint.id,
      status,
      error,
      durationMs,
    });
  }
}

/** Raw `[name, value, ...]` (trailers) as the `[[name, value], ...]` addTrailers accepts. */
function pairs(raw: readonly (Buffer | string)[]): [string, string][] {
  const out: [string, string][] = [];
  const str = (x: Buffer | string): string => (typeof x === 'string' ? x : x.toString('latin1'));
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([str(raw[i]), str(raw[i + 1])]);
  return out;
}

function describeFailure(kind: string, attempts: number): string {
  const tries = attempts > 1 ? ` (after ${attempts} attempts)` : '';
  switch (kind) {
    case 'connect-refused':
      return `connection refused by the upstream${tries}`;
    case 'connect-timeout':
      return `timed out connecting to the upstream${tries}`;
    case 'connect-error':
      return `could not connect to the upstream${tries}`;
    case 'response-timeout':
      return `the upstream did not answer in time${tries}`;
    case 'invalid-response':
      return `the upstream sent an invalid HTTP response${tries}`;
    case 'upstream-5xx':
      return `the upstream answered with an error${tries}`;
    default:
      return `the upstream connection failed${tries}`;
  }
}
