// The active-check schedule of one probe target. Several endpoints may share a target (two ports of
// one instance checked on the same health port), so a loop serves a set of members and reports
// each result once; the members' own state machines decide what it means for them.
//
// Timing, with the defaults (interval 1 s, timeout 1 s, fall 2):
//  - first probe at once; then every interval x [0.9, 1.1] (jitter, so replicas do not probe in
//    step), measured start to start;
//  - traffic-aware (issue 24): a real answer from the instance is as good as a passing probe, so a
//    periodic probe is skipped while the instance answered requests within the last interval (it is
//    still probed once per idle interval, for a health path that fails while requests succeed); an
//    idle instance (no request within the last interval) is probed once per idle interval
//    x [0.9, 1.0], counted from its last probe or answer. Without an idle interval (HealthService's
//    default) every in-service target is probed every interval, as before;
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

import type { HealthCheckKind, HealthCheckSettings, StatusRange } from '../model/settings.ts';
import {
  ProbeCancel,
  type Prober,
  ProbeSession,
  type ProbeTarget,
  probeKind,
  STAGE_CONNECTING,
} from './prober.ts';
import type { ProbeScheduler, Schedulable } from './scheduler.ts';
import type { Clock, TimerHandle, Timers } from './time.ts';

export const JITTER = 0.1;
export const FAST_RECHECK_MS = 250;
export const EARLY_PROBE_MS = 250;

export interface ProbeReport {
  readonly ok: boolean;
  readonly reason: string;
  readonly latencyMs: number;
  readonly status?: number;
  /** The probe's connection was never established within the timeout (a dead node looks like this). */
  readonly connectTimeout?: boolean;
}

export interface LoopOwner {
  onProbe(report: ProbeReport): void;
  /** Some member is in service but failing probes: re-check fast. */
  falling(): boolean;
  /** Some member is in service (healthy or pending): a slow probe is worth an early second one. */
  serving(): boolean;
  /** When the instance last answered a real request (loop ms; NEVER if it did not). */
  lastAnswer(): number;
  /** When a real request to the instance last ended, answered or not (loop ms; NEVER if none). */
  lastTraffic(): number;
}

export interface LoopDeps {
  /**
   * Time for schedules. HealthService gives its loops milliseconds since it started rather than
   * epoch milliseconds: small integers stay unboxed in 50,000 loops (epoch times are heap numbers).
   */
  readonly clock: Clock;
  readonly timers: Timers;
  readonly prober: Prober;
  readonly random: () => number;
  /** Slots and schedules shared by every loop of a HealthService. */
  readonly scheduler: ProbeScheduler;
  /**
   * Probe period of an idle in-service target (no request within its interval), in ms. At most its
   * own interval means "no idle slowdown": every target is probed every interval.
   */
  readonly idleMs?: number;
  /** A probe could not be made from this host (see ProbeResult.local). */
  readonly onLocalError?: (reason: string) => void;
}

interface Outstanding {
  readonly seq: number;
  readonly start: number;
  readonly ac: ProbeCancel;
  deadline: TimerHandle;
  early: TimerHandle | undefined;
  done: boolean;
}

const NONE: readonly Outstanding[] = Object.freeze([]);

type ProbeResultish = {
  ok: boolean;
  reason: string;
  status?: number;
  connectTimeout?: boolean;
  local?: boolean;
};

/** Why the loop waits for a slot: its schedule, a new member or hint (`now`), or an early probe. */
enum Want {
  Scheduled = 0,
  Now = 1,
  Early = 2,
}

/** "Never" for a time in loop milliseconds: a small integer, so the field stays unboxed. */
export const NEVER = -(2 ** 30);

/**
 * A probe target with its schedule. Subclasses are their own target (address, Host header, path,
 * expected statuses) and say what the results mean (LoopOwner): one object per target.
 */
export abstract class ProbeLoop implements Schedulable, ProbeTarget, LoopOwner {
  private inflight: Outstanding[] = NONE as Outstanding[];
  private seq = 0;
  private applied = 0;
  private lastStart = NEVER;
  /** When the last good answer came, and how long that probe took. */
  private answeredAt = NEVER;
  private okLatency = 0;
  private stopped = false;
  private want = Want.Scheduled;
  /** The first idle schedule is uniform over the idle interval, so a batch started together spreads out. */
  private idleSpread = true;
  /** The time the current idle schedule counts from (the last probe or answer then). */
  private idleBasis = NEVER;
  // Schedulable: owned by the scheduler.
  dueAt = -1;
  heapIndex = -1;
  queued: 0 | 1 | 2 = 0;
  dueUrgent = false;

  abstract readonly address: string;
  abstract readonly host: string;
  abstract onProbe(report: ProbeReport): void;
  abstract falling(): boolean;
  abstract serving(): boolean;
  abstract lastAnswer(): number;
  abstract lastTraffic(): number;
  /** HTTP and gRPC targets keep their probe connection between probes (see ProbeSession). */
  readonly session: ProbeSession | undefined;
  /** Probe period of this target when idle (ms); equal to the interval when there is no idle slowdown. */
  private readonly idleMs: number;

