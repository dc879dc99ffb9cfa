import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EventBus, TrafficAggregator, type TrafficSummaryEvent } from '../../src/observe/bus.ts';
import { accessRecord } from '../support/records.ts';

const rec = accessRecord;

describe('event bus', () => {
  test('delivers to every listener, survives a throwing one, unsubscribes', () => {
    const errors: unknown[] = [];
    const bus = new EventBus<number>((e) => errors.push(e));
    const got: number[] = [];
    bus.on(() => {
      throw new Error('boom');
    });
    const off = bus.on((n) => got.push(n));
    bus.emit(1);
    off();
    bus.emit(2);
    assert.deepEqual(got, [1]);
    assert.equal(errors.length, 2);
  });
});

describe('traffic aggregator', () => {
  test('per-second rps, error rate and p99, a sliding window, and a history', () => {
    let now = 1_000_000_000;
    const t = new TrafficAggregator({ now: () => now, windowSeconds: 5, historySeconds: 20 });
    const events: TrafficSummaryEvent[] = [];
    t.on((e) => events.push(e));
    // Second 0: 100 requests to shop-0, 2 errors, 1 slow.
    for (let i = 0; i < 100; i++) {
      t.record(rec({ status: i < 2 ? 502 : 200, durationMs: i === 50 ? 800 : 2 }));
    }
    t.record(rec({ instance: undefined, status: 503, attempts: 0 }));
    now += 1000;
    const ev = t.tick()!;
    assert.equal(ev.time, 1_000_000_000);
    assert.equal(t.tick(), undefined, 'one summary per second');
    const p = ev.points.find((x) => x.instance === 'shop-0')!;
    assert.equal(p.rps, 100);
    assert.equal(p.errorRate, 0.02);
    // 99 of 100 at 2 ms: p99 is the 2 ms bucket's upper edge (25% resolution).
    assert.ok(p.p99Ms! >= 2 && p.p99Ms! <= 2.5, String(p.p99Ms));
    assert.equal(p.windowRps, 20);
    const none = ev.points.find((x) => x.instance === '')!;
    assert.equal(none.errorRate, 1);
    assert.equal(events.length, 1);

    // Quiet seconds: the instance keeps reporting zeros; the window drains.
    for (let s = 0; s < 5; s++) {
      now += 1000;
      t.tick();
    }
    const last = events.at(-1)!.points.find((x) => x.instance === 'shop-0')!;
    assert.equal(last.rps, 0);
    assert.equal(last.p99Ms, null);
    assert.equal(last.windowRps, 0);
    const series = t.series().find((s) => s.instance === 'shop-0')!;
    assert.deepEqual(series.rps, [100, 0, 0, 0, 0, 0]);
    assert.equal(series.end, events.at(-1)!.time);

    // Idle longer than the history: forgotten (bounded memory).
    now += 25_000;
    t.tick();
    assert.equal(t.series().length, 0);
  });

  test('bounded number of tracked instances', () => {
    let now = 5_000_000;
    const t = new TrafficAggregator({ now: () => now, maxEntries: 10 });
    for (let i = 0; i < 100; i++) t.record(rec({ instance: `i${i}` }));
    now += 1000;
    const ev = t.tick()!;
    assert.equal(ev.points.length, 11);
    assert.equal(ev.points.find((p) => p.project === '_overflow')!.rps, 90);
  });
});
