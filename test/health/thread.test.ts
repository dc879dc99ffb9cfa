// The probe thread for real (issue 24): started under tsx and from compiled JavaScript, probing on
// while the main thread is blocked, and replaced when it dies.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Worker } from 'node:worker_threads';
import { HealthService } from '../../src/health/service.ts';
import { THREAD_MIN_TARGETS, workerEntry } from '../../src/health/thread.ts';
import type { HealthTransitionEvent } from '../../src/model/events.ts';
import { portRoute, settingsWith, table } from './fakes.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(10);
  }
}

/** An HTTP server in another process that prints the time of every request it answers. */
function upstreamProcess(): Promise<{ child: ChildProcess; address: string; seen: number[] }> {
  const child = spawn(
    process.execPath,
    [
      '-e',
      `require('http').createServer((q, s) => { console.log(Date.now()); s.end('ok'); })
        .listen(0, '127.0.0.1', function () { console.log('port ' + this.address().port); });`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const seen: number[] = [];
  return new Promise((resolve) => {
    let buf = '';
    child.stdout!.on('data', (d) => {
      buf += String(d);
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.startsWith('port ')) resolve({ child, address: `127.0.0.1:${line.slice(5)}`, seen });
        else seen.push(Number(line));
        nl = buf.indexOf('\n');
      }
    });
  });
}

