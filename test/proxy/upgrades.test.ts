// Upgrades (WebSocket) go through the same pipeline as plain requests: every rule of each tier holds
// for them too: forward-to, loop detection, header hygiene in both directions, per-client limits and
// the access log.

import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import type { AccessRecord } from '../../src/model/access.ts';
import { makeCa, type TestCa } from '../support/certs.ts';
import { rawExchange } from '../support/raw.ts';
import { type Started, startWharf } from '../support/wharf.ts';

interface EchoServer {
  readonly address: string;
  /** The headers of every upgrade request the server accepted. */
  readonly handshakes: IncomingHttpHeaders[];
  close(): Promise<void>;
}

/** A WebSocket echo server whose 101 carries headers an edge must never pass on. */
async function echoServer(name: string): Promise<EchoServer> {
  const handshakes: IncomingHttpHeaders[] = [];
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  wss.on('headers', (headers, req) => {
    handshakes.push(req.headers);
    headers.push(`X-Wharf-Instance: ${name}`, 'X-Wharf-Debug: internal-detail');
  });
  wss.on('connection', (ws) => ws.on('message', (m, binary) => ws.send(`${name}:${m}`, { binary })));
  return {
    address: `127.0.0.1:${(wss.address() as AddressInfo).port}`,
    handshakes,
    close: () =>
      new Promise<void>((r) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => r());
      }),
  };
}

/** Opens a WebSocket, sends one message and resolves with the 101's headers and the echo. */
function echo(
  url: string,
  opts: { host: string; ca?: string; headers?: Record<string, string> },
): Promise<{ headers: IncomingHttpHeaders; reply: string; ws: WebSocket }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
      headers: { host: opts.host, ...opts.headers },
      ...(opts.ca ? { ca: opts.ca, servername: opts.host } : {}),
    });
    let headers: IncomingHttpHeaders = {};
    ws.once('upgrade', (res) => {
      headers = res.headers;
    });
    ws.once('open', () => ws.send('hello'));
    ws.once('message', (m) => resolve({ headers, reply: String(m), ws }));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`status ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

function closed(ws: WebSocket): Promise<void> {
  return new Promise((r) => {
    if (ws.readyState === WebSocket.CLOSED) return r();
    ws.once('close', () => r());
    ws.close();
  });
}

async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The status code of the first answer to a raw request; the connection is dropped right after. */
function statusOf(port: number, payload: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    sock.once('data', (c) => {
      sock.destroy();
      resolve(c.toString('latin1').slice(9, 12));
    });
    sock.once('error', reject);
    sock.write(payload);
  });
}

const HANDSHAKE = (host: string, extra = '') =>
  `GET /socket HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
  `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${extra}\r\n`;

