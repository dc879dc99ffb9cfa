// The global probe cap (issue 3's scale targets): at most `maxInFlight` probes at once, a waiting
// probe's timeout starts with its slot, new instances are probed ahead of waiting periodic probes,
// and a batch of new targets larger than the slots is spread over one interval. Injected time only.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ProbeScheduler, type Schedulable } from '../../src/health/scheduler.ts';
import { HealthService, RECONCILE_CHUNK } from '../../src/health/service.ts';
import { collect, FakeProber, FakeTime, OK, portRoute, settingsWith, T0, table } from './fakes.ts';

const addr = (i: number) => `10.0.${i >> 8}.${i & 255}:8080`;
const instances = (from: number, n: number) =>
  Array.from({ length: n }, (_, k) => ({ name: `p-${from + k}`, address: addr(from + k) }));

function setup(maxInFlight: number, random: () => number = () => 0.5) {
  const time = new FakeTime();
  const prober = new FakeProber(time);
  const { events, emit } = collect();
  const svc = new HealthService({ emit, clock: time, timers: time, prober, random, maxInFlight });
  // Probes still running: started and neither aborted nor answered (the fake records starts only).
  return { time, prober, events, svc };
}

describe('probe concurrency cap', () => {
  test('never more than maxInFlight at once; a waiting probe times out a full timeout after its slot', async () => {
    const { time, prober, svc, events } = setup(3);
    prober.setAll('hang');
    const s = settingsWith({ intervalMs: 10_000, timeoutMs: 1000, fall: 1 });
    // 10 new targets > 3 slots: spread over the interval (random() = 0.5: all due at +5000).
    svc.reconcile(table(portRoute('big', 'http', instances(0, 10), s)));
    assert.equal(prober.calls.length, 0, 'nothing at once for a batch larger than the slots');
    await time.advance(5000);
    assert.equal(prober.calls.length, 3, 'three slots, three probes');
    assert.equal(svc.probesInFlight.now, 3);
    await time.advance(1000); // the first three time out, the next three start
    assert.equal(prober.calls.length, 6);
    await time.advance(3000);
    assert.equal(prober.calls.length, 10);
    assert.equal(svc.probesInFlight.peak, 3, 'the cap held');
    const starts = prober.calls.map((c) => c.at - T0);
    assert.deepEqual(starts, [5000, 5000, 5000, 6000, 6000, 6000, 7000, 7000, 7000, 8000]);
    // Every probe got its whole timeout, counted from its slot, not from when it was due.
    const latencies = events.filter((e) => e.to === 'unhealthy').map((e) => e.probeLatencyMs);
    assert.equal(latencies.length, 10);
    assert.ok(latencies.every((l) => l === 1000));
    svc.close();
    assert.equal(time.pendingTimers, 0);
  });

  test('a new instance is probed before periodic probes that wait for a slot', async () => {
    const { time, prober, svc } = setup(1);
    prober.setAll('hang');
    const s = settingsWith({ intervalMs: 1000, timeoutMs: 1000, fall: 1 });
    const old = portRoute('old', 'http', instances(0, 20), s);
    svc.reconcile(table(old));
    await time.advance(2500); // one slot, 20 hung targets: a queue of periodic probes waits
    const queuedBefore = prober.calls.length;
    prober.set(addr(100), OK);
    svc.reconcile(table(old, portRoute('new', 'http', [{ name: 'fresh', address: addr(100) }], s)));
    // The slot is busy until the running probe times out; then the new pod goes first.
    await time.until(() => prober.callsTo(addr(100)).length > 0, 1000);
    assert.equal(
      prober.calls[queuedBefore].target.address,
      addr(100),
      'the very next probe started was the new pod',
    );
    assert.equal(prober.calls[queuedBefore].at - T0, 3500, 'as soon as the slot was free');
    await time.advance(0);
    assert.equal(svc.state('new/http/fresh@10.0.0.100:8080'), 'healthy');
    assert.equal(svc.probesInFlight.peak, 1);
    svc.close();
  });

  test('a batch within the slots is probed at once; a larger one is spread over one interval', async () => {
    let x = 0;
    const { time, prober, svc } = setup(4, () => (x++ % 10) / 10);
    const s = settingsWith({ intervalMs: 1000 });
    svc.reconcile(table(portRoute('small', 'http', instances(0, 4), s)));
    assert.equal(prober.calls.length, 4, 'four new targets, four slots: all at once');
    const big = portRoute('big', 'http', instances(10, 10), s);
    svc.reconcile(table(portRoute('small', 'http', instances(0, 4), s), big));
    await time.advance(999);
    const bigAddresses = new Set(instances(10, 10).map((i) => i.address));
    const seen = new Set<string>();
    const first: number[] = [];
    for (const c of prober.calls) {
      if (!bigAddresses.has(c.target.address) || seen.has(c.target.address)) continue;
      seen.add(c.target.address);
      first.push(c.at - T0);
    }
    assert.equal(first.length, 10);
    assert.deepEqual(
      [...first].sort((a, b) => a - b),
      [0, 100, 200, 300, 400, 500, 600, 700, 800, 900],
      'one first probe per tenth of the interval',
    );
    svc.close();
  });
});

