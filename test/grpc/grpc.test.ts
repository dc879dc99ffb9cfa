// gRPC end to end with real grpc-js clients and servers: every kind of call, deadlines, cancellation,
// large messages, many calls on one connection, each call balanced on its own, the errors Wharf
// itself produces as gRPC statuses, and the edge -> internal path over TLS.

import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { AccessRecord } from '../../src/model/access.ts';
import { makeCa, type TestCa } from '../support/certs.ts';
import {
  type EchoClient,
  echoClient,
  type GrpcServer,
  grpc,
  msgFrame,
  startGrpcServer,
} from '../support/grpc.ts';
import { deadPort } from '../support/upstream.ts';
import { type Started, startWharf } from '../support/wharf.ts';

function grpcCode(err: unknown): number {
  return (err as { code?: number }).code ?? -1;
}

async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('gRPC through the internal tier (h2c on both sides)', () => {
  let servers: GrpcServer[];
  let w: Started;
  let client: EchoClient;
  let hung: http2.Http2Server;
  const access: AccessRecord[] = [];
  before(async () => {
    servers = await Promise.all(['echo-0', 'echo-1', 'echo-2'].map((n) => startGrpcServer(n)));
    const dead = await deadPort();
    // An HTTP/2 server that takes every stream and never answers (a hung instance): only Wharf can
    // end a call there.
    hung = http2.createServer();
    hung.on('stream', () => {});
    await new Promise<void>((r) => hung.listen(0, '127.0.0.1', () => r()));
    w = await startWharf(
      {
        projects: {
          echo: {
            protocol: 'h2c',
            'health-path': 'tcp',
            instances: Object.fromEntries(servers.map((s) => [s.name, { grpc: s.address }])),
          },
          // The same service, declared as HTTP/1.1: gRPC cannot pass there.
          plain: { 'health-path': 'tcp', instances: { 'plain-0': { grpc: servers[0].address } } },
          down: { protocol: 'h2c', instances: { 'down-0': { grpc: `127.0.0.1:${dead}` } } },
          hung: {
            protocol: 'h2c',
            'health-path': 'tcp',
            instances: { 'hung-0': { grpc: `127.0.0.1:${(hung.address() as AddressInfo).port}` } },
          },
        },
      },
      { onAccess: (r) => access.push(r) },
    );
    client = echoClient(`127.0.0.1:${w.port}`, 'echo.test.local');
  });
  after(async () => {
    client.close();
    await w.stop();
    for (const s of servers) await s.close();
    hung.close();
  });

  it('unary, server-streaming, client-streaming and bidirectional calls pass', async () => {
    assert.equal((await client.unary({ text: 'hi' })).text, 'hi');
    const stream = await client.serverStream({ text: 's', count: 50 });
    assert.deepEqual(
      stream.map((m) => m.text),
      Array.from({ length: 50 }, (_, i) => `s-${i}`),
    );
    assert.equal((await client.clientStream([{ text: 'a' }, { text: 'b' }, { text: 'c' }])).text, 'a,b,c');
    const bidi = await client.bidi(Array.from({ length: 10 }, (_, i) => ({ text: `m${i}` })));
    assert.deepEqual(
      bidi.map((m) => m.text),
      Array.from({ length: 10 }, (_, i) => `echo:m${i}`),
    );
  });

  it('a 4 MiB message passes both ways, and a server stream of 64 of them', async () => {
    const payload = Buffer.alloc(4 * 1024 * 1024, 7);
    const r = await client.unary({ text: 'big', payload });
    assert.equal(r.payload?.length, payload.length);
    assert.ok(r.payload?.equals(payload));
    const many = await client.serverStream({ text: 'big', count: 64, payload: Buffer.alloc(256 * 1024, 1) });
    assert.equal(many.length, 64);
    assert.ok(many.every((m) => m.payload?.length === 256 * 1024));
  });

  it('every call is balanced on its own: 3,000 calls on one connection split 1/3 each (± 5%)', async () => {
    const counts: Record<string, number> = {};
    const before = servers.map((s) => s.calls.Unary);
    let next = 0;
    await Promise.all(
      Array.from({ length: 30 }, async () => {
        while (next < 3000) {
          next++;
          const m = await client.unary({ text: 'n' });
          counts[m.from ?? '?'] = (counts[m.from ?? '?'] ?? 0) + 1;
        }
      }),
    );
    const per = servers.map((s, i) => s.calls.Unary - before[i]);
    assert.equal(
      per.reduce((a, b) => a + b),
      3000,
    );
    for (const n of per) assert.ok(n >= 950 && n <= 1050, `per-instance calls ${per.join(', ')}`);
    assert.deepEqual(Object.keys(counts).sort(), ['echo-0', 'echo-1', 'echo-2']);
  });

  it('200 concurrent calls on one connection all succeed', async () => {
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => client.unary({ text: `c${i}` })));
    assert.deepEqual(
      results.map((r) => r.text),
      Array.from({ length: 200 }, (_, i) => `c${i}`),
    );
  });

  it('a deadline ends the call with DEADLINE_EXCEEDED and cancels it at the instance', async () => {
    const cancelled = servers.reduce((n, s) => n + s.cancelled, 0);
    const t0 = Date.now();
    const err = await client.unary({ text: 'slow', count: 5000 }, { deadlineMs: 300 }).catch((e) => e);
    assert.equal(grpcCode(err), grpc.status.DEADLINE_EXCEEDED);
    assert.ok(Date.now() - t0 < 2000, 'the deadline, not the server, ended it');
    await until(
      () => servers.reduce((n, s) => n + s.cancelled, 0) > cancelled,
      'the instance to see the cancel',
    );
  });

  it('grpc-timeout alone bounds the wait at Wharf: DEADLINE_EXCEEDED from Wharf itself', async () => {
    // A raw HTTP/2 client with no deadline of its own (only the header says 200 ms), to an instance
    // that never answers.
    const session = http2.connect(`http://127.0.0.1:${w.port}`);
    try {
      const t0 = Date.now();
      const headers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
        const req = session.request({
          ':method': 'POST',
          ':path': '/wharf.test.Echo/Unary',
          ':authority': 'hung.test.local',
          'content-type': 'application/grpc',
          te: 'trailers',
          'grpc-timeout': '200m',
        });
        req.on('response', (h) => resolve(h));
        req.on('error', reject);
        req.end(msgFrame('slow', 5000));
      });
      assert.equal(headers[':status'], 200);
      assert.equal(headers['grpc-status'], String(grpc.status.DEADLINE_EXCEEDED));
      assert.ok(Date.now() - t0 < 2000, `answered after ${Date.now() - t0} ms`);
      // The client's budget ran out, not the instance's patience: nothing is held against it.
      const hungHealth = w.wharf.health.list().find((x) => x.endpoint.project === 'hung');
      assert.equal(hungHealth?.status.ejected, false, hungHealth?.status.reason);
    } finally {
      session.close();
    }
  });

  it('cancelling a call cancels the upstream stream at once', async () => {
    const cancelled = servers.reduce((n, s) => n + s.cancelled, 0);
    await new Promise<void>((resolve) => {
      const call = client.raw.ServerStream({ text: 'endless', count: 1_000_000 });
      call.once('data', () => call.cancel());
      call.on('error', () => resolve());
    });
    await until(
      () => servers.reduce((n, s) => n + s.cancelled, 0) > cancelled,
      'the instance to see the cancel',
      2000,
    );
  });

  it('an unknown project is UNIMPLEMENTED, with the reason in grpc-message', async () => {
    const other = echoClient(`127.0.0.1:${w.port}`, 'nope.test.local');
    try {
      const err = await other.unary({ text: 'x' }).catch((e) => e);
      assert.equal(grpcCode(err), grpc.status.UNIMPLEMENTED);
      assert.match((err as Error).message, /no project "nope"/);
    } finally {
      other.close();
    }
  });

  it('no reachable instance is UNAVAILABLE', async () => {
    const other = echoClient(`127.0.0.1:${w.port}`, 'down.test.local');
    try {
      const err = await other.unary({ text: 'x' }).catch((e) => e);
      assert.equal(grpcCode(err), grpc.status.UNAVAILABLE);
      assert.match((err as Error).message, /down/);
    } finally {
      other.close();
    }
  });

  it('a gRPC call to a port reached over HTTP/1.1 is UNIMPLEMENTED, saying how to fix it', async () => {
    const other = echoClient(`127.0.0.1:${w.port}`, 'plain.test.local');
    try {
      const err = await other.unary({ text: 'x' }).catch((e) => e);
      assert.equal(grpcCode(err), grpc.status.UNIMPLEMENTED);
      assert.match((err as Error).message, /appProtocol grpc/);
    } finally {
      other.close();
    }
  });

  it('the access log names the protocol and the instance of each call', async () => {
    const n = access.length;
    await client.unary({ text: 'logged' });
    await until(() => access.length > n, 'an access record');
    const rec = access.at(-1)!;
    assert.equal(rec.protocol, 'h2');
    assert.equal(rec.path, '/wharf.test.Echo/Unary');
    assert.equal(rec.status, 200);
    assert.equal(rec.project, 'echo');
    assert.match(rec.instance ?? '', /^echo-\d$/);
  });
});

