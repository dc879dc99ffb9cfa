import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import type { ProjectsDocument } from '../../src/admin/server.ts';
import { deadPort, startUpstream, type TestUpstream } from '../support/upstream.ts';
import { get, type Started, startWharf } from '../support/wharf.ts';

const closers: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

async function upstream(name: string, h?: Parameters<typeof startUpstream>[1]): Promise<TestUpstream> {
  const u = await startUpstream(name, h);
  closers.push(() => u.close());
  return u;
}

async function wharf(
  instances: Record<string, string>,
  settings: Record<string, unknown> = {},
): Promise<Started> {
  const inst = Object.fromEntries(Object.entries(instances).map(([k, v]) => [k, { http: v }]));
  const w = await startWharf({ projects: { p: { ...settings, instances: inst } } });
  closers.push(() => w.stop());
  return w;
}

describe('retries and upstream failures', () => {
  it('retries a refused connection on another instance for any method, and marks the instance down', async () => {
    const good = await upstream('good');
    const dead = await deadPort();
    const w = await wharf({ a: `127.0.0.1:${dead}`, b: good.address });
    for (let i = 0; i < 10; i++) {
      const r = await get(w.url, 'p.test.local', {
        method: i % 2 ? 'POST' : 'GET',
        body: i % 2 ? `n=${i}` : undefined,
      });
      assert.equal(r.status, 200, `request ${i}: ${r.body}`);
      assert.equal(r.headers['x-wharf-instance'], 'b');
    }
    const posts = good.seen.filter((s) => s.method === 'POST');
    assert.deepEqual(
      posts.map((s) => s.body),
      ['n=1', 'n=3', 'n=5', 'n=7', 'n=9'],
      'each POST body arrived exactly once and intact',
    );
    const projects = (await (await fetch(`${w.admin}/api/projects`)).json()) as ProjectsDocument;
    const a = projects.projects[0].ports[0].instances.find((x) => x.name === 'a');
    assert.equal(a?.state, 'unhealthy');
  });

  it('answers 502 JSON naming project, port, instance and reason when every attempt is refused', async () => {
    const w = await wharf({ a: `127.0.0.1:${await deadPort()}` });
    const r = await get(w.url, 'p.test.local');
    assert.ok(r.status === 502 || r.status === 503, String(r.status));
    const body = r.json();
    assert.equal(body.project, 'p');
    assert.equal(body.port, 'http');
    assert.ok(body.reason.length > 0);
    // Now the instance is known down: a fast 503 with Retry-After, without queueing.
    const r2 = await get(w.url, 'p.test.local');
    assert.equal(r2.status, 503);
    assert.equal(r2.headers['retry-after'], '1');
    assert.equal(r2.json().error, 'service unavailable');
  });

  it('retries idempotent requests on 503 from one instance but never a POST', async () => {
    const sick = await upstream('sick', (_req, res) => {
      res.writeHead(503, { 'content-type': 'text/plain' });
      res.end('busy');
    });
    const good = await upstream('good');
    const w = await wharf({ a: sick.address, b: good.address }, { balancer: 'round-robin' });
    for (let i = 0; i < 6; i++) {
      const r = await get(w.url, 'p.test.local');
      assert.equal(r.status, 200, `GET ${i} was retried onto the good instance`);
    }
    // Only the sick instance: each POST reaches it once and its own 503 comes back unretried.
    const alone = await wharf({ a: sick.address });
    const before = sick.seen.filter((s) => s.method === 'POST').length;
    for (let i = 0; i < 3; i++) {
      const r = await get(alone.url, 'p.test.local', { method: 'POST', body: `x${i}` });
      assert.equal(r.status, 503);
      assert.equal(r.body, 'busy', "the upstream's own 503 is passed through");
    }
    assert.equal(sick.seen.filter((s) => s.method === 'POST').length - before, 3, 'no POST was sent twice');
  });

  it('retries a GET whose connection is reset, but not a POST whose body was sent', async () => {
    let resets = 0;
    const flaky = await upstream('flaky', (req) => {
      resets++;
      req.socket.destroy();
    });
    const good = await upstream('good');
    const w = await wharf({ a: flaky.address, b: good.address }, { balancer: 'round-robin' });
    for (let i = 0; i < 4; i++) assert.equal((await get(w.url, 'p.test.local')).status, 200);
    assert.ok(resets >= 1);
    const w2 = await wharf({ a: flaky.address });
    const before = resets;
    const r = await get(w2.url, 'p.test.local', { method: 'POST', body: 'once' });
    assert.equal(r.status, 502);
    assert.equal(resets - before, 1, 'the POST reached the upstream exactly once');
  });

  it('times out a slow upstream with 504 after the project timeout', async () => {
    const slow = await upstream('slow', (_req, res) => {
      setTimeout(() => res.end('late'), 1500);
    });
    const w = await wharf({ a: slow.address }, { timeout: '200ms', retries: 0 });
    const t0 = Date.now();
    const r = await get(w.url, 'p.test.local');
    assert.equal(r.status, 504);
    assert.ok(Date.now() - t0 < 1200, 'answered at the timeout, not when the upstream finished');
    assert.equal(r.json().project, 'p');
  });

  it('answers 502 for an upstream that sends an invalid response', async () => {
    const bad = net.createServer((s) => {
      // The TCP check closes its connection with a reset (no TIME_WAIT): a socket error here.
      s.on('error', () => {});
      s.on('data', () => s.end('HTTP/1.1 abc garbage\r\n\r\n'));
    });
    await new Promise<void>((r) => bad.listen(0, '127.0.0.1', r));
    closers.push(() => new Promise((r) => bad.close(() => r())));
    // A TCP check: the HTTP probe would (rightly) find this upstream broken and eject it first.
    const w = await wharf(
      { a: `127.0.0.1:${(bad.address() as net.AddressInfo).port}` },
      { retries: 0, 'health-path': 'tcp' },
    );
    const r = await get(w.url, 'p.test.local');
    assert.equal(r.status, 502);
    assert.match(r.json().reason, /invalid HTTP response/);
  });

  it('a client that goes away cancels its upstream request', async () => {
    let upstreamClosed = false;
    const hang = await upstream('hang', (req, res) => {
      res.on('close', () => {
        upstreamClosed = true;
      });
      void req;
    });
    const w = await wharf({ a: hang.address });
    const req = http.get({ port: w.port, path: '/', headers: { host: 'p.test.local' } });
    req.on('error', () => {});
    await new Promise((r) => setTimeout(r, 150));
    req.destroy();
    const deadline = Date.now() + 2000;
    while (!upstreamClosed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(upstreamClosed, true);
  });

  it('the retry budget caps retries during an outage', async () => {
    let sickHits = 0;
    const sick = await upstream('sick', (_req, res) => {
      sickHits++;
      res.writeHead(503);
      res.end();
    });
    const sick2 = await upstream('sick2', (_req, res) => {
      sickHits++;
      res.writeHead(503);
      res.end();
    });
    const w = await startWharf({
      upstream: { 'retry-budget': 0.2, 'retry-budget-min': 2 },
      projects: { p: { retries: 2, instances: { a: { http: sick.address }, b: { http: sick2.address } } } },
    });
    closers.push(() => w.stop());
    for (let i = 0; i < 20; i++) await get(w.url, 'p.test.local');
    assert.ok(
      sickHits <= 20 + 5,
      `retries stayed within the budget (${sickHits - 20} retries for 20 requests)`,
    );
    assert.ok(sickHits > 20, 'some retries happened');
  });
});
