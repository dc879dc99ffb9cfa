// When each active probe may start. One scheduler per HealthService:
//
// - Probe schedules live in one binary heap behind one timer, not one timer per target: 50,000
//   targets cost 50,000 heap slots instead of 50,000 timer objects and closures.
// - At most `maxInFlight` probes run at once (each holds a socket; 50,000 at once would exhaust
//   file descriptors and the event loop). A probe waiting for a slot has not started: its timeout
//   starts when it gets one.
// - Two queues wait for slots: `urgent` (a new instance's first probe, a joining member, a suspect
//   hint, an early second probe, a fast re-check of a failing target) goes before `due` (the
//   periodic probes), so a new pod is probed at once even while thousands of periodic probes wait.
//   Each queue is first in, first out.

import type { Clock, TimerHandle, Timers } from './time.ts';

/** Something that probes (a ProbeLoop). The scheduler owns the three bookkeeping fields. */
export interface Schedulable {
  /** When the next scheduled probe is due (the loops' clock); meaningful while in the heap. */
  dueAt: number;
  /** Position in the heap, -1 when not in it. */
  heapIndex: number;
  /** 0: not queued; 1: in `due`; 2: in `urgent`. */
  queued: 0 | 1 | 2;
  /** Whether the scheduled probe goes to `urgent` when it comes due. */
  dueUrgent: boolean;
  /** A slot is free: start a probe and return true (it then calls release() when done), or decline. */
  onSlot(): boolean;
  /**
   * A schedule that is not urgent came due: true to queue for a slot, false when the probe is not
   * needed after all (the target moved its schedule on, to a later time).
   */
  onDue?(): boolean;
}

export const DEFAULT_MAX_IN_FLIGHT = 256;

/** A first-in first-out queue with lazy deletion (an entry whose `queued` no longer matches is skipped). */
class Fifo {
  private items: Schedulable[] = [];
  private head = 0;

  constructor(private readonly id: 1 | 2) {}

  push(s: Schedulable): void {
    this.items.push(s);
  }

  shift(): Schedulable | undefined {
    while (this.head < this.items.length) {
      const s = this.items[this.head++];
      if (this.head > 1024 && this.head * 2 > this.items.length) {
        this.items = this.items.slice(this.head);
        this.head = 0;
      }
      if (s.queued === this.id) {
        s.queued = 0;
        return s;
      }
    }
    if (this.items.length > 0) {
      this.items = [];
      this.head = 0;
    }
    return undefined;
  }

  get empty(): boolean {
    return this.head >= this.items.length;
  }

  clear(): void {
    this.items = [];
    this.head = 0;
  }
}

export class ProbeScheduler {
  private readonly heap: Schedulable[] = [];
  private readonly urgent = new Fifo(2);
  private readonly due = new Fifo(1);
  private timer: TimerHandle | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  private pumpTimer: TimerHandle | undefined;
  private closed = false;
  /** Probes running now. */
  inFlight = 0;
  /** Most probes ever running at once (tests, metrics). */
  peakInFlight = 0;

  constructor(
    private readonly clock: Clock,
    private readonly timers: Timers,
    readonly maxInFlight = DEFAULT_MAX_IN_FLIGHT,
  ) {
    if (!(maxInFlight >= 1)) throw new Error('maxInFlight must be at least 1');
  }

  /** Probe `s` at `at` (epoch ms); replaces any earlier schedule or queued request of `s`. */
  at(s: Schedulable, at: number, urgent = false): void {
    if (this.closed) return;
    s.queued = 0;
    s.dueUrgent = urgent;
    s.dueAt = at;
    if (s.heapIndex < 0) {
      s.heapIndex = this.heap.length;
      this.heap.push(s);
      this.up(s.heapIndex);
    } else {
      this.down(this.up(s.heapIndex));
    }
    this.arm();
  }