describe('gRPC when an instance goes away under load', () => {
  let servers: GrpcServer[];
  let w: Started;
  let client: EchoClient;
  before(async () => {
    servers = await Promise.all(['k-0', 'k-1', 'k-2'].map((n) => startGrpcServer(n)));
    w = await startWharf({
      projects: {
        k: {
          protocol: 'h2c',
          'health-path': 'tcp',
          'health-interval': '200ms',
          instances: Object.fromEntries(servers.map((s) => [s.name, { grpc: s.address }])),
        },
      },
    });
    client = echoClient(`127.0.0.1:${w.port}`, 'k.test.local');
    await client.unary({ text: 'warm' });
  });
  after(async () => {
    client.close();
    await w.stop();
    for (const s of servers) await s.close();
  });

  /** Calls `load` concurrent streams of unary calls until `stop()`; counts outcomes. */
  function load(concurrency: number) {
    let running = true;
    const tally = { ok: 0, failed: [] as string[] };
    const workers = Array.from({ length: concurrency }, async () => {
      while (running) {
        try {
          await client.unary({ text: 'l' });
          tally.ok++;
        } catch (err) {
          tally.failed.push(`${grpcCode(err)} ${(err as Error).message}`);
        }
      }
    });
    return {
      tally,
      stop: async () => {
        running = false;
        await Promise.all(workers);
      },
    };
  }

  it('an instance that shuts down gracefully (GOAWAY) fails no call', async () => {
    const l = load(20);
    await new Promise((r) => setTimeout(r, 300));
    // grpc-js tryShutdown: GOAWAY, calls in flight finish, new streams go elsewhere.
    await servers[0].shutdown();
    await new Promise((r) => setTimeout(r, 700));
    await l.stop();
    assert.ok(l.tally.ok > 100, `${l.tally.ok} calls succeeded`);
    assert.deepEqual(l.tally.failed.slice(0, 5), [], `${l.tally.failed.length} calls failed`);
  });

  it('an instance killed outright fails at most the calls in flight on it, none after', async () => {
    const l = load(20);
    await new Promise((r) => setTimeout(r, 300));
    servers[1].close();
    const failedAtKill = () => l.tally.failed.length;
    await new Promise((r) => setTimeout(r, 200));
    const settled = failedAtKill();
    const okBefore = l.tally.ok;
    await new Promise((r) => setTimeout(r, 700));
    await l.stop();
    // Calls that had reached the killed instance cannot be replayed (it may have acted on them);
    // with 20 in flight over the instances, at most those 20 can fail.
    assert.ok(settled <= 20, `${settled} calls failed at the kill: ${l.tally.failed.slice(0, 3).join('; ')}`);
    assert.equal(l.tally.failed.length, settled, 'no call failed after the kill was noticed');
    assert.ok(l.tally.ok > okBefore + 50, 'the others kept serving');
  });
});

