/* biome-ignore-all lint/suspicious/noExplicitAny: JSON from the wire, checked by the assertions */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { endpointSlice, FakeApiServer, service } from '../../src/fake-apiserver/index.ts';
import { get, kubectlAgainst, RawWatch, TLS } from './helpers.ts';

const ES = '/apis/discovery.k8s.io/v1';

describe('fake apiserver over HTTP', () => {
  let api: FakeApiServer;
  before(async () => {
    api = await new FakeApiServer({ bookmarkIntervalMs: 100 }).start();
  });
  after(() => api.close());

  test('discovery documents', async () => {
    assert.deepEqual((await get(`${api.url}/api`)).json().versions, ['v1']);
    const groups = (await get(`${api.url}/apis`)).json();
    assert.equal(groups.groups[0].preferredVersion.groupVersion, 'discovery.k8s.io/v1');
    const core = (await get(`${api.url}/api/v1`)).json();
    assert.deepEqual(core.resources.map((r: any) => r.name).sort(), [
      'namespaces',
      'pods',
      'secrets',
      'services',
    ]);
    assert.deepEqual(core.resources.find((r: any) => r.name === 'services').shortNames, ['svc']);
    const disc = (await get(`${api.url}${ES}`)).json();
    assert.equal(disc.resources[0].kind, 'EndpointSlice');
    assert.ok(disc.resources[0].verbs.includes('watch'));
    assert.equal((await get(`${api.url}/version`)).json().major, '1');
    const nf = await get(`${api.url}/nope`);
    assert.equal(nf.status, 404);
    assert.equal(nf.json().kind, 'Status');
    assert.equal(nf.json().reason, 'NotFound');
  });

  test('list: selectors, namespaces, items without kind, GET of one object, null endpoints', async () => {
    api.apply(service('web', { namespace: 'a' }));
    api.apply(service('db', { namespace: 'b', project: null }));
    api.apply(endpointSlice('web', { namespace: 'a', name: 'web-1', ports: { http: 8080 }, endpoints: [] }));
    const all = (await get(`${api.url}/api/v1/services`)).json();
    assert.equal(all.kind, 'ServiceList');
    assert.equal(all.items.length, 2);
    assert.equal(all.items[0].kind, undefined);
    assert.match(all.metadata.resourceVersion, /^\d+$/);
    const sel = (
      await get(`${api.url}/api/v1/services?labelSelector=${encodeURIComponent('wharf.io/project')}`)
    ).json();
    assert.deepEqual(
      sel.items.map((s: any) => s.metadata.name),
      ['web'],
    );
    const notin = (
      await get(`${api.url}/api/v1/services?labelSelector=${encodeURIComponent('!wharf.io/project')}`)
    ).json();
    assert.deepEqual(
      notin.items.map((s: any) => s.metadata.name),
      ['db'],
    );
    const inSet = (
      await get(
        `${api.url}/api/v1/services?labelSelector=${encodeURIComponent('wharf.io/project in (web,x)')}`,
      )
    ).json();
    assert.equal(inSet.items.length, 1);
    const ns = (await get(`${api.url}/api/v1/namespaces/b/services`)).json();
    assert.deepEqual(
      ns.items.map((s: any) => s.metadata.name),
      ['db'],
    );
    const fs = (await get(`${api.url}/api/v1/services?fieldSelector=metadata.namespace%3Da`)).json();
    assert.deepEqual(
      fs.items.map((s: any) => s.metadata.name),
      ['web'],
    );
    const bad = await get(`${api.url}/api/v1/services?fieldSelector=spec.type%3DX`);
    assert.equal(bad.status, 400);
    const one = await get(`${api.url}${ES}/namespaces/a/endpointslices/web-1`);
    assert.equal(one.json().kind, 'EndpointSlice');
    assert.equal(one.json().endpoints, null, 'empty endpoints go out as null, as on a real server');
    const missing = await get(`${api.url}/api/v1/namespaces/a/services/zzz`);
    assert.equal(missing.status, 404);
    assert.equal(missing.json().reason, 'NotFound');
    const nsList = (await get(`${api.url}/api/v1/namespaces`)).json();
    assert.ok(nsList.items.some((n: any) => n.metadata.name === 'a'));
    api.delete('Service', 'a', 'web');
    api.delete('Service', 'b', 'db');
    api.delete('EndpointSlice', 'a', 'web-1');
  });

  test('list paging with limit/continue over one snapshot; expired continue is 410', async () => {
    for (let i = 0; i < 5; i++) api.apply(service(`p${i}`, { namespace: 'page' }));
    const p1 = (await get(`${api.url}/api/v1/namespaces/page/services?limit=2`)).json();
    assert.equal(p1.items.length, 2);
    assert.equal(p1.metadata.remainingItemCount, 3);
    api.apply(service('p9', { namespace: 'page' })); // not in the snapshot being paged
    const p2 = (
      await get(
        `${api.url}/api/v1/namespaces/page/services?limit=2&continue=${encodeURIComponent(p1.metadata.continue)}`,
      )
    ).json();
    assert.equal(p2.metadata.resourceVersion, p1.metadata.resourceVersion);
    const p3 = (
      await get(
        `${api.url}/api/v1/namespaces/page/services?limit=2&continue=${encodeURIComponent(p2.metadata.continue)}`,
      )
    ).json();
    assert.equal(p3.metadata.continue, undefined);
    const names = [...p1.items, ...p2.items, ...p3.items].map((s: any) => s.metadata.name);
    assert.deepEqual(names, ['p0', 'p1', 'p2', 'p3', 'p4']);
    const again = (await get(`${api.url}/api/v1/namespaces/page/services?limit=2`)).json();
    api.compact();
    const expired = await get(
      `${api.url}/api/v1/namespaces/page/services?limit=2&continue=${encodeURIComponent(again.metadata.continue)}`,
    );
    assert.equal(expired.status, 410);
    assert.equal(expired.json().code, 410);
  });

  test('watch: headers at once, synthetic ADDED for rv 0, live events, selector transitions, bookmarks', async () => {
    api.apply(service('w1', { namespace: 'watch' }));
    const w = new RawWatch(
      `${api.url}/api/v1/namespaces/watch/services?watch=true&labelSelector=wharf.io%2Fproject`,
    );
    await w.waitFor(1);
    assert.equal(w.status, 200);
    assert.equal(w.events[0].type, 'ADDED');
    assert.equal(w.events[0].object.kind, 'Service');
    api.modify('Service', 'watch', 'w1', (o) => {
      delete o.metadata.labels!['wharf.io/project'];
    });
    api.modify('Service', 'watch', 'w1', (o) => {
      o.metadata.labels!['wharf.io/project'] = 'w1';
    });
    api.delete('Service', 'watch', 'w1');
    await w.waitFor(4);
    assert.deepEqual(
      w.events.map((e) => e.type),
      ['ADDED', 'DELETED', 'ADDED', 'DELETED'],
      'leaving the selector is DELETED, entering it is ADDED',
    );
    w.close();

    const b = new RawWatch(
      `${api.url}/api/v1/services?watch=true&allowWatchBookmarks=true&resourceVersion=${api.store.rv}`,
    );
    await b.waitFor(1);
    assert.equal(b.events[0].type, 'BOOKMARK');
    assert.equal(b.events[0].object.metadata.resourceVersion, String(api.store.rv));
    b.close();
  });

  test('watch: replay from an RV, timeoutSeconds clean close, 410 in-band then close, HTTP 410', async () => {
    const rv0 = api.store.rv;
    api.apply(service('r1', { namespace: 'replay' }));
    api.apply(service('r2', { namespace: 'replay' }));
    const w = new RawWatch(
      `${api.url}/api/v1/namespaces/replay/services?watch=true&resourceVersion=${rv0}&timeoutSeconds=1`,
    );
    await w.waitFor(2);
    assert.deepEqual(
      w.events.map((e) => e.object.metadata.name),
      ['r1', 'r2'],
    );
    const t0 = Date.now();
    await w.closed;
    assert.ok(w.ended, 'closed cleanly');
    assert.ok(Date.now() - t0 < 1500);

    api.compact();
    const g = new RawWatch(`${api.url}/api/v1/services?watch=true&resourceVersion=${rv0}`);
    await g.closed;
    assert.equal(g.status, 200);
    assert.equal(g.events.length, 1);
    assert.equal(g.events[0].type, 'ERROR');
    assert.equal(g.events[0].object.code, 410);
    assert.equal(g.events[0].object.reason, 'Expired');

    api.goneAsHttp = true;
    const h = await get(`${api.url}/api/v1/services?watch=true&resourceVersion=${rv0}`);
    api.goneAsHttp = false;
    assert.equal(h.status, 410);
  });

  test('sendInitialEvents with NotOlderThan: ADDED then the initial-events-end bookmark; 422 without it', async () => {
    api.apply(service('s1', { namespace: 'initial' }));
    const bad = await get(`${api.url}/api/v1/namespaces/initial/services?watch=true&sendInitialEvents=true`);
    assert.equal(bad.status, 422);
    const w = new RawWatch(
      `${api.url}/api/v1/namespaces/initial/services?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true`,
    );
    await w.waitFor(2);
    assert.equal(w.events[0].type, 'ADDED');
    assert.equal(w.events[1].type, 'BOOKMARK');
    assert.equal(w.events[1].object.metadata.annotations['k8s.io/initial-events-end'], 'true');
    w.close();
  });

  test('fault hooks: failNext, stall, crash, endAllWatches, restart with fresh history', async () => {
    api.failNext(2, 503);
    assert.equal((await get(`${api.url}/api/v1/services`)).status, 503);
    assert.equal((await get(`${api.url}/api/v1/services`)).status, 503);
    assert.equal((await get(`${api.url}/api/v1/services`)).status, 200);

    const w = new RawWatch(`${api.url}/api/v1/services?watch=true`);
    await w.waitFor(1);
    api.endAllWatches();
    await w.closed;
    assert.ok(w.ended);

    const c = new RawWatch(`${api.url}/api/v1/services?watch=true`);
    await c.waitFor(1);
    api.crash();
    await c.closed;
    assert.ok(!c.ended, 'a crash is not a clean end');

    api.stall();
    let answered = false;
    const p = get(`${api.url}/api/v1/services`).then(
      () => (answered = true),
      () => {},
    );
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(answered, false);
    api.unstall();
    api.crash();
    await p;

    const rv = api.store.rv;
    api.restart({ freshHistory: true });
    const g = new RawWatch(`${api.url}/api/v1/services?watch=true&resourceVersion=${rv}`);
    await g.closed;
    assert.equal(g.events[0]?.object.code, 410);

    await api.down();
    await assert.rejects(get(`${api.url}/api`));
    await api.up();
    assert.equal((await get(`${api.url}/api`)).status, 200);
  });
});

