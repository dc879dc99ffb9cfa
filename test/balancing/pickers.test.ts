// Behaviour specific to each picker: p2c load preference, round-robin order, cookie stickiness
// (draining allowed, unhealthy replaced), the 503 reason text and strict pinning.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { describeNoEndpoint, pickEndpoint, pinEndpoint } from '../../src/balancing/pick.ts';
import { HealthService } from '../../src/health/service.ts';
import { FakeProber, FakeTime, portRoute, settingsWith, table } from '../health/fakes.ts';
import { FakeHealth, route, seeded, VersionedHealth } from './fixtures.ts';

describe('p2c', () => {
  test('of two candidates, always the one with fewer requests in flight', () => {
    const r = route(['a', 'b']);
    const health = new FakeHealth(r);
    const load = new Map([[r.endpoints[0].id, 5]]);
    const rnd = seeded(1);
    for (let i = 0; i < 100; i++) {
      const res = pickEndpoint({ route: r, health, inflight: (id) => load.get(id) ?? 0, random: rnd });
      assert.equal(res?.endpoint.instance, 'b');
    }
  });

  test('never the single most loaded of three; ties broken at random', () => {
    const r = route(['a', 'b', 'c']);
    const health = new FakeHealth(r);
    const load = new Map([[r.byInstance.get('c')!.id, 10]]);
    const counts: Record<string, number> = { a: 0, b: 0, c: 0 };
    const rnd = seeded(2);
    for (let i = 0; i < 3000; i++) {
      const res = pickEndpoint({ route: r, health, inflight: (id) => load.get(id) ?? 0, random: rnd });
      counts[res!.endpoint.instance]++;
    }
    assert.equal(counts.c, 0);
    // a and b tie on load: each wins about half of the time.
    assert.ok(counts.a > 1200 && counts.b > 1200, JSON.stringify(counts));
  });

  test('a single candidate needs no random draw', () => {
    const r = route(['a', 'b']);
    const health = new FakeHealth(r, { a: 'unhealthy' });
    const res = pickEndpoint({
      route: r,
      health,
      inflight: () => 0,
      random: () => {
        throw new Error('random must not be called');
      },
    });
    assert.equal(res?.endpoint.instance, 'b');
  });

  test('a random source returning 1 stays in range', () => {
    const r = route(['a', 'b', 'c']);
    const res = pickEndpoint({ route: r, health: new FakeHealth(r), inflight: () => 0, random: () => 1 });
    assert.ok(res);
  });
});

describe('round-robin', () => {
  test('cycles in instance order, skipping ineligible endpoints', () => {
    const r = route(['c', 'a', 'b', 'd'], { balancer: 'round-robin' });
    const health = new FakeHealth(r, { b: 'unhealthy' });
    const seq = Array.from(
      { length: 6 },
      () => pickEndpoint({ route: r, health, inflight: () => 0 })!.endpoint.instance,
    );
    assert.deepEqual(seq, ['a', 'c', 'd', 'a', 'c', 'd']);
  });

  test('state is per route object: a new table starts its own cycle', () => {
    const r1 = route(['a', 'b'], { balancer: 'round-robin' });
    const r2 = route(['a', 'b'], { balancer: 'round-robin' });
    const h1 = new FakeHealth(r1);
    const h2 = new FakeHealth(r2);
    assert.equal(pickEndpoint({ route: r1, health: h1, inflight: () => 0 })!.endpoint.instance, 'a');
    assert.equal(pickEndpoint({ route: r2, health: h2, inflight: () => 0 })!.endpoint.instance, 'a');
    assert.equal(pickEndpoint({ route: r1, health: h1, inflight: () => 0 })!.endpoint.instance, 'b');
  });
});