  constructor(
    readonly settings: HealthCheckSettings,
    private readonly deps: LoopDeps,
  ) {
    // A TCP check has nothing to keep: its connection is its verdict.
    this.session = probeKind(settings) === 'tcp' ? undefined : new ProbeSession();
    this.idleMs = Math.max(settings.intervalMs, deps.idleMs ?? 0);
  }

  get path(): string | null {
    return this.settings.path;
  }

  get check(): HealthCheckKind {
    return probeKind(this.settings);
  }

  get grpcService(): string {
    return this.settings.grpcService ?? '';
  }

  get expect(): readonly StatusRange[] {
    return this.settings.expect;
  }

  /** The loop itself (it is its own probe target). */
  get target(): ProbeTarget {
    return this;
  }

  /** First probe at once (as soon as a slot is free, ahead of periodic probes). */
  start(): void {
    this.kick();
  }

  /**
   * First probe at a random point within one interval (or `period`): for a batch of new targets
   * larger than the probe slots (an initial sync), so they do not all probe in the same instant.
   */
  startSpread(period = this.settings.intervalMs): void {
    if (this.stopped) return;
    this.want = Want.Scheduled;
    this.deps.scheduler.at(this, Math.round(this.deps.clock.now() + this.deps.random() * period));
  }

  /** Probe now unless one is already on its way (a new member joining an existing loop). */
  kick(): void {
    if (this.stopped || this.inflight.length > 0) return;
    this.want = Want.Now;
    this.deps.scheduler.now(this, true);
  }

  /**
   * Probe now, out of cycle, because live traffic looks stuck. Ignored while a probe is on its way
   * (it already gets early second probes) or when one started less than EARLY_PROBE_MS (or
   * `minGapMs`) ago, so a flood of calls costs at most a few probes a second.
   */
  suspect(minGapMs = EARLY_PROBE_MS): void {
    if (this.stopped || this.inflight.length > 0) return;
    if (this.deps.clock.now() - this.lastStart < minGapMs) return;
    this.kick();
  }

  stop(): void {
    this.stopped = true;
    this.deps.scheduler.cancel(this);
    const all = this.inflight;
    this.inflight = NONE as Outstanding[];
    for (const p of all) this.retire(p);
    this.deps.prober.forget?.(this);
  }

  /** Outstanding probes (tests and the admin API). */
  get outstanding(): number {
    return this.inflight.length;
  }

  /**
   * @internal A scheduled (periodic) probe came due: is it still needed? Traffic may have answered for
   * it meanwhile. Returns false after moving the schedule on instead.
   */
  onDue(): boolean {
    if (this.stopped || this.idleMs <= this.settings.intervalMs) return true;
    if (!this.serving() || this.falling()) return true;
    const now = this.deps.clock.now();
    const interval = this.settings.intervalMs;
    const answered = this.lastAnswer();
    if (now - answered < interval) {
      // Fresh evidence from traffic; a probe only once per idle interval.
      if (now - this.lastStart < this.idleMs) {
        this.later(now, answered + this.jittered(interval));
        return false;
      }
      return true;
    }
    // Requests ended there within the interval without a good answer: let a probe judge.
    if (now - this.lastTraffic() < interval) return true;
    // Idle now, but answered since this probe was scheduled: the idle interval counts from the answer.
    if (answered > this.idleBasis) {
      this.idleBasis = answered;
      const due = answered + this.idleGap();
      if (due > now) {
        this.later(now, due);
        return false;
      }
    }
    return true;
  }

  private later(now: number, at: number): void {
    at = Math.max(now + 1, Math.round(at));
    this.want = Want.Scheduled;
    this.deps.scheduler.at(this, at, false);
    if (this.session) this.session.nextGapMs = Math.max(0, at - this.lastStart);
  }

  /** The interval with +-10% jitter. */
  private jittered(interval: number): number {
    return interval * (1 + JITTER * (2 * this.deps.random() - 1));
  }

  /** The idle interval with jitter taken downwards only, so an idle target is probed within it. */
  private idleGap(): number {
    return this.idleMs * (1 - JITTER * this.deps.random());
  }

  /** @internal The scheduler has a slot for this loop. */
  onSlot(): boolean {
    if (this.stopped) return false;
    if (this.want === Want.Early) {
      // Still worth it? The probe it backs up may have answered while this one waited.
      const last = this.inflight[this.inflight.length - 1];
      if (!last || last.seq !== this.seq || this.answeredAt > last.start) return false;
      if (this.inflight.length >= this.settings.fall || !this.serving()) return false;
    } else if (this.inflight.length > 0) return false;
    this.launch();
    return true;
  }