describe('big changes are adopted in chunks', () => {
  test('a first sync of many projects never holds the event loop; a pod added meanwhile is probed at once', async () => {
    const { time, prober, svc } = setup(256);
    const s = settingsWith({ intervalMs: 1000 });
    const n = RECONCILE_CHUNK * 2 + 10;
    const routes = Array.from({ length: n }, (_, i) => portRoute(`p${i}`, 'http', instances(i, 1), s));
    const big = table(...routes);
    svc.reconcile(big, [...big.projects.keys()]);
    assert.equal(svc.list().length, 0, 'nothing adopted inside reconcile()');
    assert.ok(svc.adopting);
    while (svc.list().length === 0) assert.ok(await time.runOne(), 'a chunk is scheduled');
    assert.equal(svc.list().length, RECONCILE_CHUNK, 'one chunk per tick');
    // A new pod while the big change is still being adopted: adopted and probed at once.
    const fresh = portRoute('fresh', 'http', [{ name: 'new', address: addr(5000) }], s);
    const next = table(...routes, fresh);
    svc.reconcile(next, ['fresh']);
    assert.equal(prober.callsTo(addr(5000)).length, 1, 'probed at once');
    await time.advance(0);
    await time.advance(0);
    assert.equal(svc.adopting, false);
    assert.equal(svc.list().length, n + 1);
    // The chunked ones were spread over the interval, not probed in one burst.
    assert.ok(prober.calls.length < 100, `${prober.calls.length} probes before the interval passed`);
    await time.advance(1000);
    assert.equal(
      new Set(prober.calls.map((c) => c.target.address)).size,
      n + 1,
      'all probed within one interval',
    );
    svc.close();
    assert.equal(time.pendingTimers, 0);
  });
});

describe('ProbeScheduler', () => {
  function item(log: string[], name: string, accept = true): Schedulable {
    return {
      dueAt: Number.POSITIVE_INFINITY,
      heapIndex: -1,
      queued: 0,
      dueUrgent: false,
      onSlot() {
        log.push(name);
        return accept;
      },
    };
  }

  test('schedules in time order behind one timer; urgent requests first; cancel and reschedule', async () => {
    const time = new FakeTime();
    const s = new ProbeScheduler(time, time, 1);
    const log: string[] = [];
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((n) => item(log, n));
    s.at(c, T0 + 300);
    s.at(a, T0 + 100);
    s.at(b, T0 + 200);
    s.at(d, T0 + 50);
    s.cancel(d);
    assert.equal(time.pendingTimers, 1, 'one timer for every schedule');
    await time.advance(100);
    assert.deepEqual(log, ['a']);
    // The slot is taken: b comes due and waits; an urgent request overtakes it.
    await time.advance(150);
    s.now(d, true);
    s.release(); // a ends
    await time.advance(0);
    assert.deepEqual(log, ['a', 'd']);
    s.release();
    await time.advance(0);
    assert.deepEqual(log, ['a', 'd', 'b']);
    s.at(c, T0 + 1000); // rescheduled before it came due
    s.release();
    await time.advance(500);
    assert.deepEqual(log, ['a', 'd', 'b']);
    await time.advance(500);
    assert.deepEqual(log, ['a', 'd', 'b', 'c']);
    s.close();
    assert.equal(time.pendingTimers, 0);
  });

  test('a declined slot goes to the next in line', async () => {
    const time = new FakeTime();
    const s = new ProbeScheduler(time, time, 1);
    const log: string[] = [];
    s.now(item(log, 'no', false), true);
    s.now(item(log, 'yes'), true);
    assert.deepEqual(log, ['no', 'yes']);
    assert.equal(s.inFlight, 1);
    s.close();
  });
});
