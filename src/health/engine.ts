// The prober side of the health checker: one probe loop per target, their scheduler, and the
// node index. It runs in a worker thread in production (thread.ts, worker.ts) and in the caller's
// thread under tests and simulations (injected clock, timers and prober): the same code either way.
//
// It knows targets by slot, not endpoints; HealthService (main thread) owns the endpoints and their
// state machines. Results go out through a ProbeSink: a failure, or a success that may change a
// state, at once; a success that changes nothing only as a latency (see `quiet`).

import type { HealthCheckSettings } from '../model/settings.ts';
import { type LoopDeps, NEVER, ProbeLoop, type ProbeReport } from './loop.ts';
import type { Prober } from './prober.ts';
import { ProbeScheduler } from './scheduler.ts';
import { SERVING, type Signals, WANT_OK } from './signals.ts';
import type { Clock, Timers } from './time.ts';

/** One probe target as HealthService registers it. */
export interface TargetSpec {
  /** Index into the Signals arrays; reused after the target is removed. */
  readonly slot: number;
  /** Unique for the life of the service: tells a result for a removed target from one for its successor. */
  readonly id: number;
  readonly address: string;
  /** Host header of HTTP probes. */
  readonly host: string;
  readonly settings: HealthCheckSettings;
  /** EndpointSlice `nodeName` of the instance, when known. */
  readonly node?: string;
}

export interface ProbeSink {
  /** A result that may change a member's state: a failure, a first success after one, or any while unsettled. */
  result(slot: number, id: number, r: ProbeReport): void;
  /** A success that changes no state: only its latency (metrics) is of interest. */
  quiet(slot: number, id: number, latencyMs: number): void;
  /** Probes could not be made from this host (no descriptors, no local ports): worth a log line. */
  localError?(reason: string): void;
}

export interface EngineOptions {
  /** Loop milliseconds (since the service started). */
  readonly clock: Clock;
  readonly timers: Timers;
  readonly prober: Prober;
  readonly random: () => number;
  readonly maxInFlight: number;
  /** Probe period of idle in-service targets (see LoopDeps.idleMs); 0: none. */
  readonly idleMs: number;
  readonly signals: Signals;
  readonly sink: ProbeSink;
}

/** First probe of a new target: at once, or at a random point within one interval (a big batch). */
export const START_NOW = 1;
export const START_SPREAD = 2;
/**
 * A known target moving to this prober (from another thread): at a random point within the period
 * it has now, its interval while unsettled or busy, else its idle interval.
 */
export const START_RESUME = 3;

/**
 * A node's pods are made urgent at most once in this long: the first connect timeout already
 * kicked every one of them, and their own failures then keep them on fast re-checks.
 */
export const NODE_HOLD_MS = 1000;

class EngineLoop extends ProbeLoop {
  /** The last applied result was a failure (at `failedAt`): the target is failing until a success. */
  lastFailed = false;
  failedAt = NEVER;

  constructor(
    private readonly engine: ProbeEngine,
    readonly slot: number,
    readonly id: number,
    readonly address: string,
    readonly host: string,
    readonly node: string | undefined,
    settings: HealthCheckSettings,
    deps: LoopDeps,
  ) {
    super(settings, deps);
  }

  override onProbe(report: ProbeReport): void {
    this.engine.onResult(this, report);
  }

  override serving(): boolean {
    return (this.engine.signals.flags[this.slot] & SERVING) !== 0;
  }

  /**
   * In service, and the last probe failed with no real answer since. Known here, not from the main
   * thread: a member's failure count moves only with probe results and answers, both seen here.
   */
  override falling(): boolean {
    return this.lastFailed && this.serving() && this.lastAnswer() < this.failedAt;
  }

  override lastAnswer(): number {
    return this.engine.signals.answered[this.slot];
  }

  override lastTraffic(): number {
    return this.engine.signals.traffic[this.slot];
  }
}

export class ProbeEngine {
  private readonly loops: (EngineLoop | undefined)[] = [];
  private readonly byNode = new Map<string, Set<EngineLoop>>();
  private readonly nodeKicked = new Map<string, number>();
  private readonly scheduler: ProbeScheduler;
  private readonly deps: LoopDeps;
  signals: Signals;
  private closed = false;

