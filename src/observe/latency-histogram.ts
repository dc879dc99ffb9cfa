// A small log-scale latency histogram for dashboard percentiles: bucket i holds
// [0.1 ms * 1.25^i, 0.1 ms * 1.25^(i+1)); 64 buckets reach about 2 minutes. 25% resolution is plenty
// for a p99 on a chart and costs 256 bytes per histogram.

export const BUCKETS = 64;
const BASE_MS = 0.1;
const LOG_GROWTH = Math.log(1.25);

export function bucketOf(ms: number): number {
  if (!(ms > BASE_MS)) return 0;
  const i = Math.floor(Math.log(ms / BASE_MS) / LOG_GROWTH);
  return i >= BUCKETS ? BUCKETS - 1 : i;
}

function bucketUpper(i: number): number {
  return BASE_MS * 1.25 ** (i + 1);
}

/** The q-quantile (0..1) of `total` observations in `hist`, as a bucket's upper edge; null for none. */
export function quantile(hist: Uint32Array, total: number, q: number): number | null {
  if (total === 0) return null;
  const target = Math.ceil(q * total);
  let acc = 0;
  for (let i = 0; i < BUCKETS; i++) {
    acc += hist[i];
    if (acc >= target) return Math.round(bucketUpper(i) * 100) / 100;
  }
  return Math.round(bucketUpper(BUCKETS - 1) * 100) / 100;
}
