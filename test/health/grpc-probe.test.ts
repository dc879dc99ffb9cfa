// gRPC health checks (issue 21): the hand-made protobuf both ways, the verdict on an answer, and the
// real prober against real grpc-js health servers (SERVING, NOT_SERVING, an unknown service, a
// server without the health service, a hung server, a closed port), its kept HTTP/2 session, and
// a started Wharf that takes a NOT_SERVING instance out while its healthy sibling stays in.

import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { ProjectsDocument } from '../../src/admin/server.ts';
import {
  decodeHealthCheckResponse,
  encodeHealthCheckRequest,
  grpcVerdict,
} from '../../src/health/grpc-probe.ts';
import { keptConnections, netProber, ProbeSession, type ProbeTarget } from '../../src/health/prober.ts';
import { HealthService } from '../../src/health/service.ts';
import type { HealthTransitionEvent } from '../../src/model/events.ts';
import { type GrpcServer, grpc, startGrpcServer } from '../support/grpc.ts';
import { type Started, startWharf } from '../support/wharf.ts';
import { portRoute, settingsWith, table } from './fakes.ts';

/** One length-prefixed message around `bytes`. */
function frame(bytes: number[], flag = 0): Buffer {
  const b = Buffer.alloc(5 + bytes.length);
  b[0] = flag;
  b.writeUInt32BE(bytes.length, 1);
  b.set(bytes, 5);
  return b;
}

async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function listen(server: net.Server): Promise<string> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve(`127.0.0.1:${(server.address() as net.AddressInfo).port}`)),
  );
}

async function freePort(): Promise<string> {
  const s = net.createServer();
  const addr = await listen(s);
  await new Promise<void>((r) => s.close(() => r()));
  return addr;
}

describe('gRPC health messages, by hand', () => {
  test('HealthCheckRequest: an empty service is an empty message; a name is field 1', () => {
    assert.deepEqual([...encodeHealthCheckRequest('')], [0, 0, 0, 0, 0]);
    assert.deepEqual(
      [...encodeHealthCheckRequest('echo.Echo')],
      [0, 0, 0, 0, 11, 0x0a, 9, ...Buffer.from('echo.Echo')],
    );
    // A name of 200 bytes: its length is a two-byte varint (200 = 0xc8 0x01).
    const long = encodeHealthCheckRequest('a'.repeat(200));
    assert.deepEqual([...long.subarray(0, 8)], [0, 0, 0, 0, 203, 0x0a, 0xc8, 0x01]);
    assert.equal(long.length, 5 + 203);
    // UTF-8 bytes are counted, not characters.
    assert.equal(encodeHealthCheckRequest('é').readUInt32BE(1), 4);
  });

  test('HealthCheckResponse: field 1, proto3 defaults, unknown fields skipped, bad frames refused', () => {
    assert.deepEqual(decodeHealthCheckResponse(frame([0x08, 1])), { status: 1 });
    assert.deepEqual(decodeHealthCheckResponse(frame([0x08, 2])), { status: 2 });
    // An empty message: status is the default, UNKNOWN.
    assert.deepEqual(decodeHealthCheckResponse(frame([])), { status: 0 });
    // Fields a newer server may add (a string 2, a fixed64 3, a fixed32 4, a varint 5) are skipped.
    const extra = [0x12, 2, 0x68, 0x69, 0x19, 1, 2, 3, 4, 5, 6, 7, 8, 0x25, 1, 2, 3, 4, 0x28, 0x96, 0x01];
    assert.deepEqual(decodeHealthCheckResponse(frame([...extra, 0x08, 1])), { status: 1 });
    assert.deepEqual(decodeHealthCheckResponse(Buffer.alloc(0)), { error: 'no message' });
    assert.deepEqual(decodeHealthCheckResponse(frame([0x08, 1], 1)), { error: 'compressed message' });
    assert.deepEqual(decodeHealthCheckResponse(frame([0x08, 1]).subarray(0, 6)), {
      error: 'truncated message',
    });
    assert.deepEqual(decodeHealthCheckResponse(Buffer.concat([frame([0x08, 1]), frame([0x08, 1])])), {
      error: 'more than one message',
    });
    assert.deepEqual(decodeHealthCheckResponse(frame([0x08])), { error: 'bad protobuf' });
    assert.deepEqual(decodeHealthCheckResponse(frame([0x12, 9, 1])), { error: 'bad protobuf' });
    assert.deepEqual(decodeHealthCheckResponse(frame([0x0b])), { error: 'bad protobuf' });
  });

  test('the verdict: HTTP 200, grpc-status 0 and SERVING, or a short reason', () => {
    const serving = frame([0x08, 1]);
    assert.deepEqual(grpcVerdict({ httpStatus: 200, grpcStatus: '0', body: serving }), {
      ok: true,
      reason: 'ok (SERVING)',
    });
    const reason = (httpStatus: number, grpcStatus: string | undefined, body = serving) =>
      grpcVerdict({ httpStatus, grpcStatus, body }).reason;
    assert.equal(reason(200, '0', frame([0x08, 2])), 'NOT_SERVING');
    assert.equal(reason(200, '0', frame([0x08, 3])), 'SERVICE_UNKNOWN');
    assert.equal(reason(200, '0', frame([])), 'UNKNOWN');
    assert.equal(reason(200, '0', frame([0x08, 9])), 'serving status 9');
    assert.equal(reason(200, '12'), 'grpc status 12 (UNIMPLEMENTED)');
    assert.equal(reason(200, '5'), 'grpc status 5 (NOT_FOUND)');
    assert.equal(reason(200, '99'), 'grpc status 99');
    assert.equal(reason(200, undefined), 'invalid response (no grpc-status)');
    assert.equal(reason(200, 'zero'), 'invalid response (bad grpc-status)');
    assert.equal(reason(200, '0', Buffer.alloc(0)), 'invalid response (no message)');
    assert.deepEqual(grpcVerdict({ httpStatus: 503, grpcStatus: undefined, body: Buffer.alloc(0) }), {
      ok: false,
      reason: 'http status 503',
      status: 503,
    });
  });
});

