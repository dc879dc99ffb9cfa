// The aggregator: the one place name conflicts are resolved, across sources, at the cost of what
// changed. (The property test in test/routing/incremental.test.ts checks it against a naive reading
// of the rule under random histories; these are the cases by name.)

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { Aggregator, NAMES_OWNER } from '../../src/control/aggregator.ts';
import type { KubeObject } from '../../src/discovery/k8s-types.ts';
import { translateAll } from '../../src/discovery/translate.ts';
import type { Problem } from '../../src/model/problem.ts';
import type { ProjectChange } from '../../src/model/snapshot.ts';
import { projectRecord } from '../support/records.ts';
import { TestSource } from '../support/sources.ts';

function harness(...names: string[]) {
  const changes: ProjectChange[] = [];
  const problems = new Map<string, readonly Problem[]>();
  const agg = new Aggregator({
    onChange: (c) => changes.push(c),
    onProblems: (owner, list) => problems.set(owner, list),
  });
  const sources = names.map((n) => {
    const s = new TestSource(n);
    agg.add(s);
    return s;
  });
  const winners = () => [...agg.winners()].map((r) => `${r.name} ${r.origin}`).sort();
  return { agg, sources, changes, problems, winners };
}

const svc = (name: string, origin: string, created = '2026-01-01T00:00:00Z') =>
  projectRecord(name, origin, { created });

describe('Aggregator', () => {
  test('two Services claim a name: the older wins, the other is a Problem naming the label', () => {
    const dir = join(import.meta.dirname, '../fixtures/discovery/conflict');
    const docs = parseAllDocuments(readFileSync(join(dir, 'input.yaml'), 'utf8')).map(
      (d) => d.toJS() as KubeObject,
    );
    const h = harness('kubernetes');
    h.sources[0].reset(translateAll(docs).projects);
    // Equal ages: the smaller origin wins, so every replica agrees.
    assert.deepEqual(h.winners(), ['pay a/pay', 'same y/same']);
    assert.deepEqual(h.problems.get(NAMES_OWNER), [
      {
        object: 'service b/pay-new',
        field: 'metadata.labels.wharf.io/project',
        severity: 'error',
        code: 'name-conflict',
        message: 'project "pay" is already claimed by the older service a/pay; this one is ignored',
      },
      {
        object: 'service z/same',
        field: 'metadata.labels.wharf.io/project',
        severity: 'error',
        code: 'name-conflict',
        message: 'project "same" is already claimed by the older service y/same; this one is ignored',
      },
    ]);
  });

  test('the loser takes over when the winner goes, as one change; the Problem goes with it', () => {
    const h = harness('kubernetes');
    const old = svc('pay', 'a/pay', '2025-01-01T00:00:00Z');
    const young = svc('pay', 'b/pay', '2026-01-01T00:00:00Z');
    h.sources[0].change([], [young]);
    h.sources[0].change([], [old]);
    assert.deepEqual(h.changes, [
      { removed: [], added: [young] },
      { removed: [young], added: [old] },
    ]);
    assert.equal(h.problems.get(NAMES_OWNER)?.length, 1);
    h.sources[0].change([old], []);
    assert.deepEqual(h.changes.at(-1), { removed: [old], added: [young] });
    assert.deepEqual(h.problems.get(NAMES_OWNER), []);
    // A change that touches no winner changes nothing downstream.
    const n = h.changes.length;
    h.sources[0].change([old], []);
    assert.equal(h.changes.length, n, 'removing what is not there is not a change');
  });

  test('a source registered earlier wins whatever the age, and the Problem says why', () => {
    const h = harness('config', 'kubernetes');
    const k8s = svc('shop', 'ns/shop', '2020-01-01T00:00:00Z');
    const conf = projectRecord('shop', 'config', { created: '2026-01-01T00:00:00Z' });
    h.sources[1].change([], [k8s]);
    h.sources[0].reset([conf]);
    assert.deepEqual(h.winners(), ['shop config']);
    assert.deepEqual(h.problems.get(NAMES_OWNER), [
      {
        object: 'service ns/shop',
        field: 'metadata.labels.wharf.io/project',
        severity: 'error',
        code: 'name-conflict',
        message:
          'project "shop" is already claimed by project shop from config, which ranks before kubernetes; this one is ignored',
      },
    ]);
  });

  test('a name that is not a DNS label claims nothing and is a Problem while it lasts', () => {
    const h = harness('demo');
    const bad = projectRecord('Not_A_Label', 'demo');
    h.sources[0].reset([bad, projectRecord('ok', 'demo')]);
    assert.deepEqual(h.winners(), ['ok demo']);
    assert.deepEqual(
      h.problems.get(NAMES_OWNER)?.map((p) => [p.object, p.field, p.code]),
      [['project Not_A_Label', 'projects.Not_A_Label', 'bad-project-name']],
    );
    h.sources[0].reset([]);
    assert.deepEqual(h.problems.get(NAMES_OWNER), []);
    assert.deepEqual(h.winners(), []);
  });

  test('a reset is diffed by identity: the same objects again change nothing', () => {
    const h = harness('config');
    const a = projectRecord('a', 'config');
    const b = projectRecord('b', 'config');
    h.sources[0].reset([a, b]);
    h.sources[0].reset([a, b]);
    const b2 = { ...b };
    h.sources[0].reset([a, b2]);
    assert.deepEqual(h.changes, [
      { removed: [], added: [a, b] },
      { removed: [b], added: [b2] },
    ]);
    assert.equal(h.changes[1].added[0], b2);
  });

  test("a source's own Problems are kept under its name, reported only when they change", () => {
    const reported: string[] = [];
    const agg = new Aggregator({ onChange: () => {}, onProblems: (owner) => reported.push(owner) });
    const s = new TestSource('kubernetes');
    agg.add(s);
    const problems = [{ object: 'service x/y', severity: 'warning' as const, code: 'c', message: 'm' }];
    s.change([], [], problems);
    s.change([], [svc('p', 'x/p')], problems);
    assert.deepEqual(reported, ['kubernetes'], 'the same array again is no change');
    s.change([], [], []);
    assert.deepEqual(reported, ['kubernetes', 'kubernetes']);
  });
});
