// Kept-alive probe connections on real sockets (issue 24): one connection carries probe after probe;
// the probe's deadline bounds an answer on a kept connection too (a hung process is still found),
// and the next probe after any failure opens a fresh one; the keep-alive race costs no failure; a
// server that closes idle connections before the next probe gets them closed by the prober; TCP
// checks end with a reset.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import {
  keptConnections,
  netProber,
  ProbeCancel,
  ProbeSession,
  type ProbeTarget,
  STAGE_CONNECTING,
  setKeptBudget,
} from '../../src/health/prober.ts';

const EXPECT = [{ from: 200, to: 399 }];

function listen(server: net.Server): Promise<string> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve(`127.0.0.1:${(server.address() as net.AddressInfo).port}`)),
  );
}

function target(address: string, path: string | null = '/'): ProbeTarget {
  return { address, path, host: 'shop.test', expect: EXPECT, session: new ProbeSession() };
}

/** A probe that gives up after `ms` (the loop's deadline). */
function probe(t: ProbeTarget, ms = 1000) {
  const cancel = new ProbeCancel();
  const timer = setTimeout(() => cancel.abort(), ms);
  return netProber.probe(t, cancel).finally(() => clearTimeout(timer));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met');
    await sleep(5);
  }
}

describe('kept-alive HTTP probes', () => {
  let frozen = false;
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    if (frozen) return; // accepted and read, never answered: a hung process
    if (req.url === '/chunked') {
      res.write('o');
      res.end('k');
    } else res.end('ok');
  });
  server.keepAliveTimeout = 10_000;
  let connections = 0;
  server.on('connection', (s) => {
    connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  let addr = '';
  before(async () => {
    addr = await listen(server);
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  test('probes of one target share one connection, Content-Length and chunked alike', async () => {
    const t = target(addr);
    const c = target(addr, '/chunked');
    const before = connections;
    for (let i = 0; i < 5; i++) {
      assert.deepEqual(await probe(t), { ok: true, reason: 'ok (200)', status: 200 });
      assert.equal((await probe(c)).ok, true);
    }
    assert.equal(connections - before, 2, 'two targets, two connections, ten probes');
    netProber.forget?.(t);
    netProber.forget?.(c);
    await until(() => sockets.size === 0);
  });

  test('a probe on a kept connection to a hung process ends at its deadline; the next opens a fresh one', async () => {
    const t = target(addr);
    assert.equal((await probe(t)).ok, true);
    const before = connections;
    frozen = true;
    const started = Date.now();
    assert.deepEqual(await probe(t, 300), { ok: false, reason: 'aborted' });
    assert.ok(Date.now() - started >= 290, 'waited for the deadline, on the kept connection');
    assert.equal(connections, before, 'the hung probe used the kept connection');
    await until(() => sockets.size === 0);
    frozen = false;
    assert.equal((await probe(t)).ok, true);
    assert.equal(connections - before, 1, 'a fresh connection after the failure');
    netProber.forget?.(t);
  });
});

test('past the kept-connection budget (half the descriptors), a probe closes its connection after the answer', async () => {
  const server = http.createServer((_q, res) => res.end('ok'));
  const addr = await listen(server);
  const before = keptConnections();
  const prev = setKeptBudget(before + 1);
  try {
    const [t1, t2] = [target(addr), target(addr)];
    assert.equal((await probe(t1)).ok, true);
    assert.equal((await probe(t2)).ok, true);
    assert.ok(t1.session!.conn, 'the first is kept');
    assert.equal(t2.session!.conn, undefined, 'the second is over the budget');
    assert.equal(keptConnections(), before + 1);
    netProber.forget?.(t1);
    assert.equal(keptConnections(), before);
  } finally {
    setKeptBudget(prev);
    server.closeAllConnections();
    server.close();
  }
});

describe('connections the server closes', () => {
  test('the keep-alive race: a kept connection closed as the probe is sent costs no failure', async () => {
    // Answers the first request on each connection, then closes it at the next one without answering.
    let connections = 0;
    const server = net.createServer((s) => {
      connections++;
      let n = 0;
      s.on('error', () => {});
      s.on('data', () => {
        if (n++ === 0) s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
        else s.destroy();
      });
    });
    const addr = await listen(server);
    const t = target(addr);
    for (let i = 0; i < 4; i++)
      assert.deepEqual(await probe(t), { ok: true, reason: 'ok (200)', status: 200 });
    assert.equal(connections, 4, 'each reused connection failed under the probe, which went on a fresh one');
    netProber.forget?.(t);
    server.close();
  });

  test('a server that closes idle connections before the next probe: they are closed by the prober instead', async () => {
    // Answers every request and closes a connection idle for 100 ms (FIN), like a short keep-alive timeout.
    const resets: string[] = [];
    const server = net.createServer((s) => {
      let idle: NodeJS.Timeout | undefined;
      s.on('error', (e: NodeJS.ErrnoException) => resets.push(e.code ?? ''));
      s.on('close', () => clearTimeout(idle));
      s.on('data', () => {
        clearTimeout(idle);
        s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
        idle = setTimeout(() => s.end(), 100);
      });
    });
    const addr = await listen(server);
    const t = target(addr);
    t.session!.nextGapMs = 300;
    assert.equal((await probe(t)).ok, true);
    assert.ok(t.session!.conn, 'kept while nothing is known of the server');
    await until(() => t.session!.conn === undefined);
    const idleMs = t.session!.serverIdleMs;
    assert.ok(idleMs >= 80 && idleMs < 1000, `the server closed it after ${idleMs} ms idle`);
    assert.equal((await probe(t)).ok, true);
    assert.equal(t.session!.conn, undefined, 'not kept: the server would close it before the next probe');
    await until(() => resets.length > 0);
    assert.deepEqual(resets, ['ECONNRESET'], 'closed with a reset, so no TIME_WAIT on either side');
    // Fast re-checks (gaps shorter than the server's idle timeout) keep their connection again.
    t.session!.nextGapMs = 20;
    assert.equal((await probe(t)).ok, true);
    assert.ok(t.session!.conn);
    netProber.forget?.(t);
    server.close();
  });
});

test('a TCP check ends its connection with a reset (no TIME_WAIT)', async () => {
  const seen: string[] = [];
  const server = net.createServer((s) => {
    s.on('error', (e: NodeJS.ErrnoException) => seen.push(`error ${e.code}`));
    s.on('end', () => seen.push('end'));
  });
  const addr = await listen(server);
  assert.deepEqual(await probe({ address: addr, path: null, host: 'x', expect: EXPECT }), {
    ok: true,
    reason: 'ok (tcp)',
  });
  await until(() => seen.length > 0);
  assert.deepEqual(seen, ['error ECONNRESET']);
  server.close();
});

test('a connect that never completes (its SYN dropped) is told apart from a hung answer', async () => {
  // A stopped process whose accept queue is full: the kernel drops further SYNs, as a dead node does.
  const child = spawn(
    process.execPath,
    [
      '-e',
      "require('net').createServer().listen({port:0,host:'127.0.0.1',backlog:1},function(){console.log(this.address().port)})",
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  try {
    const port = await new Promise<string>((r) => child.stdout!.once('data', (d) => r(String(d).trim())));
    child.kill('SIGSTOP');
    const fillers: net.Socket[] = [];
    // Fill the queue: connections complete until it is full (backlog + 1 on Linux).
    for (let i = 0; i < 8; i++) {
      const s = net.connect(Number(port), '127.0.0.1');
      s.on('error', () => {});
      fillers.push(s);
      const ok = await new Promise<boolean>((r) => {
        s.once('connect', () => r(true));
        setTimeout(() => r(false), 200);
      });
      if (!ok) break;
    }
    const cancel = new ProbeCancel();
    const timer = setTimeout(() => cancel.abort(), 300);
    const r = await netProber.probe(
      { address: `127.0.0.1:${port}`, path: '/', host: 'x', expect: EXPECT },
      cancel,
    );
    clearTimeout(timer);
    assert.deepEqual(r, { ok: false, reason: 'aborted' });
    assert.equal(cancel.stage, STAGE_CONNECTING, 'still connecting at the deadline: a connect timeout');
    for (const s of fillers) s.destroy();
  } finally {
    child.kill('SIGKILL');
  }
});
