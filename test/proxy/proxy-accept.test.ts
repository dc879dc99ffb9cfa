// PROXY protocol on the edge's listeners, end to end through Wharf: a load balancer at 127.0.0.2
// (the only trusted proxy) sends headers for its clients; 127.0.0.1 plays a client that connects
// directly. The real client address reaches the upstream (x-forwarded-for), the access log and the
// per-client limits.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import type { AccessRecord } from '../../src/model/access.ts';
import { encodeProxyHeader } from '../../src/proxy/proxy-protocol.ts';
import { makeCa } from '../support/certs.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';
import { type Started, startWharf } from '../support/wharf.ts';

const LB = '127.0.0.2';
const DIRECT = '127.0.0.1';
const client = (address: string, port = 40000) => ({
  source: { address, port },
  destination: { address: address.includes(':') ? '2001:db8::20' : '192.0.2.20', port: 443 },
});
const request = (host: string, path = '/', close = true) =>
  `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${close ? 'Connection: close\r\n' : ''}\r\n`;

/** A raw TCP exchange from `from`: writes each part in turn, collects until close or `waitMs`. */
function exchange(
  port: number,
  from: string,
  parts: (string | Buffer)[],
  waitMs = 3000,
): Promise<{ text: string; ms: number }> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const sock = net.connect({ port, host: '127.0.0.1', localAddress: from });
    const chunks: Buffer[] = [];
    const done = () => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ text: Buffer.concat(chunks).toString('latin1'), ms: performance.now() - t0 });
    };
    const timer = setTimeout(done, waitMs);
    sock.on('data', (c) => chunks.push(c));
    sock.on('close', done);
    sock.on('error', done);
    sock.on('connect', async () => {
      for (const p of parts) {
        sock.write(p);
        await new Promise((r) => setTimeout(r, 10));
      }
    });
  });
}

const status = (text: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
const bodyOf = (text: string) => JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4));

describe('PROXY protocol on the edge listener', () => {
  let app: TestUpstream;
  let edge: Started;
  const access: AccessRecord[] = [];
  before(async () => {
    app = await startUpstream('app', (req, res) =>
      res.end(JSON.stringify({ xff: req.headers['x-forwarded-for'] })),
    );
    edge = await startWharf(
      {
        tier: 'edge',
        domain: 'apps.example.com',
        'proxy-protocol': true,
        'trusted-proxies': [`${LB}/32`],
        timeouts: { 'request-headers': '500ms' },
        limits: { 'client-rate': 2, 'client-connections': 1 },
        projects: { shop: { public: true, instances: { 'shop-0': { http: app.address } } } },
      },
      { onAccess: (rec) => access.push(rec) },
    );
  });
  after(async () => {
    await edge.stop();
    await app.close();
  });

  it('v1 from the balancer: the client in its header is the client, header and request in one packet', async () => {
    const r = await exchange(edge.port, LB, [
      Buffer.concat([
        encodeProxyHeader(1, client('203.0.113.7')),
        Buffer.from(request('shop.apps.example.com')),
      ]),
    ]);
    assert.equal(status(r.text), 200, r.text);
    assert.equal(bodyOf(r.text).xff, '203.0.113.7');
    assert.equal(access.at(-1)?.client, '203.0.113.7');
  });

  it('v2 (IPv6 client) from the balancer, the request in a later packet', async () => {
    const r = await exchange(edge.port, LB, [
      encodeProxyHeader(2, client('2001:db8::7')),
      request('shop.apps.example.com', '/v2'),
    ]);
    assert.equal(status(r.text), 200, r.text);
    assert.equal(bodyOf(r.text).xff, '2001:db8::7');
    assert.equal(access.at(-1)?.client, '2001:db8::7');
  });

  it('per-client limits see each client behind the balancer, not the balancer', async () => {
    // client-rate 2/s with a burst of 4: the fifth request of one client in a burst is refused...
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await exchange(edge.port, LB, [
        Buffer.concat([
          encodeProxyHeader(2, client('198.51.100.1')),
          Buffer.from(request('shop.apps.example.com')),
        ]),
      ]);
      statuses.push(status(r.text));
    }
    assert.ok(statuses.includes(429), statuses.join(','));
    // ...while another client of the same balancer is not throttled with it.
    const other = await exchange(edge.port, LB, [
      Buffer.concat([
        encodeProxyHeader(2, client('198.51.100.2')),
        Buffer.from(request('shop.apps.example.com')),
      ]),
    ]);
    assert.equal(status(other.text), 200);
  });

  it('client-connections counts each client behind the balancer', async () => {
    // Client C holds one keep-alive connection; client D's connection is fine; C's second is refused.
    const held = net.connect({ port: edge.port, host: '127.0.0.1', localAddress: LB });
    await new Promise((r) => held.once('connect', r));
    held.write(
      Buffer.concat([
        encodeProxyHeader(1, client('198.51.100.3')),
        Buffer.from(request('shop.apps.example.com', '/', false)),
      ]),
    );
    await new Promise((r) => held.once('data', r));
    try {
      const d = await exchange(edge.port, LB, [
        Buffer.concat([
          encodeProxyHeader(1, client('198.51.100.4')),
          Buffer.from(request('shop.apps.example.com')),
        ]),
      ]);
      assert.equal(status(d.text), 200);
      const c2 = await exchange(edge.port, LB, [
        Buffer.concat([
          encodeProxyHeader(1, client('198.51.100.3')),
          Buffer.from(request('shop.apps.example.com')),
        ]),
      ]);
      assert.equal(status(c2.text), 429);
      assert.match(c2.text, /too many connections/);
    } finally {
      held.destroy();
    }
  });

  it('LOCAL (the balancer health-checking) is served as the balancer itself', async () => {
    const r = await exchange(edge.port, LB, [
      Buffer.concat([encodeProxyHeader(2, 'local'), Buffer.from(request('shop.apps.example.com', '/local'))]),
    ]);
    assert.equal(status(r.text), 200);
    assert.equal(access.at(-1)?.client, LB);
  });

  it('from the balancer, a missing, malformed or late header closes the connection unanswered', async () => {
    const before = edge.logs.length;
    const missing = await exchange(edge.port, LB, [request('shop.apps.example.com')]);
    assert.equal(missing.text, '');
    const bad = await exchange(edge.port, LB, ['PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n', request('x')]);
    assert.equal(bad.text, '');
    const late = await exchange(edge.port, LB, ['PROXY TCP4 1.2'], 5000);
    assert.equal(late.text, '');
    assert.ok(late.ms >= 450 && late.ms < 3000, `closed after ${late.ms} ms (request-headers: 500ms)`);
    const refused = edge.logs
      .slice(before)
      .filter((l) => l.msg === 'PROXY protocol header refused; connection closed');
    assert.ok(refused.length >= 1, 'logged (at most once a second)');
    assert.equal(refused[0].fields?.peer, LB);
  });

  it('from anyone else a PROXY header is not believed: 400, and the client is the TCP peer', async () => {
    const spoof = await exchange(edge.port, DIRECT, [
      Buffer.concat([
        encodeProxyHeader(1, client('203.0.113.66')),
        Buffer.from(request('shop.apps.example.com')),
      ]),
    ]);
    assert.equal(status(spoof.text), 400);
    const v2 = await exchange(edge.port, DIRECT, [
      Buffer.concat([
        encodeProxyHeader(2, client('203.0.113.66')),
        Buffer.from(request('shop.apps.example.com')),
      ]),
    ]);
    assert.equal(status(v2.text), 400);
    assert.ok(!access.some((a) => a.client === '203.0.113.66'));
    const plain = await exchange(edge.port, DIRECT, [request('shop.apps.example.com', '/direct')]);
    assert.equal(status(plain.text), 200);
    assert.equal(bodyOf(plain.text).xff, DIRECT);
    assert.equal(access.at(-1)?.client, DIRECT);
  });
});

