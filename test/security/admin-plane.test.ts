// The admin plane (issue 20, items 6 and 8): the admin port answers only Hosts that name it, takes
// state changes only from callers that could set a header, and `/events` is bounded per client
// address with the admin token holder let through.

import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { hostName, namesAdmin } from '../../src/admin/guard.ts';
import type { WharfEvent } from '../../src/model/events.ts';
import { EventBus } from '../../src/observe/event-bus.ts';
import { SseHub } from '../../src/observe/sse.ts';
import { type Started, startWharf } from '../support/wharf.ts';

describe('admin port: Host and deliberate state changes', () => {
  let w: Started;
  const calls: string[] = [];
  before(async () => {
    w = await startWharf(
      { 'admin-hosts': ['wharf-admin.wharf-system.svc'] },
      {
        // A mounted route that changes state, like the demo's chaos API.
        adminRoutes: [
          (req, res, url) => {
            if (url.pathname !== '/api/chaos') return false;
            calls.push(req.method ?? '');
            res.end('done');
            return true;
          },
        ],
      },
    );
  });
  after(() => w.stop());

  const admin = (
    path: string,
    host: string,
    init: { method?: string; headers?: Record<string, string> } = {},
  ) =>
    request(`${w.admin}${path}`, {
      method: (init.method ?? 'GET') as 'GET',
      headers: { host, ...init.headers },
      body: init.method === 'POST' ? '{}' : undefined,
    });

  it('answers Hosts naming the listener: its address, localhost, configured names', async () => {
    const port = w.wharf.adminAddress.port;
    for (const host of [
      `127.0.0.1:${port}`,
      '127.0.0.1',
      `localhost:${port}`,
      'LOCALHOST',
      'wharf-admin.wharf-system.svc',
      'wharf-admin.wharf-system.svc.:9901',
    ]) {
      const r = await admin('/api/projects', host);
      assert.equal(r.statusCode, 200, host);
      await r.body.dump();
    }
  });

  it('refuses any other Host with 421 (DNS rebinding), but /healthz and /readyz stay open', async () => {
    for (const host of [
      'evil.example',
      'evil.example:9901',
      '127.0.0.2',
      '[::1]',
      'localhost.evil.example',
    ]) {
      const r = await admin('/api/projects', host);
      assert.equal(r.statusCode, 421, host);
      assert.match(await r.body.text(), /answers only to its own address/);
    }
    for (const path of ['/healthz', '/readyz']) {
      const h = await admin(path, 'shop.apps.example.com');
      assert.equal(h.statusCode, 200, path);
      await h.body.dump();
    }
  });

  it('a state change needs a JSON content type or x-wharf-admin; a form-like POST changes nothing', async () => {
    const host = `127.0.0.1:${w.wharf.adminAddress.port}`;
    for (const type of [
      undefined,
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data',
    ]) {
      const r = await admin('/api/chaos', host, {
        method: 'POST',
        headers: type ? { 'content-type': type } : {},
      });
      assert.equal(r.statusCode, 403, String(type));
      assert.match(await r.body.text(), /needs Content-Type: application\/json or an x-wharf-admin header/);
    }
    assert.deepEqual(calls, []);
    const deliberate: Record<string, string>[] = [
      { 'content-type': 'application/json' },
      { 'content-type': 'Application/JSON; charset=utf-8' },
      { 'x-wharf-admin': '1' },
    ];
    for (const headers of deliberate) {
      const r = await admin('/api/chaos', host, { method: 'POST', headers });
      assert.equal(r.statusCode, 200, JSON.stringify(headers));
      await r.body.dump();
    }
    assert.deepEqual(calls, ['POST', 'POST', 'POST']);
  });

  it('hostName and namesAdmin parse Host values strictly', () => {
    assert.equal(hostName('[::1]:9901'), '::1');
    assert.equal(hostName('Example.COM.:80'), 'example.com');
    assert.equal(hostName('::1'), '');
    assert.equal(namesAdmin('[::1]:9901', '::1', []), true);
    assert.equal(namesAdmin(undefined, '127.0.0.1', []), false);
    assert.equal(namesAdmin('', '127.0.0.1', []), false);
    assert.equal(namesAdmin('10.0.0.5:9901', '10.0.0.5', []), true);
    assert.equal(namesAdmin('10.0.0.6:9901', '10.0.0.5', []), false);
  });
});

describe('/events: bounded per client address, the token holder let through', () => {
  const bus = new EventBus<WharfEvent>();
  let hub: SseHub;
  let server: http.Server;
  let port: number;
  const open: http.ClientRequest[] = [];
  before(async () => {
    hub = new SseHub({
      bus,
      replay: () => ({}),
      maxClients: 3,
      maxClientsPerAddress: 2,
      token: 'correct-horse-battery',
    });
    server = http.createServer((req, res) => hub.handle(req, res));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    for (const r of open) r.destroy();
    hub.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  /** Opens /events from `from`; resolves with the status once the head arrives (the stream stays open). */
  function connect(from: string, headers: Record<string, string> = {}): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = http.get(
        { host: '127.0.0.1', port, path: '/events', localAddress: from, agent: false, headers },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      open.push(req);
    });
  }

  it('one address gets 2 streams, another still gets in, then the hub is full; the token gets through', async () => {
    assert.equal(await connect('127.0.0.1'), 200);
    assert.equal(await connect('127.0.0.1'), 200);
    assert.equal(await connect('127.0.0.1'), 429);
    assert.equal(await connect('127.0.0.2'), 200);
    assert.equal(await connect('127.0.0.3'), 503);
    assert.equal(hub.clientCount(), 3);
    // The operator with the token is held to neither bound.
    assert.equal(await connect('127.0.0.1', { authorization: 'Bearer correct-horse-battery' }), 200);
    assert.equal(await connect('127.0.0.1', { authorization: 'Bearer wrong-horse-battery!' }), 429);
  });

  it('closed streams give their places back to their address', async () => {
    for (const r of open.splice(0)) r.destroy();
    const until = Date.now() + 2000;
    while (hub.clientCount() > 0) {
      if (Date.now() > until) assert.fail('closed streams were not released');
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(await connect('127.0.0.1'), 200);
    assert.equal(await connect('127.0.0.1'), 200);
    assert.equal(await connect('127.0.0.1'), 429);
  });
});
