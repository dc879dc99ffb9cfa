// Incremental route-table builds (issue 3's scale targets): applying any sequence of changes gives
// the same table as one full build of the final snapshot, unchanged projects keep their route object,
// and `changed` names exactly the projects whose route object differs. LayeredMap, the structure
// that makes a swap cost O(change), behaves as a Map and never changes a published version.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type { PortRoute, ProjectRoute, RouteTable } from '../../src/model/routes.ts';
import type { InstanceRecord, ProjectRecord } from '../../src/model/snapshot.ts';
import {
  buildRouteTable,
  type Conventions,
  DEFAULT_CONVENTIONS,
  RouteTableBuilder,
} from '../../src/routing/build.ts';
import { LayeredMap } from '../../src/util/layered-map.ts';

// ---------------------------------------------------------------- random records

const NAMES = ['shop', 'api', 'blog', 'up', 'Bad_Name', 'a', 'b', 'c'];
const SETTINGS: Record<string, string>[] = [
  {},
  {},
  { affinity: 'cookie' },
  { public: 'true' },
  { public: 'grpc' },
  { 'health-interval': 'often' },
  { 'health-port': 'grpc', 'health-path': '/ready' },
  { 'health-port': 'nope' },
];

const arbInstance = fc.record({
  name: fc.constantFrom('p-0', 'p-1', 'p-2', 'p-1'),
  uid: fc.option(fc.constantFrom('u1', 'u2'), { nil: undefined }),
  http: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
  grpc: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
  draining: fc.boolean(),
});

const arbRecord = fc
  .record({
    name: fc.constantFrom(...NAMES),
    source: fc.constantFrom('kubernetes' as const, 'kubernetes' as const, 'config' as const),
    ns: fc.constantFrom('ns1', 'ns2', 'ns3'),
    created: fc.constantFrom('2025-01-01T00:00:00Z', '2026-01-01T00:00:00Z'),
    ports: fc.constantFrom(['http'], ['http', 'grpc'], ['grpc', 'http'], ['grpc'], []),
    settings: fc.constantFrom(...SETTINGS),
    instances: fc.array(arbInstance, { maxLength: 4 }),
  })
  .map((r): ProjectRecord => {
    const instances = r.instances.map((i, k): InstanceRecord => {
      const addresses: Record<string, { host: string; port: number }> = {};
      if (i.http) addresses.http = { host: `10.0.${k}.${i.http}`, port: 80 };
      if (i.grpc) addresses.grpc = { host: `10.0.${k}.${i.grpc}`, port: 90 };
      return { name: i.name, ...(i.uid ? { uid: i.uid } : {}), addresses, draining: i.draining };
    });
    return {
      name: r.name,
      source: r.source,
      origin: r.source === 'config' ? 'config' : `${r.ns}/${r.name}`,
      created: r.created,
      ports: r.ports,
      settings: r.settings,
      instances,
    };
  });

type Op =
  | { kind: 'add'; record: ProjectRecord }
  | { kind: 'remove'; pick: number }
  | { kind: 'replace'; pick: number; record: ProjectRecord }
  | { kind: 'relist'; pick: number };

const arbOp: fc.Arbitrary<Op> = fc.oneof(
  arbRecord.map((record) => ({ kind: 'add' as const, record })),
  fc.nat().map((pick) => ({ kind: 'remove' as const, pick })),
  fc.tuple(fc.nat(), arbRecord).map(([pick, record]) => ({ kind: 'replace' as const, pick, record })),
  // An equal record as a new object (a relist): routing must give equal routes.
  fc.nat().map((pick) => ({ kind: 'relist' as const, pick })),
);