describe('gRPC probes against grpc-js health servers', () => {
  let server: GrpcServer;
  before(async () => {
    server = await startGrpcServer('api-0');
  });
  after(async () => {
    await server.close();
  });

  const target = (grpcService = '', session?: ProbeSession, address = server.address): ProbeTarget => ({
    address,
    path: null,
    check: 'grpc',
    grpcService,
    host: 'api.test.local',
    expect: [],
    session,
  });
  const probe = (t: ProbeTarget, ms = 2000) => netProber.probe(t, AbortSignal.timeout(ms));

  test('SERVING passes, NOT_SERVING fails, and SERVING again passes', async () => {
    server.serving = 'SERVING';
    assert.deepEqual(await probe(target()), { ok: true, reason: 'ok (SERVING)' });
    assert.deepEqual(await probe(target('wharf.test.Echo')), { ok: true, reason: 'ok (SERVING)' });
    server.serving = 'NOT_SERVING';
    assert.deepEqual(await probe(target()), { ok: false, reason: 'NOT_SERVING' });
    assert.deepEqual(await probe(target('wharf.test.Echo')), { ok: false, reason: 'NOT_SERVING' });
    server.serving = 'SERVING';
    assert.deepEqual(await probe(target()), { ok: true, reason: 'ok (SERVING)' });
  });

  test('a named service the server does not know fails with NOT_FOUND', async () => {
    assert.deepEqual(await probe(target('shop.Cart')), { ok: false, reason: 'grpc status 5 (NOT_FOUND)' });
  });

  test('a gRPC server without the health service fails with UNIMPLEMENTED', async () => {
    const bare = new grpc.Server();
    const port = await new Promise<number>((resolve, reject) =>
      bare.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    try {
      assert.deepEqual(await probe(target('', undefined, `127.0.0.1:${port}`)), {
        ok: false,
        reason: 'grpc status 12 (UNIMPLEMENTED)',
      });
    } finally {
      bare.forceShutdown();
    }
  });

  test('a closed port fails with connect refused; an HTTP/1.1 server is not h2c', async () => {
    assert.deepEqual(await probe(target('', undefined, await freePort())), {
      ok: false,
      reason: 'connect refused',
    });
    const h1 = http.createServer((_q, s) => s.end('ok'));
    const addr = await listen(h1);
    try {
      const r = await probe(target('', undefined, addr));
      assert.equal(r.ok, false);
      assert.match(r.reason, /^(invalid response \(not h2c\)|reset)$/);
    } finally {
      h1.closeAllConnections();
      h1.close();
    }
  });

  test('a session carries probe after probe; a failure closes it and the next probe opens a new one', async () => {
    server.serving = 'SERVING';
    const session = new ProbeSession();
    const t = target('', session);
    const idleBefore = keptConnections();
    assert.equal((await probe(t)).ok, true);
    const first = session.conn;
    assert.ok(first, 'the session is kept after a pass');
    assert.equal(keptConnections(), idleBefore + 1, 'an idle kept session counts in the budget');
    assert.equal((await probe(t)).ok, true);
    assert.equal(session.conn, first, 'the second probe used the same session');
    server.serving = 'NOT_SERVING';
    assert.equal((await probe(t)).reason, 'NOT_SERVING');
    assert.equal(session.conn, undefined, 'a failure closes the session');
    server.serving = 'SERVING';
    assert.equal((await probe(t)).ok, true);
    assert.ok(session.conn && session.conn !== first, 'a new session after the failure');
    // The target goes away: its session is closed.
    netProber.forget?.(t);
    assert.equal(session.conn, undefined);
    assert.equal(keptConnections(), idleBefore);
  });
});

describe('gRPC checks in the probe thread', () => {
  test('the check crosses to the worker: NOT_SERVING found there takes the instance out', async () => {
    const server = await startGrpcServer('api-0');
    const events: HealthTransitionEvent[] = [];
    const svc = new HealthService({ domain: 'd', thread: true, emit: (e) => events.push(e) });
    try {
      const settings = settingsWith({
        check: 'grpc',
        path: null,
        grpcService: 'wharf.test.Echo',
        intervalMs: 100,
      });
      svc.reconcile(table(portRoute('api', 'grpc', [{ name: 'a', address: server.address }], settings)));
      await until(() => svc.threaded, 'the worker thread took over', 20_000);
      await until(() => events.some((e) => e.to === 'healthy'), 'healthy');
      server.serving = 'NOT_SERVING';
      await until(() => events.some((e) => e.to === 'unhealthy'), 'unhealthy, reported by the worker');
      assert.equal(events.find((e) => e.to === 'unhealthy')?.reason, 'probe: NOT_SERVING');
    } finally {
      svc.close();
      await server.close();
    }
  });
});

describe('gRPC probes to a server that accepts and never answers', () => {
  const sockets = new Set<net.Socket>();
  // Reads everything, says nothing: no SETTINGS frame, no answer (a hung process, from outside).
  const silent = net.createServer((s) => {
    sockets.add(s);
    s.resume();
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
  });
  let addr = '';
  before(async () => {
    addr = await listen(silent);
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => silent.close(() => r()));
  });

  test('the probe ends at the abort and frees its socket', async () => {
    const t = Date.now();
    const r = await netProber.probe(
      { address: addr, path: null, check: 'grpc', host: 'x', expect: [] },
      AbortSignal.timeout(200),
    );
    const took = Date.now() - t;
    assert.deepEqual(r, { ok: false, reason: 'aborted' });
    assert.ok(took >= 190 && took < 1000, `took ${took} ms`);
    await until(() => sockets.size === 0, 'the probe connection closed', 1000);
  });

  test('HealthService with real timers marks it unhealthy at the probe timeout', async () => {
    const events: HealthTransitionEvent[] = [];
    const svc = new HealthService({ domain: 'd', emit: (e) => events.push(e) });
    const settings = settingsWith({ check: 'grpc', path: null, timeoutMs: 200, intervalMs: 200 });
    const t = Date.now();
    svc.reconcile(table(portRoute('api', 'grpc', [{ name: 'a', address: addr }], settings)));
    try {
      await until(() => events.length > 0, 'a transition', 3000);
    } finally {
      svc.close();
    }
    assert.equal(events[0].to, 'unhealthy');
    assert.equal(events[0].reason, 'probe: timeout after 200ms');
    assert.ok((events[0].probeLatencyMs ?? 0) >= 200);
    // fall 2 at a 200 ms timeout (a fast re-check after the first): out well within a second or two.
    assert.ok(Date.now() - t < 2000, `took ${Date.now() - t} ms`);
  });
});

