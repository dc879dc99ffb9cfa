import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import type { Problem } from '../../src/model/problem.ts';
import { makeCa, type TestCa } from '../support/certs.ts';
import { rawExchange } from '../support/raw.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';
import { get, type Started, startWharf } from '../support/wharf.ts';

/** The certificate the server presents for `servername`, and an https GET through it. */
function handshake(port: number, servername: string, ca: string): Promise<{ subject: string; san: string }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ port, host: '127.0.0.1', servername, ca, ALPNProtocols: ['http/1.1'] }, () => {
      const c = s.getPeerCertificate();
      s.end();
      resolve({ subject: String(c.subject.CN), san: c.subjectaltname ?? '' });
    });
    s.on('error', reject);
  });
}

function httpsGet(
  port: number,
  host: string,
  ca: string,
  headers: Record<string, string> = {},
  path = '/',
): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, path, servername: host, ca, headers: { host, ...headers }, agent: false },
      (res) => {
        let body = '';
        res.on('data', (c) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('edge tier', () => {
  let ca: TestCa;
  let certDir: string;
  let app: TestUpstream;
  let edge: Started;
  before(async () => {
    ca = makeCa();
    certDir = mkdtempSync(join(tmpdir(), 'wharf-edge-certs-'));
    // A wildcard covers one label, so convention hosts below a project need their own wildcards.
    ca.leaf('wild', ['*.apps.example.com', '*.half.apps.example.com'], { into: certDir });
    ca.leaf('other', ['api.other.example.org'], { into: certDir });
    app = await startUpstream('app', (req, res) => {
      res.setHeader('x-wharf-debug', 'inner');
      res.end(
        JSON.stringify({
          xff: req.headers['x-forwarded-for'],
          xfp: req.headers['x-forwarded-proto'],
          pin: req.headers['x-wharf-instance'],
        }),
      );
    });
    edge = await startWharf({
      tier: 'edge',
      domain: 'apps.example.com',
      tls: {
        certificates: [
          { cert: join(certDir, 'wild.crt'), key: join(certDir, 'wild.key') },
          { cert: join(certDir, 'other.crt'), key: join(certDir, 'other.key') },
        ],
      },
      limits: { 'max-body-bytes': 64 },
      projects: {
        shop: { public: true, 'hsts-max-age': 600, instances: { 'shop-0': { http: app.address } } },
        secret: { instances: { 's-0': { http: app.address } } },
        half: { public: 'web', instances: { 'h-0': { web: app.address, debug: app.address } } },
      },
    });
  });
  after(async () => {
    await edge.stop();
    await app.close();
  });

  it('SNI picks the right certificate, wildcards included', async () => {
    const a = await handshake(edge.port, 'shop.apps.example.com', ca.caPem);
    assert.match(a.san, /\*\.apps\.example\.com/);
    const b = await handshake(edge.port, 'api.other.example.org', ca.caPem);
    assert.match(b.san, /api\.other\.example\.org/);
  });

  it('a client that sends no server name gets the fallback certificate, not a failed handshake', async () => {
    // node sends no SNI for an IP address; without a default context the handshake would fail.
    const san = await new Promise<string>((resolve, reject) => {
      const s = tls.connect({ port: edge.port, host: '127.0.0.1', rejectUnauthorized: false }, () => {
        const c = s.getPeerCertificate();
        s.end();
        resolve(c.subjectaltname ?? '');
      });
      s.on('error', reject);
    });
    assert.match(san, /\*\.apps\.example\.com/);
  });

  it('offers TLS 1.2+ only', async () => {
    await assert.rejects(
      new Promise((resolve, reject) => {
        const s = tls.connect(
          {
            port: edge.port,
            host: '127.0.0.1',
            servername: 'shop.apps.example.com',
            ca: ca.caPem,
            maxVersion: 'TLSv1.1',
            minVersion: 'TLSv1',
          },
          () => resolve(s),
        );
        s.on('error', reject);
      }),
    );
  });

  it('serves public projects over https with HSTS; non-public ones are 404 like unknown hosts', async () => {
    const ok = await httpsGet(edge.port, 'shop.apps.example.com', ca.caPem);
    assert.equal(ok.status, 200);
    assert.equal(ok.headers['strict-transport-security'], 'max-age=600');
    const hidden = await httpsGet(edge.port, 'secret.apps.example.com', ca.caPem);
    const unknown = await httpsGet(edge.port, 'nothing.apps.example.com', ca.caPem);
    assert.equal(hidden.status, 404);
    assert.equal(unknown.status, 404);
    assert.deepEqual(Object.keys(JSON.parse(hidden.body)), Object.keys(JSON.parse(unknown.body)));
    assert.equal((await httpsGet(edge.port, 'web.half.apps.example.com', ca.caPem)).status, 200);
    assert.equal((await httpsGet(edge.port, 'debug.half.apps.example.com', ca.caPem)).status, 404);
  });

  it('does not trust x-forwarded-* or x-wharf-* from outside, and leaks no x-wharf-* header', async () => {
    const r = await httpsGet(edge.port, 'shop.apps.example.com', ca.caPem, {
      'x-forwarded-for': '6.6.6.6',
      'x-forwarded-proto': 'http',
      'x-wharf-instance': 'shop-0',
    });
    const seen = JSON.parse(r.body);
    assert.equal(seen.xff, '127.0.0.1');
    assert.equal(seen.xfp, 'https');
    assert.equal(seen.pin, undefined, 'the pin header was not passed on');
    assert.equal(r.headers['x-wharf-instance'], undefined);
    assert.equal(r.headers['x-wharf-debug'], undefined);
    const pinned = await httpsGet(edge.port, 'shop.apps.example.com', ca.caPem, {
      'x-wharf-instance': 'ghost',
    });
    assert.equal(pinned.status, 200, 'pin headers from outside are ignored, not honoured');
  });

  it('refuses bodies over the limit with 413', async () => {
    const body = 'x'.repeat(100);
    const r = await new Promise<number>((resolve, reject) => {
      const req = https.request(
        {
          host: '127.0.0.1',
          port: edge.port,
          method: 'POST',
          servername: 'shop.apps.example.com',
          ca: ca.caPem,
          headers: { host: 'shop.apps.example.com', 'content-length': String(body.length) },
          agent: false,
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    assert.equal(r, 413);
  });

  it('a replaced certificate file is served to new connections without a restart; a bad one is a Problem', async () => {
    const before = await handshake(edge.port, 'api.other.example.org', ca.caPem);
    assert.match(before.san, /api\.other\.example\.org/);
    const staging = mkdtempSync(join(tmpdir(), 'wharf-stage-'));
    const next = ca.leaf('next', ['api.other.example.org', 'renewed.other.example.org'], { into: staging });
    writeFileSync(join(certDir, 'other.key.new'), readFileSync(next.key));
    writeFileSync(join(certDir, 'other.crt.new'), readFileSync(next.cert));
    renameSync(join(certDir, 'other.key.new'), join(certDir, 'other.key'));
    renameSync(join(certDir, 'other.crt.new'), join(certDir, 'other.crt'));
    let after = before;
    const deadline = Date.now() + 8000;
    while (!/renewed/.test(after.san) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      after = await handshake(edge.port, 'api.other.example.org', ca.caPem);
    }
    assert.match(after.san, /renewed\.other\.example\.org/);

    const table = edge.wharf.table();
    writeFileSync(join(certDir, 'other.crt'), 'not a certificate');
    let problems: Problem[] = [];
    const d2 = Date.now() + 8000;
    while (problems.length === 0 && Date.now() < d2) {
      await new Promise((r) => setTimeout(r, 100));
      problems = ((await (await fetch(`${edge.admin}/api/problems`)).json()) as { problems: Problem[] })
        .problems;
    }
    assert.equal(problems[0]?.code, 'bad-certificate');
    assert.equal(edge.wharf.table(), table, 'a certificate Problem rebuilds no route table');
    const still = await handshake(edge.port, 'api.other.example.org', ca.caPem);
    assert.match(still.san, /renewed/, 'the previous certificate keeps serving');
  });
});

describe('edge limits and redirect', () => {
  let app: TestUpstream;
  let w: Started;
  let ca: TestCa;
  before(async () => {
    app = await startUpstream('app');
    ca = makeCa();
    const leaf = ca.leaf('x', ['*.apps.example.com']);
    w = await startWharf({
      tier: 'edge',
      domain: 'apps.example.com',
      limits: { 'client-rate': 5, 'client-connections': 2 },
      tls: { certificates: [leaf], 'redirect-http': '127.0.0.1:0' },
      projects: { shop: { public: true, instances: { a: { http: app.address } } } },
    });
  });
  after(async () => {
    await w.stop();
    await app.close();
  });

  it('answers 429 past the per-client request rate', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++)
      statuses.push((await httpsGet(w.port, 'shop.apps.example.com', ca.caPem)).status);
    assert.ok(
      statuses.slice(0, 8).every((s) => s === 200),
      statuses.join(','),
    );
    assert.ok(statuses.includes(429), statuses.join(','));
  });

  it('counts HTTP/2 streams against the same rate: many streams on one connection get 429s too', async () => {
    const session = http2.connect(`https://127.0.0.1:${w.port}`, {
      ca: ca.caPem,
      servername: 'shop.apps.example.com',
    });
    try {
      const one = () =>
        new Promise<[number, string | undefined]>((resolve, reject) => {
          const req = session.request({ ':path': '/', ':authority': 'shop.apps.example.com' });
          let status = 0;
          let retry: string | undefined;
          req.on('response', (h) => {
            status = Number(h[':status']);
            retry = h['retry-after'] as string | undefined;
          });
          req.on('data', () => {});
          req.on('end', () => resolve([status, retry]));
          req.on('error', reject);
          req.end();
        });
      const answers = await Promise.all(Array.from({ length: 30 }, one));
      const statuses = answers.map(([s]) => s);
      assert.ok(statuses.includes(429), statuses.join(','));
      assert.ok(
        statuses.every((s) => s === 200 || s === 429),
        statuses.join(','),
      );
      assert.ok(
        answers.filter(([s]) => s === 429).every(([, r]) => r !== undefined),
        'Retry-After on every 429',
      );
    } finally {
      session.close();
    }
  });

  it('redirects plain HTTP to https with 308', async () => {
    // Its port (0 in the config) is read off the server.
    const redirect = (w.wharf.tls!.redirect!.address() as AddressInfo).port;
    const raw = await rawExchange(
      redirect,
      'GET /a?b=1 HTTP/1.1\r\nHost: shop.apps.example.com\r\nConnection: close\r\n\r\n',
    );
    assert.match(raw, /^HTTP\/1.1 308/);
    assert.match(raw, new RegExp(`location: https://shop.apps.example.com:${w.port}/a\\?b=1`, 'i'));
  });
});

describe('two tiers: edge -> internal -> instance', () => {
  let ups: TestUpstream[];
  let internal: Started;
  let edge: Started;
  let ca: TestCa;
  before(async () => {
    ups = await Promise.all(['shop-0', 'shop-1', 'shop-2'].map((n) => startUpstream(n)));
    internal = await startWharf({
      domain: 'apps.example.com',
      projects: {
        shop: {
          public: true,
          affinity: 'cookie',
          instances: Object.fromEntries(ups.map((u) => [u.name, { http: u.address }])),
        },
        private: { instances: { p: { http: ups[0].address } } },
      },
    });
    ca = makeCa();
    const leaf = ca.leaf('edge', ['*.apps.example.com', '*.http.shop.apps.example.com']);
    edge = await startWharf({
      tier: 'edge',
      domain: 'apps.example.com',
      tls: { certificates: [leaf] },
      edge: { 'forward-to': 'wharf-internal' },
      projects: {
        shop: { public: true, affinity: 'cookie', ports: ['http'] },
        // Probed like any project; a real deployment probes each replica's /readyz on its admin port.
        'wharf-internal': {
          'health-port': 'admin',
          'health-path': '/readyz',
          instances: {
            'internal-0': {
              http: `127.0.0.1:${internal.port}`,
              admin: `127.0.0.1:${internal.wharf.adminAddress.port}`,
            },
          },
        },
      },
    });
  });
  after(async () => {
    await edge.stop();
    await internal.stop();
    for (const u of ups) await u.close();
  });

  it('the edge probes the internal replicas', async () => {
    const deadline = Date.now() + 3000;
    let states: string[] = [];
    while (Date.now() < deadline) {
      states = edge.wharf.health.list().map((x) => x.status.state);
      if (states.length === 1 && states[0] === 'healthy') break;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.deepEqual(states, ['healthy']);
  });

  it('a non-public project is 404 at the edge and 200 at the internal tier', async () => {
    assert.equal((await httpsGet(edge.port, 'private.apps.example.com', ca.caPem)).status, 404);
    assert.equal((await get(internal.url, 'private.apps.example.com')).status, 200);
  });

  it('requests pass through both tiers with the Host kept; instance names stay inside', async () => {
    const r = await httpsGet(edge.port, 'shop.apps.example.com', ca.caPem, {}, '/hello');
    assert.equal(r.status, 200);
    assert.match(r.body, /^shop-\d GET \/hello$/);
    assert.equal(r.headers['x-wharf-instance'], undefined);
    const seen = ups.flatMap((u) => u.seen).at(-1)!;
    assert.equal(seen.headers.host, 'shop.apps.example.com');
    assert.equal(seen.headers['x-forwarded-proto'], 'https', 'the internal tier kept what the edge saw');
    assert.match(String(seen.headers['x-forwarded-for']), /^127\.0\.0\.1, 127\.0\.0\.1$/);
  });

  it('pinning by host works through both tiers', async () => {
    for (let i = 0; i < 5; i++) {
      const r = await httpsGet(edge.port, 'shop-2.http.shop.apps.example.com', ca.caPem);
      assert.equal(r.body, 'shop-2 GET /');
    }
    const gone = await httpsGet(edge.port, 'ghost.http.shop.apps.example.com', ca.caPem);
    assert.equal(gone.status, 503);
  });
});

describe('two tiers with cookie affinity at both', () => {
  let ups: TestUpstream[];
  let internals: Started[];
  let edge: Started;
  let ca: TestCa;
  before(async () => {
    ups = await Promise.all(['shop-0', 'shop-1', 'shop-2', 'shop-3'].map((n) => startUpstream(n)));
    const projects = {
      shop: {
        public: true,
        affinity: 'cookie',
        instances: Object.fromEntries(ups.map((u) => [u.name, { http: u.address }])),
      },
    };
    internals = [
      await startWharf({ domain: 'apps.example.com', projects }),
      await startWharf({ domain: 'apps.example.com', projects }),
    ];
    ca = makeCa();
    edge = await startWharf({
      tier: 'edge',
      domain: 'apps.example.com',
      tls: { certificates: [ca.leaf('edge2', ['*.apps.example.com'])] },
      edge: { 'forward-to': 'wharf-internal' },
      projects: {
        shop: { public: true, ports: ['http'] },
        'wharf-internal': {
          affinity: 'cookie',
          'health-path': 'tcp',
          instances: Object.fromEntries(
            internals.map((w, i) => [`internal-${i}`, { http: `127.0.0.1:${w.port}` }]),
          ),
        },
      },
    });
  });
  after(async () => {
    await edge.stop();
    for (const w of internals) await w.stop();
    for (const u of ups) await u.close();
  });

  it('each tier sets its own cookie; with both, every request lands on the same instance', async () => {
    const first = await httpsGet(edge.port, 'shop.apps.example.com', ca.caPem);
    assert.equal(first.status, 200);
    const setCookies = ([] as string[]).concat(first.headers['set-cookie'] ?? []);
    const names = setCookies.map((c) => c.split('=')[0]).sort();
    assert.deepEqual(names, ['wharf_e', 'wharf_i'], 'one cookie per tier, neither overwrites the other');
    for (const c of setCookies) assert.match(c, /HttpOnly; SameSite=Lax; Secure/);
    const cookie = setCookies.map((c) => c.split(';')[0]).join('; ');
    const instance = first.body.split(' ')[0];
    for (let i = 0; i < 12; i++) {
      const r = await httpsGet(edge.port, 'shop.apps.example.com', ca.caPem, { cookie });
      assert.equal(r.body.split(' ')[0], instance, `request ${i} stayed on ${instance}`);
      assert.equal(r.headers['set-cookie'], undefined, 'a valid pair of cookies is not reissued');
    }
    // Without cookies the requests spread over the instances.
    const spread = new Set<string>();
    for (let i = 0; i < 20; i++)
      spread.add((await httpsGet(edge.port, 'shop.apps.example.com', ca.caPem)).body.split(' ')[0]);
    assert.ok(spread.size > 1, [...spread].join(','));
  });
});