describe('the probe thread under tsx', () => {
  let up: Awaited<ReturnType<typeof upstreamProcess>>;
  before(async () => {
    up = await upstreamProcess();
  });
  after(() => up.child.kill('SIGKILL'));

  test('the worker starts, takes over, and probes on while the main thread is blocked', async () => {
    const { url, typescript } = workerEntry();
    assert.equal(typescript, true, 'tests run the .ts sources');
    assert.ok(existsSync(fileURLToPath(url)), `${url} exists`);
    const events: HealthTransitionEvent[] = [];
    const svc = new HealthService({ domain: 'd', thread: true, emit: (e) => events.push(e) });
    try {
      svc.reconcile(
        table(
          portRoute('shop', 'http', [{ name: 'a', address: up.address }], settingsWith({ intervalMs: 100 })),
        ),
      );
      await until(() => svc.threaded, 20_000, 'the worker thread took over');
      await until(() => events.length > 0, 5000, 'first probe result');
      assert.equal(events[0].to, 'healthy');
      // Block this thread: the probes go on in the worker.
      const from = Date.now();
      while (Date.now() - from < 1000) {
        // busy
      }
      const to = Date.now();
      await sleep(200); // let the child's output arrive
      const during = up.seen.filter((t) => t > from + 100 && t < to).length;
      console.log(`# ${during} probes answered while the main thread was blocked for ${to - from} ms`);
      assert.ok(during >= 4, `${during} probes while blocked`);
      // A result that changes a state comes back from the worker.
      up.child.kill('SIGKILL');
      await until(() => events.some((e) => e.to === 'unhealthy'), 5000, 'ejection reported by the worker');
      assert.match(events.at(-1)!.reason, /probe: (connect refused|reset)/);
    } finally {
      svc.close();
    }
  });

  test(`without a setting, the thread starts at ${THREAD_MIN_TARGETS} targets`, async () => {
    const svc = new HealthService({ domain: 'd' });
    try {
      const few = Array.from({ length: THREAD_MIN_TARGETS - 1 }, (_, i) => ({
        name: `p${i}`,
        address: `127.0.0.1:${10_000 + i}`,
      }));
      const s = settingsWith({ intervalMs: 60_000, path: null });
      svc.reconcile(table(portRoute('shop', 'http', few, s)));
      await sleep(300);
      assert.equal(svc.threaded, false);
      const more = [...few, { name: 'last', address: '127.0.0.1:11000' }];
      svc.reconcile(table(portRoute('shop', 'http', more, s)));
      await until(() => svc.threaded, 20_000, 'the worker thread took over');
    } finally {
      svc.close();
    }
  });

  test('a worker that dies is replaced, and probes go on in the main thread meanwhile', async () => {
    const server = http.createServer((_q, s) => s.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const address = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    let probes = 0;
    server.on('request', () => probes++);
    const logged: string[] = [];
    const svc = new HealthService({ domain: 'd', thread: true, log: (_l, msg) => logged.push(msg) });
    try {
      svc.reconcile(
        table(portRoute('shop', 'http', [{ name: 'a', address }], settingsWith({ intervalMs: 100 }))),
      );
      await until(() => svc.threaded, 20_000, 'the worker thread took over');
      const worker = (svc as unknown as { link: { worker: Worker } }).link.worker;
      await worker.terminate();
      await until(() => !svc.threaded, 1000, 'the worker is gone');
      const before = probes;
      await sleep(500);
      assert.ok(probes - before >= 3, `${probes - before} probes from the main thread meanwhile`);
      await until(() => svc.threaded, 20_000, 'a new worker took over');
      assert.ok(
        logged.some((m) => m.includes('until the probe thread restarts')),
        logged.join('; '),
      );
      const again = probes;
      await sleep(500);
      assert.ok(probes - again >= 3, 'the new worker probes');
      assert.equal(svc.state(`shop/http/a@${address}`), 'healthy');
    } finally {
      svc.close();
      server.close();
    }
  });
});

describe('the probe thread from compiled JavaScript', () => {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'wharf-dist-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('dist/health/thread.js starts dist/health/worker.js, without tsx', async () => {
    // What a tsc build with rewritten import extensions produces: .js files importing .js files.
    const { transformSync } = await import('esbuild');
    for (const sub of ['health', 'util', 'model']) {
      mkdirSync(join(dir, sub), { recursive: true });
      for (const f of readdirSync(join(root, 'src', sub)).filter((n) => n.endsWith('.ts'))) {
        const { code } = transformSync(readFileSync(join(root, 'src', sub, f), 'utf8'), {
          loader: 'ts',
          format: 'esm',
          target: 'es2022',
        });
        writeFileSync(
          join(dir, sub, f.replace(/\.ts$/, '.js')),
          code.replace(/(from\s+['"][^'"]+)\.ts(['"])/g, '$1.js$2'),
        );
      }
    }
    writeFileSync(join(dir, 'package.json'), '{"type":"module"}');
    writeFileSync(
      join(dir, 'check.mjs'),
      `import http from 'node:http';
       import { HealthService } from './health/service.js';
       import { workerEntry } from './health/thread.js';
       const server = http.createServer((q, s) => s.end('ok')).listen(0, '127.0.0.1', () => {
         const address = '127.0.0.1:' + server.address().port;
         const events = [];
         const svc = new HealthService({ thread: true, emit: (e) => events.push(e.to) });
         const ep = { id: 'p/http/a@' + address, project: 'p', port: 'http', instance: 'a', host: '127.0.0.1',
           portNumber: server.address().port, address, draining: false, token: 't', probeAddress: address };
         const health = { path: '/', port: null, intervalMs: 100, timeoutMs: 1000, fall: 2, rise: 2,
           expect: [{ from: 200, to: 399 }] };
         const route = { project: 'p', port: 'http', endpoints: [ep], byInstance: new Map([['a', ep]]),
           settings: { health } };
         svc.reconcile({ version: 1, snapshotVersion: 1, problems: [],
           projects: new Map([['p', { name: 'p', origin: 'config', defaultPort: 'http',
             ports: new Map([['http', route]]), settings: route.settings }]]) });
         const t0 = Date.now();
         const timer = setInterval(() => {
           if (svc.threaded || Date.now() - t0 > 10000) {
             clearInterval(timer);
             console.log(JSON.stringify({ threaded: svc.threaded, entry: workerEntry().url.pathname, events,
               ms: Date.now() - t0 }));
             svc.close();
             server.close();
           }
         }, 5);
       });`,
    );
    const r = spawnSync(process.execPath, [join(dir, 'check.mjs')], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    console.log(`# compiled worker took over after ${out.ms} ms`);
    assert.equal(out.threaded, true, r.stdout + r.stderr);
    assert.match(out.entry, /\/health\/worker\.js$/);
    assert.deepEqual(out.events, ['healthy']);
  });
});
