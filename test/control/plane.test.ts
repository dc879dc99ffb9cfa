// The control plane's parts by themselves: readiness from source states, Problems per owner beside
// the table, the static source's identity rule, one TableSwapped per swap and none without a
// change, and upstream pools reconciled from the swap.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ControlPlane } from '../../src/control/plane.ts';
import { ProblemBoard } from '../../src/control/problems.ts';
import { readiness } from '../../src/control/readiness.ts';
import { StaticSource } from '../../src/control/static-source.ts';
import type { WharfEvent } from '../../src/model/events.ts';
import type { Problem } from '../../src/model/problem.ts';
import type { Endpoint, TableSwapped } from '../../src/model/routes.ts';
import type { SourceStatus, SourceUpdate } from '../../src/model/source.ts';
import { UpstreamPools } from '../../src/proxy/upstreams.ts';
import { DEFAULT_CONVENTIONS } from '../../src/routing/build.ts';
import { DEFAULT_SETTINGS } from '../../src/routing/settings.ts';
import { projectRecord } from '../support/records.ts';

const problem = (object: string, code = 'c'): Problem => ({ object, severity: 'error', code, message: 'm' });
const at = (name: string, status: SourceStatus) => ({ name, status });
const clock = { now: () => 1000 };

function record(name: string, hosts: string[], settings: Record<string, string> = {}) {
  return projectRecord(name, 'config', {
    settings,
    instances: hosts.map((h, i) => ({
      name: `${name}-${i}`,
      addresses: { http: { host: h, port: 80 } },
      draining: false,
    })),
  });
}

describe('readiness', () => {
  test('not ready while any source is syncing, naming each with its reason', () => {
    const r = readiness({
      stopping: false,
      sources: [
        at('config', { state: 'synced' }),
        at('kubernetes', { state: 'syncing', reason: 'HTTP 403' }),
        at('consul', { state: 'syncing' }),
      ],
      gates: [() => assert.fail('gates wait for the sources')],
    });
    assert.deepEqual(r, {
      ready: false,
      status: 'starting',
      reasons: [
        'kubernetes: waiting for the first complete sync (HTTP 403)',
        'consul: waiting for the first complete sync',
      ],
    });
  });

  test('then the gates in order; degraded sources keep it ready; stopping wins over all', () => {
    const synced = [at('kubernetes', { state: 'synced' })];
    const gates = [() => undefined, () => 'tls: no certificate to serve yet', () => 'later'];
    assert.deepEqual(readiness({ stopping: false, sources: synced, gates }), {
      ready: false,
      status: 'starting',
      reasons: ['tls: no certificate to serve yet'],
    });
    const degraded = [at('kubernetes', { state: 'degraded', reason: 'connect ECONNREFUSED' })];
    assert.deepEqual(readiness({ stopping: false, sources: degraded }), {
      ready: true,
      status: 'degraded',
      reasons: ['kubernetes: connect ECONNREFUSED'],
    });
    assert.deepEqual(readiness({ stopping: false, sources: synced }), {
      ready: true,
      status: 'ok',
      reasons: [],
    });
    assert.equal(readiness({ stopping: true, sources: degraded }).status, 'stopping');
    assert.equal(readiness({ stopping: true, sources: degraded }).ready, false);
  });
});

describe('ProblemBoard', () => {
  test('each owner replaces its own list; the flat list is one array until something changes', () => {
    const rank = ['config', 'routing', 'tls'];
    const board = new ProblemBoard((o) => rank.indexOf(o));
    const seen: (readonly Problem[])[] = [];
    board.onChange((all) => seen.push(all));
    const tls = [problem('certificate a')];
    board.set('tls', tls);
    board.set('config', [problem('project x')]);
    board.set('tls', tls);
    board.set('routing', []);
    assert.equal(seen.length, 2, 'the same array again, or empty for nothing, is no change');
    assert.deepEqual(
      board.list().map((p) => p.object),
      ['project x', 'certificate a'],
      'in owner order',
    );
    const before = board.list();
    assert.equal(board.list(), before);
    board.set('tls', []);
    assert.deepEqual(
      board.list().map((p) => p.object),
      ['project x'],
    );
  });
});

