// Simulated time for the health-check simulation: a clock and timers on one binary heap, run in
// order without sleeping. Callbacks run synchronously; the simulated prober answers through
// synchronous thenables (sim-prober.ts), so no promise has to settle between events.

import type { Clock, TimerHandle, Timers } from '../../src/health/time.ts';

interface Timer {
  at: number;
  seq: number;
  fn: (() => void) | undefined;
}

export class SimTime implements Clock, Timers {
  t: number;
  private seq = 0;
  private readonly heap: Timer[] = [];
  /** Timers run so far (the simulation's own cost). */
  fired = 0;

  constructor(start = 1_700_000_000_000) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer: Timer = { at: this.t + Math.max(0, ms), seq: ++this.seq, fn };
    this.push(timer);
    return timer;
  }

  clearTimeout(handle: TimerHandle): void {
    if (handle) (handle as Timer).fn = undefined;
  }

  /** Runs every timer due until `until` (epoch ms), in time order, then sets the clock there. */
  runUntil(until: number): void {
    const h = this.heap;
    while (h.length > 0 && h[0].at <= until) {
      const timer = this.pop();
      const fn = timer.fn;
      if (!fn) continue;
      timer.fn = undefined;
      if (timer.at > this.t) this.t = timer.at;
      this.fired++;
      fn();
    }
    this.t = Math.max(this.t, until);
  }

  private less(a: Timer, b: Timer): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  private push(x: Timer): void {
    const h = this.heap;
    let i = h.length;
    h.push(x);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(x, h[p])) break;
      h[i] = h[p];
      i = p;
    }
    h[i] = x;
  }

  private pop(): Timer {
    const h = this.heap;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      let i = 0;
      const n = h.length;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && this.less(h[r], h[l]) ? r : l;
        if (!this.less(h[c], last)) break;
        h[i] = h[c];
        i = c;
      }
      h[i] = last;
    }
    return top;
  }
}
