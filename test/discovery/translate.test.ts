// Golden files: test/fixtures/discovery/<case>/input.yaml (Kubernetes YAML) -> expected.json.
// Regenerate after an intended change with UPDATE_GOLDEN=1 and review the diff.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { type KubeObject, type Service, trimService } from '../../src/discovery/k8s-types.ts';
import { translateAll, translateService, trimSlice } from '../../src/discovery/translate.ts';

const DIR = join(import.meta.dirname, '../fixtures/discovery');

describe('translate: golden files', () => {
  const cases = readdirSync(DIR).filter((d) => existsSync(join(DIR, d, 'input.yaml')));
  test('there are golden cases', () => assert.ok(cases.length >= 8));
  for (const c of cases) {
    test(c, () => {
      const docs = parseAllDocuments(readFileSync(join(DIR, c, 'input.yaml'), 'utf8')).map(
        (d) => d.toJS() as KubeObject,
      );
      // As JSON: records hold maps without Object.prototype, which the golden files cannot express.
      const got = JSON.parse(JSON.stringify(translateAll(docs.filter(Boolean))));
      const file = join(DIR, c, 'expected.json');
      const text = `${JSON.stringify(got, null, 2)}\n`;
      if (process.env.UPDATE_GOLDEN === '1') writeFileSync(file, text);
      assert.deepEqual(got, JSON.parse(readFileSync(file, 'utf8')));
      // What discovery keeps of each object (trimService, trimSlice) translates the same.
      const trimmed = docs
        .filter(Boolean)
        .map((d) =>
          d.kind === 'Service'
            ? { kind: d.kind, ...trimService(d) }
            : d.kind === 'EndpointSlice'
              ? { kind: d.kind, ...trimSlice(d) }
              : d,
        );
      assert.deepEqual(JSON.parse(JSON.stringify(translateAll(trimmed))), got);
    });
  }
});

describe('translate: robustness', () => {
  test('garbage never throws: what can be used is routed, the rest is a Problem naming where', () => {
    const slices = [
      { metadata: {}, ports: [null as never, { name: 'a', port: null }], endpoints: [null as never, {}] },
      {
        metadata: {},
        ports: [{ name: 'a', port: 1 }],
        endpoints: [{ addresses: ['1.2.3.4'], conditions: null }],
      },
    ];
    const label = { labels: { 'wharf.io/project': 'x' } };
    const problem = (field: string, code: string, message: string) => ({
      object: 'service default/',
      field,
      severity: 'warning',
      code,
      message,
    });
    const noPorts = problem('spec.ports', 'no-ports', 'the Service has no ports, so nothing can be routed');
    const unnamed = (i: number) =>
      problem(
        `spec.ports[${i}]`,
        'unnamed-port',
        'port ? has no name; Wharf routes by port name, so it is not routed',
      );
    // The first slice's garbage is reported on the Service, naming what could not be used.
    const badSlice = problem(
      'endpointslice ',
      'bad-endpointslice',
      'not routed: ports[0] is not an object; ports[1] (a): port missing is not a port number from 1 to 65535; endpoints[0] is not an object',
    );
    const cases: [unknown, readonly string[], number, unknown[]][] = [
      // [Service, its routed ports, instances, problems]
      [{ metadata: label }, [], 0, [noPorts, badSlice]],
      [{ metadata: label, spec: { ports: null } }, [], 0, [noPorts, badSlice]],
      // Only the named port is routed; the slice's null port and null endpoint are skipped, and a
      // null `conditions` counts as ready.
      [
        { metadata: label, spec: { ports: [null, {}, { name: 'a' }] } },
        ['a'],
        1,
        [unnamed(0), unnamed(1), badSlice],
      ],
    ];
    for (const [svc, ports, instances, problems] of cases) {
      const r = translateService(svc as Service, slices);
      assert.equal(r.record?.name, 'x');
      assert.equal(r.record?.origin, 'default/');
      assert.deepEqual(r.record?.ports, ports);
      assert.equal(r.record?.instances.length, instances);
      assert.deepEqual(r.problems, problems);
    }
    const inst = translateService(cases[2][0] as Service, slices).record!.instances[0];
    // Maps keyed by data have no prototype (a port named __proto__ is a port): compared as plain data.
    assert.deepEqual(JSON.parse(JSON.stringify(inst)), {
      name: '1-2-3-4',
      addresses: { a: { host: '1.2.3.4', port: 1 } },
      draining: false,
    });
  });

  test('same inputs in any order give the same record', () => {
    const docs = parseAllDocuments(readFileSync(join(DIR, 'multi-slice', 'input.yaml'), 'utf8')).map(
      (d) => d.toJS() as KubeObject,
    );
    const got = translateAll(docs);
    assert.equal(got.projects.length, 1);
    assert.ok(got.projects[0].instances.length > 1, 'a case with several instances from several slices');
    const json = (v: unknown) => JSON.parse(JSON.stringify(v));
    assert.deepEqual(json(translateAll([...docs].reverse())), json(got));
  });

  test('two Services claiming one name are both translated; the aggregator resolves them', () => {
    const docs = parseAllDocuments(readFileSync(join(DIR, 'conflict', 'input.yaml'), 'utf8')).map(
      (d) => d.toJS() as KubeObject,
    );
    const got = translateAll(docs);
    assert.deepEqual(got.projects.map((p) => `${p.name} ${p.origin}`).sort(), [
      'pay a/pay',
      'pay b/pay-new',
      'same y/same',
      'same z/same',
    ]);
    assert.deepEqual(got.problems, []);
  });
});
