// Slow uploads must not lock a project out (issue 20, item 2). A client that trickles its body holds
// no upstream connection while the body is within limits.body-buffer-bytes; a client streaming
// larger bodies holds at most upstream.uploads-per-client of an instance's connections; and a request
// waiting for a connection gets its 503 with Retry-After after timeouts.queue instead of waiting
// without end.

import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { rawExchange } from '../support/raw.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';
import { type Started, startWharf } from '../support/wharf.ts';

const HOST = 'shop.test.local';

/** Opens a connection (from `from`, a loopback address) and sends a POST head plus `first` body bytes. */
function openUpload(port: number, bytes: number, first: number, from = '127.0.0.1'): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress: from }, () => {
      s.write(`POST /upload HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: ${bytes}\r\n\r\n`);
      if (first > 0) s.write('x'.repeat(first));
      resolve(s);
    });
    s.on('error', reject);
    s.on('data', (d) => {
      (s as net.Socket & { answer?: string }).answer =
        ((s as net.Socket & { answer?: string }).answer ?? '') + d.toString('latin1');
    });
  });
}

function answerOf(s: net.Socket): string {
  return (s as net.Socket & { answer?: string }).answer ?? '';
}

async function until(what: string, fn: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A GET through Wharf that must be answered within `ms` (it fails the test otherwise). */
async function getWithin(
  port: number,
  ms: number,
): Promise<{ status: number; headers: http.IncomingHttpHeaders }> {
  const res = await request(`http://127.0.0.1:${port}/get`, {
    headers: { host: HOST },
    signal: AbortSignal.timeout(ms),
  });
  await res.body.dump();
  return { status: res.statusCode, headers: res.headers as http.IncomingHttpHeaders };
}

async function healthy(w: Started): Promise<void> {
  await until('a healthy instance', () => w.wharf.health.list().every((x) => x.status.state === 'healthy'));
}

describe('140 trickling uploads against a one-instance project (the issue scenario)', () => {
  let up: TestUpstream;
  let w: Started;
  const uploads: net.Socket[] = [];
  before(async () => {
    up = await startUpstream('shop-0');
    // Defaults: 128 pooled connections per instance, 64 KiB read before a connection is taken.
    w = await startWharf({ projects: { shop: { instances: { 'shop-0': { http: up.address } } } } });
    await healthy(w);
  });
  after(async () => {
    for (const s of uploads) s.destroy();
    await w.stop();
    await up.close();
  });

  it('GETs are still answered at once while 140 clients trickle their bodies', async () => {
    for (let i = 0; i < 140; i++) uploads.push(await openUpload(w.port, 1000, 1));
    // One byte every 200 ms on every upload for the rest of the test: slow, but moving.
    const drip = setInterval(() => {
      for (const s of uploads) if (!s.destroyed) s.write('x');
    }, 200);
    try {
      await new Promise((r) => setTimeout(r, 500));
      for (let i = 0; i < 5; i++) assert.equal((await getWithin(w.port, 2000)).status, 200);
      assert.equal(
        up.seen.filter((s) => s.method === 'POST').length,
        0,
        'no unfinished upload went upstream',
      );
      assert.equal(
        uploads.filter((s) => s.destroyed || answerOf(s) !== '').length,
        0,
        'the uploads are all still going',
      );
    } finally {
      clearInterval(drip);
    }
  });
});

describe('request bodies within the bound are read before a connection is taken', () => {
  let arrived = 0;
  let server: http.Server;
  let w: Started;
  before(async () => {
    server = http.createServer((req, res) => {
      if (req.headers['user-agent'] !== 'wharf-health') arrived++;
      let body = '';
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => res.end(JSON.stringify({ length: req.headers['content-length'], body })));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const address = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    w = await startWharf({ projects: { shop: { instances: { 'shop-0': { http: address } } } } });
    await healthy(w);
  });
  after(async () => {
    await w.stop();
    server.closeAllConnections();
    server.close();
  });

  it('the upstream hears of the request only once its body is complete, and gets it whole', async () => {
    const raw = rawExchange(w.port, (s) => {
      s.write(
        `POST /small HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`,
      );
      s.write('5\r\nhello\r\n');
      setTimeout(() => {
        // Half the body is in, and nothing has been sent upstream.
        assert.equal(arrived, 0);
        s.write('6\r\n world\r\n0\r\n\r\n');
      }, 300);
    });
    const answer = await raw;
    assert.match(answer, /^HTTP\/1.1 200 /);
    assert.equal(arrived, 1);
    // Sent with its length: the whole body was in hand.
    assert.match(answer, /\{"length":"11","body":"hello world"\}/);
  });

  it("the same for an HTTP/2 stream (h2c prior knowledge): the rule is the pipeline's, not HTTP/1.1's", async () => {
    const before = arrived;
    const session = http2.connect(`http://127.0.0.1:${w.port}`);
    try {
      const stream = session.request({ ':method': 'POST', ':path': '/small-h2', ':authority': HOST });
      stream.write('hello');
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(arrived, before, 'half the body is in, and nothing has been sent upstream');
      stream.end(' world');
      const [status, body] = await new Promise<[number, string]>((resolve, reject) => {
        let st = 0;
        let text = '';
        stream.on('response', (h) => {
          st = Number(h[':status']);
        });
        stream.on('data', (c: Buffer) => {
          text += c;
        });
        stream.on('end', () => resolve([st, text]));
        stream.on('error', reject);
      });
      assert.equal(status, 200);
      assert.equal(arrived, before + 1);
      assert.deepEqual(JSON.parse(body), { length: '11', body: 'hello world' });
    } finally {
      session.close();
    }
  });
});

describe('uploads over the bound stream, at most upstream.uploads-per-client per client and instance', () => {
  let up: TestUpstream;
  let w: Started;
  const sockets: net.Socket[] = [];
  before(async () => {
    // raw: the handler sees the request as soon as its head arrives, and never reads the body.
    up = await startUpstream(
      'shop-0',
      (req) =>
        up.seen.push({
          method: req.method ?? '',
          url: req.url ?? '',
          headers: req.headers,
          rawHeaders: req.rawHeaders,
          body: '',
        }),
      { raw: true },
    );
    w = await startWharf({
      projects: { shop: { instances: { 'shop-0': { http: up.address } } } },
      limits: { 'body-buffer-bytes': 1024 },
      upstream: { 'uploads-per-client': 2 },
      'trusted-proxies': ['127.0.0.3/32'],
    });
    await healthy(w);
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await w.stop();
    await up.close();
  });

  it('the third streaming upload from one address gets 429; other addresses and trusted proxies are not held to its count', async () => {
    for (let i = 0; i < 2; i++) sockets.push(await openUpload(w.port, 100_000, 4096));
    await until('two streaming uploads upstream', () => up.seen.length === 2);
    const third = await openUpload(w.port, 100_000, 4096);
    sockets.push(third);
    await until('the third answered', () => answerOf(third) !== '');
    assert.match(answerOf(third), /^HTTP\/1.1 429 /);
    assert.match(answerOf(third), /\r\nretry-after: 1\r\n/i);
    assert.match(answerOf(third), /"reason":"this client already streams 2 uploads to this instance"/);
    // Another client address is not held to that count, nor is a trusted proxy (many clients).
    sockets.push(await openUpload(w.port, 100_000, 4096, '127.0.0.2'));
    for (let i = 0; i < 3; i++) sockets.push(await openUpload(w.port, 100_000, 4096, '127.0.0.3'));
    await until('the other clients upstream', () => up.seen.length === 6);
    // A body within the bound still goes through for the capped client (it holds no connection).
    const small = await rawExchange(
      w.port,
      `POST /small HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789`,
      500,
    );
    assert.doesNotMatch(small, /^HTTP\/1.1 429 /);
    assert.ok(up.seen.some((s) => s.url === '/small'));
  });
});

describe('a request queued for a connection has a deadline (timeouts.queue)', () => {
  let up: TestUpstream;
  let w: Started;
  before(async () => {
    up = await startUpstream('shop-0', (req, res) => {
      if (req.url === '/slow') setTimeout(() => res.end('slow'), 800);
      else res.end('fast');
    });
    w = await startWharf({
      projects: { shop: { instances: { 'shop-0': { http: up.address } } } },
      upstream: { connections: 1 },
      timeouts: { queue: '300ms' },
    });
    await healthy(w);
  });
  after(async () => {
    await w.stop();
    await up.close();
  });

  it('503 with Retry-After once the wait passes the deadline; the instance stays healthy', async () => {
    const slow = request(`http://127.0.0.1:${w.port}/slow`, { headers: { host: HOST } });
    await until('the slow request upstream', () => up.seen.length === 1);
    const t0 = Date.now();
    const res = await request(`http://127.0.0.1:${w.port}/fast`, {
      headers: { host: HOST },
      signal: AbortSignal.timeout(1200),
    });
    const body = (await res.body.json()) as { reason: string };
    assert.equal(res.statusCode, 503);
    assert.equal(res.headers['retry-after'], '1');
    assert.match(body.reason, /no connection to the instance came free within 300 ms/);
    assert.ok(Date.now() - t0 < 1000, `answered after ${Date.now() - t0} ms`);
    assert.equal(await (await slow).body.text(), 'slow');
    assert.deepEqual(
      w.wharf.health.list().map((x) => x.status.state),
      ['healthy'],
    );
  });

  it('a request that gets a connection within the deadline is served', async () => {
    const w2 = await startWharf({
      projects: { shop: { instances: { 'shop-0': { http: up.address } } } },
      upstream: { connections: 1 },
      timeouts: { queue: '5s' },
    });
    try {
      await healthy(w2);
      const slow = request(`http://127.0.0.1:${w2.port}/slow`, { headers: { host: HOST } });
      await new Promise((r) => setTimeout(r, 50));
      const res = await request(`http://127.0.0.1:${w2.port}/fast`, { headers: { host: HOST } });
      assert.equal(res.statusCode, 200);
      assert.equal(await res.body.text(), 'fast');
      await (await slow).body.dump();
    } finally {
      await w2.stop();
    }
  });
});
