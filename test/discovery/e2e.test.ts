// End to end through the real proxy: fake apiserver -> KubernetesSource -> routing -> data plane.
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { request } from 'undici';
import { endpointSlice, FakeApiServer, service } from '../../src/fake-apiserver/index.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';
import { get, type Started, startWharf } from '../support/wharf.ts';
import { until } from './helpers.ts';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const FAST = {
  backoffInitialMs: 20,
  backoffMaxMs: 300,
  relistBackoffInitialMs: 20,
  relistBackoffMaxMs: 300,
  silenceMs: 3000,
  coalesceMs: 2,
};

async function cluster(pods: string[]) {
  const api = await new FakeApiServer({ bookmarkIntervalMs: 500 }).start();
  cleanups.push(() => api.close());
  const ups = new Map<string, TestUpstream>();
  for (const p of pods) {
    const u = await startUpstream(p);
    ups.set(p, u);
    cleanups.push(() => u.close());
  }
  const w = await startWharf(
    { kubernetes: { apiservers: [api.url], 'allow-loopback': true } },
    { discovery: FAST },
  );
  cleanups.push(() => w.stop());
  return { api, ups, w };
}

/** One slice per pod: the pods are local servers on 127.0.0.1 with different ports. */
function slices(
  api: FakeApiServer,
  svc: string,
  ups: Map<string, TestUpstream>,
  pods: string[],
  extra: Record<string, { ready?: boolean; serving?: boolean; terminating?: boolean }> = {},
) {
  const want = new Set(pods.map((p) => `${svc}-${p}`));
  for (const o of [...api.store.objects.get('endpointslices')!.values()])
    if (o.metadata.labels?.['kubernetes.io/service-name'] === svc && !want.has(o.metadata.name!))
      api.delete('EndpointSlice', o.metadata.namespace, o.metadata.name!);
  for (const p of pods)
    api.apply(
      endpointSlice(svc, {
        name: `${svc}-${p}`,
        ports: { http: ups.get(p)!.port },
        endpoints: [{ ip: '127.0.0.1', pod: p, ...extra[p] }],
      }),
    );
}

async function hits(w: Started, host: string, n: number): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const r = await get(w.url, host);
    const who = r.status === 200 ? r.body.split(' ')[0] : `status-${r.status}`;
    seen.set(who, (seen.get(who) ?? 0) + 1);
  }
  return seen;
}

/** Closed-loop load: `workers` clients sending requests back to back until stopped. */
function load(w: Started, host: string, workers = 8) {
  const stats = { ok: 0, failed: 0, errors: [] as string[] };
  let running = true;
  const loops = Array.from({ length: workers }, async () => {
    while (running) {
      try {
        const r = await request(w.url, { headers: { host } });
        const body = await r.body.text();
        if (r.statusCode === 200) stats.ok++;
        else {
          stats.failed++;
          if (stats.errors.length < 5) stats.errors.push(`${r.statusCode} ${body.slice(0, 200)}`);
        }
      } catch (err) {
        stats.failed++;
        if (stats.errors.length < 5) stats.errors.push((err as Error).message);
      }
    }
  });
  return {
    stats,
    stop: async () => {
      running = false;
      await Promise.all(loops);
      return stats;
    },
  };
}

