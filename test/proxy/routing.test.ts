import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';
import { get, type Started, startWharf } from '../support/wharf.ts';

describe('routing by convention through the proxy', () => {
  let ups: TestUpstream[] = [];
  let w: Started;
  before(async () => {
    ups = await Promise.all(
      ['shop-0/http', 'shop-0/admin', 'shop-1/http', 'shop-1/admin'].map((n) => startUpstream(n)),
    );
    w = await startWharf({
      projects: {
        shop: {
          instances: {
            'shop-0': { http: ups[0].address, admin: ups[1].address },
            'shop-1': { http: ups[2].address, admin: ups[3].address },
          },
        },
        api: { instances: { 'api-0': { grpc: ups[1].address, metrics: ups[3].address } } },
      },
    });
  });
  after(async () => {
    await w.stop();
    await Promise.all(ups.map((u) => u.close()));
  });

  it('<project>.D goes to the port named http', async () => {
    const names = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const r = await get(w.url, 'shop.test.local');
      assert.equal(r.status, 200);
      assert.match(r.body, /^shop-\d\/http GET \/$/);
      names.add(r.body.split(' ')[0]);
    }
    assert.deepEqual([...names].sort(), ['shop-0/http', 'shop-1/http'], 'both instances receive traffic');
  });

  it('<project>.D without an http port goes to the first port', async () => {
    const r = await get(w.url, 'api.test.local');
    assert.equal(r.body, 'shop-0/admin GET /');
  });

  it('<port>.<project>.D selects the port; case, trailing dot and port are ignored', async () => {
    for (const host of ['admin.shop.test.local', 'ADMIN.Shop.Test.Local.', 'admin.shop.test.local.:8080']) {
      const r = await get(w.url, host);
      assert.equal(r.status, 200, host);
      assert.match(r.body, /^shop-\d\/admin /, host);
    }
  });

  it('<instance>.<port>.<project>.D reaches exactly that instance', async () => {
    for (let i = 0; i < 10; i++) {
      const r = await get(w.url, 'shop-1.admin.shop.test.local', { method: 'GET' });
      assert.equal(r.body, 'shop-1/admin GET /');
      assert.equal(r.headers['x-wharf-instance'], 'shop-1');
    }
  });

  it('x-wharf-instance header pins too', async () => {
    for (let i = 0; i < 10; i++) {
      const r = await get(w.url, 'shop.test.local', { headers: { 'x-wharf-instance': 'shop-0' } });
      assert.equal(r.body, 'shop-0/http GET /');
    }
  });

  it('a pinned instance that does not exist gets 503 JSON and never another instance', async () => {
    const before = ups.reduce((n, u) => n + u.seen.length, 0);
    const r = await get(w.url, 'ghost.http.shop.test.local');
    assert.equal(r.status, 503);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.deepEqual(r.json(), {
      error: 'service unavailable',
      reason: 'instance "ghost" does not exist or has no port "http"',
      project: 'shop',
      port: 'http',
      instance: 'ghost',
    });
    const r2 = await get(w.url, 'shop.test.local', { headers: { 'x-wharf-instance': 'ghost' } });
    assert.equal(r2.status, 503);
    assert.equal(
      ups.reduce((n, u) => n + u.seen.length, 0),
      before,
      'no upstream saw the pinned requests',
    );
  });

  it('unknown hosts get 404 JSON naming what was not found', async () => {
    let r = await get(w.url, 'nope.test.local');
    assert.equal(r.status, 404);
    assert.deepEqual(r.json(), { error: 'not found', reason: 'no project "nope"', project: 'nope' });
    r = await get(w.url, 'grpc.shop.test.local');
    assert.equal(r.status, 404);
    assert.equal(r.json().port, 'grpc');
    r = await get(w.url, 'shop.other.domain');
    assert.equal(r.status, 404);
    assert.match(r.json().reason, /not under the domain "test.local"/);
    r = await get(w.url, 'a.b.http.shop.test.local');
    assert.equal(r.status, 404);
    r = await get(w.url, 'test.local');
    assert.equal(r.status, 404);
  });

  it('an invalid Host gets 400', async () => {
    const r = await get(w.url, 'bad_host!.test.local');
    assert.equal(r.status, 400);
    assert.match(r.json().reason, /invalid Host/);
  });
});

describe('loop protection', () => {
  it('a project whose instance is Wharf itself is refused (a Problem), not routed', async () => {
    // Reserve a free port, then start Wharf on it with a project pointing back at it.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const loop = await startWharf({
      listen: `127.0.0.1:${port}`,
      projects: { me: { 'health-path': 'tcp', instances: { 'me-0': { http: `127.0.0.1:${port}` } } } },
    });
    try {
      assert.equal(loop.wharf.table().projects.get('me')?.ports.get('http')?.endpoints.length, 0);
      const p = loop.wharf.problems().find((x) => x.code === 'refused-address');
      assert.match(p?.message ?? '', /own proxy listener/);
      assert.equal((await get(loop.url, 'me.test.local')).status, 503);
    } finally {
      await loop.stop();
    }
  });

  it('a request that comes back to a tier that already handled it answers 508 instead of looping', async () => {
    // Two internal-tier Wharfs: the first routes `me` to the second, which sees the first's
    // x-wharf-via and refuses to route it again.
    const second = await startWharf({});
    const first = await startWharf({
      projects: { me: { 'health-path': 'tcp', instances: { 'me-0': { http: `127.0.0.1:${second.port}` } } } },
    });
    try {
      const deadline = Date.now() + 5000;
      while (first.wharf.health.list().some((x) => x.status.state !== 'healthy') && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      const r = await get(first.url, 'me.test.local');
      assert.equal(r.status, 508);
      assert.match(r.json().reason, /routing loop/);
    } finally {
      await first.stop();
      await second.stop();
    }
  });
});
