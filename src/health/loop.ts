// The active-check schedule of one probe target. Several endpoints may share a target (two ports of
// one instance checked on the same health port), so a loop serves a set of members and reports
// each result once; the members' own state machines decide what it means for them.
//
// Timing, with the defaults (interval 1 s, timeout 1 s, fall 2):
//  - first probe at once; then every interval x [0.9, 1.1] (jitter, so replicas do not probe in
//    step), measured start to start;
//  - fast re-check (HAProxy's fastinter): after a failure while still in service, the next probe
//    starts 250 ms after the failed one began (at once, after a timeout);
//  - early second probe: when a probe has had no answer for 250 ms (or twice the target's usual
//    latency, at most half the timeout) while its target is in service and nothing else answered
//    meanwhile, another starts in parallel on a new connection (up to `fall` at a time). A healthy instance
//    answers a health check in milliseconds; a hung one (SIGSTOP: the kernel still accepts) answers
//    never, and waiting for one timeout before starting the next would cost `fall` full timeouts.
//    With it a hung instance is out about 1.25 s after the first unanswered probe began, instead
//    of 2 s.
// Results apply in probe start order: a newer answer makes every older outstanding probe stale (it
// is aborted), and an older answer arriving after a newer one is ignored.

import type { HealthCheckSettings } from '../model/settings.ts';
import type { Prober, ProbeTarget } from './prober.ts';
import type { Clock, TimerHandle, Timers } from './time.ts';

export const JITTER = 0.1;
export const FAST_RECHECK_MS = 250;
export const EARLY_PROBE_MS = 250;

export interface ProbeReport {
  readonly ok: boolean;
  readonly reason: string;
  readonly latencyMs: number;
  readonly status?: number;
}

export interface LoopOwner {
  onProbe(report: ProbeReport): void;
  /** Some member is in service but failing probes: re-check fast. */
  falling(): boolean;
  /** Some member is in service (healthy or pending): a slow probe is worth an early second one. */
  serving(): boolean;
}

export interface LoopDeps {
  readonly clock: Clock;
  readonly timers: Timers;
  readonly prober: Prober;
  readonly random: () => number;
}

interface Outstanding {
  readonly seq: number;
  readonly start: number;
  readonly ac: AbortController;
  deadline: TimerHandle;
  early: TimerHandle | undefined;
  done: boolean;
}

export class ProbeLoop {
  private readonly inflight: Outstanding[] = [];
  private seq = 0;
  private applied = 0;
  private lastStart = 0;
  /** When the last good answer came, and how long that probe took. */
  private answeredAt = Number.NEGATIVE_INFINITY;
  private okLatency = 0;
  private next: TimerHandle | undefined;
  private stopped = false;

  constructor(
    readonly target: ProbeTarget,
    readonly settings: HealthCheckSettings,
    private readonly deps: LoopDeps,
    private readonly owner: LoopOwner,
  ) {}

  /** Probe now unless one is already on its way (a new member joining an existing loop). */
  kick(): void {
    if (this.stopped || this.inflight.length > 0) return;
    if (this.next !== undefined) this.deps.timers.clearTimeout(this.next);
    this.next = undefined;
    this.launch();
  }

  /**
   * Probe now, out of cycle, because live traffic looks stuck. Ignored while a probe is on its way
   * (it already gets early second probes) or when one started less than EARLY_PROBE_MS ago, so a
   * flood of calls costs at most a few probes a second.
   */
  suspect(): void {
    if (this.stopped || this.inflight.length > 0) return;
    if (this.deps.clock.now() - this.lastStart < EARLY_PROBE_MS) return;
    this.kick();
  }

  stop(): void {
    this.stopped = true;
    if (this.next !== undefined) this.deps.timers.clearTimeout(this.next);
    this.next = undefined;
    for (const p of this.inflight.splice(0)) this.retire(p);
  }

  /** Outstanding probes (tests and the admin API). */
  get outstanding(): number {
    return this.inflight.length;
  }

  private launch(): void {
    const { clock, timers, prober } = this.deps;
    const start = clock.now();
    const p: Outstanding = {
      seq: ++this.seq,
      start,
      ac: new AbortController(),
      deadline: undefined,
      early: undefined,
      done: false,
    };
    this.lastStart = start;
    this.inflight.push(p);
    const timeout = this.settings.timeoutMs;
    p.deadline = timers.setTimeout(
      () => this.finish(p, { ok: false, reason: `timeout after ${timeout}ms` }),
      timeout,
    );
    // A target that is slow even when fine (a health check that pings a database) gets a later
    // early probe: twice its usual latency, at most half the timeout.
    const base = Math.min(EARLY_PROBE_MS, timeout / 4);
    const earlyAfter = Math.min(Math.max(base, 2 * this.okLatency), timeout / 2);
    if (this.settings.fall > 1) p.early = timers.setTimeout(() => this.early(p), earlyAfter);
    let pending: Promise<{ ok: boolean; reason: string; status?: number }>;
    try {
      pending = prober.probe(this.target, p.ac.signal);
    } catch (err) {
      // A prober that throws instead of rejecting must not break reconcile() or the schedule.
      pending = Promise.reject(err);
    }
    pending.then(
      (r) => this.finish(p, r),
      (err: Error) => this.finish(p, { ok: false, reason: `error: ${err.message}` }),
    );
  }

  private early(p: Outstanding): void {
    p.early = undefined;
    // Only the newest probe spawns, and only if no good answer came since it started: that answer
    // proves the target alive.
    if (this.stopped || p.done || p.seq !== this.seq || this.answeredAt > p.start) return;
    if (this.inflight.length >= this.settings.fall || !this.owner.serving()) return;
    this.launch();
  }

  private retire(p: Outstanding): void {
    p.done = true;
    this.deps.timers.clearTimeout(p.deadline);
    if (p.early !== undefined) this.deps.timers.clearTimeout(p.early);
    p.ac.abort();
  }

  private finish(p: Outstanding, r: { ok: boolean; reason: string; status?: number }): void {
    if (p.done || this.stopped) return;
    this.retire(p);
    const i = this.inflight.indexOf(p);
    if (i >= 0) this.inflight.splice(i, 1);
    if (p.seq < this.applied) {
      // Cannot happen today (applying a result retires every older probe); kept so a stale answer
      // can never leave the loop without a next probe.
      if (this.inflight.length === 0 && this.next === undefined) this.schedule(this.deps.clock.now());
      return;
    }
    this.applied = p.seq;
    // Anything started before this probe is stale now.
    for (let j = this.inflight.length - 1; j >= 0; j--) {
      if (this.inflight[j].seq < p.seq) this.retire(this.inflight.splice(j, 1)[0]);
    }
    const now = this.deps.clock.now();
    if (r.ok) {
      this.answeredAt = now;
      this.okLatency = now - p.start;
    }
    this.owner.onProbe({ ok: r.ok, reason: r.reason, status: r.status, latencyMs: now - p.start });
    if (!this.stopped && this.inflight.length === 0) this.schedule(now);
  }

  private schedule(now: number): void {
    const interval = this.settings.intervalMs;
    const gap = this.owner.falling()
      ? Math.min(interval, FAST_RECHECK_MS)
      : interval * (1 + JITTER * (2 * this.deps.random() - 1));
    const delay = Math.max(0, this.lastStart + gap - now);
    this.next = this.deps.timers.setTimeout(() => {
      this.next = undefined;
      if (!this.stopped) this.launch();
    }, delay);
  }

  start(): void {
    this.launch();
  }
}
