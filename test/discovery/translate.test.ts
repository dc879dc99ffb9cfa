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
  test('never throws on garbage', () => {
    const bad: unknown[] = [
      { metadata: { labels: { 'wharf.io/project': 'x' } } },
      { metadata: { labels: { 'wharf.io/project': 'x' } }, spec: { ports: null } },
      { metadata: { labels: { 'wharf.io/project': 'x' } }, spec: { ports: [null, {}, { name: 'a' }] } },
    ];
    for (const svc of bad) {
      const r = translateService(svc as Service, [
        { metadata: {}, ports: [null as never, { name: 'a', port: null }], endpoints: [null as never, {}] },
        {
          metadata: {},
          ports: [{ name: 'a', port: 1 }],
          endpoints: [{ addresses: ['1.2.3.4'], conditions: null }],
        },
      ]);
      assert.ok(Array.isArray(r.problems));
    }
  });
  test('same inputs in any order give the same record', () => {
    const docs = parseAllDocuments(readFileSync(join(DIR, 'multi-slice', 'input.yaml'), 'utf8')).map(
      (d) => d.toJS() as KubeObject,
    );
    const json = (v: unknown) => JSON.parse(JSON.stringify(v));
    assert.deepEqual(json(translateAll([...docs].reverse())), json(translateAll(docs)));
  });
});
