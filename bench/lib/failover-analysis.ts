// Turns one failover run (the generator's records + what each upstream logged) into the numbers
// of bench/results/failover.md. Pure, so it is unit-tested with synthetic runs.

import type { OpenLoopResult, RequestRecord } from './open-loop.ts';
import { fmt } from './stats.ts';

export interface Outcome {
  target: string;
  signal: string;
  mix: string;
  unavailable?: string;
  r?: OpenLoopResult;
  killAtMs?: number;
  /** Tags (seq) each upstream logged: upstream name -> list of seq. */
  arrivals?: Map<string, number[]>;
  /** POST body ids each upstream logged. */
  postIds?: string[];
  /** CPU used by other processes just before the run (fraction of one core). */
  foreign?: number;
}

export interface AnalysisParams {
  /** Name of the signalled upstream (key of Outcome.arrivals). */
  victim: string;
  slowMs: number;
  durationS: number;
}

export interface Analysis {
  total: number;
  failed: number;
  failedKinds: string;
  slow: number;
  hung: number;
  maxLatencyMs: number;
  /** Client view: last send time (after the kill) of a request that failed, was slow or hung. */
  routedForS: number | undefined;
  errorsUntilS: number | undefined;
  /** Upstream view: requests sent after the kill that reached the victim, and the last one's send time. */
  victimAfterKill: number;
  victimUntilS: number | undefined;
  posts: number;
  failedPosts: number;
  /** Failed POSTs that never reached the victim: the only POST failures the targets do not excuse. */
  failedPostsElsewhere: number;
  /** Max latency (and slow count) leaving out POSTs that reached the victim: the issue allows those to fail. */
  maxLatencyMsExclVictimPosts: number;
  slowExclVictimPosts: number;
  failedGets: number;
  dupPosts: number;
  dupGets: number;
  lag: string;
}

export function analyse(o: Outcome, p: AnalysisParams): Analysis {
  const r = o.r!;
  const kill = o.killAtMs!;
  const recs = r.records;
  const failedRec = (x: RequestRecord) =>
    x.error !== undefined || x.status === undefined || x.status < 200 || x.status > 299;
  const lat = (x: RequestRecord) => x.end! - x.sent;
  const failed = recs.filter(failedRec);
  const slow = recs.filter((x) => !failedRec(x) && lat(x) >= p.slowMs);
  const kinds = new Map<string, number>();
  for (const x of failed) {
    const k = x.error ?? String(x.status);
    kinds.set(k, (kinds.get(k) ?? 0) + 1);
  }
  const bad = [...failed, ...slow].filter((x) => x.sent >= kill);
  const bySeq = new Map(recs.map((x) => [x.seq, x]));
  const atVictim = new Set(o.arrivals?.get(p.victim) ?? []);
  const excused = (x: RequestRecord) => x.method === 'POST' && atVictim.has(x.seq);
  const victimSeqs = (o.arrivals?.get(p.victim) ?? []).filter((s) => (bySeq.get(s)?.sent ?? -1) >= kill);
  const seen = new Map<number, number>();
  for (const seqs of o.arrivals?.values() ?? []) for (const s of seqs) seen.set(s, (seen.get(s) ?? 0) + 1);
  const dupOf = (m: string) => [...seen].filter(([s, n]) => n > 1 && bySeq.get(s)?.method === m).length;
  const idCount = new Map<string, number>();
  for (const id of o.postIds ?? []) idCount.set(id, (idCount.get(id) ?? 0) + 1);
  const dupIds = [...idCount.values()].filter((n) => n > 1).length;
  const posts = recs.filter((x) => x.method === 'POST');
  const full = r.perSecond.slice(0, Math.floor(p.durationS));
  return {
    total: recs.length,
    failed: failed.length,
    failedKinds: [...kinds].map(([k, n]) => `${n}x ${k}`).join(', '),
    slow: slow.length,
    hung: r.hung,
    maxLatencyMs: Math.max(0, ...recs.map(lat)),
    routedForS: bad.length ? (Math.max(...bad.map((x) => x.sent)) - kill) / 1000 : undefined,
    errorsUntilS: failed.length ? (Math.max(...failed.map((x) => x.end!)) - kill) / 1000 : undefined,
    victimAfterKill: victimSeqs.length,
    victimUntilS: victimSeqs.length
      ? (Math.max(...victimSeqs.map((s) => bySeq.get(s)!.sent)) - kill) / 1000
      : undefined,
    posts: posts.length,
    failedPosts: posts.filter(failedRec).length,
    failedPostsElsewhere: posts.filter((x) => failedRec(x) && !atVictim.has(x.seq)).length,
    maxLatencyMsExclVictimPosts: Math.max(0, ...recs.filter((x) => !excused(x)).map(lat)),
    slowExclVictimPosts: slow.filter((x) => !excused(x)).length,
    failedGets: failed.filter((x) => x.method === 'GET').length,
    dupPosts: Math.max(dupOf('POST'), dupIds),
    dupGets: dupOf('GET'),
    lag: `lag p99 ${fmt(r.lag.p99, 1)} ms, max ${fmt(r.lag.max, 1)} ms; sent/s ${Math.min(...full)}-${Math.max(...full)}; max queued ${r.maxQueued}`,
  };
}
