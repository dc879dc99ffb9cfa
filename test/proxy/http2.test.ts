// HTTP/2 clients, checked with clients that are not ours: curl, nghttp and Chromium. HTTP/2 is one more
// front end to the same pipeline, so conventions, pinning, hygiene and logging behave as for HTTP/1.1.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { AccessRecord } from '../../src/model/access.ts';
import { chromiumMissing, launch } from '../browser/browser.ts';
import { makeCa, type TestCa } from '../support/certs.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';
import { type Started, startWharf } from '../support/wharf.ts';

const run = promisify(execFile);

/** A command's output, or undefined (with a printed reason) when it is not installed. */
async function tool(cmd: string, args: string[]): Promise<string | undefined> {
  try {
    const { stdout } = await run(cmd, args, { timeout: 15_000 });
    return stdout;
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') {
      process.stdout.write(
        `# skipping: ${cmd} not installed (apt-get install curl nghttp2-client; .ci/run does it)\n`,
      );
      return undefined;
    }
    throw err;
  }
}

/** One HTTP/2 request with node's client: status, headers and body. */
async function h2get(
  url: string,
  authority: string,
  headers: Record<string, string> = {},
  path = '/',
  opts: http2.SecureClientSessionOptions = {},
): Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: string }> {
  const session = http2.connect(url, opts);
  try {
    return await new Promise((resolve, reject) => {
      const req = session.request({ ':path': path, ':authority': authority, ...headers });
      let body = '';
      let head: http2.IncomingHttpHeaders = {};
      req.on('response', (h) => {
        head = h;
      });
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => resolve({ status: Number(head[':status']), headers: head, body }));
      req.on('error', reject);
      req.end();
    });
  } finally {
    session.close();
  }
}

