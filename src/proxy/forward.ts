// The data plane's entry points and the state exchanges share: the in-flight attempts per endpoint
// (the balancer's load signal, the rescue registry and the deadline sweep). Each request or Upgrade
// becomes an Exchange (exchange.ts), which runs the pipeline's phases; this file only starts them.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { affinityCookieName } from '../balancing/index.ts';
import type { AccessRecord } from '../model/access.ts';
import type { AttemptRecord } from '../model/attempt.ts';
import type { HealthView } from '../model/health.ts';
import type { AttemptOutcome } from '../model/outcome.ts';
import type { EndpointId, RouteTable } from '../model/routes.ts';
import type { Tier } from '../routing/build.ts';
import { clientAddress } from '../util/client-address.ts';
import type { Clock } from '../util/clock.ts';
import type { Log } from '../util/log.ts';
import { newRequestId } from '../util/request-id.ts';
import type { Attempt } from './attempt.ts';
import { type Downstream, type H2Downstream, Http1Downstream, UpgradeDownstream } from './downstream.ts';
import { Exchange } from './exchange.ts';
import { rawHeader } from './headers.ts';
import type { ClientLimits } from './limits.ts';
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
  /**
   * Request bodies are read up to this many bytes before a connection is taken (`limits.
   * body-buffer-bytes`); 0 streams every body from its first byte.
   */
  readonly bodyBufferBytes: number;
  /** Longest wait for one of an upstream's connections (`timeouts.queue`); 0: no limit. */
  readonly queueMs: number;
  /**
   * Streaming uploads (bodies over bodyBufferBytes) one client address may send to one instance at
   * once (`upstream.uploads-per-client`); 0: no cap. Trusted proxies are not capped.
   */
  readonly uploadsPerClient: number;
  /** Whether a client address is one of `trusted-proxies` (on either tier): many clients behind it. */
  readonly trustedProxy: (clientIp: string) => boolean;
  /** More header fields than this get 431 (node keeps one more, so the excess is visible). */
  readonly maxHeaders: number;
  /** Per-client connection and rate limits (the edge's `limits.client-*`). */
  readonly limits?: ClientLimits;
  readonly table: () => RouteTable;
  readonly health: HealthSink;
  readonly pools: UpstreamPools;
  readonly budget: RetryBudget;
  readonly clock: Clock;
  /** Whether x-forwarded-* and x-wharf-* from this client may be believed (edge: trusted CIDRs only). */
  readonly trusted: (clientIp: string) => boolean;
  /** The client address of a connection (the peer's, or the one a PROXY protocol header gave). */
  readonly clientAddress?: (socket: IncomingMessage['socket']) => string;
  readonly onAccess?: (rec: AccessRecord) => void;
  /** Where a failure of the pipeline itself (a bug) is reported. */
  readonly log?: Log;
  /**
   * Once per upstream attempt, when its response headers arrive or it ends without them (metrics,
   * dashboard): the instance that took it, its outcome, how long it took, whether it was a retry.
   */
  readonly onAttempt?: (a: AttemptRecord) => void;
}

export class Forwarder {
  /** Outstanding attempts per endpoint: the balancer's load signal and the rescue registry. */
  private readonly inflightByEndpoint = new Map<EndpointId, Set<Attempt>>();
  readonly inflight = (id: EndpointId): number => this.inflightByEndpoint.get(id)?.size ?? 0;
  readonly cookie: string;
  readonly clientIp: (socket: IncomingMessage['socket']) => string;
  private sweepTimer?: NodeJS.Timeout;

  constructor(readonly opts: ForwarderOptions) {
    this.cookie = affinityCookieName(opts.tier);
    this.clientIp = opts.clientAddress ?? clientAddress;
    this.sweepTimer = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweepTimer.unref();
  }

  /** node:http 'request' (and 'checkContinue'). */
  handle(req: IncomingMessage, res: ServerResponse, expectContinue = false): void {
    // HTTP/1.1 pipelining: node parses every request in what it reads, even behind an answer that
    // closes the connection, and answers them in order. A request runs only when its turn comes
    // (node hands its response the socket) and only while the connection is open, so nothing goes
    // upstream behind a closing answer (`Connection: close`: the turn never comes, or comes on a
    // socket already ending), and a client cannot hold many upstream connections with answers it
    // will only read one by one.
    const socket = res.socket;
    if (socket?.writableEnded) return;
    const down = new Http1Downstream(req, res);
    const run = () => this.run(down, () => new Exchange(this, down, expectContinue).run());
    if (socket === null) res.once('socket', run);
    else run();
  }

  /** node:http 'upgrade': the same pipeline, answered on the raw socket. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const protocol = rawHeader(req.rawHeaders, 'upgrade') ?? 'websocket';
    const down = new UpgradeDownstream(req, socket, head);
    this.run(down, () => new Exchange(this, down, false, protocol).run());
  }

  /** An HTTP/2 stream (h2-server.ts): the same pipeline again. */
  handleStream(down: H2Downstream): void {
    this.run(down, () => new Exchange(this, down, false).run());
  }

  /**
   * A bug of ours must cost one exchange, never the process (every other client's requests): the
   * client's side is cut and the error logged.
   */
  private run(down: Downstream, exchange: () => void): void {
    try {
      exchange();
    } catch (err) {
      this.opts.log?.('error', 'request pipeline failed; the exchange was cut', {
        error: (err as Error).stack ?? String(err),
      });
      down.destroy();
    }
  }

  /**
   * An answer the listener gave by itself, before any exchange: a request node could not parse
   * (400, 431, 408), CONNECT (405), an Expect other than 100-continue (417). Logged like any other
   * answer, so no request leaves without a trace.
   */
  logListenerAnswer(
    socket: IncomingMessage['socket'],
    status: number,
    error: string,
    req?: IncomingMessage,
  ): void {
    const onAccess = this.opts.onAccess;
    if (!onAccess) return;
    onAccess({
      time: this.opts.clock.now(),
      requestId: newRequestId(),
      client: this.clientIp(socket),
      host: req ? (rawHeader(req.rawHeaders, 'host') ?? '') : '',
      method: req?.method ?? '',
      path: req?.url ?? '',
      status,
      bytesIn: 0,
      bytesOut: 0,
      durationMs: 0,
      attempts: 0,
      error,
      protocol: 'http/1.1',
    });
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
   *   An attempt still queued for a connection past `queueMs` leaves the queue with a 503 (or goes
   *   to another instance): when every connection of an instance is held, requests behind them get
   *   an answer instead of waiting without end.
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
        else if (!suspected && !a.responded && a.sentAt > 0 && now - a.sentAt > SUSPECT_AFTER_MS) {
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
}