describe('a started Wharf with health-path: grpc', () => {
  let servers: GrpcServer[];
  let w: Started;
  before(async () => {
    servers = await Promise.all(['api-0', 'api-1'].map((n) => startGrpcServer(n)));
    w = await startWharf({
      // An idle instance is probed once per idle interval (20 s by default): 1 s keeps the test short.
      health: { 'idle-interval': '1s' },
      projects: {
        api: {
          protocol: 'h2c',
          'health-path': 'grpc',
          'health-interval': '200ms',
          'health-timeout': '500ms',
          instances: Object.fromEntries(servers.map((s) => [s.name, { grpc: s.address }])),
        },
      },
    });
  });
  after(async () => {
    await w.stop();
    for (const s of servers) await s.close();
  });

  async function states(): Promise<Record<string, { state: string; reason: string }>> {
    const doc = (await (await fetch(`${w.admin}/api/projects`)).json()) as ProjectsDocument;
    const api = doc.projects.find((p) => p.name === 'api')!;
    return Object.fromEntries(
      api.ports[0].instances.map((i) => [i.name, { state: i.state, reason: i.reason }]),
    );
  }

  test('a NOT_SERVING instance goes unhealthy, its SERVING sibling stays healthy, and it comes back', async () => {
    await until(async () => {
      const s = await states();
      return s['api-0']?.state === 'healthy' && s['api-1']?.state === 'healthy';
    }, 'both instances healthy');
    servers[1].serving = 'NOT_SERVING';
    await until(async () => (await states())['api-1'].state === 'unhealthy', 'api-1 unhealthy');
    const s = await states();
    assert.equal(s['api-0'].state, 'healthy');
    assert.match(s['api-1'].reason, /NOT_SERVING/);
    servers[1].serving = 'SERVING';
    await until(async () => (await states())['api-1'].state === 'healthy', 'api-1 healthy again');
    assert.equal((await states())['api-0'].state, 'healthy');
  });
});
