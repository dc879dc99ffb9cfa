// The real prober on real sockets (127.0.0.1, port 0): HTTP status ranges, Host header, own
// connection per probe, refused ports, TCP checks, and peers that accept but never answer.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { netProber, ProbeCancel, splitAddress, statusExpected } from '../../src/health/prober.ts';
import { HealthService } from '../../src/health/service.ts';
import type { HealthTransitionEvent } from '../../src/model/events.ts';
import { portRoute, settingsWith, table } from './fakes.ts';

const EXPECT = [{ from: 200, to: 399 }];

function listen(server: net.Server): Promise<string> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve(`127.0.0.1:${(server.address() as net.AddressInfo).port}`)),
  );
}

function close(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

async function freePort(): Promise<string> {
  const s = net.createServer();
  const addr = await listen(s);
  await close(s);
  return addr;
}

describe('HTTP probes', () => {
  const seen: Array<{ url: string; host: string; connection: string }> = [];
  let connections = 0;
  const server = http.createServer((req, res) => {
    seen.push({ url: req.url ?? '', host: req.headers.host ?? '', connection: req.headers.connection ?? '' });
    if (req.url === '/ok') res.end('ok');
    else if (req.url === '/moved') res.writeHead(302, { location: '/' }).end();
    else if (req.url === '/nobody') res.writeHead(204).end();
    else if (req.url === '/endless') res.writeHead(200).write('and it goes on');
    else res.writeHead(503).end('down');
  });
  server.on('connection', () => connections++);
  let addr = '';
  before(async () => {
    addr = await listen(server);
  });
  after(async () => {
    server.closeAllConnections();
    await close(server);
  });

  const probe = (path: string | null, expect = EXPECT, address = addr) =>
    netProber.probe({ address, path, host: 'shop.apps.example.com', expect }, AbortSignal.timeout(2000));

  test('status in range passes, outside fails; path and Host are sent', async () => {
    assert.deepEqual(await probe('/ok'), { ok: true, reason: 'ok (200)', status: 200 });
    assert.deepEqual(await probe('/moved'), { ok: true, reason: 'ok (302)', status: 302 });
    assert.deepEqual(await probe('/down'), { ok: false, reason: 'status 503', status: 503 });
    assert.deepEqual(await probe('/nobody', [{ from: 200, to: 200 }]), {
      ok: false,
      reason: 'status 204',
      status: 204,
    });
    assert.deepEqual(seen[0], { url: '/ok', host: 'shop.apps.example.com', connection: 'close' });
  });

  test('every probe opens its own connection', async () => {
    const before = connections;
    for (let i = 0; i < 5; i++) assert.equal((await probe('/ok')).ok, true);
    assert.equal(connections - before, 5);
  });

  test('the verdict comes with the status line, even if the body never ends', async () => {
    const t = Date.now();
    assert.equal((await probe('/endless')).ok, true);
    assert.ok(Date.now() - t < 1000);
  });

  test('a refused port', async () => {
    assert.deepEqual(await probe('/ok', EXPECT, await freePort()), { ok: false, reason: 'connect refused' });
  });

  test('a peer that answers garbage', async () => {
    const open = new Set<net.Socket>();
    const junk = net.createServer((s) => {
      open.add(s);
      s.on('error', () => {});
      s.end('NOT HTTP AT ALL\r\n\r\n');
    });
    const a = await listen(junk);
    const r = await probe('/ok', EXPECT, a);
    assert.deepEqual(r, { ok: false, reason: 'invalid response' });
    for (const s of open) s.destroy();
    await close(junk);
  });
});

describe('HTTP probes read only the status line', () => {
  async function rawPeer(
    answer: (s: net.Socket) => void,
  ): Promise<{ addr: string; stop: () => Promise<void> }> {
    const open = new Set<net.Socket>();
    const server = net.createServer((s) => {
      open.add(s);
      s.on('error', () => {});
      s.once('data', () => answer(s));
    });
    const addr = await listen(server);
    return {
      addr,
      stop: async () => {
        for (const s of open) s.destroy();
        await close(server);
      },
    };
  }
  const probe = (address: string) =>
    netProber.probe({ address, path: '/', host: 'x', expect: EXPECT }, AbortSignal.timeout(2000));

  test('a status line split across packets, without a reason phrase', async () => {
    const peer = await rawPeer((s) => {
      s.write('HTTP/1.1 2');
      setTimeout(() => s.write('04\r\n\r\n'), 20);
    });
    assert.deepEqual(await probe(peer.addr), { ok: true, reason: 'ok (204)', status: 204 });
    await peer.stop();
  });

  test('an interim 103 Early Hints is skipped for the final status', async () => {
    const peer = await rawPeer((s) =>
      s.write('HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 503 Service Unavailable\r\n\r\n'),
    );
    assert.deepEqual(await probe(peer.addr), { ok: false, reason: 'status 503', status: 503 });
    await peer.stop();
  });

  test('a peer that closes without answering', async () => {
    const peer = await rawPeer((s) => s.end());
    assert.deepEqual(await probe(peer.addr), { ok: false, reason: 'reset' });
    await peer.stop();
  });
});

describe('frozen peers and TCP checks', () => {
  const sockets = new Set<net.Socket>();
  // Accepts and reads, never answers: what a SIGSTOPped process looks like from outside.
  const frozen = net.createServer((s) => {
    sockets.add(s);
    s.resume();
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
  });
  let addr = '';
  before(async () => {
    addr = await listen(frozen);
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await close(frozen);
  });

  test('an HTTP probe to a frozen peer ends at the abort and frees its socket', async () => {
    const t = Date.now();
    const r = await netProber.probe(
      { address: addr, path: '/', host: 'x', expect: EXPECT },
      AbortSignal.timeout(200),
    );
    const took = Date.now() - t;
    assert.deepEqual(r, { ok: false, reason: 'aborted' });
    assert.ok(took >= 190 && took < 1000, `took ${took} ms`);
    for (let i = 0; i < 50 && sockets.size > 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(sockets.size, 0, 'the probe connection was closed');
  });

  test('a TCP check only needs the connect, so it passes on a frozen peer', async () => {
    const r = await netProber.probe(
      { address: addr, path: null, host: 'x', expect: EXPECT },
      AbortSignal.timeout(1000),
    );
    assert.deepEqual(r, { ok: true, reason: 'ok (tcp)' });
    const refused = await netProber.probe(
      { address: await freePort(), path: null, host: 'x', expect: EXPECT },
      AbortSignal.timeout(1000),
    );
    assert.deepEqual(refused, { ok: false, reason: 'connect refused' });
  });

  test('an already aborted signal returns at once', async () => {
    const ac = new AbortController();
    ac.abort();
    assert.deepEqual(
      await netProber.probe({ address: addr, path: '/', host: 'x', expect: EXPECT }, ac.signal),
      {
        ok: false,
        reason: 'aborted',
      },
    );
  });

  test('HealthService with real timers marks a frozen peer unhealthy on timeout', async () => {
    const events: HealthTransitionEvent[] = [];
    const svc = new HealthService({ domain: 'd', emit: (e) => events.push(e) });
    svc.reconcile(
      table(
        portRoute(
          'shop',
          'http',
          [{ name: 'a', address: addr }],
          settingsWith({ timeoutMs: 200, intervalMs: 200 }),
        ),
      ),
    );
    const t = Date.now();
    while (events.length === 0 && Date.now() - t < 3000) await new Promise((r) => setTimeout(r, 10));
    svc.close();
    assert.equal(events[0]?.to, 'unhealthy');
    assert.equal(events[0]?.reason, 'probe: timeout after 200ms');
    assert.ok((events[0]?.probeLatencyMs ?? 0) >= 200);
  });
});

describe('a SIGSTOPped upstream process', {
  skip: process.platform === 'win32' ? 'needs POSIX signals' : false,
}, () => {
  let child: ChildProcess | undefined;
  let addr = '';
  before(async () => {
    child = spawn(
      process.execPath,
      [
        '-e',
        "require('http').createServer((q,s)=>s.end('ok')).listen(0,'127.0.0.1',function(){console.log(this.address().port)})",
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const port = await new Promise<string>((resolve) =>
      child!.stdout!.once('data', (d) => resolve(String(d).trim())),
    );
    addr = `127.0.0.1:${port}`;
  });
  after(() => {
    if (child?.pid) {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
    }
  });

  test('default settings: out about 2 s after the freeze, back about 2 s after the thaw', async () => {
    const events: HealthTransitionEvent[] = [];
    const svc = new HealthService({ domain: 'd', emit: (e) => events.push(e) });
    svc.reconcile(table(portRoute('shop', 'http', [{ name: 'a', address: addr }], settingsWith())));
    const wait = async (n: number, limit: number) => {
      const t = Date.now();
      while (events.length < n && Date.now() - t < limit) await new Promise((r) => setTimeout(r, 5));
      return Date.now() - t;
    };
    await wait(1, 3000);
    assert.equal(events[0]?.to, 'healthy');
    // Freeze at a random point of the probe cycle.
    await new Promise((r) => setTimeout(r, 300 + Math.random() * 700));
    child!.kill('SIGSTOP');
    const down = await wait(2, 5000);
    child!.kill('SIGCONT');
    const up = await wait(3, 5000);
    svc.close();
    console.log(`# SIGSTOP -> unhealthy in ${down} ms; SIGCONT -> healthy in ${up} ms`);
    assert.equal(events[1]?.to, 'unhealthy');
    assert.match(events[1]?.reason ?? '', /timeout after 1000ms/);
    assert.ok(down <= 2600, `ejected after ${down} ms`);
    assert.equal(events[2]?.to, 'healthy');
    assert.ok(up <= 3500, `readmitted after ${up} ms`);
  });
});

test('ProbeCancel: listeners run once, removed ones never; the real prober stops on it', async () => {
  const c = new ProbeCancel();
  const calls: string[] = [];
  const a = () => calls.push('a');
  const b = () => calls.push('b');
  const gone = () => calls.push('gone');
  c.addEventListener('abort', a);
  c.addEventListener('abort', gone);
  c.addEventListener('abort', b);
  c.removeEventListener('abort', gone);
  c.abort();
  c.abort();
  assert.deepEqual(calls, ['a', 'b']);
  assert.equal(c.aborted, true);
  // A peer that accepts and never answers: the probe ends when the cancel fires.
  const open = new Set<net.Socket>();
  const silent = net.createServer((s) => {
    open.add(s);
    s.on('error', () => {});
  });
  const addr = await listen(silent);
  const cancel = new ProbeCancel();
  const pending = netProber.probe({ address: addr, path: '/', host: 'x', expect: EXPECT }, cancel);
  setTimeout(() => cancel.abort(), 50);
  assert.deepEqual(await pending, { ok: false, reason: 'aborted' });
  for (const s of open) s.destroy();
  await close(silent);
});

test('address and status helpers', () => {
  assert.deepEqual(splitAddress('10.0.0.1:80'), { host: '10.0.0.1', port: 80 });
  assert.deepEqual(splitAddress('[fd00::1]:8080'), { host: 'fd00::1', port: 8080 });
  assert.equal(
    statusExpected(404, [
      { from: 200, to: 299 },
      { from: 404, to: 404 },
    ]),
    true,
  );
  assert.equal(statusExpected(500, EXPECT), false);
});