describe('HTTP/2 on the internal tier (cleartext, prior knowledge) and the edge (TLS, ALPN)', () => {
  let ups: TestUpstream[];
  let internal: Started;
  let edge: Started;
  let ca: TestCa;
  let caFile: string;
  const access: AccessRecord[] = [];
  before(async () => {
    ups = await Promise.all(['web-0', 'web-1'].map((n) => startUpstream(n)));
    internal = await startWharf(
      {
        domain: 'apps.example.com',
        projects: {
          web: { public: true, instances: Object.fromEntries(ups.map((u) => [u.name, { http: u.address }])) },
        },
      },
      { onAccess: (r) => access.push(r) },
    );
    ca = makeCa();
    const dir = mkdtempSync(join(tmpdir(), 'wharf-h2-'));
    caFile = join(dir, 'ca.pem');
    writeFileSync(caFile, ca.caPem);
    const leaf = ca.leaf('edge', ['*.apps.example.com', '*.http.web.apps.example.com']);
    edge = await startWharf({
      tier: 'edge',
      domain: 'apps.example.com',
      tls: { certificates: [leaf] },
      projects: {
        web: {
          public: true,
          'allow-pin-header': true,
          instances: Object.fromEntries(ups.map((u) => [u.name, { http: u.address }])),
        },
      },
    });
  });
  after(async () => {
    await edge.stop();
    await internal.stop();
    for (const u of ups) await u.close();
  });

  it('one cleartext port serves HTTP/2 with prior knowledge and HTTP/1.1 (curl)', async () => {
    const h2 = await tool('curl', [
      '-s',
      '--http2-prior-knowledge',
      '-w',
      '\\n%{http_version}',
      '-H',
      'host: web.apps.example.com',
      `http://127.0.0.1:${internal.port}/p2`,
    ]);
    if (h2 === undefined) return;
    assert.match(h2, /^web-\d GET \/p2\n2$/);
    const h1 = await tool('curl', [
      '-s',
      '-w',
      '\\n%{http_version}',
      '-H',
      'host: web.apps.example.com',
      `http://127.0.0.1:${internal.port}/p1`,
    ]);
    assert.match(h1 ?? '', /^web-\d GET \/p1\n1.1$/);
  });

  it('the edge negotiates h2 by ALPN, and HTTP/1.1 for clients that offer only that (curl)', async () => {
    const common = ['-s', '--cacert', caFile, '--resolve', `web.apps.example.com:${edge.port}:127.0.0.1`];
    const url = `https://web.apps.example.com:${edge.port}/tls`;
    const h2 = await tool('curl', [...common, '--http2', '-w', '\\n%{http_version}', url]);
    if (h2 === undefined) return;
    assert.match(h2, /^web-\d GET \/tls\n2$/);
    const h1 = await tool('curl', [...common, '--http1.1', '-w', '\\n%{http_version}', url]);
    assert.match(h1 ?? '', /^web-\d GET \/tls\n1.1$/);
  });

  it('nghttp gets the page over h2c and over TLS', async () => {
    const clear = await tool('nghttp', [
      '-H',
      ':authority: web.apps.example.com',
      `http://127.0.0.1:${internal.port}/ng`,
    ]);
    if (clear === undefined) return;
    assert.match(clear, /^web-\d GET \/ng$/);
    // nghttp checks no certificate; the handshake and ALPN are what it shows.
    const tls = await tool('nghttp', [
      '-v',
      '-H',
      ':authority: web.apps.example.com',
      `https://127.0.0.1:${edge.port}/ngs`,
    ]);
    assert.match(tls ?? '', /web-\d GET \/ngs/);
    assert.match(tls ?? '', /The negotiated protocol: h2/);
  });

  it('conventions, pinning by host and by header, and 404s behave as over HTTP/1.1', async () => {
    const base = `http://127.0.0.1:${internal.port}`;
    for (let i = 0; i < 4; i++) {
      const r = await h2get(base, 'web-1.http.web.apps.example.com');
      assert.equal(r.body, 'web-1 GET /');
      assert.equal(r.headers['x-wharf-instance'], 'web-1');
    }
    const byHeader = await h2get(base, 'web.apps.example.com', { 'x-wharf-instance': 'web-0' });
    assert.equal(byHeader.body, 'web-0 GET /');
    const missing = await h2get(base, 'nope.apps.example.com');
    assert.equal(missing.status, 404);
    assert.equal(missing.headers['content-type'], 'application/json');
    assert.match(JSON.parse(missing.body).reason, /no project "nope"/);
    const gone = await h2get(base, 'ghost.http.web.apps.example.com');
    assert.equal(gone.status, 503);
  });

  it('the upstream sees the request as HTTP/1.1 would send it: Host from :authority, x-forwarded-*', async () => {
    await h2get(`http://127.0.0.1:${internal.port}`, 'web.apps.example.com', { 'x-trace': 't1' }, '/seen');
    const seen = ups.flatMap((u) => u.seen).find((s) => s.url === '/seen');
    assert.ok(seen);
    assert.equal(seen.headers.host, 'web.apps.example.com');
    assert.equal(seen.headers['x-trace'], 't1');
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen.headers['x-wharf-via'], 'internal');
    assert.equal(
      Object.keys(seen.headers).some((k) => k.startsWith(':')),
      false,
    );
  });

  it('the edge over h2 hides instance names and honours allow-pin-header', async () => {
    const opts = { ca: ca.caPem, servername: 'web.apps.example.com' };
    const url = `https://127.0.0.1:${edge.port}`;
    const r = await h2get(url, 'web.apps.example.com', { 'x-wharf-instance': 'web-1' }, '/', opts);
    assert.equal(r.body, 'web-1 GET /');
    assert.deepEqual(
      Object.keys(r.headers).filter((k) => k.startsWith('x-wharf-')),
      [],
    );
  });

  it('access lines say h2', async () => {
    const n = access.length;
    await h2get(`http://127.0.0.1:${internal.port}`, 'web.apps.example.com', {}, '/logged');
    const deadline = Date.now() + 2000;
    while (access.length === n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    const rec = access.at(-1)!;
    assert.equal(rec.protocol, 'h2');
    assert.equal(rec.path, '/logged');
    assert.equal(rec.host, 'web.apps.example.com');
  });

  it('Chromium loads a page through the edge over h2', { skip: chromiumMissing() }, async () => {
    const browser = await launch([
      `--host-resolver-rules=MAP *.apps.example.com 127.0.0.1`,
      '--ignore-certificate-errors',
    ]);
    try {
      const page = await browser.newPage();
      const res = await page.goto(`https://web.apps.example.com:${edge.port}/page`);
      assert.equal(res?.status(), 200);
      const proto = await page.evaluate("performance.getEntriesByType('navigation')[0].nextHopProtocol");
      assert.equal(proto, 'h2');
      assert.match(await page.content(), /web-\d GET \/page/);
    } finally {
      await browser.close();
    }
  });
});

describe('HTTP/2 clients on SIGTERM', () => {
  it('get GOAWAY, and the streams in flight finish', async () => {
    const slow = await startUpstream('slow', (req, res) => setTimeout(() => res.end(`done ${req.url}`), 400));
    const w = await startWharf({ projects: { slow: { instances: { 'slow-0': { http: slow.address } } } } });
    const session = http2.connect(`http://127.0.0.1:${w.port}`);
    session.on('error', () => {});
    try {
      const goaway = new Promise<number>((resolve) => session.once('goaway', (code) => resolve(code)));
      const inflight = new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = session.request({ ':path': '/long', ':authority': 'slow.test.local' });
        let status = 0;
        let body = '';
        req.on('response', (h) => {
          status = Number(h[':status']);
        });
        req.on('data', (c) => {
          body += c;
        });
        req.on('end', () => resolve({ status, body }));
        req.on('error', reject);
        req.end();
      });
      await new Promise((r) => setTimeout(r, 100));
      const stopped = w.wharf.stop(3000);
      assert.equal(await goaway, http2.constants.NGHTTP2_NO_ERROR);
      assert.deepEqual(await inflight, { status: 200, body: 'done /long' });
      await stopped;
    } finally {
      session.destroy();
      await slow.close();
    }
  });
});