  private launch(): void {
    const { clock, timers, prober } = this.deps;
    const start = clock.now();
    const p: Outstanding = {
      seq: ++this.seq,
      start,
      ac: new ProbeCancel(),
      deadline: undefined,
      early: undefined,
      done: false,
    };
    this.lastStart = start;
    if (this.inflight === NONE) this.inflight = [];
    this.inflight.push(p);
    const timeout = this.settings.timeoutMs;
    // The verdict waits one more turn of the event loop: a thread that could not run for a while
    // (a busy core) finds its timer and the answer due together, and timers run before sockets
    // are read. A 0 ms timer comes after the next read of every socket, so an answer that is
    // there wins. (Deadline handles are swapped, so retire() clears whichever is pending.)
    p.deadline = timers.setTimeout(() => {
      p.deadline = timers.setTimeout(() => {
        const connecting = p.ac.stage === STAGE_CONNECTING;
        const reason = `${connecting ? 'connect timeout' : 'timeout'} after ${timeout}ms`;
        this.finish(p, { ok: false, reason, connectTimeout: connecting }, true);
      }, 0);
    }, timeout);
    // A target that is slow even when fine (a health check that pings a database) gets a later
    // early probe: twice its usual latency, at most half the timeout.
    const base = Math.min(EARLY_PROBE_MS, timeout / 4);
    const earlyAfter = Math.min(Math.max(base, 2 * this.okLatency), timeout / 2);
    // Only a target in service gets early second probes (see early()): no timer for the others.
    if (this.settings.fall > 1 && this.serving())
      p.early = timers.setTimeout(() => this.early(p), earlyAfter);
    let pending: Promise<ProbeResultish>;
    try {
      pending = prober.probe(this, p.ac);
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
    if (this.inflight.length >= this.settings.fall || !this.serving()) return;
    this.want = Want.Early;
    this.deps.scheduler.now(this, true);
  }

  /** Ends an outstanding probe: its timers, its socket (if it still runs) and its slot. */
  private retire(p: Outstanding, answered = false): void {
    p.done = true;
    this.deps.timers.clearTimeout(p.deadline);
    if (p.early !== undefined) this.deps.timers.clearTimeout(p.early);
    if (!answered) p.ac.abort();
    this.deps.scheduler.release();
  }

  /** `running`: the prober has not answered (a timeout), so its socket must be aborted. */
  private finish(p: Outstanding, r: ProbeResultish, running = false): void {
    if (p.done || this.stopped) return;
    this.retire(p, !running);
    const i = this.inflight.indexOf(p);
    if (i >= 0) this.inflight.splice(i, 1);
    if (this.inflight.length === 0) this.inflight = NONE as Outstanding[];
    if (r.local) {
      // Nothing learned about the target: no result, and the schedule goes on as after a probe.
      this.deps.onLocalError?.(r.reason);
      if (!this.stopped && this.inflight.length === 0 && this.heapIndex < 0 && this.queued === 0)
        this.schedule(this.deps.clock.now());
      return;
    }
    if (p.seq < this.applied) {
      // Cannot happen today (applying a result retires every older probe); kept so a stale answer
      // can never leave the loop without a next probe.
      if (this.inflight.length === 0 && this.heapIndex < 0 && this.queued === 0)
        this.schedule(this.deps.clock.now());
      return;
    }
    this.applied = p.seq;
    // Anything started before this probe is stale now.
    for (let j = this.inflight.length - 1; j >= 0; j--) {
      if (this.inflight[j].seq < p.seq) this.retire(this.inflight.splice(j, 1)[0]);
    }
    // Idle loops (nearly all of them) share one empty array.
    if (this.inflight.length === 0) this.inflight = NONE as Outstanding[];
    const now = this.deps.clock.now();
    if (r.ok) {
      this.answeredAt = now;
      this.okLatency = now - p.start;
    }
    this.onProbe({
      ok: r.ok,
      reason: r.reason,
      status: r.status,
      latencyMs: now - p.start,
      connectTimeout: r.connectTimeout === true || r.reason === 'connect timeout',
    });
    if (!this.stopped && this.inflight.length === 0) this.schedule(now);
  }

  private schedule(now: number): void {
    const interval = this.settings.intervalMs;
    const falling = this.falling();
    let at: number;
    if (falling) {
      at = this.lastStart + Math.min(interval, FAST_RECHECK_MS);
    } else if (this.idleMs > interval && this.serving() && now - this.lastTraffic() >= interval) {
      // Idle (no request within the interval): the next look at the idle interval. The first one at a
      // random point of it: targets probed together (a first sync) would otherwise stay in step, with
      // only 10% jitter to part them.
      const gap = this.idleSpread ? this.deps.random() * this.idleMs : this.idleGap();
      this.idleSpread = false;
      this.idleBasis = Math.max(this.lastStart, this.lastAnswer());
      at = this.idleBasis + gap;
    } else {
      at = this.lastStart + this.jittered(interval);
    }
    this.want = Want.Scheduled;
    if (this.session) this.session.nextGapMs = Math.max(0, at - this.lastStart);
    // A fast re-check of a failing target waits for a slot ahead of the periodic probes.
    this.deps.scheduler.at(this, Math.max(now, Math.round(at)), falling);
  }
}
