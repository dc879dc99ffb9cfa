// SecretWatcher against the fake apiserver: one list/watch per named Secret, only what is wanted,
// and RBAC `resourceNames` is enough for it.
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { NO_CREDENTIALS } from '../../src/discovery/credentials.ts';
import { SecretWatcher, trimSecret } from '../../src/discovery/secrets.ts';
import { FakeApiServer, tlsSecret } from '../../src/fake-apiserver/index.ts';
import { until } from './helpers.ts';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup() {
  const api = await new FakeApiServer({ bookmarkIntervalMs: 200 }).start();
  cleanups.push(() => api.close());
  const w = new SecretWatcher({
    servers: [{ url: api.url, credentials: NO_CREDENTIALS }],
    backoffInitialMs: 20,
    backoffMaxMs: 200,
    silenceMs: 3000,
  });
  cleanups.push(() => w.stop());
  let changes = 0;
  w.onChange(() => changes++);
  return { api, w, changes: () => changes };
}

const secretRequests = (api: FakeApiServer) => api.requests.filter((r) => r.path.includes('/secrets'));

describe('SecretWatcher', () => {
  test('trimSecret keeps identity, type, tls.crt and tls.key only', () => {
    const t = trimSecret({
      metadata: {
        name: 'a',
        namespace: 'n',
        resourceVersion: '3',
        annotations: { x: 'y' },
        managedFields: [],
      },
      type: 'kubernetes.io/tls',
      data: { 'tls.crt': 'Qw==', 'tls.key': 'Sw==', 'ca.crt': 'QQ==' },
    });
    assert.deepEqual(t, {
      metadata: { name: 'a', namespace: 'n', resourceVersion: '3' },
      type: 'kubernetes.io/tls',
      data: { 'tls.crt': 'Qw==', 'tls.key': 'Sw==' },
    });
  });

  test('lists and watches each wanted Secret by name; follows update and delete', async () => {
    const { api, w, changes } = await setup();
    api.apply(tlsSecret('a', { namespace: 'n', cert: 'C1', key: 'K1' }));
    api.apply(tlsSecret('other', { namespace: 'n', cert: 'X', key: 'X' }));
    w.setWanted(['n/a', 'n/missing']);
    assert.equal(w.view('n/a')?.state, 'pending');
    await until(() => w.view('n/a')?.state === 'present' && w.view('n/missing')?.state === 'absent');
    assert.equal(Buffer.from(w.view('n/a')!.crt!, 'base64').toString(), 'C1');
    assert.equal(w.view('n/missing')?.deleted, undefined, 'never there is not "deleted"');
    // The watch follows the list; wait for both before checking every request's selector.
    await until(() => api.watchCount === 2, 5000, 'two watches');
    for (const r of secretRequests(api)) {
      assert.match(r.path, /^\/api\/v1\/namespaces\/n\/secrets\?/);
      assert.match(r.path, /fieldSelector=metadata\.name%3D(a|missing)(&|$)/);
    }
    assert.equal(secretRequests(api).filter((r) => r.path.includes('watch=true')).length, 2);

    const before = changes();
    const rv = w.view('n/a')!.resourceVersion;
    api.modify('Secret', 'n', 'a', (o) => {
      (o.data as Record<string, string>)['tls.crt'] = Buffer.from('C2').toString('base64');
    });
    await until(() => w.view('n/a')!.resourceVersion !== rv);
    assert.equal(Buffer.from(w.view('n/a')!.crt!, 'base64').toString(), 'C2');
    assert.ok(changes() > before);
    api.modify('Secret', 'n', 'other', (o) => {
      o.type = 'Opaque';
    });
    api.delete('Secret', 'n', 'a');
    await until(() => w.view('n/a')?.state === 'absent');
    assert.equal(w.view('n/a')?.deleted, true);
    api.apply(tlsSecret('missing', { namespace: 'n', cert: 'M', key: 'M' }));
    await until(() => w.view('n/missing')?.state === 'present');
  });

  test('a Secret no longer wanted stops being watched', async () => {
    const { api, w } = await setup();
    w.setWanted(['n/a', 'm/b']);
    await until(() => api.watchCount === 2, 5000, 'two watches');
    w.setWanted(['m/b']);
    assert.equal(w.view('n/a'), undefined);
    await until(() => api.watchCount === 1, 5000, 'one watch left');
    assert.deepEqual(w.keys, ['m/b']);
  });

  test('works with RBAC resourceNames; a refused Secret has a 403 error and stays pending', async () => {
    const { api, w } = await setup();
    api.grantOnly('secrets', ['n/a']);
    api.apply(tlsSecret('a', { namespace: 'n', cert: 'C', key: 'K' }));
    api.apply(tlsSecret('b', { namespace: 'n', cert: 'C', key: 'K' }));
    w.setWanted(['n/a', 'n/b']);
    await until(() => w.view('n/a')?.state === 'present' && w.view('n/b')?.error);
    assert.equal(w.view('n/b')?.state, 'pending');
    assert.equal(w.view('n/b')?.error?.code, 403);
    assert.match(w.view('n/b')!.error!.message, /secrets "b" is forbidden/);
    // Access granted later: the error clears and the Secret arrives (backoff keeps retrying).
    api.grantOnly('secrets', ['n/a', 'n/b']);
    await until(() => w.view('n/b')?.state === 'present' && !w.view('n/b')?.error, 5000, 'b after grant');
  });
});
