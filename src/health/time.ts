// Injected time, so tests drive probes and hold-outs without sleeping. The clock is the shared one of
// util/; timers are health's own need (probe schedules, timeouts, hold-outs).

export { type Clock, systemClock } from '../util/clock.ts';

export type TimerHandle = unknown;

export interface Timers {
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

/**
 * Real timers, unref'd: probe schedules must never be what keeps a process alive (the servers do);
 * a forgotten close() in a test or a shutdown path then cannot hang the exit.
 */
export const systemTimers: Timers = {
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
};
