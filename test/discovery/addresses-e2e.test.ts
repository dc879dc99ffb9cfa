// Issue 25 item 9 and issue 20 item 5, through the proxy: an endpoint at Wharf's own admin listener,
// at a cloud metadata address or at 0.0.0.0 is refused with a Problem, from Kubernetes or the config
// file; loopback pods need kubernetes.allow-loopback (the demo and the tests set it).

import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { endpointSlice, FakeApiServer, service } from '../../src/fake-apiserver/index.ts';
import { startUpstream } from '../support/upstream.ts';
import { get, startWharf } from '../support/wharf.ts';
import { until } from './helpers.ts';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const FAST = {
  backoffInitialMs: 20,
  backoffMaxMs: 300,
  relistBackoffInitialMs: 20,
  silenceMs: 3000,
  coalesceMs: 2,
};

function pod(api: FakeApiServer, name: string, ip: string, port: number): void {
  // /healthz answers 200 on the admin listener too: only the refusal keeps it out.
  api.apply(service(name, { settings: { 'health-path': '/healthz' } }));
  api.apply(endpointSlice(name, { name, ports: { http: port }, endpoints: [{ ip, pod: `${name}-0` }] }));
}

describe("Wharf never routes to its own listeners or to addresses that are not a pod's", () => {
  test('from Kubernetes, with allow-loopback', async () => {
    const up = await startUpstream('up');
    cleanups.push(() => up.close());
    const api = await new FakeApiServer().start();
    cleanups.push(() => api.close());
    const w = await startWharf(
      { kubernetes: { apiservers: [api.url], 'allow-loopback': true } },
      { discovery: FAST },
    );
    cleanups.push(() => w.stop());
    const adminPort = w.wharf.adminAddress.port;
    pod(api, 'ok', '127.0.0.1', up.port);
    pod(api, 'sneaky', '127.0.0.1', adminPort);
    pod(api, 'meta', '169.254.169.254', 80);
    pod(api, 'zero', '0.0.0.0', up.port);
    await until(() => w.wharf.table().projects.size === 4, 5000, 'four projects');
    await until(async () => (await get(w.url, 'ok.test.local')).status === 200, 5000, 'ok answers');
    await until(() => w.wharf.health.list().every((x) => x.status.state !== 'pending'), 5000, 'all probed');

    const r = await get(`${w.url}/api/projects`, 'sneaky.test.local');
    assert.equal(r.status, 503, `the admin API must not answer through the proxy: ${r.body.slice(0, 200)}`);
    const problems = w.wharf.problems().filter((p) => p.code === 'refused-address');
    const about = (svc: string) => problems.find((p) => p.object === `service default/${svc}`)?.message ?? '';
    assert.match(about('sneaky'), new RegExp(`127\\.0\\.0\\.1:${adminPort} is Wharf's own admin listener`));
    assert.match(about('meta'), /169\.254\.169\.254:80 is link-local/);
    assert.match(about('zero'), /0\.0\.0\.0:\d+ is an unspecified address/);
    assert.equal(about('ok'), '');
    for (const name of ['sneaky', 'meta', 'zero'])
      assert.equal(w.wharf.table().projects.get(name)!.ports.get('http')!.endpoints.length, 0, name);
    const listed = await fetch(`${w.admin}/api/problems`).then(
      (x) => x.json() as Promise<{ problems: { code: string }[] }>,
    );
    assert.equal(listed.problems.filter((p) => p.code === 'refused-address').length, 3);
  });

  test('from Kubernetes, loopback needs allow-loopback', async () => {
    const up = await startUpstream('up');
    cleanups.push(() => up.close());
    const api = await new FakeApiServer().start();
    cleanups.push(() => api.close());
    const w = await startWharf({ kubernetes: { apiservers: [api.url] } }, { discovery: FAST });
    cleanups.push(() => w.stop());
    pod(api, 'local', '127.0.0.1', up.port);
    await until(() => w.wharf.table().projects.has('local'), 5000, 'project');
    assert.equal((await get(w.url, 'local.test.local')).status, 503);
    assert.match(
      w.wharf.problems().find((p) => p.code === 'refused-address')?.message ?? '',
      /loopback address .*kubernetes\.allow-loopback/,
    );
    assert.equal(up.seen.length, 0, 'not even probed');
  });

  test('from the config file: loopback is the operator’s word, Wharf itself is not', async () => {
    const up = await startUpstream('up');
    cleanups.push(() => up.close());
    const w = await startWharf({
      admin: '127.0.0.1:0',
      projects: {
        local: { instances: { 'l-0': { http: up.address } } },
        zero: { instances: { 'z-0': { http: `0.0.0.0:${up.port}` } } },
      },
    });
    cleanups.push(() => w.stop());
    await until(
      async () => (await get(w.url, 'local.test.local')).status === 200,
      5000,
      'loopback from the config',
    );
    assert.equal((await get(w.url, 'zero.test.local')).status, 503);
    // The admin port is known once bound: a project reloaded onto it is refused.
    w.wharf.control.set('late', [
      {
        name: 'late',
        origin: 'config',
        object: 'project late',
        settingPrefix: 'projects.late.',
        declared: true,
        created: '',
        ports: ['http'],
        settings: {},
        instances: [
          {
            name: 'a',
            draining: false,
            addresses: { http: { host: '127.0.0.1', port: w.wharf.adminAddress.port } },
          },
        ],
      },
    ]);
    assert.equal((await get(w.url, 'late.test.local')).status, 503);
    assert.match(
      w.wharf.problems().find((p) => p.object === 'project late')?.message ?? '',
      /own admin listener/,
    );
  });
});
