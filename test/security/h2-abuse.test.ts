// The HTTP/2 floods a public proxy must survive: rapid reset (CVE-2023-44487), CONTINUATION floods
// (CVE-2024-27316 and kin), PING and SETTINGS floods. Each abusive connection is closed, bounded in
// time, and Wharf keeps serving everyone else. Every load here is bounded in time and in bytes.

import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';
import { type Started, startWharf } from '../support/wharf.ts';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** One HTTP/2 frame: 24-bit length, type, flags, 31-bit stream id, payload. */
function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

/** HPACK: a literal header field without indexing, new name (RFC 7541 §6.2.2); short strings only. */
function literal(name: string, value: string): Buffer {
  return Buffer.concat([
    Buffer.from([0x00, name.length]),
    Buffer.from(name),
    Buffer.from([value.length]),
    Buffer.from(value),
  ]);
}

/**
 * Writes frames from `next` as fast as the socket takes them, until the server closes the connection,
 * `maxBytes` are sent or `ms` pass. Resolves with how it ended and what was sent.
 */
function flood(
  port: number,
  opening: Buffer,
  next: () => Buffer,
  maxBytes: number,
  ms: number,
): Promise<{ closedByServer: boolean; sent: number; received: Buffer }> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    const received: Buffer[] = [];
    let sent = 0;
    let done = false;
    const finish = (closedByServer: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ closedByServer, sent, received: Buffer.concat(received) });
    };
    const timer = setTimeout(() => finish(false), ms);
    sock.on('data', (c) => received.push(c));
    sock.on('close', () => finish(true));
    sock.on('error', () => finish(true));
    const pump = () => {
      while (!done && sent < maxBytes) {
        const f = next();
        sent += f.length;
        if (!sock.write(f)) return void sock.once('drain', pump);
      }
      if (sent >= maxBytes) setTimeout(() => finish(false), 500);
    };
    sock.once('connect', () => {
      sock.write(opening);
      pump();
    });
  });
}

/** The GOAWAY error codes in what the server sent. */
function goawayCodes(buf: Buffer): number[] {
  const codes: number[] = [];
  for (let i = 0; i + 9 <= buf.length; ) {
    const len = buf.readUIntBE(i, 3);
    if (buf[i + 3] === 0x7 && i + 9 + 8 <= buf.length) codes.push(buf.readUInt32BE(i + 9 + 4));
    i += 9 + len;
  }
  return codes;
}

describe('HTTP/2 abuse', () => {
  let up: TestUpstream;
  let w: Started;
  before(async () => {
    up = await startUpstream('app');
    // The floods share this process with the upstream and the probes: a long probe timeout keeps a
    // starved event loop from reading as a dead instance.
    w = await startWharf({
      projects: { app: { 'health-timeout': '10s', instances: { 'app-0': { http: up.address } } } },
    });
  });
  after(async () => {
    await w.stop();
    await up.close();
  });

  /** A well-behaved client still gets its answer. */
  async function stillServes(): Promise<void> {
    const session = http2.connect(`http://127.0.0.1:${w.port}`);
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const req = session.request({ ':path': '/ok', ':authority': 'app.test.local' });
        req.on('response', (h) => resolve(Number(h[':status'])));
        req.on('error', reject);
        req.resume();
        req.end();
      });
      assert.equal(status, 200, JSON.stringify(w.wharf.health.list().map((x) => x.status)));
    } finally {
      session.close();
    }
  }

  it('rapid reset: a client cancelling streams as fast as it opens them gets GOAWAY(ENHANCE_YOUR_CALM)', async () => {
    const before = up.seen.length;
    const session = http2.connect(`http://127.0.0.1:${w.port}`);
    session.on('error', () => {});
    const goaway = new Promise<number>((resolve) => session.once('goaway', (code) => resolve(code)));
    let opened = 0;
    const deadline = Date.now() + 3000;
    await new Promise<void>((resolve) => session.once('connect', () => resolve()));
    while (!session.destroyed && !session.closed && opened < 5000 && Date.now() < deadline) {
      for (let i = 0; i < 50 && !session.destroyed; i++, opened++) {
        try {
          const s = session.request(
            { ':path': `/r${opened}`, ':authority': 'app.test.local' },
            { endStream: true },
          );
          s.on('error', () => {});
          s.close(http2.constants.NGHTTP2_CANCEL);
        } catch {
          break;
        }
      }
      await new Promise((r) => setImmediate(r));
    }
    const code = await Promise.race([goaway, new Promise<number>((r) => setTimeout(() => r(-1), 2000))]);
    session.destroy();
    assert.equal(code, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM, `after ${opened} streams`);
    // Upstream work is bounded by the reset budget, not by how many streams the client opened.
    const reached = up.seen.length - before;
    assert.ok(reached < 600, `${reached} of ${opened} reset streams reached the upstream`);
    await stillServes();
  });

  it('CONTINUATION flood: endless header continuation is cut, not buffered', async () => {
    const headers = Buffer.concat([
      Buffer.from([0x82, 0x84, 0x86]), // :method GET, :path /, :scheme http
      literal(':authority', 'app.test.local'),
    ]);
    const block = Buffer.concat(
      Array.from({ length: 150 }, (_, i) => literal(`x-f${i % 10}`, 'v'.repeat(100))),
    );
    let first = true;
    const r = await flood(
      w.port,
      Buffer.concat([PREFACE, frame(0x4, 0, 0)]),
      () => {
        if (first) {
          first = false;
          return frame(0x1, 0x1, 1, headers); // HEADERS, END_STREAM, no END_HEADERS
        }
        return frame(0x9, 0, 1, block); // CONTINUATION, no END_HEADERS, ever
      },
      64 * 1024 * 1024,
      5000,
    );
    assert.ok(r.closedByServer, `the server kept reading: ${r.sent} bytes sent`);
    assert.ok(r.sent < 16 * 1024 * 1024, `${r.sent} bytes before the cut`);
    await stillServes();
  });

  it('PING flood from a client that never reads the answers: the connection is closed', async () => {
    const ping = frame(0x6, 0, 0, Buffer.alloc(8));
    const r = await flood(
      w.port,
      Buffer.concat([PREFACE, frame(0x4, 0, 0)]),
      () => ping,
      32 * 1024 * 1024,
      5000,
    );
    assert.ok(r.closedByServer || goawayCodes(r.received).length > 0, `${r.sent} bytes of PING taken`);
    await stillServes();
  });

  it('SETTINGS flood: the connection is closed', async () => {
    const settings = frame(0x4, 0, 0, Buffer.from([0x00, 0x03, 0x00, 0x00, 0x00, 0x64]));
    const r = await flood(w.port, PREFACE, () => settings, 32 * 1024 * 1024, 5000);
    assert.ok(r.closedByServer || goawayCodes(r.received).length > 0, `${r.sent} bytes of SETTINGS taken`);
    await stillServes();
  });

  it('a header list over the limit is refused, and the process stays up', async () => {
    const session = http2.connect(`http://127.0.0.1:${w.port}`);
    session.on('error', () => {});
    try {
      const outcome = await new Promise<string>((resolve) => {
        const req = session.request({
          ':path': '/',
          ':authority': 'app.test.local',
          'x-big': 'x'.repeat(20_000),
        });
        req.on('response', (h) => resolve(`status ${h[':status']}`));
        req.on('error', (e) => resolve(`error ${(e as { code?: string }).code}`));
        req.on('close', () => resolve(`closed ${req.rstCode}`));
        req.end();
      });
      assert.doesNotMatch(outcome, /status 200/);
    } finally {
      session.destroy();
    }
    await stillServes();
  });
});

