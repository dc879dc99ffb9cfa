import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ApiClient } from '../../src/discovery/apiclient.ts';
import { type ApiServerTarget, resolveTargets } from '../../src/discovery/credentials.ts';
import { FakeApiServer, service } from '../../src/fake-apiserver/index.ts';
import { TLS } from './helpers.ts';

const b64 = (s: string) => Buffer.from(s).toString('base64');

async function listNames(targets: ApiServerTarget[]): Promise<string[]> {
  const client = new ApiClient(targets, { silenceMs: 3000 });
  try {
    for (let i = 0; i < targets.length; i++) {
      try {
        const r = await client.getJson<{ items: { metadata: { name: string } }[] }>('/api/v1/services');
        return r.value.items.map((x) => x.metadata.name);
      } catch (err) {
        if (i === targets.length - 1) throw err;
        client.fail(client.current);
      }
    }
    return [];
  } finally {
    await client.close();
  }
}

describe('credentials', () => {
  let dir: string;
  let api: FakeApiServer;
  let certApi: FakeApiServer;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wharf-cred-'));
    writeFileSync(join(dir, 'ca.crt'), TLS.ca);
    writeFileSync(join(dir, 'token'), 'file-token\n');
    api = await new FakeApiServer({ tls: TLS, tokens: ['kc-token', 'file-token'] }).start();
    api.apply(service('svc-a'));
    certApi = await new FakeApiServer({ tls: TLS, tokens: [], clientCertAuth: true }).start();
    certApi.apply(service('svc-cert'));
  });
  after(async () => {
    await api.close();
    await certApi.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function kubeconfig(extra = ''): string {
    const file = join(dir, `kubeconfig-${Math.random().toString(36).slice(2)}`);
    writeFileSync(
      file,
      `apiVersion: v1
kind: Config
clusters:
- name: tls
  cluster: { server: "${api.url}", certificate-authority: "${join(dir, 'ca.crt')}" }
- name: insecure
  cluster: { server: "${api.url}", insecure-skip-tls-verify: true }
- name: certs
  cluster: { server: "${certApi.url}", certificate-authority-data: "${b64(TLS.ca)}" }
- name: dead
  cluster: { server: "https://127.0.0.1:1", certificate-authority-data: "${b64(TLS.ca)}" }
users:
- name: token
  user: { token: kc-token }
- name: tokenfile
  user: { tokenFile: "${join(dir, 'token')}" }
- name: cert
  user: { client-certificate-data: "${b64(TLS.clientCert)}", client-key-data: "${b64(TLS.clientKey)}" }
contexts:
- { name: tok, context: { cluster: tls, user: token } }
- { name: insecure-file, context: { cluster: insecure, user: tokenfile } }
- { name: cert, context: { cluster: certs, user: cert } }
- { name: dead, context: { cluster: dead, user: token } }
current-context: tok
${extra}`,
    );
    return file;
  }

  test('kubeconfig: current context with a token and a CA file', async () => {
    const targets = await resolveTargets({ kubeconfig: kubeconfig() });
    assert.equal(targets.length, 1);
    assert.equal(targets[0].url, api.url);
    assert.deepEqual(await listNames(targets), ['svc-a']);
    assert.equal(api.requests.at(-1)!.authorization, 'Bearer kc-token');
  });

  test('kubeconfig: named context with insecure-skip-tls-verify and a token file', async () => {
    const targets = await resolveTargets({ kubeconfig: kubeconfig(), context: 'insecure-file' });
    assert.equal(targets[0].credentials.tls?.rejectUnauthorized, false);
    assert.deepEqual(await listNames(targets), ['svc-a']);
    assert.equal(api.requests.at(-1)!.authorization, 'Bearer file-token');
  });

  test('kubeconfig: client certificate and key data', async () => {
    const targets = await resolveTargets({ kubeconfig: kubeconfig(), context: 'cert' });
    assert.deepEqual(await listNames(targets), ['svc-cert']);
    assert.equal(certApi.requests.at(-1)!.clientCert, 'wharf-client');
    assert.equal(certApi.requests.at(-1)!.authorization, undefined);
  });

  test('kubeconfig: several contexts are failover targets, each with its own credentials', async () => {
    const targets = await resolveTargets({ kubeconfig: kubeconfig(), context: 'dead,tok' });
    assert.deepEqual(
      targets.map((t) => t.url),
      ['https://127.0.0.1:1', api.url],
    );
    assert.deepEqual(await listNames(targets), ['svc-a']);
  });

  test('kubeconfig: apiservers override the server URLs and keep the credentials', async () => {
    const targets = await resolveTargets({
      kubeconfig: kubeconfig(),
      apiservers: ['https://127.0.0.1:1', api.url],
    });
    assert.equal(targets.length, 2);
    assert.deepEqual(await listNames(targets), ['svc-a']);
  });

  test('explicit apiservers with a token file and a CA file', async () => {
    const targets = await resolveTargets({
      apiservers: [api.url],
      tokenFile: join(dir, 'token'),
      caFile: join(dir, 'ca.crt'),
    });
    assert.deepEqual(await listNames(targets), ['svc-a']);
    assert.equal(api.requests.at(-1)!.authorization, 'Bearer file-token');
  });

  test('clear errors for missing pieces', async () => {
    await assert.rejects(resolveTargets({ kubeconfig: kubeconfig(), context: 'nope' }), /no context "nope"/);
    await assert.rejects(resolveTargets({ inCluster: true, env: {} }), /KUBERNETES_SERVICE_HOST/);
    await assert.rejects(resolveTargets({}), /in-cluster, kubeconfig or apiservers/);
    await assert.rejects(
      resolveTargets({
        inCluster: true,
        serviceAccountDir: join(dir, 'missing'),
        env: { KUBERNETES_SERVICE_HOST: 'h', KUBERNETES_SERVICE_PORT: '1' },
      }),
      /ENOENT/,
    );
  });
});
