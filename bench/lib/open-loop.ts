// Open-loop load generator: request i is due at t0 + i/rate, whatever happened to the others, so a
// stalled backend cannot slow the load down and hide failures (a closed-loop client like wrk
// would). Every request is recorded. Requests carry `x-bench-tag: <seq>` so the upstreams can log
// which ones reached them; POSTs carry a unique id in the body so a POST delivered twice is seen.
//
// The generator checks itself: each request's dispatch lag (sent - due), requests per second, and
// how many requests ever waited in the client pool for a free connection (must stay 0).

import { Pool } from 'undici';

export interface OpenLoopOptions {
  url: string;
  host?: string;
  rate: number;
  durationS: number;
  /** Share of requests that are POSTs (0..1), spread evenly (every 1/share-th request). */
  postShare?: number;
  /** After the last request is sent, wait at most this long for the outstanding ones. */
  graceS: number;
  /** Max client connections; must exceed the number of requests that can be outstanding at once. */
  connections?: number;
  /** Callbacks at fixed offsets from t0 (e.g. kill an upstream at 5 s). */
  events?: Array<{ atMs: number; run: () => void }>;
  /** Run id used in POST ids so ids are unique across runs. */
  runId?: string;
  /** Untagged requests (warm-up): upstreams do not log them and they are not recorded. */
  untagged?: boolean;
}

export interface RequestRecord {
  seq: number;
  method: 'GET' | 'POST';
  /** POST body id. */
  id?: string;
  /** ms after t0. */
  due: number;
  sent: number;
  end?: number;
  status?: number;
  error?: string;
  /** `x-bench-upstream` response header: which upstream answered. */
  upstream?: string;
}

export interface OpenLoopResult {
  t0Epoch: number;
  records: RequestRecord[];
  lag: { max: number; p99: number };
  /** Requests sent in each whole second of the load. */
  perSecond: number[];
  /** Most requests ever queued in the pool waiting for a connection. */
  maxQueued: number;
  /** Records still unanswered when the grace period ran out. */
  hung: number;
  /** Events as actually run, ms after t0. */
  eventTimes: number[];
}

export function isPost(seq: number, postShare: number): boolean {
  if (postShare <= 0) return false;
  const every = Math.max(1, Math.round(1 / postShare));
  return seq % every === every - 1;
}

export async function runOpenLoop(o: OpenLoopOptions): Promise<OpenLoopResult> {
  const u = new URL(o.url);
  const total = Math.round(o.rate * o.durationS);
  const horizonMs = (o.durationS + o.graceS + 30) * 1000;
  const pool = new Pool(u.origin, {
    connections: o.connections ?? 8000,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    headersTimeout: horizonMs,
    bodyTimeout: horizonMs,
    connect: { timeout: 10_000 },
  });
  const records: RequestRecord[] = [];
  const eventTimes: number[] = [];
  const events = [...(o.events ?? [])].sort((a, b) => a.atMs - b.atMs);
  let outstanding = 0;
  let maxQueued = 0;
  let wakeDone: (() => void) | undefined;
  const t0 = performance.now();
  const t0Epoch = Date.now();
  const now = () => performance.now() - t0;

  const fire = (seq: number) => {
    const post = isPost(seq, o.postShare ?? 0);
    const rec: RequestRecord = {
      seq,
      method: post ? 'POST' : 'GET',
      due: (seq * 1000) / o.rate,
      sent: now(),
    };
    const headers: Record<string, string> = {};
    if (o.host) headers.host = o.host;
    if (!o.untagged) headers['x-bench-tag'] = String(seq);
    let body: string | undefined;
    if (post) {
      rec.id = `${o.runId ?? 'run'}-${seq}`;
      body = JSON.stringify({ id: rec.id, pad: 'x'.repeat(64) });
      headers['content-type'] = 'application/json';
    }
    if (!o.untagged) records.push(rec);
    outstanding++;
    pool
      .request({ path: u.pathname, method: rec.method, headers, body })
      .then(async (res) => {
        rec.status = res.statusCode;
        const up = res.headers['x-bench-upstream'];
        if (typeof up === 'string') rec.upstream = up;
        await res.body.dump({ limit: 1 << 20 });
      })
      .catch((e: Error & { code?: string }) => {
        rec.error ??= e.code ?? e.name ?? 'error';
      })
      .finally(() => {
        rec.end ??= now();
        outstanding--;
        if (outstanding === 0 && wakeDone) wakeDone();
      });
  };

  // The schedule: a 1 ms timer loop that sends everything that is due (catching up if late).
  let next = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const t = now();
      while (events.length > 0 && events[0]!.atMs <= t) {
        eventTimes.push(now());
        events.shift()!.run();
      }
      while (next < total && (next * 1000) / o.rate <= t) fire(next++);
      const q = pool.stats.queued;
      if (q > maxQueued) maxQueued = q;
      if (next >= total && events.length === 0) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });

  // Grace: wait for outstanding requests, bounded.
  if (outstanding > 0) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, o.graceS * 1000);
      wakeDone = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
  const hungRecs = records.filter((r) => r.end === undefined);
  const graceEnd = now();
  for (const r of hungRecs) {
    r.error = 'hung';
    r.end = graceEnd;
  }
  await pool.destroy().catch(() => {});

  const lags = records.map((r) => r.sent - r.due).sort((a, b) => a - b);
  // A late generator sends some requests after the nominal end: they get their own seconds.
  const lastSecond = Math.max(Math.ceil(o.durationS) - 1, ...records.map((r) => Math.floor(r.sent / 1000)));
  const perSecond = new Array<number>(lastSecond + 1).fill(0);
  for (const r of records) perSecond[Math.floor(r.sent / 1000)]!++;
  return {
    t0Epoch,
    records,
    lag: {
      max: lags.at(-1) ?? 0,
      p99: lags[Math.max(0, Math.ceil(lags.length * 0.99) - 1)] ?? 0,
    },
    perSecond,
    maxQueued,
    hung: hungRecs.length,
    eventTimes,
  };
}