describe('cookie affinity', () => {
  const mk = () => {
    const r = route(['a', 'b', { name: 'c', draining: true }], { affinity: { kind: 'cookie' } });
    return { r, health: new FakeHealth(r) };
  };

  test('a valid token keeps its instance and no new cookie is issued', () => {
    const { r, health } = mk();
    for (let i = 0; i < 50; i++) {
      const res = pickEndpoint({
        route: r,
        health,
        inflight: () => 0,
        stickyToken: 'tok-b',
        random: seeded(i),
      });
      assert.deepEqual([res?.endpoint.instance, res?.issueCookie], ['b', false]);
    }
  });

  test('sticky requests still reach a draining instance', () => {
    const { r, health } = mk();
    const res = pickEndpoint({ route: r, health, inflight: () => 0, stickyToken: 'tok-c' });
    assert.deepEqual([res?.endpoint.instance, res?.issueCookie], ['c', false]);
  });

  test('an unhealthy, unknown or already-tried instance is replaced and the cookie reissued', () => {
    const { r, health } = mk();
    health.set(r.byInstance.get('b')!.id, 'unhealthy');
    const unhealthy = pickEndpoint({
      route: r,
      health,
      inflight: () => 0,
      stickyToken: 'tok-b',
      random: seeded(1),
    });
    assert.equal(unhealthy?.endpoint.instance, 'a');
    assert.equal(unhealthy?.issueCookie, true);
    const unknown = pickEndpoint({
      route: r,
      health,
      inflight: () => 0,
      stickyToken: 'gone',
      random: seeded(1),
    });
    assert.deepEqual([unknown?.endpoint.instance, unknown?.issueCookie], ['a', true]);
    const tried = pickEndpoint({
      route: r,
      health: new FakeHealth(r),
      inflight: () => 0,
      stickyToken: 'tok-a',
      exclude: new Set([r.byInstance.get('a')!.id]),
    });
    assert.deepEqual([tried?.endpoint.instance, tried?.issueCookie], ['b', true]);
  });

  test('no cookie yet: picked by the balancer, cookie issued; without affinity never issued', () => {
    const { r, health } = mk();
    assert.equal(pickEndpoint({ route: r, health, inflight: () => 0 })?.issueCookie, true);
    const plain = route(['a']);
    assert.equal(
      pickEndpoint({ route: plain, health: new FakeHealth(plain), inflight: () => 0 })?.issueCookie,
      false,
    );
  });

  test('cookie affinity holds across two processes: the token alone names the instance', () => {
    // Two replicas build their tables independently (different objects, different memo state).
    const r1 = route(['a', 'b', 'c'], { affinity: { kind: 'cookie' } });
    const r2 = route(['c', 'b', 'a'], { affinity: { kind: 'cookie' } });
    const first = pickEndpoint({
      route: r1,
      health: new FakeHealth(r1),
      inflight: () => 0,
      random: seeded(9),
    })!;
    const again = pickEndpoint({
      route: r2,
      health: new FakeHealth(r2),
      inflight: () => 0,
      stickyToken: first.endpoint.token,
      random: seeded(10),
    })!;
    assert.equal(again.endpoint.instance, first.endpoint.instance);
    assert.equal(again.issueCookie, false);
  });
});

describe('hash affinity retries', () => {
  test('a retry goes to the next-ranked instance, the same on every replica', () => {
    const r1 = route(['a', 'b', 'c', 'd'], { affinity: { kind: 'ip' } });
    const r2 = route(['d', 'c', 'b', 'a'], { affinity: { kind: 'ip' } });
    for (let i = 0; i < 100; i++) {
      const key = `10.1.0.${i}`;
      const p1 = pickEndpoint({ route: r1, health: new FakeHealth(r1), inflight: () => 0, hashKey: key })!;
      const ex1 = new Set([p1.endpoint.id]);
      const ex2 = new Set([r2.byInstance.get(p1.endpoint.instance)!.id]);
      const s1 = pickEndpoint({
        route: r1,
        health: new FakeHealth(r1),
        inflight: () => 0,
        hashKey: key,
        exclude: ex1,
      })!;
      const s2 = pickEndpoint({
        route: r2,
        health: new FakeHealth(r2),
        inflight: () => 0,
        hashKey: key,
        exclude: ex2,
      })!;
      assert.equal(s1.endpoint.instance, s2.endpoint.instance);
      assert.notEqual(s1.endpoint.instance, p1.endpoint.instance);
    }
  });
});

