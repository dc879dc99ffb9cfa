// Incremental route-table builds (issue 3's scale targets, the identity rule of model/source.ts):
// sources publishing any sequence of changes through the control plane (aggregator -> incremental
// builder -> swap) give the same table and Problems as a fresh build of the final records; the
// swap's `changed` names exactly the projects whose route object differs (the rest are shared),
// and its endpoint lists are exactly what came and went. LayeredMap, the structure that makes a swap
// cost O(change), behaves as a Map and never changes a published version.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { ControlPlane } from '../../src/control/plane.ts';
import type { Problem } from '../../src/model/problem.ts';
import type { PortRoute, ProjectRoute, RouteTable, TableSwapped } from '../../src/model/routes.ts';
import type { InstanceRecord, ProjectRecord } from '../../src/model/snapshot.ts';
import { type Conventions, DEFAULT_CONVENTIONS, RouteTableBuilder } from '../../src/routing/build.ts';
import { systemClock } from '../../src/util/clock.ts';
import { LayeredMap } from '../../src/util/layered-map.ts';
import { projectRecord } from '../support/records.ts';
import { TestSource } from '../support/sources.ts';

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

/** A record and the source that publishes it: 0 the config file (ranks first), 1 Kubernetes. */
interface Tagged {
  readonly source: number;
  readonly record: ProjectRecord;
}

const arbRecord = fc
  .record({
    name: fc.constantFrom(...NAMES),
    source: fc.constantFrom(1, 1, 0),
    ns: fc.constantFrom('ns1', 'ns2', 'ns3'),
    created: fc.constantFrom('2025-01-01T00:00:00Z', '2026-01-01T00:00:00Z'),
    ports: fc.constantFrom(['http'], ['http', 'grpc'], ['grpc', 'http'], ['grpc'], []),
    settings: fc.constantFrom(...SETTINGS),
    instances: fc.array(arbInstance, { maxLength: 4 }),
  })
  .map((r): Tagged => {
    const instances = r.instances.map((i, k): InstanceRecord => {
      const addresses: Record<string, { host: string; port: number }> = {};
      if (i.http) addresses.http = { host: `10.0.${k}.${i.http}`, port: 80 };
      if (i.grpc) addresses.grpc = { host: `10.0.${k}.${i.grpc}`, port: 90 };
      return { name: i.name, ...(i.uid ? { uid: i.uid } : {}), addresses, draining: i.draining };
    });
    const origin = r.source === 0 ? 'config' : `${r.ns}/${r.name}`;
    const { created, ports, settings } = r;
    return {
      source: r.source,
      record: projectRecord(r.name, origin, { created, ports, settings, instances }),
    };
  });

type Op =
  | { kind: 'add'; tagged: Tagged }
  | { kind: 'remove'; pick: number }
  | { kind: 'replace'; pick: number; record: ProjectRecord }
  | { kind: 'relist'; pick: number }
  | { kind: 'reset'; source: number };

const arbOp: fc.Arbitrary<Op> = fc.oneof(
  arbRecord.map((tagged) => ({ kind: 'add' as const, tagged })),
  fc.nat().map((pick) => ({ kind: 'remove' as const, pick })),
  // The replacement stays in the source of the record it replaces (a Service changed).
  fc.tuple(fc.nat(), arbRecord).map(([pick, t]) => ({ kind: 'replace' as const, pick, record: t.record })),
  // An equal record as a new object (a relist): routing must give equal routes.
  fc.nat().map((pick) => ({ kind: 'relist' as const, pick })),
  // The source publishes everything it has as a reset (a first publish, a late subscriber).
  fc.constantFrom(0, 1).map((source) => ({ kind: 'reset' as const, source })),
);

// A batch of ops is one publish per source (coalesced).
const arbHistory = fc.array(fc.array(arbOp, { minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 25 });

const SOURCE_NAMES = ['config', 'kubernetes'];

function plane(conv: Conventions, initial: readonly ProjectRecord[][] = [[], []]) {
  const control = new ControlPlane({ conventions: conv, clock: systemClock });
  const sources = SOURCE_NAMES.map((n) => control.add(new TestSource(n)));
  sources.forEach((s, i) => {
    s.publish({ reset: true, removed: [], added: initial[i], problems: [] });
  });
  return { control, sources };
}

/**
 * The winners by a naive reading of the rule (the aggregator's comment): a valid DNS label, then the
 * source registered first, then the older record, then the smaller origin.
 */
function naiveWinners(live: Tagged[]): string[] {
  const best = new Map<string, Tagged>();
  const before = (a: Tagged, b: Tagged) =>
    a.source !== b.source
      ? a.source < b.source
      : a.record.created !== b.record.created
        ? a.record.created < b.record.created
        : a.record.origin < b.record.origin;
  for (const t of live) {
    if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(t.record.name)) continue;
    const cur = best.get(t.record.name);
    if (!cur || before(t, cur)) best.set(t.record.name, t);
  }
  return [...best.values()].map((t) => `${t.record.name}:${t.record.origin}`).sort();
}

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

function canon(t: RouteTable, problems: readonly Problem[]) {
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
    problems: problems.map((p) => JSON.stringify(p)).sort(),
    forwardTo: t.forwardTo,
    forward: t.forward && canonPort(t.forward),
  };
}

/** Every endpoint id of a table, the forward route's included. */
function endpointIds(t: RouteTable): Set<string> {
  const ids = new Set<string>();
  for (const p of t.projects.values())
    for (const r of p.ports.values()) for (const e of r.endpoints) ids.add(e.id);
  for (const e of t.forward?.endpoints ?? []) ids.add(e.id);
  return ids;
}