  /**
   * Probe `s` as soon as a slot is free: at once (synchronously) when one is and nobody waits,
   * else in its queue. Replaces any scheduled probe of `s`.
   */
  now(s: Schedulable, urgent: boolean): void {
    if (this.closed) return;
    this.unschedule(s);
    this.arm();
    if (s.queued === 2 || (s.queued === 1 && !urgent)) return;
    s.queued = urgent ? 2 : 1;
    (urgent ? this.urgent : this.due).push(s);
    // Whoever waited longer goes first; with free slots that includes `s`, synchronously.
    this.pump();
  }

  /** Forgets `s`: no scheduled or queued probe. (Running probes end through their owner.) */
  cancel(s: Schedulable): void {
    this.unschedule(s);
    this.arm();
    s.queued = 0;
  }

  /** A granted probe ended (answered, timed out or aborted). */
  release(): void {
    this.inFlight--;
    if (this.closed || (this.urgent.empty && this.due.empty) || this.pumpTimer !== undefined) return;
    // Start the next waiting probe from a timer, not from inside the ending probe's callback: a
    // prober that answers synchronously would otherwise run the whole queue in one microtask chain.
    this.pumpTimer = this.timers.setTimeout(() => {
      this.pumpTimer = undefined;
      this.pump();
    }, 0);
  }

  /** Targets with a probe scheduled for later. */
  get scheduled(): number {
    return this.heap.length;
  }

  close(): void {
    this.closed = true;
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    if (this.pumpTimer !== undefined) this.timers.clearTimeout(this.pumpTimer);
    this.timer = undefined;
    this.pumpTimer = undefined;
    for (const s of this.heap) s.heapIndex = -1;
    this.heap.length = 0;
    this.urgent.clear();
    this.due.clear();
  }

  // ---- internals -------------------------------------------------------------------------------

  private grant(s: Schedulable): boolean {
    this.inFlight++;
    if (s.onSlot()) {
      if (this.inFlight > this.peakInFlight) this.peakInFlight = this.inFlight;
      return true;
    }
    this.inFlight--;
    return false;
  }

  private pump(): void {
    while (this.inFlight < this.maxInFlight && !this.closed) {
      const s = this.urgent.shift() ?? this.due.shift();
      if (!s) return;
      this.grant(s);
    }
  }

  /** Moves every schedule that is due into its queue, then fills free slots. */
  private fire(): void {
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    const now = this.clock.now();
    while (this.heap.length > 0 && this.heap[0].dueAt <= now) {
      const s = this.heap[0];
      this.unschedule(s);
      if (s.queued === 2 || (s.queued === 1 && !s.dueUrgent)) continue;
      // Asked before queueing, so a skipped probe costs no slot and no place in line.
      if (!s.dueUrgent && s.onDue && !s.onDue()) continue;
      s.queued = s.dueUrgent ? 2 : 1;
      (s.dueUrgent ? this.urgent : this.due).push(s);
    }
    this.pump();
    this.arm();
  }

  private arm(): void {
    const first = this.heap[0];
    const at = first ? first.dueAt : Number.POSITIVE_INFINITY;
    if (at === this.timerAt) return;
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = at;
    if (first) this.timer = this.timers.setTimeout(() => this.fire(), Math.max(0, at - this.clock.now()));
  }

  private unschedule(s: Schedulable): void {
    const i = s.heapIndex;
    if (i < 0) return;
    s.heapIndex = -1;
    const last = this.heap.pop()!;
    if (i < this.heap.length) {
      this.heap[i] = last;
      last.heapIndex = i;
      this.down(this.up(i));
    }
  }

  private up(i: number): number {
    const h = this.heap;
    const s = h[i];
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p].dueAt <= s.dueAt) break;
      h[i] = h[p];
      h[i].heapIndex = i;
      i = p;
    }
    h[i] = s;
    s.heapIndex = i;
    return i;
  }

  private down(i: number): void {
    const h = this.heap;
    const n = h.length;
    const s = h[i];
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && h[r].dueAt < h[l].dueAt ? r : l;
      if (h[c].dueAt >= s.dueAt) break;
      h[i] = h[c];
      h[i].heapIndex = i;
      i = c;
    }
    h[i] = s;
    s.heapIndex = i;
  }
}
