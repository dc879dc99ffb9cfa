import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { type Clock, systemClock } from '../../src/discovery/clock.ts';
import { type ApiServerTarget, NO_CREDENTIALS, resolveTargets } from '../../src/discovery/credentials.ts';
import { KubernetesSource, type KubernetesSourceOptions } from '../../src/discovery/source.ts';
import { endpointSlice, FakeApiServer, service } from '../../src/fake-apiserver/index.ts';
import type { Problem } from '../../src/model/problem.ts';
import type { ProjectRecord } from '../../src/model/snapshot.ts';
import type { SourceStatus, SourceUpdate } from '../../src/model/source.ts';
import { TLS, until } from './helpers.ts';

interface Harness {
  api: FakeApiServer;
  src: KubernetesSource;
  /** Every publish, and the projects the source had right after it. */
  snapshots: { update: SourceUpdate; projects: readonly ProjectRecord[]; problems: readonly Problem[] }[];
  states: SourceStatus[];
  project(name: string): ProjectRecord | undefined;
  waitFor(pred: (projects: readonly ProjectRecord[]) => boolean, what?: string): Promise<void>;
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function harness(
  o: { api?: FakeApiServer; servers?: ApiServerTarget[] } & Partial<KubernetesSourceOptions> = {},
): Promise<Harness> {
  const api = o.api ?? (await new FakeApiServer({ bookmarkIntervalMs: 200 }).start());
  cleanups.push(() => api.close());
  const src = new KubernetesSource({
    servers: o.servers ?? [{ url: api.url, credentials: NO_CREDENTIALS }],
    backoffInitialMs: 20,
    backoffMaxMs: 200,
    relistBackoffInitialMs: 20,
    relistBackoffMaxMs: 200,
    silenceMs: 2000,
    ...o,
  });
  cleanups.push(() => src.stop());
  const snapshots: Harness['snapshots'] = [];
  const states: SourceStatus[] = [];
  src.onUpdate((u) => snapshots.push({ update: u, projects: src.projects, problems: u.problems }));
  src.onStatus((s) => states.push(s));
  src.start();
  const h: Harness = {
    api,
    src,
    snapshots,
    states,
    project: (name) => src.projects.find((p) => p.name === name),
    waitFor: (pred, what = 'projects') =>
      until(() => snapshots.length > 0 && pred(src.projects), 5000, what).then(() => {}),
  };
  return h;
}

const names = (p: ProjectRecord | undefined) => p?.instances.map((i) => i.name) ?? [];

describe('KubernetesSource', () => {
  test('Service + slices -> project; scale up and down; terminating -> draining', async () => {
    const h = await harness();
    h.api.apply(service('shop', { ports: ['http', 'admin'], settings: { affinity: 'cookie' } }));
    h.api.apply(
      endpointSlice('shop', {
        name: 'shop-a',
        ports: { http: 8080, admin: 9090 },
        endpoints: [{ ip: '10.0.0.1', pod: 'shop-0' }],
      }),
    );
    await h.waitFor((p) => names(p[0]).length === 1, 'first project');
    const shop = h.project('shop')!;
    assert.equal(shop.origin, 'default/shop');
    assert.deepEqual(shop.ports, ['http', 'admin']);
    assert.deepEqual({ ...shop.settings }, { affinity: 'cookie' });
    assert.deepEqual(
      { ...shop.instances[0].addresses },
      {
        http: { host: '10.0.0.1', port: 8080 },
        admin: { host: '10.0.0.1', port: 9090 },
      },
    );
    assert.equal(h.src.status.state, 'synced');
    assert.ok(h.src.status.lastSyncAt);

    const eps = ['10.0.0.1', '10.0.0.2', '10.0.0.3'].map((ip, i) => ({ ip, pod: `shop-${i}` }));
    h.api.apply(
      endpointSlice('shop', { name: 'shop-a', ports: { http: 8080, admin: 9090 }, endpoints: eps }),
    );
    await h.waitFor(() => names(h.project('shop')).length === 3, 'scale up');
    h.api.apply(
      endpointSlice('shop', { name: 'shop-a', ports: { http: 8080, admin: 9090 }, endpoints: eps.slice(1) }),
    );
    await h.waitFor(() => names(h.project('shop')).join() === 'shop-1,shop-2', 'scale down');
    h.api.apply(
      endpointSlice('shop', {
        name: 'shop-a',
        ports: { http: 8080, admin: 9090 },
        endpoints: [eps[1], { ...eps[2], ready: false, serving: true, terminating: true }],
      }),
    );
    await h.waitFor(() => h.project('shop')?.instances[1]?.draining === true, 'draining');
    assert.equal(h.project('shop')!.instances[0].draining, false);
  });

  test('Service deleted or label removed -> project gone; slices split across objects are merged', async () => {
    const h = await harness();
    h.api.apply(service('a'));
    h.api.apply(service('b'));
    h.api.apply(
      endpointSlice('a', { name: 'a-1', ports: { http: 80 }, endpoints: [{ ip: '10.1.0.1', pod: 'a-1' }] }),
    );
    h.api.apply(
      endpointSlice('a', { name: 'a-2', ports: { http: 80 }, endpoints: [{ ip: '10.1.0.2', pod: 'a-2' }] }),
    );
    h.api.apply(
      endpointSlice('a', { name: 'a-3', ports: { http: 80 }, endpoints: [{ ip: '10.1.0.2', pod: 'a-2' }] }),
    );
    await h.waitFor((p) => p.length === 2 && names(h.project('a')).length === 2, 'two projects');
    assert.deepEqual(names(h.project('a')), ['a-1', 'a-2'], 'merged and de-duplicated');
    h.api.delete('EndpointSlice', 'default', 'a-1');
    await h.waitFor(() => names(h.project('a')).join() === 'a-2', 'slice deleted');
    h.api.delete('Service', 'default', 'a');
    await h.waitFor((p) => p.length === 1 && !h.project('a'), 'service deleted');
    h.api.modify('Service', 'default', 'b', (o) => {
      delete o.metadata.labels!['wharf.io/project'];
    });
    await h.waitFor((p) => p.length === 0, 'label removed');
  });

  test('nothing is published before both resources are listed; state syncing then synced', async () => {
    const api = await new FakeApiServer().start();
    api.apply(service('early'));
    api.forbid('endpointslices');
    const h = await harness({ api });
    await until(() => h.states.some((s) => s.reason?.includes('403')), 3000, 'the 403 is reported');
    assert.equal(h.snapshots.length, 0, 'no snapshot before the first complete sync');
    assert.equal(h.src.status.state, 'syncing');
    api.forbid('endpointslices', false);
    await h.waitFor((p) => p.length === 1);
    assert.equal(h.src.status.state, 'synced');
  });

  test('unchanged records keep their identity; bursts are coalesced; problems are reported', async () => {
    const h = await harness({ coalesceMs: 20 });
    h.api.apply(service('one'));
    h.api.apply(service('two'));
    h.api.apply(service('Bad', { project: 'Bad' }));
    await h.waitFor((p) => p.length === 2);
    assert.equal(h.src.problems[0].code, 'bad-project-name');
    const two = h.project('two');
    const before = h.src.publishes;
    for (let i = 0; i < 50; i++)
      h.api.apply(
        endpointSlice('one', { name: 'one-x', ports: { http: 80 }, endpoints: [`10.2.0.${i + 1}`] }),
      );
    await h.waitFor(() => h.project('one')?.instances[0]?.addresses.http.host === '10.2.0.50', 'last update');
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(
      h.src.publishes - before < 10,
      `50 events coalesced into ${h.src.publishes - before} publishes`,
    );
    assert.equal(h.project('two'), two, 'an untouched project is the same object');
  });

  test('each Problem is logged once while it lasts', async () => {
    const logs: string[] = [];
    const h = await harness({ log: (_level, msg) => logs.push(msg) });
    h.api.apply(service('Nope', { project: 'Nope' }));
    h.api.apply(service('fine'));
    await h.waitFor((p) => p.length === 1);
    for (let i = 0; i < 5; i++)
      h.api.apply(endpointSlice('fine', { name: 'f', ports: { http: 80 }, endpoints: [`10.9.0.${i + 1}`] }));
    await h.waitFor(() => h.project('fine')?.instances[0]?.addresses.http.host === '10.9.0.5');
    assert.equal(logs.filter((m) => m.includes('service default/Nope')).length, 1);
  });

  test('two Services claim one project: both are published (the aggregator picks), as changes', async () => {
    const h = await harness();
    h.api.apply(service('pay-old', { project: 'pay', creationTimestamp: '2026-01-01T00:00:00Z' }));
    h.api.apply(service('pay-new', { project: 'pay', creationTimestamp: '2026-02-01T00:00:00Z' }));
    h.api.apply(service('other'));
    await h.waitFor((p) => p.length === 3);
    assert.deepEqual(h.src.projects.map((p) => p.origin).sort(), [
      'default/other',
      'default/pay-new',
      'default/pay-old',
    ]);
    assert.deepEqual(h.src.problems, [], "a conflict is not the source's Problem");
    const first = h.snapshots[0].update;
    assert.equal(first.reset, true, 'the first publish is a reset');
    const old = h.src.projects.find((p) => p.origin === 'default/pay-old')!;
    h.api.delete('Service', 'default', 'pay-old');
    await h.waitFor((p) => p.length === 2);
    const last = h.snapshots.at(-1)!.update;
    assert.equal(last.reset, false);
    assert.equal(last.removed.length, 1);
    assert.equal(last.removed[0], old, 'removed names the very record published before');
    assert.deepEqual(last.added, []);
    // A late subscriber gets everything at once, as a reset.
    const late: SourceUpdate[] = [];
    h.src.onUpdate((u) => late.push(u));
    assert.equal(late.length, 1);
    assert.equal(late[0].reset, true);
    assert.deepEqual(late[0].added, h.src.projects);
  });

  test('apiserver restarted with a fresh history: 410 relist, no spurious removal, no publish if nothing changed', async () => {
    const h = await harness();
    for (let i = 0; i < 20; i++) {
      h.api.apply(service(`p${i}`));
      h.api.apply(
        endpointSlice(`p${i}`, { name: `p${i}-s`, ports: { http: 80 }, endpoints: [`10.3.0.${i + 1}`] }),
      );
    }
    await h.waitFor((p) => p.length === 20 && p.every((x) => x.instances.length === 1));
    const publishes = h.src.publishes;
    const listsBefore = h.api.requests.filter((r) => r.path.includes('limit=')).length;
    h.api.restart({ freshHistory: true });
    await until(
      () => h.api.requests.filter((r) => r.path.includes('limit=')).length >= listsBefore + 2,
      5000,
      'relists',
    );
    await until(() => h.src.status.state === 'synced', 3000);
    assert.ok(
      h.api.requests.some((r) => r.path.includes('watch=true')),
      'watches were re-established',
    );
    assert.equal(h.src.publishes, publishes, 'relist with nothing changed publishes nothing');
    h.api.apply(
      endpointSlice('p0', { name: 'p0-s', ports: { http: 80 }, endpoints: ['10.3.0.1', '10.3.0.99'] }),
    );
    await h.waitFor(() => h.project('p0')?.instances.length === 2);
    for (const s of h.snapshots) assert.equal(s.projects.length, 20, 'every snapshot had every project');
  });

  test('outage keeps the last state, goes degraded with the reason, and recovers', async () => {
    const h = await harness();
    h.api.apply(service('steady'));
    h.api.apply(endpointSlice('steady', { name: 'st', ports: { http: 80 }, endpoints: ['10.4.0.1'] }));
    await h.waitFor((p) => p[0]?.instances.length === 1);
    const n = h.snapshots.length;
    await h.api.down();
    await until(() => h.src.status.state === 'degraded', 3000, 'degraded');
    assert.match(h.src.status.reason!, /ECONNREFUSED|ECONNRESET|socket|closed/i);
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(h.snapshots.length, n, 'no publish during the outage');
    assert.equal(h.src.projects[0].instances.length, 1);
    await h.api.up();
    h.api.apply(
      endpointSlice('steady', { name: 'st', ports: { http: 80 }, endpoints: ['10.4.0.1', '10.4.0.2'] }),
    );
    await h.waitFor((p) => p[0]?.instances.length === 2, 'recovered');
    await until(() => h.src.status.state === 'synced', 3000);
  });

  test('fails over from a dead first apiserver URL to the second', async () => {
    const dead = await new FakeApiServer().start();
    const deadUrl = dead.url;
    await dead.close();
    const api = await new FakeApiServer().start();
    api.apply(service('fo'));
    const h = await harness({
      api,
      servers: [
        { url: deadUrl, credentials: NO_CREDENTIALS },
        { url: api.url, credentials: NO_CREDENTIALS },
      ],
    });
    await h.waitFor((p) => p.length === 1);
    assert.equal(h.src.status.state, 'synced');
  });

  test('only the configured namespaces are watched', async () => {
    const api = await new FakeApiServer().start();
    api.apply(service('in', { namespace: 'team-a' }));
    api.apply(service('out', { namespace: 'team-b' }));
    api.apply(service('also', { namespace: 'team-c' }));
    const h = await harness({ api, namespaces: ['team-a', 'team-c'] });
    await h.waitFor((p) => p.length === 2);
    assert.deepEqual(h.src.projects.map((p) => p.name).sort(), ['also', 'in']);
    assert.ok(api.requests.every((r) => !r.path.includes('team-b')));
  });

  test('in-cluster: token file re-read after 60 s and on 401 (rotation)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wharf-sa-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'token'), 'tok-1\n');
    writeFileSync(join(dir, 'ca.crt'), TLS.ca);
    const api = await new FakeApiServer({ tls: TLS, tokens: ['tok-1'] }).start();
    let skew = 0;
    const clock: Clock = { now: () => Date.now() + skew, setTimeout: systemClock.setTimeout };
    const servers = await resolveTargets({
      inCluster: true,
      serviceAccountDir: dir,
      env: { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(api.port) },
      clock,
    });
    assert.equal(servers[0].url, api.url);
    api.apply(service('secure'));
    const h = await harness({ api, servers });
    await h.waitFor((p) => p.length === 1);
    assert.ok(api.requests.every((r) => r.authorization === 'Bearer tok-1'));

    // The kubelet rotates the file; the old token stays valid for a while.
    writeFileSync(join(dir, 'token'), 'tok-2\n');
    api.setTokens(['tok-1', 'tok-2']);
    skew = 61_000;
    api.endAllWatches();
    await until(() => api.requests.some((r) => r.authorization === 'Bearer tok-2'), 3000, 'new token used');

    // Rotated and the old one revoked at once: the 401 makes it re-read without waiting 60 s.
    writeFileSync(join(dir, 'token'), 'tok-3\n');
    api.setTokens(['tok-3']);
    api.endAllWatches();
    await until(
      () => api.requests.some((r) => r.authorization === 'Bearer tok-3'),
      3000,
      'token re-read after 401',
    );
    api.apply(service('after'));
    await h.waitFor((p) => p.length === 2);
  });
});