describe('PROXY protocol before TLS, and on the redirect listener', () => {
  let app: TestUpstream;
  let edge: Started;
  let caPem: string;
  before(async () => {
    const ca = makeCa();
    caPem = ca.caPem;
    const dir = mkdtempSync(join(tmpdir(), 'wharf-pp-certs-'));
    ca.leaf('wild', ['*.apps.example.com'], { into: dir });
    app = await startUpstream('app', (req, res) =>
      res.end(JSON.stringify({ xff: req.headers['x-forwarded-for'], xfp: req.headers['x-forwarded-proto'] })),
    );
    edge = await startWharf({
      tier: 'edge',
      domain: 'apps.example.com',
      'proxy-protocol': true,
      'trusted-proxies': [`${LB}/32`],
      tls: {
        certificates: [{ cert: join(dir, 'wild.crt'), key: join(dir, 'wild.key') }],
        'redirect-http': '127.0.0.1:0',
      },
      projects: { shop: { public: true, instances: { 'shop-0': { http: app.address } } } },
    });
  });
  after(async () => {
    await edge.stop();
    await app.close();
  });

  it('the header comes before the TLS handshake; the request inside TLS carries the client', async () => {
    const raw = net.connect({ port: edge.port, host: '127.0.0.1', localAddress: LB });
    await new Promise((r) => raw.once('connect', r));
    raw.write(encodeProxyHeader(2, client('203.0.113.9')));
    const s = tls.connect({ socket: raw, servername: 'shop.apps.example.com', ca: caPem });
    await new Promise<void>((resolve, reject) => {
      s.once('secureConnect', () => resolve());
      s.once('error', reject);
    });
    s.write(request('shop.apps.example.com'));
    const chunks: Buffer[] = [];
    s.on('data', (c) => chunks.push(c));
    await new Promise((r) => s.once('close', r));
    const text = Buffer.concat(chunks).toString();
    assert.equal(status(text), 200, text);
    assert.deepEqual(bodyOf(text), { xff: '203.0.113.9', xfp: 'https' });
  });

  it('the redirect listener reads the header too', async () => {
    // Its port: the one listener of the redirect acceptor (not exposed on Started).
    const w = edge.wharf as unknown as { tls: { redirectAcceptor: net.Server } };
    const port = (w.tls.redirectAcceptor.address() as net.AddressInfo).port;
    const r = await exchange(port, LB, [
      Buffer.concat([
        encodeProxyHeader(1, client('203.0.113.9')),
        Buffer.from(request('shop.apps.example.com')),
      ]),
    ]);
    assert.equal(status(r.text), 308);
    assert.match(r.text, /location: https:\/\/shop\.apps\.example\.com/i);
    const missing = await exchange(port, LB, [request('shop.apps.example.com')]);
    assert.equal(missing.text, '');
  });
});
