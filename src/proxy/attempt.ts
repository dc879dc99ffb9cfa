// One upstream attempt of an exchange (the pipeline's forward phase): it is also its undici dispatch
// handler (one object, no per-callback closures), for plain requests and Upgrades alike.
//
// It implements undici's original callbacks (onConnect, onHeaders, onData, onComplete, onError,
// onUpgrade), which undici 7 still calls directly. They hand over the response headers as raw
// buffers, which become the client's headers in one pass (downstreamRawHeaders). The newer
// onResponseStart API goes through a wrapper that first parses them into an object, which would then
// be copied, filtered and iterated by node again: about 5% of the instructions of a proxied request
// (bench/README.md).

import type { Duplex, Readable } from 'node:stream';
import { type Dispatcher, errors as undiciErrors } from 'undici';
import type { AttemptResult } from '../model/attempt.ts';
import type { AttemptError } from '../model/outcome.ts';
import type { Endpoint } from '../model/routes.ts';
import {
  blameOf,
  classifyError,
  describeFailure,
  InvalidStatusError,
  isUnsolicitedContinue,
  statusForError,
} from './errors.ts';
import type { Exchange } from './exchange.ts';
import { REFUSED_STREAM } from './h2-upstream.ts';
import type { Upstream, Waiter } from './upstreams.ts';

/** Why an attempt was aborted on purpose: neither is the upstream's fault. */
export type AbortReason = 'client-gone' | 'rescue';

/** The client's own deadline (grpc-timeout) passed before the answer: answered 504 / DEADLINE_EXCEEDED. */
class ClientDeadline extends Error {
  readonly code = 'WHARF_CLIENT_DEADLINE';
  constructor() {
    super("the client's deadline (grpc-timeout) passed before the instance answered");
  }
}

class Aborted extends Error {
  constructor(readonly why: AbortReason) {
    super(why);
  }
}

/** Why an attempt never got one of its upstream's connections: neither is the upstream's fault. */
class NotAdmitted extends Error {
  constructor(readonly why: 'queue-timeout' | 'evicted') {
    super(why);
  }
}
const QUEUE_TIMEOUT = new NotAdmitted('queue-timeout');
const EVICTED = new NotAdmitted('evicted');

export class Attempt implements Dispatcher.DispatchHandler, Waiter {
  private abortUpstream?: (err?: Error) => void;
  private resumeUpstream?: () => void;
  /** When undici was given the request (0: not yet). */
  sentAt = 0;
  /** When the attempt started waiting for a connection (0: not waiting). */
  queuedAt = 0;
  prevWaiter?: Waiter;
  nextWaiter?: Waiter;
  private upstream?: Upstream;
  /** Whether this attempt holds one of its upstream's connection slots (Upstream.acquire). */
  private holdsSlot = false;
  /** Whether this attempt's streaming upload is counted against its client (Upstream.countUpload). */
  private countsUpload = false;
  responded = false;
  /** The upstream's status, once its head arrived: reported when the attempt ends. */
  private status = 0;
  /** When the current wait for response headers began (0: not waiting); see waitStart. */
  private waitingSince = 0;
  /** Whether a sweep has seen the request body all taken. */
  private sawBodyTaken = false;
  /** The client connection's bytesRead at the last sweep: whether the upload moved since. */
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
  abortedWith?: AbortReason;
  done = false;
  /** onAttempt has had this attempt (once: a failure after the headers is not another attempt). */
  private observed = false;
  private drainBound?: () => void;

  constructor(
    readonly ex: Exchange,
    readonly endpoint: Endpoint,
    readonly issueCookie: boolean,
  ) {}

  /** Starts the attempt: on a free connection of the upstream, or queued for the next one. */
  send(): void {
    const ex = this.ex;
    const fw = ex.fw;
    fw.track(this);
    // h2c: streams are multiplexed over a few sessions per address (H2Origin), nothing to queue for.
    if (ex.upstreamProtocol === 'h2c') return this.dispatch();
    const up = fw.opts.pools.get(this.endpoint.address);
    this.upstream = up;
    if (ex.streaming && ex.capsUploads()) {
      up.countUpload(ex.clientIp, 1);
      this.countsUpload = true;
    }
    if (up.acquire(this)) this.dispatch();
    else this.queuedAt = performance.now();
  }

