// The contract every picker honours, run against each balancer x affinity combination over random
// route states (fast-check): never unhealthy, never an excluded endpoint, always the best tier
// (healthy > pending > healthy-but-draining), undefined only when nothing is eligible, and every
// candidate of the best tier reachable.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { pickEndpoint } from '../../src/balancing/pick.ts';
import type { HealthState } from '../../src/model/health.ts';
import type { Endpoint } from '../../src/model/routes.ts';
import type { Affinity, BalancerKind } from '../../src/model/settings.ts';
import { FakeHealth, route, seeded, VersionedHealth } from './fixtures.ts';

interface PickerCase {
  readonly name: string;
  readonly balancer: BalancerKind;
  readonly affinity: Affinity;
  /** Key for hash affinity, varied per pick. */
  readonly key?: (i: number) => string;
}

const PICKERS: readonly PickerCase[] = [
  { name: 'p2c', balancer: 'p2c', affinity: { kind: 'none' } },
  { name: 'round-robin', balancer: 'round-robin', affinity: { kind: 'none' } },
  { name: 'cookie (no cookie yet)', balancer: 'p2c', affinity: { kind: 'cookie' } },
  {
    name: 'header hash',
    balancer: 'p2c',
    affinity: { kind: 'header', header: 'x-user' },
    key: (i) => `user-${i}`,
  },
  {
    name: 'ip hash',
    balancer: 'round-robin',
    affinity: { kind: 'ip' },
    key: (i) => `192.168.${i >> 8}.${i & 255}`,
  },
  { name: 'header hash without the header', balancer: 'p2c', affinity: { kind: 'header', header: 'x-user' } },
];

const STATES: readonly HealthState[] = ['healthy', 'pending', 'unhealthy'];

const arbRouteState = fc.array(
  fc.record({ state: fc.constantFrom(...STATES), draining: fc.boolean(), excluded: fc.boolean() }),
  { minLength: 0, maxLength: 8 },
);

function tier(state: HealthState, draining: boolean): number {
  if (state === 'healthy') return draining ? 2 : 0;
  if (state === 'pending' && !draining) return 1;
  return -1;
}

for (const [pc, Health] of PICKERS.flatMap(
  (p) =>
    [
      [p, FakeHealth],
      [p, VersionedHealth],
    ] as const,
)) {
  describe(`picker contract: ${pc.name}${Health === VersionedHealth ? ' (cached by health version)' : ''}`, () => {
    test('only endpoints of the best eligible tier; undefined only when none', () => {
      fc.assert(
        fc.property(arbRouteState, fc.integer(), (spec, seed) => {
          const r = route(
            spec.map((s, i) => ({ name: `i${i}`, draining: s.draining })),
            { balancer: pc.balancer, affinity: pc.affinity },
          );
          const health = new Health();
          const exclude = new Set<string>();
          const tierOf = new Map<string, number>();
          r.endpoints.forEach((e, i) => {
            health.set(e.id, spec[i].state);
            if (spec[i].excluded) exclude.add(e.id);
            else tierOf.set(e.id, tier(spec[i].state, spec[i].draining));
          });
          const eligible = [...tierOf.values()].filter((t) => t >= 0);
          const best = eligible.length ? Math.min(...eligible) : -1;
          const rnd = seeded(seed);
          const bestSet = new Set([...tierOf].filter(([, t]) => t === best).map(([id]) => id));
          const seen = new Set<string>();
          for (let i = 0; i < 120; i++) {
            const res = pickEndpoint({
              route: r,
              health,
              inflight: () => 0,
              exclude,
              hashKey: pc.key?.(i),
              random: rnd,
            });
            if (best < 0) {
              assert.equal(res, undefined);
              return;
            }
            assert.ok(res, 'an eligible endpoint exists');
            assert.ok(!exclude.has(res.endpoint.id), 'never an excluded endpoint');
            assert.notEqual(health.state(res.endpoint.id), 'unhealthy', 'never unhealthy');
            assert.ok(
              bestSet.has(res.endpoint.id),
              `picked from tier ${tierOf.get(res.endpoint.id)}, best is ${best}`,
            );
            assert.equal(res.issueCookie, pc.affinity.kind === 'cookie');
            seen.add(res.endpoint.id);
          }
          // Reachability: with load equal and keys varied, every best candidate gets traffic.
          assert.equal(seen.size, bestSet.size);
        }),
        { numRuns: 150 },
      );
    });

    test('a draining endpoint gets no new request while a healthy one is eligible', () => {
      const r = route(['a', { name: 'b', draining: true }, 'c'], {
        balancer: pc.balancer,
        affinity: pc.affinity,
      });
      const health = new Health(r);
      const rnd = seeded(7);
      for (let i = 0; i < 200; i++) {
        const res = pickEndpoint({ route: r, health, inflight: () => 0, hashKey: pc.key?.(i), random: rnd });
        assert.notEqual(res?.endpoint.instance, 'b');
      }
    });

    test('pending endpoints serve when nothing is healthy yet (a fresh table must not 503)', () => {
      const r = route(['a', 'b'], { balancer: pc.balancer, affinity: pc.affinity });
      const health = new Health(r, { a: 'pending', b: 'unhealthy' });
      const res = pickEndpoint({
        route: r,
        health,
        inflight: () => 0,
        hashKey: pc.key?.(1),
        random: seeded(1),
      });
      assert.equal(res?.endpoint.instance, 'a');
    });

    test('an empty route and an all-unhealthy route give undefined', () => {
      const empty = route([], { balancer: pc.balancer, affinity: pc.affinity });
      assert.equal(pickEndpoint({ route: empty, health: new Health(), inflight: () => 0 }), undefined);
      const r = route(['a', 'b'], { balancer: pc.balancer, affinity: pc.affinity });
      const health = new Health(r, { a: 'unhealthy', b: 'unhealthy' });
      assert.equal(pickEndpoint({ route: r, health, inflight: () => 0, hashKey: pc.key?.(0) }), undefined);
    });

    test('the route object is left untouched and picks are independent', () => {
      const r = route(['a', 'b', 'c'], { balancer: pc.balancer, affinity: pc.affinity });
      const before = r.endpoints.map((e: Endpoint) => e.id);
      const health = new Health(r);
      const first = pickEndpoint({
        route: r,
        health,
        inflight: () => 0,
        hashKey: pc.key?.(3),
        random: seeded(3),
      });
      const second = pickEndpoint({
        route: r,
        health,
        inflight: () => 0,
        exclude: new Set(first ? [first.endpoint.id] : []),
        hashKey: pc.key?.(3),
        random: seeded(3),
      });
      assert.deepEqual(
        r.endpoints.map((e: Endpoint) => e.id),
        before,
      );
      assert.ok(first && second);
      assert.notEqual(
        first.endpoint.id,
        second.endpoint.id,
        'a retry excluding the first pick goes elsewhere',
      );
    });
  });
}