// ---------------------------------------------------------------- properties

describe('control plane: incremental equals full', () => {
  test('any sequence of publishes by two sources gives what a fresh build of the final records gives', () => {
    fc.assert(
      fc.property(fc.constantFrom(...CONVENTIONS), arbHistory, (conv, history) => {
        const { control, sources } = plane(conv);
        const swaps: TableSwapped[] = [];
        control.onSwap((s) => swaps.push(s));
        let live: Tagged[] = [];
        for (const batch of history) {
          const removed: ProjectRecord[][] = [[], []];
          const added: ProjectRecord[][] = [[], []];
          const reset = [false, false];
          for (const op of batch) {
            if (op.kind === 'add') {
              live.push(op.tagged);
              added[op.tagged.source].push(op.tagged.record);
              continue;
            }
            if (op.kind === 'reset') {
              reset[op.source] = true;
              continue;
            }
            if (live.length === 0) continue;
            const i = op.pick % live.length;
            const old = live[i];
            const next =
              op.kind === 'replace' ? op.record : op.kind === 'relist' ? { ...old.record } : undefined;
            live = live.filter((_, j) => j !== i);
            // A record added and removed in one batch is in neither list (as sources publish it).
            const a = added[old.source].indexOf(old.record);
            if (a >= 0) added[old.source].splice(a, 1);
            else removed[old.source].push(old.record);
            if (next) {
              live.push({ source: old.source, record: next });
              added[old.source].push(next);
            }
          }
          const before = swaps.length;
          const tableBefore = control.table();
          sources.forEach((src, s) => {
            const all = live.filter((t) => t.source === s).map((t) => t.record);
            if (reset[s]) src.publish({ reset: true, removed: [], added: all, problems: [] });
            else src.publish({ reset: false, removed: removed[s], added: added[s], problems: [] });
          });
          const table = control.table();
          const full = plane(
            conv,
            [0, 1].map((s) => live.filter((t) => t.source === s).map((t) => t.record)),
          ).control;
          assert.deepEqual(canon(table, control.problems.list()), canon(full.table(), full.problems.list()));
          assert.deepEqual(
            [...table.projects.values()].map((p) => `${p.name}:${p.origin}`).sort(),
            naiveWinners(live).filter((w) => table.projects.has(w.slice(0, w.indexOf(':')))),
            "the winners are the rule's",
          );
          assert.ok(Object.isFrozen(table));
          // Each swap's `changed` is exactly the names whose route object differs, and its endpoint
          // lists exactly what came and went.
          for (const s of swaps.slice(before)) {
            const names = new Set([...s.prev.projects.keys(), ...s.next.projects.keys()]);
            for (const n of names) {
              const differs = s.prev.projects.get(n) !== s.next.projects.get(n);
              assert.equal(s.changed.includes(n), differs, `changed lists "${n}" iff its route differs`);
            }
            const a = endpointIds(s.prev);
            const b = endpointIds(s.next);
            assert.deepEqual(s.added.map((e) => e.id).sort(), [...b].filter((id) => !a.has(id)).sort());
            assert.deepEqual(s.removed.map((e) => e.id).sort(), [...a].filter((id) => !b.has(id)).sort());
            assert.equal(s.endpoints, b.size);
            assert.ok(s.next.version > s.prev.version);
          }
          if (swaps.length === before) assert.equal(table, tableBefore, 'no swap, same table');
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('RouteTableBuilder', () => {
  test('a published table never changes when later changes are applied', () => {
    fc.assert(
      fc.property(fc.array(arbRecord, { minLength: 1, maxLength: 30 }), (tagged) => {
        const records = tagged.map((t) => t.record);
        const builder = new RouteTableBuilder(DEFAULT_CONVENTIONS);
        const first = builder.apply({ removed: [], added: records }, 1);
        const before = canon(first.table, first.problems);
        builder.apply({ removed: records.slice(0, records.length >> 1), added: [] }, 2);
        builder.apply({ removed: [], added: records.slice(0, 3).map((r) => ({ ...r })) }, 3);
        assert.deepEqual(canon(first.table, first.problems), before);
      }),
      { numRuns: 100 },
    );
  });

  test('the same record object is not built again; an equal new object is, to an equal route', () => {
    const builder = new RouteTableBuilder(DEFAULT_CONVENTIONS);
    const rec = projectRecord('shop', 'ns/shop', {
      instances: [{ name: 'p-0', addresses: { http: { host: '10.0.0.1', port: 80 } }, draining: false }],
    });
    const a = builder.apply({ removed: [], added: [rec] }, 1);
    const same = builder.apply({ removed: [rec], added: [rec] }, 2);
    assert.deepEqual(same.changed, [], 'the same object: nothing changed');
    assert.equal(same.table.projects.get('shop'), a.table.projects.get('shop'));
    const copy = { ...rec };
    const b = builder.apply({ removed: [rec], added: [copy] }, 3);
    assert.deepEqual(b.changed, ['shop'], 'a new object is built again');
    assert.notEqual(b.table.projects.get('shop'), a.table.projects.get('shop'));
    assert.deepEqual(canon(b.table, []), { ...canon(a.table, []) });
  });

  test('routing Problems are the same array while they do not change', () => {
    const builder = new RouteTableBuilder(DEFAULT_CONVENTIONS);
    const bad = projectRecord('shop', 'ns/shop', { settings: { retries: 'many' } });
    const a = builder.apply({ removed: [], added: [bad] }, 1);
    const b = builder.apply({ removed: [], added: [projectRecord('other', 'ns/other')] }, 2);
    assert.equal(a.problems.length, 1);
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