  /** A connection came free for this queued attempt (Waiter). */
  admitted(): void {
    this.queuedAt = 0;
    this.dispatch();
  }

  /** The upstream left the table while this attempt waited for it (Waiter). */
  evicted(): void {
    this.queuedAt = 0;
    this.onError(EVICTED);
  }

  /** The streaming upload ended: it no longer counts against its client. */
  uploadEnded(): void {
    if (!this.countsUpload) return;
    this.countsUpload = false;
    this.upstream!.countUpload(this.ex.clientIp, -1);
  }

  private dispatch(): void {
    const ex = this.ex;
    this.holdsSlot = this.upstream !== undefined;
    const headers = ex.upstreamHeaders();
    this.sentAt = performance.now();
    // `servername` is accepted by undici's Request but missing from its DispatchOptions type. Only TLS
    // upstreams use it; given, undici skips deriving it from the Host header with an IP-address test.
    const options: Dispatcher.DispatchOptions & { servername: string } = {
      path: ex.path,
      method: ex.method as Dispatcher.HttpMethod,
      headers,
      body: ex.body(),
      // Both deadlines are the forwarder's sweep's (see Forwarder.sweep); 0 arms no undici timer.
      headersTimeout: 0,
      bodyTimeout: 0,
      idempotent: ex.idempotent,
      blocking: false,
      servername: this.endpoint.host,
    };
    if (ex.upstreamProtocol === 'h2c') {
      ex.fw.opts.pools
        .h2(this.endpoint.address)
        .dispatch(
          { method: ex.method, path: ex.path, headers, body: options.body as Readable | Buffer | null },
          this,
        );
      return;
    }
    if (ex.upgrade !== undefined) options.upgrade = ex.upgrade;
    this.upstream!.pool.dispatch(options, this);
  }

  abort(why: AbortReason): void {
    if (this.done || this.abortedWith) return;
    this.abortedWith = why;
    if (this.queuedAt > 0) {
      // Never given to undici: leave the queue and fail here.
      this.upstream!.leave(this);
      this.queuedAt = 0;
      return this.onError(new Aborted(why));
    }
    this.abortUpstream?.(new Aborted(why));
  }

  /** In-flight rescue: only before any response byte and only where a retry is safe. */
  rescue(): boolean {
    const ex = this.ex;
    if (this.done || this.responded || ex.pinned || !ex.idempotent) return false;
    if (!ex.bodyReplayable()) return false;
    this.abort('rescue');
    return true;
  }