describe('ControlPlane', () => {
  test('a Problem of another owner (a certificate) reaches the list and the events, and rebuilds nothing', () => {
    const events: WharfEvent[] = [];
    const control = new ControlPlane({
      conventions: DEFAULT_CONVENTIONS,
      clock,
      emit: (e) => events.push(e),
    });
    const swaps: TableSwapped[] = [];
    control.onSwap((s) => swaps.push(s));
    control.set('config', [record('shop', ['10.0.0.1'])]);
    const table = control.table();
    assert.equal(swaps.length, 1);
    control.problems.set('tls', [problem('certificate a', 'bad-certificate')]);
    assert.equal(control.table(), table, 'the same table');
    assert.equal(swaps.length, 1, 'no swap');
    assert.deepEqual(
      control.problems.list().map((p) => p.code),
      ['bad-certificate'],
    );
    assert.deepEqual(
      events.map((e) => e.type),
      ['routes', 'problems'],
    );
  });

  test('one TableSwapped per swap with what changed; a publish that changes no route swaps nothing', () => {
    const control = new ControlPlane({ conventions: DEFAULT_CONVENTIONS, clock });
    const swaps: TableSwapped[] = [];
    control.onSwap((s) => swaps.push(s));
    control.set('config', [record('a', ['10.0.0.1', '10.0.0.2']), record('b', ['10.0.0.3'])]);
    const s1 = swaps[0];
    assert.deepEqual([...s1.changed].sort(), ['a', 'b']);
    assert.equal(s1.added.length, 3);
    assert.equal(s1.endpoints, 3);
    control.set('config', [record('a', ['10.0.0.1', '10.0.0.2']), record('b', ['10.0.0.4'])]);
    const s2 = swaps[1];
    assert.deepEqual(s2.changed, ['b']);
    assert.deepEqual(
      [s2.added.map((e) => e.id), s2.removed.map((e) => e.id)],
      [['b/http/b-0@10.0.0.4:80'], ['b/http/b-0@10.0.0.3:80']],
    );
    assert.equal(
      s2.next.projects.get('a'),
      s1.next.projects.get('a'),
      'an unchanged project keeps its route',
    );
    assert.equal(s2.next.version, s1.next.version + 1);
    // Equal records again (a reload of the same projects): the static source keeps the old objects.
    control.set('config', [record('a', ['10.0.0.1', '10.0.0.2']), record('b', ['10.0.0.4'])]);
    assert.equal(swaps.length, 2, 'no swap');
    // New conventions rebuild everything, and only if they differ.
    control.setConventions({ ...DEFAULT_CONVENTIONS });
    assert.equal(swaps.length, 2);
    control.setConventions({ tier: 'internal', defaults: { ...DEFAULT_SETTINGS, retries: 0 } });
    assert.equal(swaps.length, 3);
    assert.deepEqual([...swaps[2].changed].sort(), ['a', 'b']);
    assert.equal(swaps[2].next.projects.get('a')?.settings.retries, 0);
  });

  test('source states are events, and readiness reads them', () => {
    const events: WharfEvent[] = [];
    const control = new ControlPlane({
      conventions: DEFAULT_CONVENTIONS,
      clock,
      emit: (e) => events.push(e),
    });
    let status: SourceStatus = { state: 'syncing' };
    let onStatus: (s: SourceStatus) => void = () => {};
    control.add({
      name: 'consul',
      get status() {
        return status;
      },
      onUpdate: (_l: (u: SourceUpdate) => void) => () => {},
      onStatus: (l) => {
        onStatus = l;
        return () => {};
      },
      start() {},
      async stop() {},
    });
    assert.equal(control.readiness(false).status, 'starting');
    status = { state: 'degraded', reason: 'agent away' };
    onStatus(status);
    assert.deepEqual(control.readiness(false), {
      ready: true,
      status: 'degraded',
      reasons: ['consul: agent away'],
    });
    // A degraded source's view may be stale: a Problem says so, and goes when it is synced again.
    const stale = {
      object: 'consul',
      severity: 'warning',
      code: 'stale-view',
      message: 'the routes may be stale: agent away. The last good state keeps serving.',
    };
    assert.deepEqual(events, [
      { type: 'source', time: 1000, source: 'consul', state: 'degraded', reason: 'agent away' },
      { type: 'problems', time: 1000, problems: [stale] },
    ]);
    status = { state: 'synced' };
    onStatus(status);
    assert.deepEqual(control.problems.list(), []);
  });
});

describe('StaticSource', () => {
  test('publishes resets; an equal record keeps the object it replaces', () => {
    const s = new StaticSource('config', [record('a', ['10.0.0.1'])]);
    const updates: SourceUpdate[] = [];
    s.onUpdate((u) => updates.push(u));
    const first = updates[0].added[0];
    s.set([record('a', ['10.0.0.1']), record('b', ['10.0.0.2'])]);
    assert.equal(updates[1].reset, true);
    assert.equal(updates[1].added[0], first, 'equal: the same object');
    s.set([record('a', ['10.0.0.9'])]);
    assert.notEqual(updates[2].added[0], first, 'changed: the new object');
    assert.equal(s.status.state, 'synced');
  });
});

describe('UpstreamPools.reconcile', () => {
  test('a pool closes when the last endpoint at its address leaves, not before', async () => {
    const pools = new UpstreamPools({ connections: 1, connectTimeoutMs: 100, idleTimeoutMs: 100 });
    const ep = (id: string, address: string) => ({ id, address }) as Endpoint;
    const a1 = ep('a/http/a-0@127.0.0.1:1', '127.0.0.1:1');
    const b1 = ep('b/http/b-0@127.0.0.1:1', '127.0.0.1:1');
    pools.reconcile({ added: [a1, b1], removed: [] });
    const pool = pools.get('127.0.0.1:1');
    pools.reconcile({ added: [], removed: [a1] });
    assert.equal(pools.get('127.0.0.1:1'), pool, 'still used by b');
    assert.equal(pool.pool.closed, false);
    pools.reconcile({ added: [], removed: [b1] });
    assert.equal(pool.pool.closed, true, 'closed once nothing uses it');
    assert.notEqual(pools.get('127.0.0.1:1'), pool, 'a later request gets a new pool');
    await pools.destroy();
  });
});