describe('Kubernetes discovery through the proxy', () => {
  test('readyz waits for the first sync; Service + slices -> <port>.<project>.D answers from those pods; scale up and down', async () => {
    const api = await new FakeApiServer().start();
    cleanups.push(() => api.close());
    api.forbid('endpointslices');
    const { ups, w } = await (async () => {
      const ups = new Map<string, TestUpstream>();
      for (const p of ['shop-0', 'shop-1', 'shop-2']) {
        const u = await startUpstream(p);
        ups.set(p, u);
        cleanups.push(() => u.close());
      }
      const w = await startWharf(
        { kubernetes: { apiservers: [api.url], 'allow-loopback': true } },
        { discovery: FAST },
      );
      cleanups.push(() => w.stop());
      return { ups, w };
    })();
    const notReady = await request(`${w.admin}/readyz`);
    const nr = (await notReady.body.json()) as { status: string; reasons: string[] };
    assert.equal(notReady.statusCode, 503);
    assert.equal(nr.status, 'starting');
    api.forbid('endpointslices', false);
    await until(
      async () => (await request(`${w.admin}/readyz`)).statusCode === 200,
      5000,
      'ready after sync',
    );

    api.apply(service('shop'));
    slices(api, 'shop', ups, ['shop-0', 'shop-1']);
    await until(async () => (await get(w.url, 'http.shop.test.local')).status === 200, 5000, 'routable');
    const two = await hits(w, 'http.shop.test.local', 40);
    assert.deepEqual([...two.keys()].sort(), ['shop-0', 'shop-1']);
    const pinned = await get(w.url, 'shop-1.http.shop.test.local');
    assert.equal(pinned.body.split(' ')[0], 'shop-1');

    slices(api, 'shop', ups, ['shop-0', 'shop-1', 'shop-2']);
    await until(
      async () => (await get(w.url, 'shop-2.http.shop.test.local')).status === 200,
      5000,
      'scaled up',
    );
    await until(
      async () => (await hits(w, 'http.shop.test.local', 30)).has('shop-2'),
      5000,
      'new pod gets traffic',
    );

    slices(api, 'shop', ups, ['shop-2']);
    await until(
      async () => (await get(w.url, 'shop-0.http.shop.test.local')).status !== 200,
      5000,
      'scaled down',
    );
    const one = await hits(w, 'shop.test.local', 20);
    assert.deepEqual([...one.keys()], ['shop-2']);
  });

  test('terminating pod drains (no new requests, pinned still served); Service deleted and label removed -> 404', async () => {
    const { api, ups, w } = await cluster(['a-0', 'a-1', 'b-0']);
    api.apply(service('a'));
    api.apply(service('b'));
    slices(api, 'a', ups, ['a-0', 'a-1']);
    slices(api, 'b', ups, ['b-0']);
    await until(async () => (await hits(w, 'http.a.test.local', 20)).size === 2, 5000, 'both pods of a');
    slices(api, 'a', ups, ['a-0', 'a-1'], { 'a-1': { ready: false, serving: true, terminating: true } });
    await until(
      async () => {
        const h = await hits(w, 'http.a.test.local', 20);
        return h.size === 1 && h.has('a-0');
      },
      5000,
      'draining pod gets no new requests',
    );
    const pinned = await get(w.url, 'a-1.http.a.test.local');
    assert.equal(pinned.status, 200, 'a pinned request still reaches the draining pod');
    assert.equal(pinned.body.split(' ')[0], 'a-1');

    api.delete('Service', 'default', 'a');
    await until(async () => (await get(w.url, 'http.a.test.local')).status === 404, 5000, 'deleted -> 404');
    api.modify('Service', 'default', 'b', (o) => {
      delete o.metadata.labels!['wharf.io/project'];
    });
    await until(async () => (await get(w.url, 'b.test.local')).status === 404, 5000, 'label removed -> 404');
  });

  test('bad objects become Problems at /api/problems; static and Kubernetes projects combine', async () => {
    const api = await new FakeApiServer().start();
    cleanups.push(() => api.close());
    const u = await startUpstream('static-0');
    cleanups.push(() => u.close());
    const w = await startWharf(
      {
        kubernetes: { apiservers: [api.url], 'allow-loopback': true },
        projects: { local: { instances: { 'static-0': { http: u.address } } } },
      },
      { discovery: FAST },
    );
    cleanups.push(() => w.stop());
    api.apply(service('Bad_Name', { project: 'Bad_Name' }));
    api.apply(service('k8s-one'));
    await until(
      async () => {
        const r = await request(`${w.admin}/api/problems`);
        const body = (await r.body.json()) as { problems: { code: string; object: string }[] };
        return body.problems.some(
          (p) => p.code === 'bad-project-name' && p.object === 'service default/Bad_Name',
        );
      },
      5000,
      'problem reported',
    );
    const projects = (await (await request(`${w.admin}/api/projects`)).body.json()) as {
      projects: { name: string }[];
    };
    assert.deepEqual(projects.projects.map((p) => p.name).sort(), ['k8s-one', 'local']);
    assert.equal((await get(w.url, 'local.test.local')).status, 200);
  });

  test('apiserver down under load: every request served, /readyz says degraded, then recovers', async (t) => {
    const outageMs = Number(process.env.WHARF_OUTAGE_MS ?? 3000);
    const { api, ups, w } = await cluster(['s-0', 's-1']);
    api.apply(service('steady'));
    slices(api, 'steady', ups, ['s-0', 's-1']);
    await until(async () => (await hits(w, 'steady.test.local', 20)).size === 2, 5000, 'routable');
    const l = load(w, 'steady.test.local');
    await new Promise((r) => setTimeout(r, 300));
    await api.down();
    await until(
      async () => {
        const r = await request(`${w.admin}/readyz`);
        const b = (await r.body.json()) as { status: string };
        return r.statusCode === 200 && b.status === 'degraded';
      },
      5000,
      'degraded but still ready',
    );
    await new Promise((r) => setTimeout(r, outageMs));
    await api.up();
    await until(
      async () =>
        ((await (await request(`${w.admin}/readyz`)).body.json()) as { status: string }).status === 'ok',
      5000,
      'recovered',
    );
    const stats = await l.stop();
    assert.equal(stats.failed, 0, stats.errors.join('; '));
    assert.ok(stats.ok > 100, `served ${stats.ok}`);
    t.diagnostic(`${stats.ok} requests served, ${stats.failed} failed, apiserver down for ${outageMs} ms`);
    // And changes flow again after the outage.
    api.apply(service('later'));
    slices(api, 'later', ups, ['s-0']);
    await until(
      async () => (await get(w.url, 'later.test.local')).status === 200,
      5000,
      'new Service after outage',
    );
  });

  test('apiserver restarted with a fresh history under load: 410 relist, no failed request', async () => {
    const { api, ups, w } = await cluster(['r-0', 'r-1']);
    api.apply(service('relist'));
    slices(api, 'relist', ups, ['r-0', 'r-1']);
    await until(async () => (await hits(w, 'relist.test.local', 20)).size === 2, 5000, 'routable');
    const l = load(w, 'relist.test.local');
    const gone = () => api.requests.filter((r) => r.path.includes('limit=')).length;
    const listsBefore = gone();
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 200));
      api.restart({ freshHistory: true });
    }
    await until(() => gone() >= listsBefore + 2, 5000, 'relisted');
    await new Promise((r) => setTimeout(r, 300));
    const stats = await l.stop();
    assert.equal(stats.failed, 0, stats.errors.join('; '));
    assert.ok(stats.ok > 50);
  });
});
