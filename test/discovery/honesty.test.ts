// Issue 25's honesty invariant: while the view of the cluster may be stale (relisting, backing off,
// a watch that cannot resume), /readyz says degraded and /api/problems says why; the metrics count
// every rejected line and every relist. Through the whole observed Wharf (admin API and /metrics).

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { parseConfig } from '../../src/config/load.ts';
import { FakeApiServer, service } from '../../src/fake-apiserver/index.ts';
import { startObserved } from '../../src/observed.ts';
import { parseExposition, value } from '../observe/prom-text.ts';
import { until } from './helpers.ts';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Ready {
  status: string;
  reasons: string[];
}

describe('issue 25: the admin API and the metrics say when the view may be stale', () => {
  test('a 410 storm: degraded with the reason and a stale-view Problem, then ok again; lines and relists counted', async () => {
    const api = await new FakeApiServer({ bookmarkIntervalMs: 60_000 }).start();
    cleanups.push(() => api.close());
    api.apply(service('shop'));
    const dir = mkdtempSync(join(tmpdir(), 'wharf-honesty-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const config = parseConfig(
      JSON.stringify({
        listen: '127.0.0.1:0',
        admin: '127.0.0.1:0',
        domain: 't.local',
        kubernetes: { apiservers: [api.url] },
      }),
      'test',
    );
    const { wharf, obs } = await startObserved({
      config,
      logs: { dir },
      discovery: {
        backoffInitialMs: 20,
        backoffMaxMs: 200,
        relistBackoffInitialMs: 300,
        relistBackoffMaxMs: 600,
        coalesceMs: 2,
      },
    });
    cleanups.push(() => obs.close());
    cleanups.push(() => wharf.stop(100));
    const admin = `http://127.0.0.1:${wharf.adminAddress.port}`;
    const ready = async () => (await fetch(`${admin}/readyz`)).json() as Promise<Ready>;
    const problems = async () =>
      (
        (await (await fetch(`${admin}/api/problems`)).json()) as {
          problems: { code: string; message: string }[];
        }
      ).problems;
    const metric = async (name: string, labels: Record<string, string>) =>
      value(parseExposition(await (await fetch(`${admin}/metrics`)).text()), name, labels) ?? 0;

    await until(async () => (await ready()).status === 'ok', 5000, 'ready');
    assert.deepEqual(await problems(), []);

    // A line that is not JSON on the Services watch: counted, and a relist.
    await until(() => api.watchCount === 2, 3000, 'watching');
    api.injectLine('{"type":\n', 'services');
    await until(
      async () =>
        (await metric('wharf_discovery_rejected_total', { resource: 'services', reason: 'unparsable' })) ===
          1 &&
        (await metric('wharf_discovery_relists_total', { resource: 'services', reason: 'broken-stream' })) ===
          1,
      3000,
      'rejected line and relist counted',
    );

    // Every watch answered 410 from now on.
    api.failNext(10_000, 410, 'too old resource version', { match: (p) => p.includes('watch=true') });
    api.endAllWatches();
    await until(async () => (await ready()).status === 'degraded', 3000, 'degraded');
    const r = await ready();
    assert.match(r.reasons.join(), /relisting in \d+ ms/);
    assert.equal((await fetch(`${admin}/readyz`)).status, 200, 'degraded stays in the Service');
    await until(
      async () => (await problems()).some((p) => p.code === 'stale-view'),
      3000,
      'stale-view Problem',
    );
    const expired = async (resource: string) =>
      metric('wharf_discovery_relists_total', { resource, reason: 'expired' });
    // The Problem comes with the 410 (a relist is due); the relist itself follows its backoff.
    await until(
      async () => (await expired('services')) + (await expired('endpointslices')) >= 1,
      3000,
      'the expired relist counted',
    );

    api.failNext(0, 410);
    await until(async () => (await ready()).status === 'ok', 5000, 'ok again');
    await until(async () => (await problems()).length === 0, 3000, 'no stale-view Problem');
  });
});
