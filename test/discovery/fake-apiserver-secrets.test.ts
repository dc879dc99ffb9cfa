/* biome-ignore-all lint/suspicious/noExplicitAny: JSON from the wire, checked by the assertions */
// Secrets in the fake apiserver: what the edge tier's named-Secret watches need (fieldSelector
// metadata.name and type, stringData folded into data), RBAC `resourceNames` emulation, and kubectl.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { FakeApiServer, tlsSecret } from '../../src/fake-apiserver/index.ts';
import { get, kubectlAgainst, RawWatch, TLS } from './helpers.ts';

const sel = (s: string) => encodeURIComponent(s);

describe('fake apiserver: Secrets', () => {
  let api: FakeApiServer;
  before(async () => {
    api = await new FakeApiServer({ bookmarkIntervalMs: 100 }).start();
  });
  after(() => api.close());

  test('discovery lists secrets as a namespaced core resource with list and watch', async () => {
    const core = (await get(`${api.url}/api/v1`)).json();
    const secrets = core.resources.find((r: any) => r.name === 'secrets');
    assert.equal(secrets.kind, 'Secret');
    assert.equal(secrets.namespaced, true);
    assert.ok(secrets.verbs.includes('list') && secrets.verbs.includes('watch'));
  });

  test('stringData is folded into base64 data; type defaults to Opaque', async () => {
    api.apply({ kind: 'Secret', metadata: { name: 'plain', namespace: 's' }, stringData: { a: 'hello' } });
    const got = (await get(`${api.url}/api/v1/namespaces/s/secrets/plain`)).json();
    assert.equal(got.kind, 'Secret');
    assert.equal(got.type, 'Opaque');
    assert.deepEqual(got.data, { a: Buffer.from('hello').toString('base64') });
    assert.equal(got.stringData, undefined);
  });

  test('list by fieldSelector metadata.name and type; unsupported field labels are 400', async () => {
    api.apply(tlsSecret('web-tls', { namespace: 's', cert: 'C', key: 'K' }));
    api.apply(tlsSecret('api-tls', { namespace: 's', cert: 'C2', key: 'K2' }));
    const byName = (
      await get(`${api.url}/api/v1/namespaces/s/secrets?fieldSelector=${sel('metadata.name=web-tls')}`)
    ).json();
    assert.equal(byName.kind, 'SecretList');
    assert.deepEqual(
      byName.items.map((i: any) => i.metadata.name),
      ['web-tls'],
    );
    assert.equal(Buffer.from(byName.items[0].data['tls.crt'], 'base64').toString(), 'C');
    const byType = (
      await get(`${api.url}/api/v1/namespaces/s/secrets?fieldSelector=${sel('type=kubernetes.io/tls')}`)
    ).json();
    assert.deepEqual(byType.items.map((i: any) => i.metadata.name).sort(), ['api-tls', 'web-tls']);
    const notTls = (
      await get(`${api.url}/api/v1/secrets?fieldSelector=${sel('type!=kubernetes.io/tls')}`)
    ).json();
    assert.deepEqual(
      notTls.items.map((i: any) => i.metadata.name),
      ['plain'],
    );
    const bad = await get(`${api.url}/api/v1/services?fieldSelector=${sel('type=ClusterIP')}`);
    assert.equal(bad.status, 400);
    assert.match(bad.json().message, /field label not supported: type/);
  });

  test('a watch with fieldSelector metadata.name sees only that Secret: ADDED, MODIFIED, DELETED', async () => {
    const list = (
      await get(`${api.url}/api/v1/namespaces/w/secrets?fieldSelector=${sel('metadata.name=one')}`)
    ).json();
    const w = new RawWatch(
      `${api.url}/api/v1/namespaces/w/secrets?watch=true&resourceVersion=${list.metadata.resourceVersion}&fieldSelector=${sel('metadata.name=one')}`,
    );
    try {
      api.apply(tlsSecret('two', { namespace: 'w', cert: 'x', key: 'y' }));
      api.apply(tlsSecret('one', { namespace: 'w', cert: 'a', key: 'b' }));
      api.modify('Secret', 'w', 'one', (o) => {
        (o.data as any)['tls.crt'] = Buffer.from('a2').toString('base64');
      });
      api.delete('Secret', 'w', 'one');
      const events = await w.waitFor(3);
      assert.deepEqual(
        events.map((e) => `${e.type} ${e.object.metadata.name}`),
        ['ADDED one', 'MODIFIED one', 'DELETED one'],
      );
      assert.equal(events[0].object.kind, 'Secret');
    } finally {
      w.close();
    }
  });

  test('grantOnly emulates resourceNames: list/watch need metadata.name of a granted Secret', async () => {
    api.grantOnly('secrets', ['s/web-tls']);
    try {
      const all = await get(`${api.url}/api/v1/namespaces/s/secrets`);
      assert.equal(all.status, 403);
      assert.equal(all.json().reason, 'Forbidden');
      const other = await get(
        `${api.url}/api/v1/namespaces/s/secrets?fieldSelector=${sel('metadata.name=api-tls')}`,
      );
      assert.equal(other.status, 403);
      assert.match(other.json().message, /secrets "api-tls" is forbidden/);
      const elsewhere = await get(
        `${api.url}/api/v1/namespaces/t/secrets?fieldSelector=${sel('metadata.name=web-tls')}`,
      );
      assert.equal(elsewhere.status, 403, 'the grant is for one namespace');
      const ok = await get(
        `${api.url}/api/v1/namespaces/s/secrets?fieldSelector=${sel('metadata.name=web-tls')}`,
      );
      assert.equal(ok.status, 200);
      assert.equal((await get(`${api.url}/api/v1/namespaces/s/secrets/web-tls`)).status, 200);
      const w = new RawWatch(
        `${api.url}/api/v1/namespaces/s/secrets?watch=true&fieldSelector=${sel('metadata.name=web-tls')}`,
      );
      try {
        const [ev] = await w.waitFor(1);
        assert.equal(w.status, 200);
        assert.equal(ev.object.metadata.name, 'web-tls');
      } finally {
        w.close();
      }
    } finally {
      api.grantOnly('secrets', null);
    }
  });
});

describe('fake apiserver: kubectl get secrets', () => {
  let api: FakeApiServer;
  before(async () => {
    api = await new FakeApiServer({ tls: TLS, tokens: ['t0k3n'] }).start();
  });
  after(() => api.close());

  test('kubectl lists Secrets by type and name', async (t) => {
    const run = kubectlAgainst(t, api.url, 't0k3n');
    if (!run) return;
    api.apply(tlsSecret('shop-tls', { namespace: 'shop', cert: 'C', key: 'K' }));
    api.apply({ kind: 'Secret', metadata: { name: 'db', namespace: 'shop' }, stringData: { pw: 'x' } });
    const byType = await run([
      'get',
      'secrets',
      '-n',
      'shop',
      '--field-selector=type=kubernetes.io/tls',
      '-o',
      'name',
    ]);
    assert.equal(byType.code, 0, byType.stderr);
    assert.equal(byType.stdout.trim(), 'secret/shop-tls');
    const one = await run(['get', 'secret', 'shop-tls', '-n', 'shop', '-o', 'json']);
    assert.equal(one.code, 0, one.stderr);
    assert.equal(JSON.parse(one.stdout).type, 'kubernetes.io/tls');
  });
});
