// Edge header hygiene (issue 20, item 4), end to end: what a client outside trusted-proxies says
// about who it is never reaches an instance; a trusted proxy's word is kept and extended.

import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';
import { type Started, startWharf } from '../support/wharf.ts';

/** Request headers claiming a client address, scheme, host, port or prefix. */
const CLAIMS: Record<string, string> = {
  'X-Forwarded-For': '203.0.113.9',
  'X-Forwarded-Proto': 'https',
  'X-Forwarded-Host': 'evil.example',
  'X-Forwarded-Prefix': '/admin',
  'X-Forwarded-Port': '443',
  'X-Forwarded-Scheme': 'https',
  'X-Forwarded-Ssl': 'on',
  Forwarded: 'for=203.0.113.9;proto=https;host=evil.example',
  'X-Real-IP': '203.0.113.9',
  'True-Client-IP': '203.0.113.9',
  'X-Client-IP': '203.0.113.9',
  'CF-Connecting-IP': '203.0.113.9',
  'Fastly-Client-IP': '203.0.113.9',
  'X-Cluster-Client-IP': '203.0.113.9',
  'X-Original-Forwarded-For': '203.0.113.9',
};

/** A GET from `from` (a loopback address) with the claims; the headers the instance received. */
async function viaEdge(port: number, from: string, up: TestUpstream): Promise<Record<string, unknown>> {
  const n = up.seen.length;
  const head =
    `GET /who HTTP/1.1\r\nHost: shop.apps.test\r\nConnection: close\r\n` +
    Object.entries(CLAIMS)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('');
  await new Promise<void>((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress: from }, () => s.write(`${head}\r\n`));
    s.on('data', () => {});
    s.on('close', () => resolve());
    s.on('error', reject);
  });
  assert.equal(up.seen.length, n + 1);
  return up.seen[n].headers;
}

/** The same over an HTTP/2 stream (h2c prior knowledge): the rule is the pipeline's, for every protocol. */
async function viaEdgeH2(port: number, from: string, up: TestUpstream): Promise<Record<string, unknown>> {
  const n = up.seen.length;
  const session = http2.connect(`http://127.0.0.1:${port}`, {
    createConnection: () => net.connect({ port, host: '127.0.0.1', localAddress: from }),
  });
  try {
    const headers: http2.OutgoingHttpHeaders = { ':path': '/who', ':authority': 'shop.apps.test' };
    for (const [k, v] of Object.entries(CLAIMS)) headers[k.toLowerCase()] = v;
    await new Promise<void>((resolve, reject) => {
      const stream = session.request(headers);
      stream.on('data', () => {});
      stream.on('end', () => resolve());
      stream.on('error', reject);
    });
  } finally {
    session.close();
  }
  assert.equal(up.seen.length, n + 1);
  return up.seen[n].headers;
}

describe('edge header hygiene', () => {
  let up: TestUpstream;
  let w: Started;
  before(async () => {
    up = await startUpstream('shop-0');
    w = await startWharf({
      tier: 'edge',
      domain: 'apps.test',
      'trusted-proxies': ['127.0.0.2/32'],
      projects: { shop: { public: true, instances: { 'shop-0': { http: up.address } } } },
    });
    const until = Date.now() + 3000;
    while (w.wharf.health.list()[0]?.status.state !== 'healthy') {
      if (Date.now() > until) assert.fail('instance not healthy');
      await new Promise((r) => setTimeout(r, 20));
    }
  });
  after(async () => {
    await w.stop();
    await up.close();
  });

  it('from an untrusted client, every claim is dropped and the forwarding headers are set afresh', async () => {
    const h = await viaEdge(w.port, '127.0.0.1', up);
    for (const name of Object.keys(CLAIMS)) {
      const lower = name.toLowerCase();
      if (['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded'].includes(lower)) continue;
      assert.equal(h[lower], undefined, `${name} reached the instance`);
    }
    assert.equal(h['x-forwarded-for'], '127.0.0.1');
    assert.equal(h['x-forwarded-proto'], 'http');
    assert.equal(h['x-forwarded-host'], 'shop.apps.test');
    assert.equal(h.forwarded, 'for=127.0.0.1;host=shop.apps.test;proto=http');
  });

  it("over HTTP/2 too: an untrusted client's claims are dropped, a trusted proxy's extended", async () => {
    const h = await viaEdgeH2(w.port, '127.0.0.1', up);
    for (const name of Object.keys(CLAIMS)) {
      const lower = name.toLowerCase();
      if (['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded'].includes(lower)) continue;
      assert.equal(h[lower], undefined, `${name} reached the instance over h2`);
    }
    assert.equal(h['x-forwarded-for'], '127.0.0.1');
    assert.equal(h.forwarded, 'for=127.0.0.1;host=shop.apps.test;proto=http');
    const t = await viaEdgeH2(w.port, '127.0.0.2', up);
    assert.equal(t['x-forwarded-for'], '203.0.113.9, 127.0.0.2');
    assert.equal(t['x-real-ip'], '203.0.113.9');
  });

  it('from a trusted proxy, the claims are kept and x-forwarded-for and forwarded extended', async () => {
    const h = await viaEdge(w.port, '127.0.0.2', up);
    assert.equal(h['x-forwarded-for'], '203.0.113.9, 127.0.0.2');
    assert.equal(h['x-forwarded-proto'], 'https');
    assert.equal(h['x-forwarded-host'], 'evil.example');
    assert.equal(h.forwarded, `${CLAIMS.Forwarded}, for=127.0.0.2;host=shop.apps.test;proto=http`);
    assert.equal(h['x-forwarded-prefix'], '/admin');
    assert.equal(h['x-real-ip'], '203.0.113.9');
    assert.equal(h['true-client-ip'], '203.0.113.9');
  });
});