describe('describeNoEndpoint', () => {
  test('no instances', () => {
    assert.equal(describeNoEndpoint({ route: route([]), health: new FakeHealth() }), 'no instances');
  });

  test('all unhealthy, with reasons', () => {
    const r = route(['a', 'b', 'c']);
    const health = new FakeHealth(r);
    for (const e of r.endpoints) health.set(e.id, 'unhealthy', `probe: status 503`);
    health.set(r.byInstance.get('b')!.id, 'unhealthy', 'passive: connect refused');
    assert.equal(
      describeNoEndpoint({ route: r, health }),
      'all 3 instances unhealthy: a (probe: status 503), b (passive: connect refused), c (probe: status 503)',
    );
    const one = route(['a']);
    const h1 = new FakeHealth(one, { a: 'unhealthy' });
    assert.match(describeNoEndpoint({ route: one, health: h1 }), /^the only instance is unhealthy: a \(/);
  });

  test('mixed reasons, and long lists are cut', () => {
    const r = route(['a', { name: 'b', draining: true }, 'c']);
    const health = new FakeHealth(r, { a: 'unhealthy', b: 'unhealthy' });
    health.set(r.byInstance.get('a')!.id, 'unhealthy', 'probe: timeout after 1000ms');
    const text = describeNoEndpoint({ route: r, health, exclude: new Set([r.byInstance.get('c')!.id]) });
    assert.equal(
      text,
      'no eligible instance among 3 instances: a (probe: timeout after 1000ms), b (unhealthy), c (already tried)',
    );
    const many = route(Array.from({ length: 9 }, (_, i) => `i${i}`));
    const hm = new FakeHealth(many);
    for (const e of many.endpoints) hm.set(e.id, 'unhealthy', 'x');
    assert.match(describeNoEndpoint({ route: many, health: hm }), /, and 4 more$/);
  });
});

describe('pinEndpoint', () => {
  test('strict: the named instance, or a reason, never another instance', () => {
    const r = route(['a', 'b', { name: 'c', draining: true }, 'd']);
    const health = new FakeHealth(r, { b: 'unhealthy', d: 'pending' });
    health.set(r.byInstance.get('b')!.id, 'unhealthy', 'probe: connect refused');
    assert.deepEqual(pinEndpoint(r, 'a', health), { endpoint: r.byInstance.get('a') });
    assert.deepEqual(pinEndpoint(r, 'b', health), {
      reason: 'instance "b" is unhealthy: probe: connect refused',
    });
    assert.deepEqual(
      pinEndpoint(r, 'c', health),
      { endpoint: r.byInstance.get('c') },
      'draining still serves pins',
    );
    assert.deepEqual(
      pinEndpoint(r, 'd', health),
      { endpoint: r.byInstance.get('d') },
      'pending: first probe in flight',
    );
    assert.deepEqual(pinEndpoint(r, 'zz', health), { reason: 'instance "zz" not found in shop/http' });
  });
});

describe('eligible-set cache (views with a version)', () => {
  test('follows every health change', () => {
    const r = route(['a', 'b', 'c']);
    const health = new VersionedHealth(r);
    const seen = () => {
      const s = new Set<string>();
      const rnd = seeded(5);
      for (let i = 0; i < 200; i++)
        s.add(pickEndpoint({ route: r, health, inflight: () => 0, random: rnd })!.endpoint.instance);
      return [...s].sort();
    };
    assert.deepEqual(seen(), ['a', 'b', 'c']);
    health.set(r.byInstance.get('a')!.id, 'unhealthy');
    assert.deepEqual(seen(), ['b', 'c']);
    health.set(r.byInstance.get('b')!.id, 'unhealthy');
    health.set(r.byInstance.get('c')!.id, 'pending');
    assert.deepEqual(seen(), ['c']);
    health.set(r.byInstance.get('a')!.id, 'healthy');
    assert.deepEqual(seen(), ['a']);
  });

  test('with the real HealthService: an ejected endpoint is out from the very next pick', async () => {
    const time = new FakeTime();
    const svc = new HealthService({ domain: 'd', clock: time, timers: time, prober: new FakeProber(time) });
    const s = settingsWith();
    const pr = portRoute(
      'shop',
      'http',
      [
        { name: 'a', address: '10.0.0.1:80' },
        { name: 'b', address: '10.0.0.2:80' },
      ],
      s,
    );
    svc.reconcile(table(pr));
    await time.advance(0);
    const picks = () =>
      new Set(
        Array.from(
          { length: 100 },
          (_, i) =>
            pickEndpoint({ route: pr, health: svc, inflight: () => 0, random: seeded(i) })!.endpoint.instance,
        ),
      );
    assert.deepEqual([...picks()].sort(), ['a', 'b']);
    svc.report({ endpoint: pr.byInstance.get('a')!.id, error: 'connect-refused', durationMs: 1 });
    assert.deepEqual([...picks()], ['b']);
    svc.close();
  });
});
