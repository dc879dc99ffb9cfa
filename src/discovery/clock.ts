// Time as discovery sees it: the program's clock with timers (util/clock.ts), so tests can shorten
// timeouts or drive timers by hand; plus the waiting discovery does (sleep, watchdog, backoff).

import type { TimerClock as Clock, Timer } from '../util/clock.ts';

// Discovery always needs timers, so its `Clock` is the TimerClock (one definition, in util/).
export { systemClock, type Timer, type TimerClock as Clock } from '../util/clock.ts';

/** Resolves after `ms` on `clock`, or at once when `signal` aborts. */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted || ms <= 0) return resolve();
    const t = clock.setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
    function done() {
      t.cancel();
      signal?.removeEventListener('abort', done);
      resolve();
    }
  });
}

/**
 * Aborts `controller` when `kick()` has not been called for `ms`. One timer per period, not one per
 * kick, so a busy stream costs nothing but a timestamp write per chunk.
 */
export class Watchdog {
  private last: number;
  private timer: Timer | null = null;
  fired = false;

  constructor(
    private readonly clock: Clock,
    private readonly ms: number,
    private readonly onSilence: () => void,
  ) {
    this.last = clock.now();
    this.arm(ms);
  }

  private arm(delay: number): void {
    this.timer = this.clock.setTimeout(() => {
      const idle = this.clock.now() - this.last;
      if (idle >= this.ms) {
        this.fired = true;
        this.timer = null;
        this.onSilence();
      } else this.arm(this.ms - idle);
    }, delay);
  }

  kick(): void {
    this.last = this.clock.now();
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = null;
  }
}

/**
 * Exponential backoff with jitter, from `initialMs` doubling to `maxMs`; never gives up. Jitter
 * `down` draws each wait from 0.5x-1x of the step; `up` from 1x-2x (capped at `maxMs`), as client-go's
 * backoff manager does for relists.
 */
export class Backoff {
  private attempt = 0;
  constructor(
    private readonly initialMs = 500,
    private readonly maxMs = 30_000,
    private readonly random: () => number = Math.random,
    private readonly jitter: 'down' | 'up' = 'down',
  ) {}

  next(): number {
    const step = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    if (this.jitter === 'up') return Math.round(Math.min(this.maxMs, step * (1 + this.random())));
    return Math.round(step * (0.5 + this.random() * 0.5));
  }

  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}
