/* biome-ignore-all lint/suspicious/noExplicitAny: JSON from the admin API, checked by the assertions */
// The edge tier serving certificates from `kubernetes.io/tls` Secrets, end to end: fake apiserver ->
// SecretWatcher -> CertificateStore -> a real TLS listener, checked with node:tls and node:https.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls, { type TLSSocket } from 'node:tls';
import type { KubeObject } from '../../src/discovery/k8s-types.ts';
import { endpointSlice, FakeApiServer, service, tlsSecret } from '../../src/fake-apiserver/index.ts';
import { until } from '../discovery/helpers.ts';
import { makeCa, type TestCa } from '../support/certs.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';
import { get, type Started, startWharf } from '../support/wharf.ts';

const FAST = { backoffInitialMs: 20, backoffMaxMs: 300, silenceMs: 3000, coalesceMs: 2 };
const D = 'apps.example.com';

interface Pem {
  cert: string;
  key: string;
  fingerprint: string;
}

function pem(ca: TestCa, name: string, names: string[]): Pem {
  const p = ca.leaf(name, names);
  const cert = readFileSync(p.cert, 'utf8');
  return { cert, key: readFileSync(p.key, 'utf8'), fingerprint: new X509Certificate(cert).fingerprint256 };
}

/**
 * The fingerprint of the certificate the edge presents for `servername` on a new connection (checked
 * against the CA, and against the name unless `anyName`).
 */
function presented(port: number, servername: string, ca: string, anyName = false): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect(
      {
        port,
        host: '127.0.0.1',
        servername,
        ca,
        ALPNProtocols: ['http/1.1'],
        ...(anyName ? { checkServerIdentity: () => undefined } : {}),
      },
      () => {
        const fp = s.getPeerCertificate().fingerprint256;
        s.end();
        resolve(fp);
      },
    );
    s.on('error', reject);
  });
}

