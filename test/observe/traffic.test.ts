import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { AttemptRecord } from '../../src/model/attempt.ts';
import { EventBus } from '../../src/observe/event-bus.ts';
import { TrafficAggregator, type TrafficSummaryEvent } from '../../src/observe/traffic.ts';
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

/** An upstream attempt as the proxy reports it; each test overrides what it is about. */
function attempt(over: Partial<AttemptRecord> = {}): AttemptRecord {
  return {
    project: 'shop',
    port: 'web',
    instance: 'shop-0',
    outcome: 200,
    durationMs: 2,
    retry: false,
    ...over,
  };
}

describe('traffic aggregator', () => {
  test('per instance: attempts, failed attempts and their p99; per port: what clients saw', () => {
    let now = 1_000_000_000;
    const t = new TrafficAggregator({ now: () => now, windowSeconds: 5 });
    const events: TrafficSummaryEvent[] = [];
    t.on((e) => events.push(e));
    // Second 0: 100 requests, each one attempt on shop-0; 2 answered 502, one slow.
    for (let i = 0; i < 100; i++) {
      const status = i < 2 ? 502 : 200;
      const durationMs = i === 50 ? 800 : 2;
      t.attempt(attempt({ outcome: status, durationMs }));
      t.record(rec({ status, durationMs: durationMs + 0.3 }));
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
    const port = ev.ports.find((x) => x.port === 'web')!;
    assert.equal(port.rps, 101, "the request that found no instance is the port's");
    assert.equal(port.errorRate, round(3 / 101));
    assert.equal(port.retries, 0);
    assert.equal(events.length, 1);

    // Quiet seconds: zeros while in the window, then absent from the summary.
    now += 1000;
    const quiet = t.tick()!.points.find((x) => x.instance === 'shop-0')!;
    assert.equal(quiet.rps, 0);
    assert.equal(quiet.p99Ms, null);
    for (let s = 0; s < 5; s++) {
      now += 1000;
      t.tick();
    }
    assert.equal(events.at(-1)!.points.length, 0, 'idle past the window: not in the summary');
    const h = t.history(10);
    assert.equal(h.step, 1);
    assert.equal(h.end, events.at(-1)!.time);
    const series = h.instances.find((s) => s.instance === 'shop-0')!;
    assert.deepEqual(
      series.rps,
      [null, null, null, 100, 0, 0, 0, 0, 0, 0],
      'null before it existed, then zeros',
    );
    assert.deepEqual(series.errorRate.slice(3, 5), [0.02, null], 'no error rate without attempts');
  });

  test('a frozen instance: its slow attempts count on it, not on the instance that answered the retry', () => {
    // The incident of issue 23: blog-1 hangs, each request waits there 1.5 s until it is moved
    // (rescued, or timed out and retried) to blog-0, which answers in 2 ms.
    let now = 3_000_000_000;
    const t = new TrafficAggregator({ now: () => now });
    for (let i = 0; i < 50; i++) {
      const first = i % 2 === 0 ? 'blog-1' : 'blog-0';
      if (first === 'blog-1') {
        t.attempt(
          attempt({
            project: 'blog',
            port: 'http',
            instance: 'blog-1',
            outcome: i % 4 === 0 ? 'rescued' : 'response-timeout',
            durationMs: 1500,
          }),
        );
        t.attempt(attempt({ project: 'blog', port: 'http', instance: 'blog-0', durationMs: 2, retry: true }));
        t.record(rec({ project: 'blog', port: 'http', instance: 'blog-0', durationMs: 1503, attempts: 2 }));
      } else {
        t.attempt(attempt({ project: 'blog', port: 'http', instance: 'blog-0', durationMs: 2 }));
        t.record(rec({ project: 'blog', port: 'http', instance: 'blog-0', durationMs: 2.2 }));
      }
    }
    t.observe({
      type: 'health',
      time: now,
      project: 'blog',
      port: 'http',
      instance: 'blog-1',
      address: 'a',
      from: 'healthy',
      to: 'unhealthy',
      ejected: true,
      reason: 'probe: timeout',
    });
    now += 1000;
    const ev = t.tick()!;
    const blog0 = ev.points.find((x) => x.instance === 'blog-0')!;
    const blog1 = ev.points.find((x) => x.instance === 'blog-1')!;
    assert.ok(blog0.p99Ms! < 3, `blog-0 answers fast: p99 ${blog0.p99Ms} ms`);
    assert.equal(blog0.errorRate, 0);
    assert.equal(blog0.rps, 50);
    assert.ok(blog1.p99Ms! >= 1500, `blog-1 is where the time went: p99 ${blog1.p99Ms} ms`);
    assert.equal(blog1.errorRate, 1, 'timeouts and rescues are failed attempts');
    const port = ev.ports.find((x) => x.project === 'blog')!;
    assert.ok(port.p99Ms! >= 1500, 'clients waited: the port shows it');
    assert.equal(port.errorRate, 0, 'yet no client got an error');
    assert.equal(port.retries, 25);
    assert.equal(port.rescues, 13);
    assert.equal(port.ejections, 1);
  });

  test('an hour at 10 s steps, and 5 minutes at 1 s', () => {
    let now = 4_000_000_000 * 1000 - 1; // just before a 10 s boundary
    now = Math.floor(now / 10_000) * 10_000;
    const t = new TrafficAggregator({ now: () => now });
    // 20 minutes: 3 requests a second, one failing in each 10 s step.
    for (let s = 0; s < 1200; s++) {
      for (let i = 0; i < 3; i++)
        t.record(rec({ status: i === 0 && s % 10 === 0 ? 500 : 200, durationMs: 5 }));
      now += 1000;
      t.tick();
    }
    const recent = t.history(300);
    assert.equal(recent.step, 1);
    assert.equal(recent.length, 300);
    assert.ok(recent.ports[0].rps.every((x) => x === 3));
    const hour = t.history(3600);
    assert.equal(hour.step, 10);
    assert.equal(hour.length, 360);
    const rps = hour.ports[0].rps;
    assert.equal(rps.filter((x) => x !== null).length, 120, '20 minutes of 10 s steps');
    assert.ok(rps.slice(-120).every((x) => x === 3));
    assert.ok(hour.ports[0].errorRate.slice(-120).every((x) => x === round(1 / 30)));
    assert.equal(hour.end, now - 10_000, 'the last complete step');
    // Only the projects asked for.
    assert.equal(t.history(300, new Set(['other'])).ports.length, 0);
  });

  test('after a stall the missed seconds are still filed', () => {
    let now = 5_000_000_000;
    const t = new TrafficAggregator({ now: () => now });
    for (let s = 0; s < 4; s++) {
      t.record(rec());
      now += 1000;
    }
    t.tick();
    assert.deepEqual(t.history(4).ports[0].rps, [1, 1, 1, 1]);
  });

  test('bounded number of tracked instances and ports', () => {
    let now = 5_000_000;
    const t = new TrafficAggregator({ now: () => now, maxInstances: 10, maxPorts: 5 });
    for (let i = 0; i < 100; i++) {
      t.attempt(attempt({ instance: `i${i}` }));
      t.record(rec({ port: `p${i}` }));
    }
    now += 1000;
    const ev = t.tick()!;
    assert.equal(ev.points.length, 11);
    assert.equal(ev.points.find((p) => p.project === '_overflow')!.rps, 90);
    assert.equal(ev.ports.length, 6);
    assert.equal(ev.ports.find((p) => p.project === '_overflow')!.rps, 95);
  });
});

const round = (x: number) => Math.round(x * 10_000) / 10_000;