describe('gRPC through edge (TLS, HTTP/2) -> internal (h2c) -> instance', () => {
  let servers: GrpcServer[];
  let internal: Started;
  let edge: Started;
  let ca: TestCa;
  before(async () => {
    servers = await Promise.all(['t-0', 't-1'].map((n) => startGrpcServer(n)));
    internal = await startWharf({
      domain: 'apps.example.com',
      projects: {
        echo: {
          public: true,
          protocol: 'h2c',
          'health-path': 'tcp',
          instances: Object.fromEntries(servers.map((s) => [s.name, { grpc: s.address }])),
        },
      },
    });
    ca = makeCa();
    const leaf = ca.leaf('edge', ['*.apps.example.com']);
    edge = await startWharf({
      tier: 'edge',
      domain: 'apps.example.com',
      tls: { certificates: [leaf] },
      edge: { 'forward-to': 'wharf-internal' },
      projects: {
        echo: { public: true, ports: ['grpc'] },
        'wharf-internal': {
          'health-path': 'tcp',
          instances: { 'internal-0': { http: `127.0.0.1:${internal.port}` } },
        },
      },
    });
  });
  after(async () => {
    await edge.stop();
    await internal.stop();
    for (const s of servers) await s.close();
  });

  it('every kind of call passes both tiers, balanced per call at the inner one', async () => {
    const c = echoClient(`127.0.0.1:${edge.port}`, 'echo.apps.example.com', ca.caPem);
    try {
      const froms = new Set<string>();
      for (let i = 0; i < 20; i++) froms.add((await c.unary({ text: `u${i}` })).from ?? '');
      assert.deepEqual([...froms].sort(), ['t-0', 't-1']);
      assert.equal((await c.serverStream({ text: 's', count: 5 })).length, 5);
      assert.equal((await c.clientStream([{ text: 'a' }, { text: 'b' }])).text, 'a,b');
      assert.equal((await c.bidi([{ text: 'x' }, { text: 'y' }])).length, 2);
      const err = await c.unary({ text: 'slow', count: 3000 }, { deadlineMs: 200 }).catch((e) => e);
      assert.equal(grpcCode(err), grpc.status.DEADLINE_EXCEEDED);
    } finally {
      c.close();
    }
  });

  it('no instance name leaks through the edge in gRPC metadata', async () => {
    const c = echoClient(`127.0.0.1:${edge.port}`, 'echo.apps.example.com', ca.caPem);
    try {
      const headers = await new Promise<Record<string, unknown>>((resolve, reject) => {
        const call = c.raw.Unary({ text: 'm' }, (err: Error) => err && reject(err));
        call.on('metadata', (md: grpc.Metadata) => resolve(md.getMap()));
      });
      assert.deepEqual(
        Object.keys(headers).filter((k) => k.startsWith('x-wharf-')),
        [],
      );
    } finally {
      c.close();
    }
  });
});