describe('HTTP/2 clients that go away with streams open', () => {
  let slow: import('node:http').Server;
  let w: Started;
  const access: import('../../src/model/access.ts').AccessRecord[] = [];
  before(async () => {
    const http = await import('node:http');
    // Answers after 300 ms: the client is gone by then.
    slow = http.createServer((req, res) => {
      if (req.headers['user-agent'] === 'wharf-health') return res.end('ok');
      setTimeout(() => res.end('late'), 300);
    });
    await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
    const port = (slow.address() as net.AddressInfo).port;
    w = await startWharf(
      { projects: { app: { instances: { 'app-0': { http: `127.0.0.1:${port}` } } } } },
      { onAccess: (r) => access.push(r) },
    );
  });
  after(async () => {
    await w.stop();
    slow.closeAllConnections();
    slow.close();
  });

  it('a connection dropped with 20 streams in flight ends them all, logged, and the process stays up', async () => {
    // The streams are finished after node's session has let go of its socket, whose proxy then
    // throws on every read (ERR_HTTP2_SOCKET_UNBOUND): h2load ending a gRPC run crashed Wharf so.
    for (let round = 0; round < 3; round++) {
      let raw: net.Socket | undefined;
      const session = http2.connect(`http://127.0.0.1:${w.port}`, {
        createConnection: () => {
          raw = net.connect(w.port, '127.0.0.1');
          return raw;
        },
      });
      session.on('error', () => {});
      await new Promise<void>((r) => session.once('connect', () => r()));
      for (let i = 0; i < 20; i++) {
        const req = session.request({ ':path': `/drop-${round}-${i}`, ':authority': 'app.test.local' });
        req.on('error', () => {});
        req.end();
      }
      await new Promise((r) => setTimeout(r, 50));
      // Gone at once, as a client process that exits: no GOAWAY, no RST_STREAM.
      raw?.destroy();
    }
    await new Promise((r) => setTimeout(r, 600));
    const dropped = access.filter((a) => a.path.startsWith('/drop-'));
    assert.equal(dropped.length, 60, 'every stream has its access line');
    // Still serving (a crash would have taken this test process down with it).
    const session = http2.connect(`http://127.0.0.1:${w.port}`);
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const req = session.request({ ':path': '/after', ':authority': 'app.test.local' });
        req.on('response', (h) => resolve(Number(h[':status'])));
        req.on('error', reject);
        req.resume();
        req.end();
      });
      assert.equal(status, 200);
    } finally {
      session.close();
    }
  });
});
