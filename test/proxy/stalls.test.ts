// `body-idle` on the client side: a client that stops sending its body, or stops reading the response,
// is cut after that much silence; a slow but moving client, or a slow upstream answer, is not.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { timedExchange, trickledPost } from '../support/raw.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';
import { type Started, startWharf } from '../support/wharf.ts';

const BODY_IDLE_MS = 500;
const CHUNK = Buffer.alloc(64 * 1024, 'x');
const BIG_CHUNKS = 8192; // 512 MiB

describe('stalled clients (body-idle)', () => {
  let up: TestUpstream;
  let w: Started;
  /** Whether the upstream's response to /big was abandoned (closed before it finished). */
  let bigAbandoned: Promise<boolean>;
  before(async () => {
    let abandoned!: (v: boolean) => void;
    bigAbandoned = new Promise((r) => {
      abandoned = r;
    });
    up = await startUpstream('up', (req, res, body) => {
      if (req.url === '/late') return void setTimeout(() => res.end('late'), BODY_IDLE_MS * 2);
      if (req.url === '/big') {
        // Streams (with backpressure) until the proxy lets go, at most BIG_CHUNKS chunks: loopback
        // buffers can hold tens of MiB, so a fixed body might fit in them whole.
        res.on('close', () => abandoned(!res.writableFinished));
        let sent = 0;
        const pump = () => {
          while (sent < BIG_CHUNKS && !res.destroyed) {
            sent++;
            if (!res.write(CHUNK)) return void res.once('drain', pump);
          }
          res.end();
        };
        return pump();
      }
      res.end(`got ${body.length} bytes`);
    });
    w = await startWharf({
      timeouts: { 'body-idle': `${BODY_IDLE_MS}ms` },
      projects: { p: { timeout: '5s', instances: { a: { http: up.address } } } },
    });
  });
  after(async () => {
    await w.stop();
    await up.close();
  });

  const connections = () =>
    new Promise<number>((r) => w.wharf.front.listener.getConnections((_e, n) => r(n)));
  const waitForNoConnections = async (deadlineMs: number) => {
    const deadline = Date.now() + deadlineMs;
    while ((await connections()) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return connections();
  };

  const exchange = (drive: Parameters<typeof timedExchange>[1]) => timedExchange(w.port, drive);

  it('an upload that stops is cut after body-idle', async () => {
    const { raw, ms } = await exchange(
      'POST /upload HTTP/1.1\r\nHost: p.test.local\r\nContent-Length: 100\r\n\r\n0123456789',
    );
    assert.ok(ms < BODY_IDLE_MS + 2000, `closed after ${ms} ms`);
    assert.doesNotMatch(raw, /^HTTP\/1.1 200/);
    assert.equal(await waitForNoConnections(2000), 0);
  });

  it('an upload that trickles (each pause shorter than body-idle) goes through whole', async () => {
    // 8 bytes over about 1.6 s: three times body-idle in all, never silent for as long.
    const { raw } = await exchange(
      trickledPost('/upload HTTP/1.1\r\nHost: p.test.local\r\n', 8, BODY_IDLE_MS / 2.5),
    );
    assert.match(raw, /^HTTP\/1.1 200/);
    assert.match(raw, /got 8 bytes$/);
  });

  it('an upstream slower than body-idle to answer a GET is not cut (the route timeout governs)', async () => {
    const { raw } = await exchange('GET /late HTTP/1.1\r\nHost: p.test.local\r\nConnection: close\r\n\r\n');
    assert.match(raw, /^HTTP\/1.1 200/);
    assert.match(raw, /late$/);
  });

  it('after a whole upload, an upstream slower than body-idle to answer is not cut (the route timeout governs)', async () => {
    const { raw } = await exchange(
      'POST /late HTTP/1.1\r\nHost: p.test.local\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello',
    );
    assert.match(raw, /^HTTP\/1.1 200/);
    assert.match(raw, /late$/);
  });

  it('a client that stops reading a large response is cut, and the upstream response is abandoned', async () => {
    const s = net.connect(w.port, '127.0.0.1');
    s.on('error', () => {});
    let raw = '';
    const firstData = new Promise<void>((resolve) =>
      s.once('data', (c) => {
        raw = c.toString('latin1');
        s.pause();
        resolve();
      }),
    );
    s.write('GET /big HTTP/1.1\r\nHost: p.test.local\r\n\r\n');
    await firstData;
    // Paused, the client would not notice the close; the server's side of the connection is the witness.
    const left = await waitForNoConnections(BODY_IDLE_MS + 2000);
    s.destroy();
    assert.match(raw, /^HTTP\/1.1 200/);
    assert.equal(left, 0, 'the proxy still holds the stalled connection');
    assert.equal(await bigAbandoned, true);
  });
});
