// End to end through the real proxy (test/support's in-process Wharf): an upstream that hangs (the
// kernel accepts, the app never answers, as under SIGSTOP) is ejected by the active checks, the GETs
// waiting on it are rescued onto the healthy instance, and new requests stop reaching it.

import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { startUpstream } from '../support/upstream.ts';
import { get, startWharf } from '../support/wharf.ts';

const closers: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

interface Outcome {
  readonly gets: number;
  readonly failed: number;
  readonly statuses: readonly number[];
  readonly ejectedAfter: number;
  readonly maxMs: number;
  readonly lastToVictim: number;
  readonly state: string;
}

/** Two instances, round robin, a GET every 25 ms for 3.5 s; instance `a` hangs at t0. */
async function hangScenario(upstream: Record<string, unknown>): Promise<Outcome> {
  const good = await startUpstream('good');
  closers.push(() => good.close());
  let frozen = false;
  const held: http.ServerResponse[] = [];
  const arrivals: Array<{ at: number; probe: boolean }> = [];
  const hung = http.createServer((req, res) => {
    arrivals.push({ at: Date.now(), probe: req.headers['user-agent'] === 'wharf-health' });
    if (frozen) held.push(res);
    else res.end('hung ok');
  });
  await new Promise<void>((r) => hung.listen(0, '127.0.0.1', r));
  closers.push(async () => {
    for (const res of held) res.destroy();
    hung.closeAllConnections();
    await new Promise<void>((r) => hung.close(() => r()));
  });
  const hungAddr = `127.0.0.1:${(hung.address() as AddressInfo).port}`;
  const w = await startWharf({
    upstream,
    projects: {
      p: { balancer: 'round-robin', instances: { a: { http: hungAddr }, b: { http: good.address } } },
    },
  });
  closers.push(() => w.stop());
  const health = w.wharf.health;
  const deadline = Date.now() + 3000;
  while (health.list().some((x) => x.status.state !== 'healthy') && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.ok(health.list().length === 2 && health.list().every((x) => x.status.state === 'healthy'));

  frozen = true;
  const t0 = Date.now();
  const results: Array<Promise<{ ms: number; status: number }>> = [];
  while (Date.now() - t0 < 3500) {
    const start = Date.now();
    results.push(get(w.url, 'p.test.local').then((r) => ({ ms: Date.now() - start, status: r.status })));
    await new Promise((r) => setTimeout(r, 25));
  }
  const done = await Promise.all(results);
  const a = health.list().find((x) => x.endpoint.instance === 'a')!;
  const out: Outcome = {
    gets: done.length,
    failed: done.filter((d) => d.status !== 200).length,
    statuses: [...new Set(done.map((d) => d.status))].sort(),
    ejectedAfter: a.status.since - t0,
    maxMs: Math.max(...done.map((d) => d.ms)),
    lastToVictim: Math.max(0, ...arrivals.filter((x) => !x.probe && x.at >= t0).map((x) => x.at - t0)),
    state: a.status.state,
  };
  console.log(`# ${JSON.stringify(out)}`);
  return out;
}

describe('a hung instance behind the proxy', () => {
  test('with the retry budget out of the way: ejected, no GET failed, none sent there after 2.6 s', async () => {
    const o = await hangScenario({ 'retry-budget-min': 10_000 });
    assert.equal(o.state, 'unhealthy');
    assert.equal(o.failed, 0, `statuses ${o.statuses}`);
    assert.ok(o.ejectedAfter <= 2600, `ejected after ${o.ejectedAfter} ms`);
    assert.ok(o.maxMs <= 3000, `max latency ${o.maxMs} ms`);
    assert.ok(o.lastToVictim <= 2600, `a request reached the victim ${o.lastToVictim} ms after the hang`);
  });

  test("the proxy's suspect() sweep (requests waiting 250 ms) gets it ejected within 2 s", async () => {
    const o = await hangScenario({ 'retry-budget-min': 10_000 });
    assert.equal(o.failed, 0, `statuses ${o.statuses}`);
    assert.ok(o.ejectedAfter <= 2000, `ejected after ${o.ejectedAfter} ms`);
    assert.ok(o.lastToVictim <= 2000, `a request reached the victim ${o.lastToVictim} ms after the hang`);
  });

  test('with the default retry budget, no GET failed', async () => {
    const o = await hangScenario({});
    assert.ok(o.ejectedAfter <= 2500, `ejected after ${o.ejectedAfter} ms`);
    assert.equal(o.failed, 0, `${o.failed} of ${o.gets} GETs failed (${o.statuses})`);
  });
});
