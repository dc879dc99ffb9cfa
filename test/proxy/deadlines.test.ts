// The upstream deadlines the forwarder's sweep keeps: the route's `timeout` until response headers,
// counted from when the request body was all taken, and `body-idle` inside the upstream's body.

import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { AccessRecord } from '../../src/model/access.ts';
import { timedExchange, trickledPost } from '../support/raw.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';
import { type Started, startWharf } from '../support/wharf.ts';

const TIMEOUT_MS = 300;
// Longer than a route timeout plus two sweeps: body-idle on the client's socket must not win the race
// when an upstream stops taking an upload (the client is silent then too).
const BODY_IDLE_MS = 1000;

describe('upstream deadlines', () => {
  let up: TestUpstream;
  /** Answers its health probes; takes other requests and never reads their bodies nor answers. */
  let hold: http.Server;
  let w: Started;
  const access: AccessRecord[] = [];
  const lastAccess = async (path: string): Promise<AccessRecord | undefined> => {
    // The record is written when the exchange ends, which may trail the client's view by a turn.
    for (let i = 0; i < 50; i++) {
      const rec = access.findLast((r) => r.path === path);
      if (rec) return rec;
      await new Promise((r) => setTimeout(r, 10));
    }
    return undefined;
  };

  before(async () => {
    up = await startUpstream('up', (req, res, body) => {
      if (req.url === '/silent') return; // takes the request, never answers
      if (req.url === '/stall') {
        // Headers and part of the body, then silence for longer than body-idle.
        res.writeHead(200, { 'content-length': '10' });
        res.write('01234');
        return;
      }
      res.end(`got ${body.length} bytes`);
    });
    hold = http.createServer((req, res) => {
      if (req.url === '/') return void res.end('ok'); // the health probe
      req.pause();
    });
    await new Promise<void>((r) => hold.listen(0, '127.0.0.1', r));
    const holdAddress = `127.0.0.1:${(hold.address() as AddressInfo).port}`;
    w = await startWharf(
      {
        timeouts: { 'body-idle': `${BODY_IDLE_MS}ms` },
        // One project per test: a timeout ejects the instance (passive health) for that project only.
        projects: Object.fromEntries(
          ['p1', 'p2', 'p3', 'p4', 'p5'].map((name) => [
            name,
            {
              timeout: `${TIMEOUT_MS}ms`,
              retries: 0,
              instances: { a: { http: name === 'p5' ? holdAddress : up.address } },
            },
          ]),
        ),
      },
      { onAccess: (rec) => access.push(rec) },
    );
  });
  after(async () => {
    await w.stop();
    up.server.closeAllConnections();
    await up.close();
    hold.closeAllConnections();
    await new Promise((r) => hold.close(r));
  });

  const exchange = (drive: Parameters<typeof timedExchange>[1]) => timedExchange(w.port, drive);

  it('no response headers within the route timeout: 504 response-timeout, near the deadline', async () => {
    const { raw, ms } = await exchange(
      'GET /silent HTTP/1.1\r\nHost: p1.test.local\r\nConnection: close\r\n\r\n',
    );
    assert.match(raw, /^HTTP\/1.1 504/);
    assert.match(raw, /"project":"p1"/);
    // The sweep runs every 100 ms: the answer comes within a sweep or two of the deadline.
    assert.ok(ms >= TIMEOUT_MS && ms < TIMEOUT_MS + 700, `answered after ${ms} ms`);
    assert.equal((await lastAccess('/silent'))?.error, 'response-timeout');
  });

  it('an upstream silent inside its body is cut after body-idle; the client sees the body incomplete', async () => {
    const { raw, ms } = await exchange(
      'GET /stall HTTP/1.1\r\nHost: p2.test.local\r\nConnection: close\r\n\r\n',
    );
    assert.match(raw, /^HTTP\/1.1 200/);
    assert.match(raw, /\r\n\r\n01234$/, 'the five bytes sent, and not the ten promised');
    assert.ok(ms >= BODY_IDLE_MS && ms < BODY_IDLE_MS + 700, `cut after ${ms} ms`);
    const rec = await lastAccess('/stall');
    assert.equal(rec?.error, 'response-timeout');
    assert.equal(rec?.bytesOut, 5);
  });

  it('an upload slower than the route timeout goes through: the wait for headers starts after the body', async () => {
    // 6 bytes over about 900 ms: three route timeouts in all, each gap under body-idle.
    const { raw, ms } = await exchange(trickledPost('/upload HTTP/1.1\r\nHost: p3.test.local\r\n', 6, 150));
    assert.ok(ms >= 3 * TIMEOUT_MS);
    assert.match(raw, /^HTTP\/1.1 200/);
    assert.match(raw, /got 6 bytes$/);
  });

  it('after an upload, an upstream that never answers gets 504 one route timeout after the body', async () => {
    const { raw, ms } = await exchange(trickledPost('/silent HTTP/1.1\r\nHost: p4.test.local\r\n', 3, 200));
    assert.match(raw, /^HTTP\/1.1 504/);
    // The body's last byte left at about 600 ms; the deadline is one timeout later.
    assert.ok(ms >= 600 + TIMEOUT_MS - 50 && ms < 600 + TIMEOUT_MS + 800, `answered after ${ms} ms`);
  });

  it('an upload the upstream stops taking gets 504 one route timeout later, not a cut connection', async () => {
    let sent = 0;
    // Far more than the loopback buffers hold, produced only as fast as it is taken.
    const body = new Readable({
      read() {
        if (sent >= 512 * 1024 ** 2) return void this.push(null);
        sent += 1024 ** 2;
        this.push(Buffer.alloc(1024 ** 2, 120));
      },
    });
    const t0 = Date.now();
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(
        {
          port: w.port,
          method: 'POST',
          path: '/held',
          headers: { host: 'p5.test.local', 'content-length': String(512 * 1024 ** 2) },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      body.pipe(req);
    });
    const ms = Date.now() - t0;
    body.destroy();
    console.log(`# sent ${sent} bytes before the stall`);
    assert.equal(status, 504);
    assert.ok(sent < 512 * 1024 ** 2, `the whole body went up (${sent} bytes)`);
    // Generous: how fast the buffers before the stall fill (9 MiB here) is the machine's pace.
    assert.ok(ms < TIMEOUT_MS + 3000, `answered after ${ms} ms`);
    assert.equal((await lastAccess('/held'))?.error, 'response-timeout');
  });
});
