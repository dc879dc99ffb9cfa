// CPU time per thread of one process, from /proc/<pid>/task: the main thread (tid = pid) apart from
// the others (the probe thread, V8's and libuv's helpers), which all carry the name "node".

import { readdirSync, readFileSync } from 'node:fs';

const CLK_TCK = 100;

export interface ThreadCpu {
  /** CPU seconds of the main thread. */
  readonly main: number;
  /** CPU seconds of every other thread together. */
  readonly others: number;
  /** CPU seconds per other thread, by tid. */
  readonly byTid: ReadonlyMap<number, number>;
}

export function threadCpu(pid: number): ThreadCpu {
  let main = 0;
  let others = 0;
  const byTid = new Map<number, number>();
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return { main, others, byTid };
  }
  for (const t of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const secs = (Number(f[11]) + Number(f[12])) / CLK_TCK;
      if (Number(t) === pid) main = secs;
      else {
        others += secs;
        byTid.set(Number(t), secs);
      }
    } catch {}
  }
  return { main, others, byTid };
}

/** Resident set now and at its peak, in MiB. */
export function rssMiB(pid: number): { now: number; peak: number } {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const now = Number(/VmRSS:\s+(\d+) kB/.exec(s)?.[1] ?? 0) / 1024;
    const peak = Number(/VmHWM:\s+(\d+) kB/.exec(s)?.[1] ?? 0) / 1024;
    return { now, peak };
  } catch {
    return { now: 0, peak: 0 };
  }
}
