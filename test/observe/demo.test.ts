// The demo end to end without a browser: real instance processes behind a real Wharf, the control
// API, the observe routes, and a clean stop that leaves no process behind.
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type RunningDemo, startDemo } from '../../src/demo/index.ts';
import { parseExposition, value } from './prom-text.ts';
import { connectSse } from './sse-client.ts';

/** The admin port takes state changes only with a JSON body or this header (src/admin/guard.ts). */
const POST_ON_PURPOSE = { method: 'POST', headers: { 'x-wharf-admin': '1' } };

/** Poll until `fn` returns a truthy value (discovery is asynchronous in apiserver mode). */
async function eventually<T>(fn: () => Promise<T>, ms = 5000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v || Date.now() > until) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('wharf demo', () => {
  let demo: RunningDemo;
  const logDir = join(tmpdir(), `wharf-demo-unit-${process.pid}`);
  // node:http, not fetch: fetch does not let a caller set Host.
  const get = (host: string, path = '/'): Promise<{ status: number; json(): Promise<unknown> }> =>
    new Promise((resolve, reject) => {
      const req = http.get(`${demo.proxyUrl}${path}`, { headers: { host } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: async () => JSON.parse(body) }));
      });
      req.on('error', reject);
    });

  before(async () => {
    demo = await startDemo({ listen: '127.0.0.1:0', admin: '127.0.0.1:0', logDir, rps: 0, drainMs: 1000 });
  });
  after(async () => {
    await demo?.stop();
    rmSync(logDir, { recursive: true, force: true });
  });

  test('instances answer with their own name and port through the conventional hosts', async () => {
    const r = await get('web.shop.demo.local');
    assert.equal(r.status, 200);
    const body = (await r.json()) as { project: string; port: string; instance: string };
    assert.equal(body.project, 'shop');
    assert.equal(body.port, 'web');
    assert.match(body.instance, /^shop-\d$/);
    const pinned = (await (await get('api-2.metrics.api.demo.local')).json()) as {
      instance: string;
      port: string;
    };
    assert.deepEqual([pinned.instance, pinned.port], ['api-2', 'metrics']);
    // The demo's health paths are real: `/ready` for api.
    const views = demo.fleet.list();
    const api0 = views.find((v) => v.instance === 'api-0')!;
    assert.equal((await fetch(`http://${api0.addresses.http}/ready`)).status, 200);
  });

  test('control API: kill, revive, scale; the route table follows', async () => {
    const admin = demo.adminUrl;
    const listing = (await (await fetch(`${admin}/api/demo`)).json()) as {
      instances: { instance: string; pid: number }[];
    };
    assert.equal(listing.instances.length, 8);
    const blog0 = listing.instances.find((i) => i.instance === 'blog-0')!;

    // What a cross-origin page can send without a CORS preflight (a form POST) changes nothing.
    const forged = await fetch(`${admin}/api/demo/blog/blog-0/kill`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: '{}',
    });
    assert.equal(forged.status, 403);
    assert.equal(alive(blog0.pid), true, 'not killed by a request a web page could forge');

    let r = await fetch(`${admin}/api/demo/blog/blog-0/kill`, POST_ON_PURPOSE);
    assert.equal(r.status, 200);
    await new Promise((res) => setTimeout(res, 200));
    assert.equal(alive(blog0.pid), false, 'killed for real');
    // A refused connection is retried on another instance: blog keeps answering.
    for (let i = 0; i < 4; i++) assert.equal((await get('blog.demo.local')).status, 200);

    r = await fetch(`${admin}/api/demo/blog/blog-0/revive`, POST_ON_PURPOSE);
    const after = (await r.json()) as { instances: { instance: string; status: string; pid: number }[] };
    const revived = after.instances.find((i) => i.instance === 'blog-0')!;
    assert.equal(revived.status, 'running');
    assert.notEqual(revived.pid, blog0.pid);
    const ok = await fetch(
      `http://${demo.fleet.list().find((v) => v.instance === 'blog-0')!.addresses.http}/x`,
    );
    assert.equal(ok.status, 200, 'restarted on the same port');

    r = await fetch(`${admin}/api/demo/api/scale-up`, POST_ON_PURPOSE);
    assert.equal(r.status, 200);
    const instancesOfApi = async () => {
      const doc = (await (await fetch(`${admin}/api/projects`)).json()) as {
        projects: { name: string; ports: { instances: { name: string; state: string }[] }[] }[];
      };
      return doc.projects.find((p) => p.name === 'api')!.ports[0].instances;
    };
    const names = async () => (await instancesOfApi()).map((i) => i.name).join(',');
    assert.equal(
      await eventually(async () => ((await names()) === 'api-0,api-1,api-2,api-3' ? names() : '')),
      'api-0,api-1,api-2,api-3',
    );
    // Scale down: the last instance drains first (still listed, state draining), then goes.
    r = await fetch(`${admin}/api/demo/api/scale-down`, POST_ON_PURPOSE);
    assert.equal(r.status, 200);
    const drainingState = async () => (await instancesOfApi()).find((i) => i.name === 'api-3')?.state;
    assert.equal(
      await eventually(async () => ((await drainingState()) === 'draining' ? 'draining' : '')),
      'draining',
    );
    assert.equal(
      await eventually(async () => ((await names()) === 'api-0,api-1,api-2' ? names() : '')),
      'api-0,api-1,api-2',
    );
    assert.equal((await fetch(`${admin}/api/demo/nope/x/kill`, POST_ON_PURPOSE)).status, 404);
  });

  test('dashboard, metrics, events and log files are served', async () => {
    for (let i = 0; i < 5; i++) await get('shop.demo.local');
    const html = await (await fetch(`${demo.adminUrl}/`)).text();
    assert.match(html, /<title>Wharf<\/title>/);
    const exp = parseExposition(await (await fetch(`${demo.adminUrl}/metrics`)).text());
    assert.ok((value(exp, 'wharf_requests_total', { project: 'shop', port: 'web', class: '2xx' }) ?? 0) >= 5);
    const c = await connectSse(`${demo.adminUrl}/events`);
    try {
      const s = (await c.waitFor((m) => m.event === 'state', 2000)).data as {
        domain: string;
        projects: { name: string; healthPath: string }[];
      };
      assert.equal(s.domain, 'demo.local');
      assert.deepEqual(
        s.projects.map((p) => [p.name, p.healthPath]),
        [
          ['api', '/ready'],
          ['blog', '/healthz'],
          ['shop', '/healthz'],
        ],
      );
    } finally {
      c.close();
    }
    await demo.observe.logs.flush();
    const lines = readFileSync(join(logDir, 'access.log'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.ok(lines.some((l) => l.host === 'shop.demo.local' && l.project === 'shop' && l.status === 200));
  });

  test('apiserver outage: Wharf keeps serving from the last snapshot and says degraded', async () => {
    const admin = demo.adminUrl;
    assert.ok(demo.apiserver, 'the default demo runs the fake apiserver');
    let r = await fetch(`${admin}/api/demo/apiserver/down`, POST_ON_PURPOSE);
    assert.equal(((await r.json()) as { apiserver: { up: boolean } }).apiserver.up, false);
    assert.equal((await get('web.shop.demo.local')).status, 200);
    const status = async () => ((await (await fetch(`${admin}/readyz`)).json()) as { status: string }).status;
    assert.equal(
      await eventually(async () => ((await status()) === 'degraded' ? 'degraded' : ''), 15_000),
      'degraded',
    );
    r = await fetch(`${admin}/api/demo/apiserver/up`, POST_ON_PURPOSE);
    assert.equal(r.status, 200);
    assert.equal(await eventually(async () => ((await status()) === 'ok' ? 'ok' : ''), 15_000), 'ok');
  });

  test('stop ends every instance process', async () => {
    const pids = demo.fleet.list().map((v) => v.pid!);
    await demo.stop();
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(
      pids.filter((p) => alive(p)),
      [],
    );
  });
});

describe('wharf demo --source static', () => {
  test('the same world without an apiserver: projects handed to Wharf directly', async () => {
    const logDir = join(tmpdir(), `wharf-demo-static-${process.pid}`);
    const demo = await startDemo({
      listen: '127.0.0.1:0',
      admin: '127.0.0.1:0',
      logDir,
      rps: 0,
      source: 'static',
    });
    try {
      assert.equal(demo.apiserver, undefined);
      const r = await fetch(`${demo.adminUrl}/api/projects`);
      const doc = (await r.json()) as { projects: { name: string; origin: string }[] };
      assert.deepEqual(
        doc.projects.map((p) => [p.name, p.origin]),
        [
          ['api', 'demo'],
          ['blog', 'demo'],
          ['shop', 'demo'],
        ],
      );
      const down = await fetch(`${demo.adminUrl}/api/demo/apiserver/down`, POST_ON_PURPOSE);
      assert.equal(down.status, 404);
    } finally {
      await demo.stop();
      rmSync(logDir, { recursive: true, force: true });
    }
  });
});