function request(
  port: number,
  host: string,
  ca: string,
  agent: https.Agent | false = false,
): Promise<{ status: number; body: string; reused: boolean; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, path: '/', servername: host, ca, headers: { host }, agent },
      (res) => {
        // Read now: a keep-alive socket goes back to the agent (res.socket = null) at the end.
        const fingerprint = (res.socket as TLSSocket).getPeerCertificate().fingerprint256;
        let body = '';
        res.on('data', (c) => {
          body += c;
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body, reused: req.reusedSocket, fingerprint }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

async function problems(edge: Started): Promise<any[]> {
  return ((await (await fetch(`${edge.admin}/api/problems`)).json()) as any).problems;
}

function setData(api: FakeApiServer, ns: string, name: string, fn: (o: KubeObject) => void): void {
  api.modify('Secret', ns, name, fn);
}

/** An edge tier discovering from `api` whose config names the Secret `edge-certs/wild`. */
function startSecretEdge(api: FakeApiServer): Promise<Started> {
  return startWharf(
    {
      tier: 'edge',
      domain: D,
      tls: { secrets: [{ namespace: 'edge-certs', name: 'wild' }] },
      kubernetes: { apiservers: [api.url], 'allow-loopback': true },
    },
    { discovery: FAST },
  );
}

describe('edge tier: certificates from kubernetes.io/tls Secrets', () => {
  let ca: TestCa;
  let wild: Pem;
  let renewed: Pem;
  let shop: Pem;
  let api: FakeApiServer;
  let app: TestUpstream;
  let edge: Started;

  before(async () => {
    ca = makeCa();
    wild = pem(ca, 'wild', [`*.${D}`]);
    renewed = pem(ca, 'wild2', [`*.${D}`]);
    // It also names blog: a project's certificate must not take over another project's host.
    shop = pem(ca, 'shop', [`shop.${D}`, `*.shop.${D}`, `blog.${D}`]);
    api = await new FakeApiServer({ bookmarkIntervalMs: 500 }).start();
    app = await startUpstream('app');
    // The edge's Role: exactly the named Secrets (resourceNames), as deploy/ grants it.
    api.grantOnly('secrets', ['edge-certs/wild', 'shop/shop-tls', 'docs/docs-tls']);
    api.apply(tlsSecret('wild', { namespace: 'edge-certs', cert: wild.cert, key: wild.key }));
    api.apply(tlsSecret('shop-tls', { namespace: 'shop', cert: shop.cert, key: shop.key }));
    api.apply({ kind: 'Secret', metadata: { name: 'docs-tls', namespace: 'docs' }, stringData: { a: 'b' } });
    const project = (name: string, ns: string, settings: Record<string, string>) => {
      api.apply(service(name, { namespace: ns, settings: { public: 'true', ...settings } }));
      api.apply(
        endpointSlice(name, {
          namespace: ns,
          name: `${name}-1`,
          ports: { http: app.port },
          endpoints: [{ ip: '127.0.0.1', pod: `${name}-0` }],
        }),
      );
    };
    project('shop', 'shop', { 'tls-secret': 'shop-tls' });
    project('blog', 'blog', {});
    project('docs', 'docs', { 'tls-secret': 'docs-tls' }); // an Opaque Secret
    project('vault', 'vault', { 'tls-secret': 'vault-tls' }); // not granted
    project('inside', 'shop', { public: 'false', 'tls-secret': 'inside-tls' }); // not public
    edge = await startSecretEdge(api);
    await until(async () => (await fetch(`${edge.admin}/readyz`)).status === 200, 10_000, 'edge ready');
  });
  after(async () => {
    await edge?.stop();
    await app?.close();
    await api?.close();
  });

  it('a Secret named in the config serves its certificate by SNI, and to unknown names', async () => {
    assert.equal(await presented(edge.port, `blog.${D}`, ca.caPem), wild.fingerprint);
    // A name no certificate covers gets the operator's certificate (the client then refuses it),
    // never a project's, which would tell a stranger that the project exists.
    await assert.rejects(presented(edge.port, 'nothing.example.org', ca.caPem), /altnames/);
    assert.equal(await presented(edge.port, 'nothing.example.org', ca.caPem, true), wild.fingerprint);
    const r = await request(edge.port, `blog.${D}`, ca.caPem);
    assert.equal(r.status, 200);
    assert.match(r.body, /^app GET \//);
  });

  it('a Service annotated wharf.io/tls-secret serves its certificate for its own hosts only', async () => {
    assert.equal(await presented(edge.port, `shop.${D}`, ca.caPem), shop.fingerprint);
    assert.equal(await presented(edge.port, `http.shop.${D}`, ca.caPem), shop.fingerprint);
    assert.equal((await request(edge.port, `shop.${D}`, ca.caPem)).status, 200);
    assert.equal(
      await presented(edge.port, `blog.${D}`, ca.caPem),
      wild.fingerprint,
      "shop's certificate names blog too, but blog keeps the operator's certificate",
    );
  });

  it('reads only the Secrets it serves: by name, never a non-public project, never a whole namespace', () => {
    const paths = api.requests.filter((r) => r.path.includes('/secrets')).map((r) => r.path);
    assert.ok(paths.length > 0);
    for (const p of paths)
      assert.match(p, /^\/api\/v1\/namespaces\/[a-z0-9-]+\/secrets\?.*fieldSelector=metadata\.name%3D/);
    const names = new Set(paths.map((p) => /metadata\.name%3D([^&]+)/.exec(p)![1]));
    assert.deepEqual([...names].sort(), ['docs-tls', 'shop-tls', 'vault-tls', 'wild']);
  });

  it('a Secret of the wrong type and a refused one are Problems', async () => {
    const list = (await until(async () => {
      const p = await problems(edge);
      return p.some((x) => x.code === 'secret-forbidden') && p.some((x) => x.code === 'secret-wrong-type')
        ? p
        : null;
    }))!;
    const wrong = list.find((x) => x.code === 'secret-wrong-type');
    assert.equal(wrong.object, 'secret docs/docs-tls');
    assert.equal(wrong.field, 'wharf.io/tls-secret');
    assert.match(wrong.message, /type "Opaque", not kubernetes\.io\/tls/);
    const refused = list.find((x) => x.code === 'secret-forbidden');
    assert.equal(refused.object, 'secret vault/vault-tls');
    assert.match(refused.message, /named by service vault\/vault.*403/);
    // Neither got a certificate: docs falls back to the operator's.
    assert.equal(await presented(edge.port, `docs.${D}`, ca.caPem), wild.fingerprint);
  });

  it('an updated Secret reaches new connections; an open keep-alive connection keeps working', async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await request(edge.port, `blog.${D}`, ca.caPem, agent);
      assert.equal(first.status, 200);
      assert.equal(first.fingerprint, wild.fingerprint);
      setData(api, 'edge-certs', 'wild', (o) => {
        o.data = {
          'tls.crt': Buffer.from(renewed.cert).toString('base64'),
          'tls.key': Buffer.from(renewed.key).toString('base64'),
        };
      });
      await until(
        async () => (await presented(edge.port, `blog.${D}`, ca.caPem)) === renewed.fingerprint,
        5000,
        'the renewed certificate on new connections',
      );
      const again = await request(edge.port, `blog.${D}`, ca.caPem, agent);
      assert.equal(again.status, 200);
      assert.equal(again.reused, true, 'the same connection as before');
      assert.equal(again.fingerprint, wild.fingerprint, 'which keeps the certificate it was opened with');
    } finally {
      agent.destroy();
    }
  });

  it('an invalid Secret is a Problem and the previous certificate keeps serving', async () => {
    setData(api, 'edge-certs', 'wild', (o) => {
      o.data = {
        'tls.crt': Buffer.from('not a certificate').toString('base64'),
        'tls.key': Buffer.from(renewed.key).toString('base64'),
      };
    });
    const bad = await until(async () =>
      (await problems(edge)).find((x) => x.object === 'secret edge-certs/wild'),
    );
    assert.equal(bad.code, 'bad-certificate');
    assert.equal(bad.field, 'tls.secrets.0');
    assert.match(bad.message, /the previous certificate keeps serving/);
    assert.equal(await presented(edge.port, `blog.${D}`, ca.caPem), renewed.fingerprint);
    // Fixed again: the Problem goes.
    setData(api, 'edge-certs', 'wild', (o) => {
      o.data = {
        'tls.crt': Buffer.from(renewed.cert).toString('base64'),
        'tls.key': Buffer.from(renewed.key).toString('base64'),
      };
    });
    await until(async () => !(await problems(edge)).some((x) => x.object === 'secret edge-certs/wild'));
  });

  it('a deleted Secret is a Problem and its last certificate keeps serving (static stability)', async () => {
    api.delete('Secret', 'shop', 'shop-tls');
    const gone = await until(async () =>
      (await problems(edge)).find((x) => x.object === 'secret shop/shop-tls'),
    );
    assert.equal(gone.code, 'secret-not-found');
    assert.match(gone.message, /was deleted; the previous certificate keeps serving/);
    assert.equal(await presented(edge.port, `shop.${D}`, ca.caPem), shop.fingerprint);
    api.apply(tlsSecret('shop-tls', { namespace: 'shop', cert: shop.cert, key: shop.key }));
    await until(async () => !(await problems(edge)).some((x) => x.object === 'secret shop/shop-tls'));
  });

  it('a Secret no longer named is no longer watched or served', async () => {
    api.modify('Service', 'shop', 'shop', (o) => {
      delete o.metadata.annotations!['wharf.io/tls-secret'];
    });
    await until(
      async () => (await presented(edge.port, `shop.${D}`, ca.caPem)) === renewed.fingerprint,
      5000,
      'shop back on the operator certificate',
    );
    const watches = () =>
      api.requests.filter(
        (r) => r.path.includes('secrets?') && r.path.includes('shop-tls') && r.path.includes('watch=true'),
      );
    const n = watches().length;
    api.endAllWatches();
    await until(() => api.watchCount >= 3, 5000, 'the other watches resumed');
    assert.equal(watches().length, n, 'shop-tls is not watched again');
  });
});

describe('who reads Secrets', () => {
  let api: FakeApiServer;
  let app: TestUpstream;
  before(async () => {
    api = await new FakeApiServer({ bookmarkIntervalMs: 500 }).start();
    app = await startUpstream('app');
    api.apply(service('shop', { namespace: 'shop', settings: { public: 'true', 'tls-secret': 'shop-tls' } }));
    api.apply(
      endpointSlice('shop', {
        namespace: 'shop',
        name: 'shop-1',
        ports: { http: app.port },
        endpoints: [{ ip: '127.0.0.1', pod: 'shop-0' }],
      }),
    );
    api.apply(tlsSecret('shop-tls', { namespace: 'shop', cert: 'x', key: 'y' }));
  });
  after(async () => {
    await app?.close();
    await api?.close();
  });

  const cases: [string, () => Record<string, unknown>][] = [
    ['the internal tier', () => ({})],
    ['the internal tier with TLS', () => ({ tls: { certificates: [ca.leaf('in', [`*.${D}`])] } })],
    ['an edge without TLS', () => ({ tier: 'edge' })],
  ];
  let ca: TestCa;
  before(() => {
    ca = makeCa();
  });
  for (const [name, config] of cases) {
    it(`${name} never requests a Secret, even for an annotated public Service`, async () => {
      const from = api.requests.length;
      const c = config();
      const w = await startWharf(
        { ...c, domain: D, kubernetes: { apiservers: [api.url], 'allow-loopback': true } },
        { discovery: FAST },
      );
      try {
        await until(() => w.wharf.table().projects.has('shop'), 5000, 'shop discovered');
        if (c.tls) assert.equal((await request(w.port, `shop.${D}`, ca.caPem)).status, 200);
        else assert.equal((await get(w.url, `shop.${D}`)).status, 200);
        assert.equal(w.wharf.tls?.secretWatcher, undefined);
        const seen = api.requests.slice(from);
        assert.ok(
          seen.some((x) => x.path.includes('/services')),
          'it did talk to the apiserver',
        );
        assert.deepEqual(
          seen.filter((x) => x.path.includes('secrets')),
          [],
        );
        assert.ok(!(await (await fetch(`${w.admin}/api/problems`)).text()).includes('secret'));
      } finally {
        await w.stop();
      }
    });
  }
});

describe('edge readiness with Secrets', () => {
  it('is not ready while it has no certificate to serve, and ready once the Secret exists', async () => {
    const ca = makeCa();
    const wild = pem(ca, 'w', [`*.${D}`]);
    const api = await new FakeApiServer({ bookmarkIntervalMs: 500 }).start();
    const edge = await startSecretEdge(api);
    try {
      const readyz = async () => {
        const r = await fetch(`${edge.admin}/readyz`);
        return { status: r.status, body: await r.text() };
      };
      // Synced, the Secret listed and absent: a Problem, and nothing to serve.
      await until(async () => (await problems(edge)).some((p) => p.code === 'secret-not-found'));
      const before = await readyz();
      assert.equal(before.status, 503);
      assert.match(before.body, /tls: no certificate to serve yet/);
      api.apply(tlsSecret('wild', { namespace: 'edge-certs', cert: wild.cert, key: wild.key }));
      await until(async () => (await readyz()).status === 200, 5000, 'ready');
      assert.equal(await presented(edge.port, `x.${D}`, ca.caPem), wild.fingerprint);
      assert.deepEqual(await problems(edge), []);
    } finally {
      await edge.stop();
      await api.close();
    }
  });
});

describe('edge readiness once serving', () => {
  it('a Secret named later that the apiserver does not answer for does not make the edge unready', async () => {
    const ca = makeCa();
    const wild = pem(ca, 'w', [`*.${D}`]);
    const late = pem(ca, 'late', [`late.${D}`]);
    const api = await new FakeApiServer({ bookmarkIntervalMs: 500 }).start();
    const app = await startUpstream('app');
    api.apply(tlsSecret('wild', { namespace: 'edge-certs', cert: wild.cert, key: wild.key }));
    api.apply(tlsSecret('late-tls', { namespace: 'late', cert: late.cert, key: late.key }));
    const edge = await startSecretEdge(api);
    try {
      await until(async () => (await fetch(`${edge.admin}/readyz`)).status === 200, 5000, 'ready');
      // The apiserver hangs from the moment the edge asks for the new Secret.
      let held = false;
      api.onRequest = (r) => {
        if (r.path.includes('late-tls')) {
          held = true;
          api.stall();
        }
      };
      api.apply(
        service('late', { namespace: 'late', settings: { public: 'true', 'tls-secret': 'late-tls' } }),
      );
      await until(() => held, 5000, 'the Secret request held');
      const r = await fetch(`${edge.admin}/readyz`);
      assert.equal(r.status, 200, await r.text());
      assert.equal(await presented(edge.port, `late.${D}`, ca.caPem, true), wild.fingerprint);
      api.onRequest = null;
      api.unstall();
      api.crash(); // the held requests are dropped; the watcher retries
      await until(
        async () => (await presented(edge.port, `late.${D}`, ca.caPem)) === late.fingerprint,
        10_000,
        'the late certificate once the apiserver answers',
      );
    } finally {
      api.onRequest = null;
      await edge.stop();
      await app.close();
      await api.close();
    }
  });
});

describe('edge config reload and tls.secrets', () => {
  it('a Secret added to tls.secrets is watched and served after a reload; removed, it goes', async () => {
    const ca = makeCa();
    const a = pem(ca, 'a', [`*.${D}`]);
    const b = pem(ca, 'b', ['api.other.example.org']);
    const api = await new FakeApiServer({ bookmarkIntervalMs: 500 }).start();
    api.apply(tlsSecret('a', { namespace: 'certs', cert: a.cert, key: a.key }));
    api.apply(tlsSecret('b', { namespace: 'certs', cert: b.cert, key: b.key }));
    const dir = mkdtempSync(join(tmpdir(), 'wharf-tls-reload-'));
    const file = join(dir, 'config.yaml');
    const config = (secrets: string[]) => ({
      listen: '127.0.0.1:0',
      admin: '127.0.0.1:0',
      tier: 'edge',
      domain: D,
      tls: { secrets: secrets.map((name) => ({ namespace: 'certs', name })) },
      kubernetes: { apiservers: [api.url], 'allow-loopback': true },
    });
    writeFileSync(file, JSON.stringify(config(['a'])));
    const edge = await startWharf(config(['a']), { discovery: FAST, configPath: file });
    try {
      await until(async () => (await fetch(`${edge.admin}/readyz`)).status === 200, 5000, 'ready');
      assert.deepEqual(edge.wharf.tls?.secretWatcher?.keys, ['certs/a']);
      writeFileSync(file, JSON.stringify(config(['a', 'b'])));
      assert.equal(edge.wharf.reload(), true);
      assert.deepEqual(edge.wharf.tls?.secretWatcher?.keys, ['certs/a', 'certs/b']);
      await until(
        async () => (await presented(edge.port, 'api.other.example.org', ca.caPem, true)) === b.fingerprint,
        5000,
        'b served',
      );
      assert.ok(
        !edge.logs.some((l) => l.msg.startsWith('config changes that need a restart')),
        JSON.stringify(edge.logs.filter((l) => l.level === 'warn')),
      );
      writeFileSync(file, JSON.stringify(config(['a'])));
      assert.equal(edge.wharf.reload(), true);
      assert.deepEqual(edge.wharf.tls?.secretWatcher?.keys, ['certs/a']);
      await until(
        async () => (await presented(edge.port, 'api.other.example.org', ca.caPem, true)) === a.fingerprint,
        5000,
        'b gone: the fallback answers',
      );
      // Other tls changes are reported, not applied.
      writeFileSync(
        file,
        JSON.stringify({ ...config(['a']), tls: { ...config(['a']).tls, 'min-version': 'TLSv1.3' } }),
      );
      assert.equal(edge.wharf.reload(), true);
      const warn = edge.logs.find((l) => l.msg.startsWith('config changes that need a restart'));
      assert.deepEqual(warn?.fields?.fields, ['tls']);
    } finally {
      await edge.stop();
      await api.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