describe('fake apiserver over TLS with a token', () => {
  let api: FakeApiServer;
  before(async () => {
    api = await new FakeApiServer({ tls: TLS, tokens: ['t0k3n'] }).start();
  });
  after(() => api.close());

  test('401 without a token, 403 when forbidden, 200 with it', async () => {
    const no = await get(`${api.url}/api/v1/services`);
    assert.equal(no.status, 401);
    assert.equal(no.json().reason, 'Unauthorized');
    const ok = await get(`${api.url}/api/v1/services`, { authorization: 'Bearer t0k3n' });
    assert.equal(ok.status, 200);
    api.forbid('services');
    const fb = await get(`${api.url}/api/v1/services`, { authorization: 'Bearer t0k3n' });
    assert.equal(fb.status, 403);
    assert.equal(fb.json().reason, 'Forbidden');
    api.forbid('services', false);
  });

  test('kubectl lists and watches EndpointSlices over TLS with a token', async (t) => {
    const run = kubectlAgainst(t, api.url, 't0k3n');
    if (!run) return;
    api.apply(
      endpointSlice('web', {
        namespace: 'k',
        name: 'web-aaaaa',
        ports: { http: 8080 },
        endpoints: ['10.0.0.1'],
      }),
    );
    api.apply(
      endpointSlice('web', {
        namespace: 'k',
        name: 'web-bbbbb',
        ports: { http: 8080 },
        endpoints: ['10.0.0.2'],
      }),
    );
    const list = await run(['get', 'endpointslices', '-A', '-o', 'json', '--chunk-size=1']);
    assert.equal(list.code, 0, list.stderr);
    const items = JSON.parse(list.stdout).items;
    assert.deepEqual(
      items.map((i: any) => i.metadata.name),
      ['web-aaaaa', 'web-bbbbb'],
      'kubectl followed continue tokens with --chunk-size=1',
    );
    assert.ok(api.requests.some((r) => r.path.includes('continue=') && r.authorization === 'Bearer t0k3n'));

    // Watch: the server closes at the end of the test via endAllWatches, and kubectl exits 0.
    const watching = run(['get', 'endpointslices', '-n', 'k', '-w', '-o', 'json', '--output-watch-events']);
    const deadline = Date.now() + 15_000;
    while (api.watchCount === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(api.watchCount, 1, 'kubectl opened a watch');
    api.apply(
      endpointSlice('web', {
        namespace: 'k',
        name: 'web-ccccc',
        ports: { http: 8080 },
        endpoints: ['10.0.0.3'],
      }),
    );
    api.delete('EndpointSlice', 'k', 'web-aaaaa');
    await new Promise((r) => setTimeout(r, 300));
    api.endAllWatches();
    const out = await watching;
    assert.equal(out.code, 0, out.stderr);
    const events = out.stdout
      .trim()
      .split(/\n(?=\{)/)
      .map((l) => JSON.parse(l));
    const seen = events.map((e: any) => `${e.type} ${e.object.metadata.name}`);
    assert.ok(seen.includes('ADDED web-ccccc'), seen.join(', '));
    assert.ok(seen.includes('DELETED web-aaaaa'), seen.join(', '));
  });
});
