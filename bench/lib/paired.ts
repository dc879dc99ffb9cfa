// Paired runs: two proxies pinned to the same CPU and loaded at the same time, each by its own wrk.
//
// Why: this VM's speed changes in steps of up to 2x that last seconds to minutes. Runs one after the
// other (even ABBA rounds seconds apart) then disagree by more than the effect being measured: the
// access-log row came out 2.7%, 14.5%, 1.9% and 14.2% slower in four runs of nearly the same code.
// Two processes sharing one CPU at the same instant see the same machine speed, so their ratio is
// free of the steps.
//
// What is compared is CPU time per request, not requests per second: both are busy all the time,
// and a CPU-bound proxy's throughput on a whole core is 1 / (CPU per request). Their request rates
// while sharing the core are reported too, but the scheduler shares the core per thread, so a
// process with a busier thread pool (the one writing a log file) gets a little more than half.
//
// A window with the same program on both sides (an A/A control) shows what the method itself reads
// when there is no difference.

import { treeCpuSeconds } from './procs.ts';
import { median, percentile } from './stats.ts';
import type { Target } from './targets.ts';
import { runWrk, type WrkResult } from './wrk.ts';

export interface PairSide {
  /** Requests wrk completed in the measured window. */
  readonly requests: number;
  /** User + system CPU of the process tree in the window. */
  readonly cpuS: number;
  readonly rps: number;
  /** wrk's non-2xx responses and socket errors. */
  readonly errors: number;
}

export interface PairedWindow {
  readonly window: number;
  readonly a: PairSide;
  readonly b: PairSide;
  /** What ran beside B's load (e.g. the /metrics scraper's report). */
  readonly note?: string;
}

/** CPU microseconds per request. */
export function cpuUsPerRequest(s: PairSide): number {
  return s.requests > 0 ? (s.cpuS * 1e6) / s.requests : Number.NaN;
}

/**
 * The share of A's throughput that B loses at equal CPU: 1 - (A's CPU per request / B's). 0.08 means
 * B serves 8% fewer requests than A with a whole core.
 */
export function throughputCost(w: PairedWindow): number {
  return 1 - cpuUsPerRequest(w.a) / cpuUsPerRequest(w.b);
}

export interface PairedSummary {
  readonly windows: number;
  /** Median and middle half of throughputCost over the windows. */
  readonly cost: number;
  readonly costQ1: number;
  readonly costQ3: number;
  /** Median of B's rps / A's rps while sharing the core. */
  readonly rpsRatio: number;
  readonly errors: number;
}

export function summarizePaired(ws: readonly PairedWindow[]): PairedSummary {
  const costs = ws.map(throughputCost).filter(Number.isFinite);
  return {
    windows: costs.length,
    cost: median(costs),
    costQ1: percentile(costs, 25),
    costQ3: percentile(costs, 75),
    rpsRatio: median(ws.map((w) => w.b.rps / w.a.rps).filter(Number.isFinite)),
    errors: ws.reduce((n, w) => n + w.a.errors + w.b.errors, 0),
  };
}

export interface PairedOptions {
  readonly durationS: number;
  readonly warmupS: number;
  /** CPU list for wrk (both wrk share it). */
  readonly loadCpus: string;
  /** Runs beside B's load, warm-up included; its report becomes the window's note. stop() must be idempotent. */
  readonly besideB?: () => { stop(): string };
}

/** One window: warm both up together, then measure both together. */
export async function runPairedWindow(
  window: number,
  a: Target,
  b: Target,
  o: PairedOptions,
): Promise<PairedWindow> {
  const both = (durationS: number) =>
    Promise.all(
      [a, b].map((t) =>
        runWrk({ url: t.url, host: t.hostHeader, cpus: o.loadCpus, durationS, latency: false }),
      ),
    );
  const side = (r: WrkResult, cpuS: number): PairSide => ({
    requests: r.requests,
    cpuS,
    rps: r.rps,
    errors:
      r.non2xx + r.socketErrors.connect + r.socketErrors.read + r.socketErrors.write + r.socketErrors.timeout,
  });
  // From the warm-up on: what B pays once (the first /metrics scrape, say) belongs to its warm-up.
  const beside = o.besideB?.();
  try {
    if (o.warmupS > 0) await both(o.warmupS);
    const pa = a.pid();
    const pb = b.pid();
    if (pa === undefined || pb === undefined) throw new Error('paired run: a target has no process');
    const cpuA = treeCpuSeconds(pa);
    const cpuB = treeCpuSeconds(pb);
    const [ra, rb] = await both(o.durationS);
    return {
      window,
      a: side(ra!, treeCpuSeconds(pa) - cpuA),
      b: side(rb!, treeCpuSeconds(pb) - cpuB),
      note: beside?.stop(),
    };
  } finally {
    // Again for the paths that threw: stopping twice is harmless (scrapeMetrics' stop is idempotent).
    beside?.stop();
  }
}
