import assert from 'node:assert/strict';
import { test } from 'node:test';
import { analyse, type Outcome } from '../../bench/lib/failover-analysis.ts';
import type { RequestRecord } from '../../bench/lib/open-loop.ts';

function run(records: RequestRecord[], arrivals: Record<string, number[]>, postIds: string[] = []): Outcome {
  return {
    target: 't',
    signal: 'SIGSTOP',
    mix: 'post',
    killAtMs: 1000,
    arrivals: new Map(Object.entries(arrivals)),
    postIds,
    r: {
      t0Epoch: 0,
      records,
      lag: { max: 1, p99: 1 },
      perSecond: [2, 2],
      maxQueued: 0,
      hung: records.filter((x) => x.error === 'hung').length,
      eventTimes: [1000],
    },
  };
}
const rec = (seq: number, sent: number, end: number, extra: Partial<RequestRecord> = {}): RequestRecord => ({
  seq,
  method: 'GET',
  due: sent,
  sent,
  end,
  status: 200,
  ...extra,
});

test('counts failed, slow and hung requests and the windows after the kill', () => {
  const o = run(
    [
      rec(0, 0, 10),
      rec(1, 1100, 1150, { status: 502 }),
      rec(2, 1500, 3500), // slow
      rec(3, 2200, 2210),
      rec(4, 2600, 9000, { error: 'hung', status: undefined }),
    ],
    { u1: [0, 3], u2: [2, 4], u3: [] },
  );
  const a = analyse(o, { victim: 'u2', slowMs: 1000, durationS: 2 });
  assert.equal(a.total, 5);
  assert.equal(a.failed, 2);
  assert.equal(a.failedKinds, '1x 502, 1x hung');
  assert.equal(a.slow, 1);
  assert.equal(a.hung, 1);
  assert.equal(a.maxLatencyMs, 6400);
  assert.equal(a.routedForS, 1.6); // last bad request sent at 2600, kill at 1000
  assert.equal(a.errorsUntilS, 8);
  assert.equal(a.victimAfterKill, 2);
  assert.equal(a.victimUntilS, 1.6);
  assert.equal(a.dupPosts, 0);
});

test('a POST that reached two upstreams is a duplicate; a retried GET is not', () => {
  const o = run(
    [
      rec(0, 1200, 1300, { method: 'POST', id: 'r-0' }),
      rec(1, 1200, 1300),
      rec(2, 1300, 1400, { method: 'POST', id: 'r-2' }),
    ],
    { u1: [0, 1, 2], u2: [0, 1] },
    ['r-0', 'r-0', 'r-2'],
  );
  const a = analyse(o, { victim: 'u2', slowMs: 1000, durationS: 2 });
  assert.equal(a.posts, 2);
  assert.equal(a.dupPosts, 1);
  assert.equal(a.dupGets, 1);
  assert.equal(a.failedPosts, 0);
  // Duplicate detected by body id alone (e.g. the tag header was stripped on the way).
  const byId = analyse(run(o.r!.records, { u1: [0] }, ['r-2', 'r-2']), {
    victim: 'u2',
    slowMs: 1000,
    durationS: 2,
  });
  assert.equal(byId.dupPosts, 1);
});

test('POSTs that failed at the frozen victim are excused from the latency target; others are not', () => {
  const o = run(
    [
      rec(0, 900, 9000, { method: 'POST', id: 'r-0', error: 'hung', status: undefined }), // at the victim
      rec(1, 900, 9000, { method: 'POST', id: 'r-1', error: 'hung', status: undefined }), // never arrived
      rec(2, 1200, 1300),
      rec(3, 1300, 3500), // slow GET
    ],
    { u1: [2, 3], u2: [0] },
  );
  const a = analyse(o, { victim: 'u2', slowMs: 1000, durationS: 2 });
  assert.equal(a.failedPosts, 2);
  assert.equal(a.failedPostsElsewhere, 1);
  assert.equal(a.failedGets, 0);
  assert.equal(a.maxLatencyMsExclVictimPosts, 8100); // r-1 still counts
  assert.equal(a.slowExclVictimPosts, 1);
});