// A batch of ops is one change (a coalesced publish).
const arbHistory = fc.array(fc.array(arbOp, { minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 25 });

const CONVENTIONS: Conventions[] = [
  DEFAULT_CONVENTIONS,
  { tier: 'edge', defaults: DEFAULT_CONVENTIONS.defaults },
  { tier: 'edge', defaults: DEFAULT_CONVENTIONS.defaults, forwardTo: 'up' },
];

// ---------------------------------------------------------------- canonical tables

function canonPort(r: PortRoute) {
  return {
    project: r.project,
    port: r.port,
    settings: JSON.stringify(r.settings),
    endpoints: r.endpoints.map((e) => ({
      id: e.id,
      project: e.project,
      port: e.port,
      instance: e.instance,
      host: e.host,
      portNumber: e.portNumber,
      address: e.address,
      draining: e.draining,
      token: e.token,
      probeAddress: e.probeAddress,
    })),
    byInstance: [...r.byInstance].map(([k, e]) => [k, e.id]),
  };
}

function canonProject(p: ProjectRoute) {
  return {
    name: p.name,
    origin: p.origin,
    defaultPort: p.defaultPort,
    settings: JSON.stringify(p.settings),
    ports: [...p.ports].map(([k, r]) => [k, canonPort(r)]),
  };
}

function canon(t: RouteTable) {
  const entries = [...t.projects].sort(([a], [b]) => (a < b ? -1 : 1));
  for (const [k, v] of entries) {
    assert.equal(t.projects.get(k), v, `get(${k}) agrees with iteration`);
    for (const r of v.ports.values()) {
      for (const e of r.endpoints) assert.equal(r.byInstance.get(e.instance), e, 'byInstance finds each');
      assert.equal(r.byInstance.get('no-such'), undefined);
      assert.equal(r.byInstance.size, r.endpoints.length);
    }
  }
  assert.equal(t.projects.size, entries.length, 'size agrees with iteration');
  return {
    projects: entries.map(([k, p]) => [k, canonProject(p)]),
    problems: t.problems.map((p) => JSON.stringify(p)).sort(),
    forwardTo: t.forwardTo,
    forward: t.forward && canonPort(t.forward),
  };
}

// ---------------------------------------------------------------- properties

describe('RouteTableBuilder', () => {
  test('any sequence of changes gives the table a full build of the final snapshot gives', () => {
    fc.assert(
      fc.property(fc.constantFrom(...CONVENTIONS), arbHistory, (conv, history) => {
        const builder = new RouteTableBuilder(conv);
        let live: ProjectRecord[] = [];
        let prev = builder.apply({ removed: [], added: [] }, [], 0, 0).table;
        let version = 0;
        for (const batch of history) {
          const removed: ProjectRecord[] = [];
          const added: ProjectRecord[] = [];
          for (const op of batch) {
            if (op.kind === 'add') {
              live.push(op.record);
              added.push(op.record);
              continue;
            }
            if (live.length === 0) continue;
            const i = op.pick % live.length;
            const old = live[i];
            const next = op.kind === 'replace' ? op.record : op.kind === 'relist' ? { ...old } : undefined;
            live = live.filter((_, j) => j !== i);
            // A record added and removed in one batch is in neither list (as sources publish it).
            const a = added.indexOf(old);
            if (a >= 0) added.splice(a, 1);
            else removed.push(old);
            if (next) {
              live.push(next);
              added.push(next);
            }
          }
          version++;
          const { table, changed } = builder.apply({ removed, added }, [], version, version);
          const full = buildRouteTable({ version, projects: live, problems: [] }, conv, version);
          assert.deepEqual(canon(table), canon(full));
          assert.equal(table.version, version);
          // `changed` is exactly the names whose route object differs; the rest are shared.
          const names = new Set([...prev.projects.keys(), ...table.projects.keys()]);
          for (const n of names) {
            const differs = prev.projects.get(n) !== table.projects.get(n);
            assert.equal(changed.includes(n), differs, `changed lists "${n}" iff its route differs`);
          }
          assert.ok(Object.isFrozen(table));
          prev = table;
        }
      }),
      { numRuns: 300 },
    );
  });

  test('a published table never changes when later changes are applied', () => {
    fc.assert(
      fc.property(fc.array(arbRecord, { minLength: 1, maxLength: 30 }), (records) => {
        const builder = new RouteTableBuilder(DEFAULT_CONVENTIONS);
        const first = builder.apply({ removed: [], added: records }, [], 1, 1).table;
        const before = canon(first);
        builder.apply({ removed: records.slice(0, records.length >> 1), added: [] }, [], 2, 2);
        builder.apply({ removed: [], added: records.slice(0, 3).map((r) => ({ ...r })) }, [], 3, 3);
        assert.deepEqual(canon(first), before);
      }),
      { numRuns: 100 },
    );
  });

  test('source problems are carried through, and reused while the same array is passed', () => {
    const builder = new RouteTableBuilder(DEFAULT_CONVENTIONS);
    const problems = [{ object: 'service x/y', severity: 'warning' as const, code: 'c', message: 'm' }];
    const a = builder.apply({ removed: [], added: [] }, problems, 1, 1).table;
    const b = builder.apply({ removed: [], added: [] }, problems, 2, 2).table;
    assert.deepEqual(a.problems, problems);
    assert.equal(a.problems, b.problems, 'no change, same array');
  });
});

describe('LayeredMap', () => {
  test('behaves as a Map under any sequence of changes; older versions stay as they were', () => {
    // Keys up to 200 and batches up to 120: the changed layer grows past the fold threshold (64).
    const arbChange = fc.tuple(fc.integer({ min: 0, max: 200 }), fc.option(fc.nat(), { nil: undefined }));
    fc.assert(
      fc.property(
        fc.array(fc.array(arbChange, { maxLength: 120 }), { maxLength: 12 }),
        fc.array(fc.integer({ min: 0, max: 200 }), { maxLength: 20 }),
        (batches, seed) => {
          let m = LayeredMap.from<number, number>(seed.map((k) => [k, k]));
          const ref = new Map<number, number>(seed.map((k) => [k, k]));
          const versions: [LayeredMap<number, number>, [number, number][]][] = [];
          for (const batch of batches) {
            m = m.with(batch);
            for (const [k, v] of batch) {
              if (v === undefined) ref.delete(k);
              else ref.set(k, v);
            }
            const entries = [...m].sort((a, b) => a[0] - b[0]);
            assert.deepEqual(
              entries,
              [...ref].sort((a, b) => a[0] - b[0]),
            );
            assert.equal(m.size, ref.size);
            for (let k = 0; k <= 200; k++) {
              assert.equal(m.get(k), ref.get(k));
              assert.equal(m.has(k), ref.has(k));
            }
            const pairs = [...m.entries()];
            assert.deepEqual(
              [...m.keys()],
              pairs.map(([k]) => k),
            );
            assert.deepEqual(
              [...m.values()],
              pairs.map(([, v]) => v),
            );
            let n = 0;
            m.forEach(() => {
              n++;
            });
            assert.equal(n, m.size);
            versions.push([m, entries]);
          }
          for (const [v, entries] of versions)
            assert.deepEqual(
              [...v].sort((a, b) => a[0] - b[0]),
              entries,
            );
        },
      ),
      { numRuns: 300 },
    );
  });
});
