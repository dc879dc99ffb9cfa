// Reads a V8 .cpuprofile (the JSON `node --cpu-prof` writes) and ranks functions by self time.
// Self time of a node = its sample count x the mean sampling interval; nodes of the same function
// (same name, url, line) are summed, since V8 splits one function over many call paths.

export interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber?: number };
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface SelfTime {
  fn: string;
  where: string;
  selfMs: number;
  share: number;
}

/** Busy (non-idle) sampled time in ms: used to pick the main thread's profile among several. */
export function busyMs(profile: CpuProfile): number {
  return topSelfTime(profile, Number.MAX_SAFE_INTEGER).reduce((a, e) => a + e.selfMs, 0);
}

export function topSelfTime(profile: CpuProfile, n = 15): SelfTime[] {
  const samples = profile.samples ?? [];
  if (samples.length === 0) return [];
  // Each sample's weight is the time delta to the next sample (the last gets the mean).
  const deltas = profile.timeDeltas ?? [];
  const byNode = new Map<number, number>();
  const total = profile.endTime - profile.startTime;
  for (let i = 0; i < samples.length; i++) {
    const w = i + 1 < deltas.length ? deltas[i + 1]! : total / samples.length;
    byNode.set(samples[i]!, (byNode.get(samples[i]!) ?? 0) + Math.max(0, w));
  }
  const byFn = new Map<string, { fn: string; where: string; us: number }>();
  let all = 0;
  for (const node of profile.nodes) {
    const us = byNode.get(node.id) ?? 0;
    // Idle time is not work: shares are of busy time.
    if (us === 0 || node.callFrame.functionName === '(idle)') continue;
    all += us;
    const cf = node.callFrame;
    const fn = cf.functionName || '(anonymous)';
    const file = cf.url
      ? cf.url.replace(/^file:\/\//, '').replace(/^.*\/node_modules\//, 'node_modules/')
      : '';
    const where = file ? `${file}:${cf.lineNumber + 1}` : '';
    const key = `${fn}|${where}`;
    const e = byFn.get(key) ?? { fn, where, us: 0 };
    e.us += us;
    byFn.set(key, e);
  }
  return [...byFn.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, n)
    .map((e) => ({ fn: e.fn, where: e.where, selfMs: e.us / 1000, share: all > 0 ? e.us / all : 0 }));
}
