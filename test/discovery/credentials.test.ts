import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
    api = await new FakeApiServer({
      tls: TLS,
      tokens: ['kc-token', 'file-token', 'exec-token-1', 'exec-token-2'],
    }).start();
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

  /**
   * An exec credential plugin: a node script that answers from a list of responses (one per run,
   * the last one repeated), counts its runs and records the KUBERNETES_EXEC_INFO it was given.
   */
  function plugin(
    name: string,
    responses: object[],
    exitCode = 0,
  ): { args: string[]; runs: () => number; info: () => object } {
    const d = join(dir, `plugin-${name}`);
    mkdirSync(d, { recursive: true });
    const script = join(d, 'plugin.mjs');
    writeFileSync(
      script,
      `import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
const runs = (() => { try { return readFileSync(${JSON.stringify(join(d, 'runs'))}, 'utf8').length; } catch { return 0; } })();
appendFileSync(${JSON.stringify(join(d, 'runs'))}, 'x');
writeFileSync(${JSON.stringify(join(d, 'info'))}, process.env.KUBERNETES_EXEC_INFO ?? '');
const responses = ${JSON.stringify(responses)};
if (${exitCode}) { process.stderr.write('token expired, run: login again\\n'); process.exit(${exitCode}); }
process.stdout.write(JSON.stringify(responses[Math.min(runs, responses.length - 1)]));
`,
    );
    return {
      args: [script],
      runs: () => {
        try {
          return readFileSync(join(d, 'runs'), 'utf8').length;
        } catch {
          return 0;
        }
      },
      info: () => JSON.parse(readFileSync(join(d, 'info'), 'utf8')),
    };
  }

  function execKubeconfig(exec: object, cluster = 'tls'): string {
    const file = join(dir, `kubeconfig-exec-${Math.random().toString(36).slice(2)}`);
    writeFileSync(
      file,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [
          { name: 'tls', cluster: { server: api.url, 'certificate-authority': join(dir, 'ca.crt') } },
          { name: 'certs', cluster: { server: certApi.url, 'certificate-authority-data': b64(TLS.ca) } },
        ],
        users: [{ name: 'exec', user: { exec } }],
        contexts: [{ name: 'x', context: { cluster, user: 'exec' } }],
        'current-context': 'x',
      }),
    );
    return file;
  }

  test('kubeconfig: exec plugin (v1) token, run again when it expires and after a 401', async () => {
    let now = Date.parse('2026-12-01T10:00:00Z');
    const clock = { now: () => now, setTimeout: () => ({ cancel() {} }) };
    const expires = (min: number) => new Date(now + min * 60_000).toISOString();
    const p = plugin('v1', [
      {
        apiVersion: 'client.authentication.k8s.io/v1',
        kind: 'ExecCredential',
        status: { token: 'exec-token-1', expirationTimestamp: expires(5) },
      },
      {
        apiVersion: 'client.authentication.k8s.io/v1',
        kind: 'ExecCredential',
        status: { token: 'stale-token' },
      },
      {
        apiVersion: 'client.authentication.k8s.io/v1',
        kind: 'ExecCredential',
        status: { token: 'exec-token-2' },
      },
    ]);
    const file = execKubeconfig({
      apiVersion: 'client.authentication.k8s.io/v1',
      command: process.execPath,
      args: p.args,
      env: [{ name: 'PLUGIN_MODE', value: 'test' }],
      interactiveMode: 'Never',
      provideClusterInfo: true,
    });
    const targets = await resolveTargets({ kubeconfig: file, clock });
    assert.equal(p.runs(), 1, 'run once at start: a broken plugin fails the start');
    assert.deepEqual(p.info(), {
      apiVersion: 'client.authentication.k8s.io/v1',
      kind: 'ExecCredential',
      spec: {
        interactive: false,
        cluster: { server: api.url, 'certificate-authority-data': b64(TLS.ca) },
      },
    });
    assert.deepEqual(await listNames(targets), ['svc-a']);
    assert.equal(api.requests.at(-1)!.authorization, 'Bearer exec-token-1');
    assert.equal(p.runs(), 1, 'cached while valid');
    // Expired (within the margin): run again. This time the apiserver refuses the token (401)...
    now += 5 * 60_000;
    await assert.rejects(listNames(targets), /401|Unauthorized/i);
    assert.equal(p.runs(), 2);
    assert.equal(api.requests.at(-1)!.authorization, 'Bearer stale-token');
    // ...so the next request runs the plugin again instead of reusing it.
    assert.deepEqual(await listNames(targets), ['svc-a']);
    assert.equal(api.requests.at(-1)!.authorization, 'Bearer exec-token-2');
    assert.equal(p.runs(), 3);
  });

  test('kubeconfig: exec plugin (v1beta1) client certificate', async () => {
    const p = plugin('v1beta1-cert', [
      {
        apiVersion: 'client.authentication.k8s.io/v1beta1',
        kind: 'ExecCredential',
        status: { clientCertificateData: TLS.clientCert, clientKeyData: TLS.clientKey },
      },
    ]);
    const file = execKubeconfig(
      { apiVersion: 'client.authentication.k8s.io/v1beta1', command: process.execPath, args: p.args },
      'certs',
    );
    const targets = await resolveTargets({ kubeconfig: file });
    assert.deepEqual(await listNames(targets), ['svc-cert']);
    assert.equal(certApi.requests.at(-1)!.clientCert, 'wharf-client');
  });

  test('kubeconfig: a failing or wrong exec plugin fails the start with its own words', async () => {
    const failing = plugin('fails', [{}], 1);
    await assert.rejects(
      resolveTargets({
        kubeconfig: execKubeconfig({
          apiVersion: 'client.authentication.k8s.io/v1',
          command: process.execPath,
          args: failing.args,
        }),
      }),
      /exec plugin .* failed: .*token expired, run: login again/,
    );
    const wrong = plugin('wrong-version', [
      { apiVersion: 'client.authentication.k8s.io/v1beta1', kind: 'ExecCredential', status: { token: 't' } },
    ]);
    await assert.rejects(
      resolveTargets({
        kubeconfig: execKubeconfig({
          apiVersion: 'client.authentication.k8s.io/v1',
          command: process.execPath,
          args: wrong.args,
        }),
      }),
      /printed apiVersion client.authentication.k8s.io\/v1beta1/,
    );
    await assert.rejects(
      resolveTargets({
        kubeconfig: execKubeconfig({
          apiVersion: 'client.authentication.k8s.io/v1',
          command: 'wharf-no-such-plugin',
          installHint: 'install it with: apt-get install wharf-no-such-plugin',
        }),
      }),
      /ENOENT[\s\S]*install it with/,
    );
    await assert.rejects(
      resolveTargets({
        kubeconfig: execKubeconfig({ apiVersion: 'client.authentication.k8s.io/v1alpha1', command: 'x' }),
      }),
      /v1alpha1 is not client.authentication.k8s.io\/v1 or v1beta1/,
    );
  });

  test('kubeconfig: client certificate files relative to the kubeconfig, and basic auth', async () => {
    const sub = join(dir, 'relative');
    mkdirSync(join(sub, 'pki'), { recursive: true });
    writeFileSync(join(sub, 'pki', 'client.crt'), TLS.clientCert);
    writeFileSync(join(sub, 'pki', 'client.key'), TLS.clientKey);
    writeFileSync(join(sub, 'pki', 'ca.crt'), TLS.ca);
    writeFileSync(
      join(sub, 'config'),
      `apiVersion: v1
kind: Config
clusters:
- name: certs
  cluster: { server: "${certApi.url}", certificate-authority: pki/ca.crt }
- name: tls
  cluster: { server: "${api.url}", certificate-authority: pki/ca.crt }
users:
- name: cert
  user: { client-certificate: pki/client.crt, client-key: pki/client.key }
- name: basic
  user: { username: admin, password: "s3cret" }
contexts:
- { name: cert, context: { cluster: certs, user: cert } }
- { name: basic, context: { cluster: tls, user: basic } }
current-context: cert
`,
    );
    assert.deepEqual(await listNames(await resolveTargets({ kubeconfig: join(sub, 'config') })), [
      'svc-cert',
    ]);
    assert.equal(certApi.requests.at(-1)!.clientCert, 'wharf-client');
    // The fake apiserver accepts tokens only: the header is what is checked.
    await assert.rejects(
      listNames(await resolveTargets({ kubeconfig: join(sub, 'config'), context: 'basic' })),
    );
    assert.equal(api.requests.at(-1)!.authorization, `Basic ${b64('admin:s3cret')}`);
  });

  test('KUBECONFIG: several files merged, the first to name an entry wins', async () => {
    const a = join(dir, 'kc-a');
    const b = join(dir, 'kc-b');
    writeFileSync(
      a,
      `apiVersion: v1
kind: Config
users:
- name: me
  user: { token: kc-token }
contexts:
- { name: main, context: { cluster: c, user: me } }
current-context: main
`,
    );
    writeFileSync(
      b,
      `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: { server: "${api.url}", certificate-authority-data: "${b64(TLS.ca)}" }
users:
- name: me
  user: { token: not-this-one }
current-context: other
`,
    );
    const saved = process.env.KUBECONFIG;
    process.env.KUBECONFIG = `${a}:${join(dir, 'missing')}:${b}`;
    try {
      const targets = await resolveTargets({ context: 'main' });
      assert.deepEqual(await listNames(targets), ['svc-a']);
      assert.equal(api.requests.at(-1)!.authorization, 'Bearer kc-token');
    } finally {
      if (saved === undefined) delete process.env.KUBECONFIG;
      else process.env.KUBECONFIG = saved;
    }
  });

  test('kubeconfig: what is not supported says so', async () => {
    const file = kubeconfig(`
`);
    const text = readFileSync(file, 'utf8').replace(
      '- name: token\n  user: { token: kc-token }',
      '- name: token\n  user: { auth-provider: { name: oidc, config: { idp-issuer-url: "https://issuer" } } }',
    );
    writeFileSync(file, text);
    await assert.rejects(
      resolveTargets({ kubeconfig: file }),
      /auth-provider "oidc" is not supported; use an exec credential plugin/,
    );
    writeFileSync(
      file,
      text.replace(
        `server: "${api.url}", certificate-authority:`,
        `server: "${api.url}", proxy-url: "http://proxy:3128", certificate-authority:`,
      ),
    );
    await assert.rejects(resolveTargets({ kubeconfig: file }), /proxy-url is not supported/);
    await assert.rejects(resolveTargets({ kubeconfig: join(dir, 'nope') }), /kubeconfig .*nope: ENOENT/);
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
