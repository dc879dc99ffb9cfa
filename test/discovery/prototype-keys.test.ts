// Issue 25 item 7: names that are also Object.prototype's keys (`constructor`, `__proto__`,
// `toString`, `hasOwnProperty`) are data like any other, over the whole path from a Service as the
// apiserver sends it (JSON text) to a route a Host resolves to. Fuzzed with a fixed seed.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { type KubeObject, type Service, trimService } from '../../src/discovery/k8s-types.ts';
import { translateService, trimSlice } from '../../src/discovery/translate.ts';
import { DEFAULT_ADDRESS_POLICY } from '../../src/routing/addresses.ts';
import { DEFAULT_CONVENTIONS, RouteTableBuilder } from '../../src/routing/build.ts';
import { resolve } from '../../src/routing/match.ts';

const TRICKY = ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf', 'isPrototypeOf'];
const PORTS = [...TRICKY, 'http', 'admin', 'proto', 'grpc'];
const SETTING_KEYS = [...TRICKY, 'health-port', 'affinity'];
const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

const arbCase: fc.Arbitrary<Case> = fc.record({
  servicePorts: fc.array(fc.constantFrom(...PORTS), { maxLength: 5 }),
  settings: fc.dictionary(fc.constantFrom(...SETTING_KEYS), fc.constantFrom(...PORTS, 'cookie', 'x'), {
    maxKeys: 4,
  }),
  slices: fc.array(
    fc.record({
      ports: fc.array(fc.constantFrom(...PORTS), { maxLength: 4 }),
      pods: fc.array(fc.constantFrom('constructor', 'tostring', 'pod-a', 'pod-b'), { maxLength: 3 }),
    }),
    { maxLength: 3 },
  ),
});

/** JSON text as the apiserver sends it, parsed: `__proto__` arrives as an own key, not a prototype. */
interface Case {
  servicePorts: string[];
  settings: Record<string, string>;
  slices: { ports: string[]; pods: string[] }[];
}

function wire(c: Case): { svc: Service; slices: KubeObject[] } {
  const annotations = Object.fromEntries(Object.entries(c.settings).map(([k, v]) => [`wharf.io/${k}`, v]));
  const svcText = JSON.stringify({
    kind: 'Service',
    metadata: {
      name: 'svc',
      namespace: 'ns',
      labels: { 'wharf.io/project': 'shop' },
      annotations,
    },
    spec: { ports: c.servicePorts.map((name, i) => ({ name, port: 80 + i })) },
  });
  const slices = c.slices.map((s, k) =>
    JSON.stringify({
      kind: 'EndpointSlice',
      addressType: 'IPv4',
      metadata: { name: `svc-${k}`, namespace: 'ns', labels: { 'kubernetes.io/service-name': 'svc' } },
      // A port named __proto__ (a value here) comes first in every slice.
      ports: [{ name: '__proto__', port: 9 }, ...s.ports.map((name, i) => ({ name, port: 8000 + i }))],
      endpoints: s.pods.map((pod, i) => ({ addresses: [`10.0.${k}.${i + 1}`], targetRef: { name: pod } })),
    }),
  );
  // JSON.parse of a literal `"__proto__"` key makes an own property, as on the wire.
  const sep = Object.keys(annotations).length > 0 ? ',' : '';
  return {
    svc: JSON.parse(svcText.replace('"annotations":{', `"annotations":{"wharf.io/__proto__":"x"${sep}`)),
    slices: slices.map((t) => JSON.parse(t)),
  };
}

describe('issue 25 item 7: prototype names are ordinary names, from object to route', () => {
  test('translate + build + resolve never throw, route exactly the valid ports, report the rest', () => {
    fc.assert(
      fc.property(arbCase, (c) => {
        const { svc, slices } = wire(c);
        const t = translateService(trimService(svc) as Service, slices.map(trimSlice));
        assert.ok(t.record, JSON.stringify(t.problems));
        const builder = new RouteTableBuilder({
          ...DEFAULT_CONVENTIONS,
          addresses: DEFAULT_ADDRESS_POLICY,
        });
        const { table, problems } = builder.apply({ removed: [], added: [t.record] }, 1);

        const valid: string[] = [];
        for (const p of c.servicePorts) if (DNS_LABEL.test(p) && !valid.includes(p)) valid.push(p);
        const route = table.projects.get('shop');
        assert.deepEqual([...(route?.ports.keys() ?? [])], valid, 'exactly the valid Service ports');
        for (const p of valid) {
          // A pod's address comes from the first slice (in name order) that lists it and any routed
          // port; its first entry there wins. It has port p when that slice has p.
          const want = new Map<string, string>();
          const placed = new Set<string>();
          c.slices.forEach((s, k) => {
            if (!s.ports.some((x) => valid.includes(x))) return;
            const i = s.ports.indexOf(p);
            s.pods.forEach((pod, n) => {
              if (placed.has(pod)) return;
              placed.add(pod);
              if (i >= 0) want.set(pod, `10.0.${k}.${n + 1}:${8000 + i}`);
            });
          });
          const got = route!.ports
            .get(p)!
            .endpoints.map((e) => `${e.instance} ${e.address}`)
            .sort();
          assert.deepEqual(got, [...want].map(([pod, a]) => `${pod} ${a}`).sort(), `port ${p}`);
          const r = resolve(table, 'd.test', `${p}.shop.d.test`);
          assert.ok(r.ok && r.route.port === p, `${p}.shop.d.test resolves to port ${p}`);
        }
        for (const p of c.servicePorts.filter((x) => !DNS_LABEL.test(x)))
          assert.ok(
            t.problems.some((x) => x.code === 'bad-port-name' && x.message.includes(`"${p}"`)),
            `port ${p} is reported`,
          );
        // Every annotation key that is no setting is reported, __proto__ included.
        for (const k of ['__proto__', ...Object.keys(c.settings)].filter((x) => TRICKY.includes(x)))
          assert.ok(
            problems.some((x) => x.field === `wharf.io/${k}` && /unknown setting/.test(x.message)),
            `setting ${k} is reported`,
          );
        // A slice port named __proto__ is not a DNS label: never routed, never a prototype.
        assert.equal(route?.ports.has('__proto__') ?? false, false);
      }),
      {
        seed: 25,
        numRuns: 300,
        // The case found at filing: a port (and health-port) named constructor that a pod lacks.
        examples: [
          [
            {
              servicePorts: ['http', 'constructor'],
              settings: { 'health-port': 'constructor' },
              slices: [{ ports: ['http'], pods: ['pod-a'] }],
            },
          ],
        ],
      },
    );
  });
});