  /**
   * Whether this attempt is past a deadline at `now` (the sweep calls it): the route's `timeout` while
   * waiting for response headers (see waitStart), then `body-idle` between chunks of the response
   * body. Both count only once undici has the request on a connection, as its own timers did: time
   * queued for a pooled connection is the pool's, and connecting has its own timeout.
   */
  checkDeadline(now: number): boolean {
    if (this.done || this.abortedWith || this.overdue) return false;
    const ex = this.ex;
    if (this.queuedAt > 0) {
      const limit = ex.fw.opts.queueMs;
      if (limit > 0 && now - this.queuedAt >= limit) this.overdue = QUEUE_TIMEOUT;
      return this.overdue !== undefined;
    }
    if (!this.abortUpstream) return false;
    if (!this.responded) {
      this.waitingSince = this.waitStart(now);
      const limit = ex.responseTimeoutMs;
      if (limit > 0 && this.waitingSince > 0 && now - this.waitingSince >= limit)
        // A deadline the client set (grpc-timeout) shorter than the route's is the client's budget,
        // not evidence that the instance is slow.
        this.overdue =
          limit < ex.route!.settings.timeoutMs || ex.route!.settings.timeoutMs <= 0
            ? new ClientDeadline()
            : new undiciErrors.HeadersTimeoutError();
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
    if (!ex.streaming) return this.waitingSince;
    if (ex.requestBodyTaken()) {
      if (this.sawBodyTaken) return this.waitingSince;
      this.sawBodyTaken = true;
      return now;
    }
    const read = ex.clientBytesRead();
    const stuck = read === this.bytesReadSeen && ex.uploadHeldBack();
    this.bytesReadSeen = read;
    return stuck ? this.waitingSince || now : 0;
  }

  /**
   * Fails the attempt with the error checkDeadline found: through undici (which closes the socket),
   * or, still queued, by leaving the queue.
   */
  timeOut(): void {
    if (this.done || !this.overdue) return;
    if (this.queuedAt > 0) {
      this.upstream!.leave(this);
      this.queuedAt = 0;
      return this.onError(this.overdue);
    }
    this.abortUpstream?.(this.overdue);
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abortUpstream = abort;
    if (!this.ex.streaming) this.waitingSince = performance.now();
    if (this.abortedWith) abort(new Aborted(this.abortedWith));
  }

  onHeaders(status: number, rawHeaders: (Buffer | string)[], resume: () => void): boolean {
    if (status < 100 || status > 599) {
      // Not an HTTP status (RFC 9110 §15): the upstream broke the protocol. undici passes any three
      // digits on (below 200 as if informational); node would forward 600-999 as they came.
      this.abortUpstream!(new InvalidStatusError(status));
      return false;
    }
    if (status < 200) return true; // 1xx informational: 100 was answered by us; others are not forwarded
    this.resumeUpstream = resume;
    const ex = this.ex;
    this.responded = true;
    this.status = status;
    this.lastDataAt = performance.now();
    ex.upstreamMs = this.lastDataAt - this.sentAt;
    if ((status === 502 || status === 503) && ex.mayRetry(this, 'status')) {
      this.discarding = true;
      return true;
    }
    if (ex.down.headersSent || ex.clientGone) return true;
    ex.respond(this, status, rawHeaders);
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.chunks++;
    if (this.discarding || this.ex.trailersOnly) return true;
    const ex = this.ex;
    ex.bytesOut += chunk.length;
    if (ex.down.write(chunk)) return true;
    ex.watchStall('download');
    this.paused = true;
    this.drainBound ??= () => {
      this.paused = false;
      this.resumeUpstream?.();
    };
    ex.down.onDrain(this.drainBound);
    return false;
  }

  onComplete(rawTrailers: (Buffer | string)[] | null): void {
    this.settle();
    const ex = this.ex;
    // One outcome per attempt, once it is over: a response that breaks after its head counts as the
    // failure it is (onError), not as the status its head promised.
    ex.outcome(this, this.status, undefined, ex.upstreamMs ?? 0);
    if (this.discarding) {
      if (ex.redispatch(this)) return;
      // Every other instance became unavailable meanwhile; the drained 5xx cannot be replayed.
      return ex.fail(this, 'upstream-5xx', 502, describeFailure('upstream-5xx', ex.attempts));
    }
    if (!ex.trailersOnly) ex.down.end(rawTrailers && rawTrailers.length > 0 ? pairs(rawTrailers) : undefined);
    ex.finish(ex.down.statusCode);
  }

  onUpgrade(status: number, rawHeaders: (Buffer | string)[] | null, socket: Duplex): void {
    this.settle();
    const ex = this.ex;
    this.responded = true;
    ex.upstreamMs = performance.now() - this.sentAt;
    ex.outcome(this, status, undefined, ex.upstreamMs);
    ex.tunnel(this, rawHeaders ?? [], socket);
  }

  onError(err: Error & { code?: string }): void {
    this.settle();
    const ex = this.ex;
    const aborted = this.abortedWith ?? (err instanceof Aborted ? err.why : undefined);
    if (aborted === 'client-gone' || ex.clientGone) {
      // finish() ran in onClientClose. An answer the client left during was still an answer; an
      // attempt cut before one is not evidence against the upstream, but time spent there.
      if (this.responded) ex.outcome(this, this.status, undefined, ex.upstreamMs ?? 0);
      else this.observe(aborted === 'rescue' ? 'rescued' : 'cancelled');
      return;
    }
    if (aborted === 'rescue') this.observe('rescued');
    if (err instanceof NotAdmitted) {
      // No connection of the instance came free in time (or it left the table): nothing was sent,
      // so any method may go elsewhere; it says nothing about the instance's health.
      ex.lastError = err.why === 'queue-timeout' ? 'upstream-queue-timeout' : 'upstream-removed';
      if (ex.mayRetry(this, 'queued') && ex.redispatch(this)) return;
      return ex.reject({
        status: 503,
        error: ex.lastError,
        body: {
          reason:
            err.why === 'queue-timeout'
              ? `no connection to the instance came free within ${ex.fw.opts.queueMs} ms`
              : 'the instance left the routing table',
          project: ex.projectName,
          port: ex.portName,
        },
        headers: { 'retry-after': '1' },
      });
    }
    if (isUnsolicitedContinue(err) && !this.responded) {
      // A 100 Continue the request did not ask for is legal (RFC 9110 §15.2), but undici 7 cannot
      // read past it: it destroys the connection before any handler sees it, after the request was
      // sent (errors.ts). The final answer is lost and a retry would send the request again, so
      // the client gets a 502 naming the cause, and the instance's health is not touched.
      this.observe('invalid-response');
      return this.end(
        err,
        'upstream-100-continue',
        502,
        'the upstream sent 100 Continue unasked, which Wharf cannot read past',
      );
    }
    if (ex.overLimit && !this.responded) {
      return ex.reject({
        status: 413,
        error: 'payload-too-large',
        body: {
          reason: `request body over ${ex.fw.opts.maxBodyBytes} bytes`,
          project: ex.projectName,
          port: ex.portName,
        },
      });
    }
    if (err instanceof ClientDeadline) {
      this.observe('deadline-exceeded');
      return this.end(err, 'deadline-exceeded', 504, err.message);
    }
    if (err.code === REFUSED_STREAM) {
      this.observe('refused-stream');
      // The instance declined the stream before processing it (overloaded, or going away): safe to
      // retry anywhere, and no evidence that it is unhealthy.
      ex.lastError = 'refused-stream';
      if (ex.mayRetry(this, 'connect-refused') && ex.redispatch(this)) return;
      return this.end(
        err,
        'refused-stream',
        503,
        'the instance refused the stream (HTTP/2 REFUSED_STREAM or GOAWAY)',
      );
    }
    // Only evidence from the upstream counts against it: an error undici raised about the request
    // itself (a target or header it will not send), a client whose upload broke off, or our own
    // pool being closed reached no instance, and never touches its health.
    const blame = aborted ? 'upstream' : ex.requestFailed() ? 'request' : blameOf(err);
    if (blame !== 'upstream') {
      // An answer that had begun was still an answer; otherwise nothing reached the instance.
      if (this.responded) ex.outcome(this, this.status, undefined, ex.upstreamMs ?? 0);
      else this.observe(blame === 'request' ? 'request-error' : 'proxy-error');
    }
    if (blame === 'request') {
      if (this.responded) return this.end(err, 'bad-request', 400, '');
      return ex.reject({
        status: 400,
        error: 'bad-request',
        body: {
          reason: `the request cannot be forwarded: ${err.message}`,
          project: ex.projectName,
          port: ex.portName,
        },
      });
    }
    if (blame === 'local') return this.end(err, 'proxy-error', 502, 'the proxy could not send the request');
    const kind: AttemptError = aborted === 'rescue' ? 'response-timeout' : classifyError(err);
    if (!aborted) ex.outcome(this, undefined, kind, performance.now() - this.sentAt);
    ex.lastError = aborted ? 'rescued' : kind;
    if (!this.responded || this.discarding) {
      // Nothing of this answer reached the client: another instance may still answer.
      if ((this.discarding || ex.mayRetry(this, kind)) && ex.redispatch(this)) return;
    }
    this.end(err, kind, statusForError(kind), describeFailure(kind, ex.attempts));
  }

  /** The exchange ends with this failure: an answer of ours, or a cut if the response had begun. */
  private end(err: Error, kind: string, status: number, reason: string): void {
    const ex = this.ex;
    ex.lastError = kind;
    if (this.responded && !this.discarding) return ex.cut(err, kind);
    ex.fail(this, kind, status, reason);
  }

  /** The attempt as observe/ counts it: once, at its response headers or its end without them. */
  observe(outcome: AttemptResult, durationMs = performance.now() - this.sentAt): void {
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

  private settle(): void {
    if (this.done) return;
    this.done = true;
    this.ex.fw.untrack(this);
    this.uploadEnded();
    if (this.holdsSlot) {
      this.holdsSlot = false;
      // May admit the next queued attempt at once (it dispatches from here).
      this.upstream!.release();
    }
  }
}

/** Raw `[name, value, ...]` (trailers) as the `[[name, value], ...]` addTrailers accepts. */
function pairs(raw: readonly (Buffer | string)[]): [string, string][] {
  const out: [string, string][] = [];
  const str = (x: Buffer | string): string => (typeof x === 'string' ? x : x.toString('latin1'));
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([str(raw[i]), str(raw[i + 1])]);
  return out;
}
