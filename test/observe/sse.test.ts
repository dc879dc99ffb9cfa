import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { WharfEvent } from '../../src/model/events.ts';
import { EventBus } from '../../src/observe/event-bus.ts';
import { checkAdminAuth, denyAdmin, SseHub } from '../../src/observe/sse.ts';
import { TrafficAggregator } from '../../src/observe/traffic.ts';
import { accessRecord } from '../support/records.ts';
import { connectSse } from './sse-client.ts';

const state = {
  projects: [{ name: 'shop', ports: [{ name: 'web', instances: [{ name: 'shop-0', state: 'healthy' }] }] }],
  problems: [],
};

describe('SSE /events', () => {
  const bus = new EventBus<WharfEvent>();
  let now = 2_000_000_000;
  const traffic = new TrafficAggregator({ now: () => now });
  let hub: SseHub;
  let server: http.Server;
  let base: string;

  before(async () => {
    hub = new SseHub({
      bus,
      traffic,
      replay: async () => state,
      heartbeatMs: 100,
      maxBufferedBytes: 64 * 1024,
    });
    server = http.createServer((req, res) => {
      if (!checkAdminAuth(req, req.url?.startsWith('/secure') ? 's3cret' : undefined)) return denyAdmin(res);
      hub.handle(req, res);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    hub.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  test('replays state on connect, then delivers a transition within a second', async () => {
    bus.emit({ type: 'routes', time: 1, version: 3, projects: 1, endpoints: 1, added: [], removed: [] });
    traffic.record(accessRecord({ time: now }));
    now += 1000;
    traffic.tick();
    const c = await connectSse(`${base}/events`);
    try {
      assert.equal(c.status, 200);
      const s = await c.waitFor((m) => m.event === 'state', 1000);
      assert.deepEqual(s.data, state);
      const tl = (await c.waitFor((m) => m.event === 'timeline', 1000)).data as { events: WharfEvent[] };
      assert.equal(tl.events[0].type, 'routes');
      const h = (await c.waitFor((m) => m.event === 'history', 1000)).data as {
        ports: { rps: (number | null)[] }[];
      };
      assert.deepEqual(h.ports[0].rps.slice(-1), [1]);

      const t0 = Date.now();
      bus.emit({
        type: 'health',
        time: t0,
        project: 'shop',
        port: 'web',
        instance: 'shop-0',
        address: '127.0.0.1:1',
        from: 'healthy',
        to: 'unhealthy',
        ejected: true,
        reason: 'passive: connect refused',
      });
      const ev = await c.waitFor((m) => m.event === 'health', 1000);
      assert.ok(Date.now() - t0 < 1000);
      assert.equal((ev.data as { reason: string }).reason, 'passive: connect refused');

      now += 1000;
      traffic.tick();
      const tr = await c.waitFor((m) => m.event === 'traffic', 1000);
      assert.equal((tr.data as { ports: unknown[] }).ports.length, 1);

      hub.publish('demo', { instances: [] });
      await c.waitFor((m) => m.event === 'demo', 1000);
      assert.throws(() => hub.publish('bad\nname', {}));

      // Probe failures are not streamed (they are log/metrics material).
      bus.emit({
        type: 'probe',
        time: 1,
        project: 'shop',
        port: 'web',
        instance: 'shop-0',
        address: 'a',
        reason: 'x',
        latencyMs: 1,
      });
      await new Promise((r) => setTimeout(r, 250));
      assert.equal(
        c.messages.some((m) => m.event === 'probe'),
        false,
      );
      assert.ok(c.comments.length >= 1, 'heartbeat comments arrive');
    } finally {
      c.close();
    }
  });

  test('events during an async replay are delivered after it, in order', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const slowHub = new SseHub({
      bus,
      replay: async () => {
        await gate;
        return state;
      },
      heartbeatMs: 10_000,
    });
    const srv = http.createServer((req, res) => slowHub.handle(req, res));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const c = await connectSse(`http://127.0.0.1:${(srv.address() as AddressInfo).port}/events`);
    try {
      bus.emit({ type: 'source', time: 5, source: 'kubernetes', state: 'degraded', reason: 'down' });
      await new Promise((r) => setTimeout(r, 50));
      release();
      await c.waitFor((m) => m.event === 'source', 1000);
      const order = c.messages.map((m) => m.event);
      assert.ok(order.indexOf('state') < order.indexOf('source'), order.join(','));
    } finally {
      c.close();
      slowHub.close();
      srv.closeAllConnections();
      await new Promise((r) => srv.close(r));
    }
  });

  test('a client that does not read is disconnected, not buffered for', async () => {
    const sock = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = http.get(`${base}/events`, (res) => resolve(res));
      req.on('error', reject);
    });
    sock.pause();
    await new Promise((r) => setTimeout(r, 50));
    const before = hub.slowClientsDropped();
    const big = 'x'.repeat(64 * 1024);
    const problems = [{ object: big, severity: 'warning' as const, code: 'c', message: 'm' }];
    for (let i = 0; i < 400 && hub.slowClientsDropped() === before; i++) {
      bus.emit({ type: 'problems', time: i, problems });
      await new Promise((r) => setImmediate(r));
    }
    assert.equal(hub.slowClientsDropped(), before + 1);
    sock.destroy();
  });

  test('bearer token: header or query parameter, else 401', async () => {
    const denied = await connectSse(`${base}/secure/events`);
    assert.equal(denied.status, 401);
    denied.close();
    const byHeader = await connectSse(`${base}/secure/events`, { authorization: 'Bearer s3cret' });
    assert.equal(byHeader.status, 200);
    byHeader.close();
    const byQuery = await connectSse(`${base}/secure/events?token=s3cret`);
    assert.equal(byQuery.status, 200);
    byQuery.close();
    const wrong = await connectSse(`${base}/secure/events?token=s3cre`);
    assert.equal(wrong.status, 401);
    wrong.close();
  });
});