describe('upgrades through edge -> internal -> instance', () => {
  let up: EchoServer;
  let internal: Started;
  let edge: Started;
  let ca: TestCa;
  const internalAccess: AccessRecord[] = [];
  const edgeAccess: AccessRecord[] = [];
  before(async () => {
    up = await echoServer('chat-0');
    internal = await startWharf(
      {
        domain: 'apps.example.com',
        projects: {
          chat: { public: true, 'health-path': 'tcp', instances: { 'chat-0': { http: up.address } } },
        },
      },
      { onAccess: (r) => internalAccess.push(r) },
    );
    ca = makeCa();
    const leaf = ca.leaf('edge', ['*.apps.example.com']);
    edge = await startWharf(
      {
        tier: 'edge',
        domain: 'apps.example.com',
        tls: { certificates: [leaf] },
        edge: { 'forward-to': 'wharf-internal' },
        projects: {
          chat: { public: true, ports: ['http'] },
          'wharf-internal': {
            'health-path': 'tcp',
            instances: { 'internal-0': { http: `127.0.0.1:${internal.port}` } },
          },
        },
      },
      { onAccess: (r) => edgeAccess.push(r) },
    );
  });
  after(async () => {
    await edge.stop();
    await internal.stop();
    await up.close();
  });

  it('a WebSocket reaches the instance through the internal tier (edge.forward-to)', async () => {
    const r = await echo(`wss://127.0.0.1:${edge.port}/socket`, {
      host: 'chat.apps.example.com',
      ca: ca.caPem,
    });
    assert.equal(r.reply, 'chat-0:hello');
    await closed(r.ws);
    const seen = up.handshakes.at(-1)!;
    // Both tiers handled it, in order: the loop detection of each tier sees upgrades too.
    assert.equal(seen['x-wharf-via'], 'edge, internal');
    assert.equal(seen.host, 'chat.apps.example.com');
    assert.equal(seen['x-forwarded-proto'], 'https');
  });

  it('the edge passes no x-wharf-* header of the upstream 101 to the client', async () => {
    const r = await echo(`wss://127.0.0.1:${edge.port}/socket`, {
      host: 'chat.apps.example.com',
      ca: ca.caPem,
    });
    await closed(r.ws);
    const internalNames = Object.keys(r.headers).filter((k) => k.startsWith('x-wharf-'));
    assert.deepEqual(internalNames, []);
    assert.equal(r.headers.upgrade?.toLowerCase(), 'websocket');
    // The internal tier itself names the instance (instance-header is on there by default).
    const direct = await echo(`ws://127.0.0.1:${internal.port}/socket`, { host: 'chat.apps.example.com' });
    await closed(direct.ws);
    assert.equal(direct.headers['x-wharf-instance'], 'chat-0');
  });

  it('each tier writes an access line for an upgrade when the tunnel closes', async () => {
    const before = { edge: edgeAccess.length, internal: internalAccess.length };
    const r = await echo(`wss://127.0.0.1:${edge.port}/socket`, {
      host: 'chat.apps.example.com',
      ca: ca.caPem,
    });
    r.ws.send('more');
    await new Promise((res) => r.ws.once('message', res));
    assert.equal(edgeAccess.length, before.edge, 'not logged while the tunnel is open');
    await closed(r.ws);
    await until(
      () => edgeAccess.length > before.edge && internalAccess.length > before.internal,
      'the access lines of both tiers',
    );
    for (const rec of [edgeAccess.at(-1)!, internalAccess.at(-1)!]) {
      assert.equal(rec.status, 101);
      assert.equal(rec.protocol, 'http/1.1+upgrade');
      assert.equal(rec.project, 'chat');
      assert.equal(rec.port, 'http');
      assert.equal(rec.path, '/socket');
      assert.ok(rec.bytesOut > 0, 'bytes from the upstream are counted');
    }
    assert.equal(internalAccess.at(-1)!.instance, 'chat-0');
  });

  it('an upgrade that comes back to a tier that handled it is refused (508)', async () => {
    const raw = await rawExchange(
      internal.port,
      HANDSHAKE('chat.apps.example.com', 'X-Wharf-Via: internal\r\n'),
    );
    assert.match(raw, /^HTTP\/1.1 508/);
  });

  it('an upgrade to an unknown project answers 404 with a JSON body, and the edge hides private ones', async () => {
    const raw = await rawExchange(internal.port, HANDSHAKE('nope.apps.example.com'));
    assert.match(raw, /^HTTP\/1.1 404/);
    assert.match(raw, /"reason":"no project \\"nope\\""/);
  });
});

describe('per-client limits apply to upgrades', () => {
  let up: EchoServer;
  let edge: Started;
  before(async () => {
    up = await echoServer('chat-0');
    edge = await startWharf({
      tier: 'edge',
      domain: 'apps.example.com',
      limits: { 'client-rate': 5, 'client-connections': 3 },
      projects: {
        chat: { public: true, 'health-path': 'tcp', instances: { 'chat-0': { http: up.address } } },
      },
    });
  });
  after(async () => {
    await edge.stop();
    await up.close();
  });

  it('tunnels beyond client-connections are refused with 429', async () => {
    const open: WebSocket[] = [];
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      try {
        const r = await echo(`ws://127.0.0.1:${edge.port}/socket`, { host: 'chat.apps.example.com' });
        open.push(r.ws);
        statuses.push(101);
      } catch (err) {
        statuses.push(Number(/status (\d+)/.exec(String(err))?.[1] ?? 0));
      }
    }
    for (const ws of open) await closed(ws);
    assert.deepEqual(statuses, [101, 101, 101, 429, 429]);
    assert.equal(up.handshakes.length, 3, 'the refused ones never reached the instance');
  });

  it('upgrades count against client-rate like any request', async () => {
    await new Promise((r) => setTimeout(r, 2100)); // let the bucket refill (rate 5/s, burst 10)
    const before = up.handshakes.length;
    const statuses: string[] = [];
    for (let i = 0; i < 15; i++) {
      statuses.push(await statusOf(edge.port, HANDSHAKE('chat.apps.example.com')));
    }
    assert.ok(statuses.includes('429'), statuses.join(','));
    assert.ok(up.handshakes.length - before <= 11, `${up.handshakes.length - before} reached the instance`);
  });
});