  constructor(private readonly opts: EngineOptions) {
    this.signals = opts.signals;
    this.scheduler = new ProbeScheduler(opts.clock, opts.timers, opts.maxInFlight);
    this.deps = {
      clock: opts.clock,
      timers: opts.timers,
      prober: opts.prober,
      random: opts.random,
      scheduler: this.scheduler,
      idleMs: opts.idleMs,
      onLocalError: (reason) => opts.sink.localError?.(reason),
    };
  }

  get maxInFlight(): number {
    return this.scheduler.maxInFlight;
  }

  stats(): { readonly now: number; readonly peak: number; readonly max: number } {
    const s = this.scheduler;
    return { now: s.inFlight, peak: s.peakInFlight, max: s.maxInFlight };
  }

  /** Targets probed (tests, the admin API). */
  get size(): number {
    let n = 0;
    for (const l of this.loops) if (l) n++;
    return n;
  }

  add(spec: TargetSpec, start: number): void {
    if (this.closed) return;
    this.remove(spec.slot);
    const l = new EngineLoop(
      this,
      spec.slot,
      spec.id,
      spec.address,
      spec.host,
      spec.node,
      spec.settings,
      this.deps,
    );
    this.loops[spec.slot] = l;
    if (spec.node) {
      const set = this.byNode.get(spec.node);
      if (set) set.add(l);
      else this.byNode.set(spec.node, new Set([l]));
    }
    if (start === START_SPREAD) l.startSpread();
    else if (start === START_NOW) l.start();
    else if (start === START_RESUME) {
      const { intervalMs } = spec.settings;
      const recent = this.opts.clock.now() - this.signals.traffic[spec.slot] < intervalMs;
      const unsettled = (this.signals.flags[spec.slot] & WANT_OK) !== 0;
      l.startSpread(unsettled || recent ? intervalMs : Math.max(intervalMs, this.opts.idleMs));
    }
  }

  remove(slot: number): void {
    const l = this.loops[slot];
    if (!l) return;
    this.loops[slot] = undefined;
    l.stop();
    if (l.node) {
      const set = this.byNode.get(l.node);
      set?.delete(l);
      if (set?.size === 0) {
        this.byNode.delete(l.node);
        this.nodeKicked.delete(l.node);
      }
    }
  }

  /** A member joined the target: probe now unless a probe is already on its way. */
  kick(slot: number): void {
    this.loops[slot]?.kick();
  }

  /** Live traffic to the target looks stuck, or failed: probe now (rate-limited, see ProbeLoop.suspect). */
  suspect(slot: number): void {
    this.loops[slot]?.suspect();
  }

  /**
   * Live traffic got a bad answer (a 5xx): probe now, unless a probe started within the interval. A
   * service that fails some of its requests is then probed at most once per interval, not per error.
   */
  hint(slot: number): void {
    const l = this.loops[slot];
    l?.suspect(l.settings.intervalMs);
  }

  /**
   * Something on `node` could not even be connected to: every other target in service there is
   * probed at once, so a dead node's pods are all found within a few probe timeouts.
   */
  suspectNode(node: string, except?: EngineLoop): void {
    const set = this.byNode.get(node);
    if (!set) return;
    const now = this.opts.clock.now();
    const last = this.nodeKicked.get(node);
    if (last !== undefined && now - last < NODE_HOLD_MS) return;
    this.nodeKicked.set(node, now);
    for (const l of set) if (l !== except && l.serving()) l.suspect();
  }

  setSignals(signals: Signals): void {
    this.signals = signals;
  }

  close(): void {
    this.closed = true;
    for (const l of this.loops) l?.stop();
    this.loops.length = 0;
    this.byNode.clear();
    this.scheduler.close();
  }

  /** @internal A loop applied a result. */
  onResult(l: EngineLoop, r: ProbeReport): void {
    const wasFailing = l.lastFailed;
    l.lastFailed = !r.ok;
    if (!r.ok) {
      l.failedAt = this.opts.clock.now();
      this.opts.sink.result(l.slot, l.id, r);
      if (r.connectTimeout && l.node) this.suspectNode(l.node, l);
      return;
    }
    if (wasFailing || (this.signals.flags[l.slot] & WANT_OK) !== 0) this.opts.sink.result(l.slot, l.id, r);
    else this.opts.sink.quiet(l.slot, l.id, r.latencyMs);
  }
}
