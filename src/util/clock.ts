// Injected time, so tests need no sleeps. One Clock for the whole program; the parts that also
// need timers (discovery's backoff, watchdogs and coalescing) take a TimerClock.

export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
}

export interface Timer {
  cancel(): void;
}

export interface TimerClock extends Clock {
  /** Calls `fn` after `ms`; the returned timer never keeps the process alive. */
  setTimeout(fn: () => void, ms: number): Timer;
}

export const systemClock: TimerClock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};
