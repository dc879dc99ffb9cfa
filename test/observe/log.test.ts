import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { mkdtempSync, openSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { WharfEvent } from '../../src/model/events.ts';
import type { AccessRecord } from '../../src/observe/access-log.ts';
import { accessLine, createLogs, jsonMs, reopenOnSignal } from '../../src/observe/log.ts';
import { BoundedSink } from '../../src/observe/sink.ts';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'wharf-log-'));
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function lines(file: string): Record<string, unknown>[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

const rec = (over: Partial<AccessRecord> = {}): AccessRecord => ({
  time: 1_790_000_000_000,
  requestId: 'r-1',
  client: '127.0.0.1',
  host: 'web.shop.demo.local',
  method: 'GET',
  path: '/cart?x="1"',
  status: 200,
  bytesIn: 10,
  bytesOut: 1234,
  durationMs: 3.5,
  upstreamMs: 3.1,
  project: 'shop',
  port: 'web',
  instance: 'shop-0',
  attempts: 1,
  ...over,
});

const health = (over: Partial<Extract<WharfEvent, { type: 'health' }>> = {}): WharfEvent => ({
  type: 'health',
  time: 1_790_000_000_500,
  project: 'shop',
  port: 'web',
  instance: 'shop-1',
  address: '127.0.0.1:18102',
  from: 'healthy',
  to: 'unhealthy',
  ejected: false,
  reason: 'probe: timeout after 1000 ms',
  probeLatencyMs: 1000,
  ...over,
});

describe('access log', () => {
  test('one JSON line per request with every field', async () => {
    const dir = tmp();
    const logs = createLogs({ dir, access: true, health: true });
    logs.access(rec());
    logs.access(
      rec({ requestId: 'r-2', status: 503, instance: undefined, attempts: 0, error: 'no-healthy-instance' }),
    );
    await logs.flush();
    const got = lines(join(dir, 'access.log'));
    assert.equal(got.length, 2);
    const a = got[0];
    for (const k of Object.keys(rec()))
      assert.deepEqual(a[k], (rec() as unknown as Record<string, unknown>)[k], k);
    assert.equal(a.log, 'access');
    assert.equal(got[1].error, 'no-healthy-instance');
    assert.equal(got[1].status, 503);
    assert.equal('instance' in got[1], false);
    await logs.close();
  });

  test('access logging off writes nothing', async () => {
    const dir = tmp();
    const logs = createLogs({ dir, access: false, health: true });
    logs.access(rec());
    await logs.close();
    assert.equal(readFileSync(join(dir, 'access.log'), 'utf8'), '');
  });

  test('stdout mode: all logs share one descriptor, told apart by `log`', async () => {
    const dir = tmp();
    const file = join(dir, 'stdout');
    const fd = openSync(file, 'a');
    const logs = createLogs({ access: true, health: true, fd });
    logs.access(rec());
    logs.event(health());
    logs.app('info', 'hello', { port: 8080 });
    await logs.flush();
    const got = lines(file);
    assert.deepEqual(
      got.map((l) => l.log),
      ['access', 'health', 'wharf'],
    );
    assert.equal(got[2].msg, 'hello');
    assert.equal(got[2].port, 8080);
    assert.equal(got[2].level, 'info');
    assert.equal(typeof got[2].time, 'number');
  });
});

describe('access log escaping', () => {
  test('a hostile path and host still give one parseable line', () => {
    const line = accessLine({
      time: 1,
      requestId: 'r"1',
      client: '10.0.0.1',
      host: 'evil\nhost',
      method: 'GET',
      path: '/a"b\\c\u0000\ud800',
      status: 200,
      bytesIn: 0,
      bytesOut: 0,
      durationMs: 1,
      attempts: 1,
    });
    assert.equal(line.endsWith('\n'), true);
    assert.equal(line.indexOf('\n'), line.length - 1, 'one line');
    const rec = JSON.parse(line);
    assert.equal(rec.path, '/a"b\\c\u0000\ud800');
    assert.equal(rec.host, 'evil\nhost');
  });

  test('plain ASCII fields are quoted as they are; other characters are escaped like JSON.stringify', () => {
    const rec = {
      time: 1764900000123,
      requestId: 'f58eb092-d12e-45b7-9d71-4a16fcf3a51c',
      client: '::ffff:10.0.0.1',
      host: 'web.shop.example.com',
      method: 'GET',
      path: '/caf\u00e9/\u2603?q=a b&x=~',
      status: 503,
      bytesIn: 12,
      bytesOut: 345,
      durationMs: 2.0004,
      upstreamMs: 1.2345,
      project: 'shop',
      port: 'web',
      instance: 'shop-1',
      attempts: 2,
      error: 'connect-refused',
    };
    const line = accessLine(rec);
    assert.deepEqual(JSON.parse(line), {
      level: 'info',
      log: 'access',
      ...rec,
      durationMs: 2,
      upstreamMs: 1.235,
    });
    assert.ok(line.includes(`"path":${JSON.stringify(rec.path)}`));
  });

  test('durations are rounded to microseconds with exact decimal digits', () => {
    for (const x of [0, 0.0004, 0.0005, 0.012, 1.5, 2.4995, 12.34567, 1000.0001, 123456789.1234]) {
      assert.equal(JSON.parse(jsonMs(x)), Math.round(x * 1000) / 1000, `jsonMs(${x}) = ${jsonMs(x)}`);
    }
    assert.equal(jsonMs(1.5), '1.500');
    assert.equal(jsonMs(0.007), '0.007');
    assert.equal(jsonMs(Number.NaN), 'null', 'never an invalid JSON number');
  });
});

describe('health log', () => {
  test('transitions, routes, problems once, probe failures only when enabled', async () => {
    const dir = tmp();
    const logs = createLogs({ dir, access: true, health: true });
    logs.event(health());
    logs.event({
      type: 'probe',
      time: 1,
      project: 'shop',
      port: 'web',
      instance: 'shop-1',
      address: '127.0.0.1:18102',
      reason: 'timeout',
      latencyMs: 1000,
    });
    logs.event({ type: 'routes', time: 2, version: 7, projects: 3, endpoints: 9, added: ['a'], removed: [] });
    const p1 = {
      object: 'service default/shop',
      field: 'wharf.io/health-interval',
      severity: 'warning',
      code: 'bad-setting',
      message: 'not a duration: "fast"',
    } as const;
    const p2 = {
      object: 'project cart',
      severity: 'error',
      code: 'name-conflict',
      message: 'claimed twice',
    } as const;
    logs.event({ type: 'problems', time: 3, problems: [p1] });
    logs.event({ type: 'problems', time: 4, problems: [p1, p2] });
    logs.event({ type: 'problems', time: 5, problems: [p2] });
    logs.event({
      type: 'source',
      time: 6,
      source: 'kubernetes',
      state: 'degraded',
      reason: 'apiserver unreachable',
    });
    logs.event({
      type: 'source',
      time: 7,
      source: 'kubernetes',
      state: 'degraded',
      reason: 'apiserver unreachable',
    });
    await logs.flush();
    const got = lines(join(dir, 'health.log'));
    assert.deepEqual(
      got.map((l) => l.type),
      ['health', 'routes', 'problem', 'problem', 'problem-resolved', 'source'],
    );
    const h = got[0];
    for (const k of [
      'project',
      'port',
      'instance',
      'address',
      'from',
      'to',
      'reason',
      'probeLatencyMs',
      'time',
    ]) {
      assert.ok(k in h, k);
    }
    assert.equal(h.level, 'warn');
    assert.equal(h.to, 'unhealthy');
    assert.equal(got[2].field, 'wharf.io/health-interval');
    assert.equal(got[3].code, 'name-conflict');
    assert.equal(got[4].code, 'bad-setting');
    await logs.close();

    const dir2 = tmp();
    const verbose = createLogs({ dir: dir2, access: true, health: true, probeFailures: true });
    verbose.event({
      type: 'probe',
      time: 1,
      project: 'shop',
      port: 'web',
      instance: 'shop-1',
      address: '127.0.0.1:18102',
      reason: 'timeout',
      latencyMs: 1000,
    });
    await verbose.close();
    const v = lines(join(dir2, 'health.log'));
    assert.equal(v.length, 1);
    assert.equal(v[0].type, 'probe-failed');
    assert.equal(v[0].probeLatencyMs, 1000);
  });
});

describe('reopen (logrotate)', () => {
  test('SIGUSR1 reopens: old lines stay in the renamed file, new lines go to a new file', async () => {
    const dir = tmp();
    const logs = createLogs({ dir, access: true, health: true });
    const uninstall = reopenOnSignal(logs);
    try {
      logs.access(rec({ requestId: 'before' }));
      await logs.flush();
      renameSync(join(dir, 'access.log'), join(dir, 'access.log.1'));
      // Still the old descriptor: a line written now lands in the renamed file, as with any logger.
      logs.access(rec({ requestId: 'in-between' }));
      await logs.flush();
      // Signal handles do not keep the loop alive: hold it with a timer until the signal arrives.
      const keep = setTimeout(() => {}, 5000);
      const signalled = new Promise<void>((resolve) => process.once('SIGUSR1', () => resolve()));
      process.kill(process.pid, 'SIGUSR1');
      await signalled;
      clearTimeout(keep);
      logs.access(rec({ requestId: 'after' }));
      await logs.flush();
      assert.deepEqual(
        lines(join(dir, 'access.log.1')).map((l) => l.requestId),
        ['before', 'in-between'],
      );
      assert.deepEqual(
        lines(join(dir, 'access.log')).map((l) => l.requestId),
        ['after'],
      );
    } finally {
      uninstall();
      await logs.close();
    }
  });

  test('lines written while reopening are kept', async () => {
    const dir = tmp();
    const logs = createLogs({ dir, access: true, health: true });
    logs.access(rec({ requestId: 'a' }));
    renameSync(join(dir, 'access.log'), join(dir, 'access.log.1'));
    logs.reopen();
    logs.access(rec({ requestId: 'b' }));
    await logs.flush();
    const all = [...lines(join(dir, 'access.log.1')), ...lines(join(dir, 'access.log'))].map(
      (l) => l.requestId,
    );
    assert.deepEqual(all.sort(), ['a', 'b']);
    await logs.close();
  });
});

describe('bounded buffer', () => {
  test('a stalled disk drops and counts lines instead of buffering them', async () => {
    const dir = tmp();
    const held: (() => void)[] = [];
    const sink = new BoundedSink({
      path: join(dir, 'x.log'),
      maxBufferBytes: 100,
      batchMs: 0,
      // A disk that does not answer until we say so.
      write: (_fd, _buf, _off, len, _pos, cb) => {
        held.push(() => cb(null, len));
      },
    });
    const line = `${'x'.repeat(29)}\n`; // 30 bytes
    let accepted = 0;
    for (let i = 0; i < 10; i++) if (sink.write(line)) accepted++;
    assert.equal(accepted, 3);
    assert.equal(sink.dropped(), 7);
    await new Promise((r) => setImmediate(r));
    assert.equal(held.length, 1, 'one write in flight');
    // In flight bytes still count against the cap.
    assert.equal(sink.write(line), false);
    assert.equal(sink.dropped(), 8);
    held.shift()!();
    assert.equal(sink.write(line), true);
    await new Promise((r) => setImmediate(r));
    held.shift()!();
    await sink.flush();
    assert.equal(sink.buffered(), 0);
    await sink.close();
  });

  test('lines are gathered into few large writes', async () => {
    const dir = tmp();
    let writes = 0;
    let bytes = 0;
    const sink = new BoundedSink({
      path: join(dir, 'y.log'),
      write: (fd, buf, off, len, pos, cb) => {
        writes++;
        bytes += len;
        fs.write(fd, buf, off, len, pos, cb);
      },
    });
    for (let i = 0; i < 1000; i++) sink.write(`line ${i}\n`);
    await new Promise((r) => setTimeout(r, 30));
    for (let i = 0; i < 1000; i++) sink.write(`line ${i}\n`);
    await sink.close();
    assert.ok(writes <= 3, `${writes} writes`);
    assert.equal(readFileSync(join(dir, 'y.log'), 'utf8').split('\n').length - 1, 2000);
    assert.equal(bytes, readFileSync(join(dir, 'y.log')).length);
  });

  test('lines cross chunk boundaries intact, multi-byte characters included', async () => {
    const dir = tmp();
    const sink = new BoundedSink({ path: join(dir, 'z.log'), batchMs: 50 });
    // About 300 KB: several 64 KiB chunks in one batch, lines straddling the chunk ends.
    const want: string[] = [];
    for (let i = 0; i < 3000; i++) {
      const line = `${i} caf\u00e9 \u2603 \u{1f600} ${'x'.repeat(i % 97)}\n`;
      want.push(line);
      assert.equal(sink.write(line), true);
    }
    const long = `${'\u00e9'.repeat(70_000)}\n`;
    sink.write(long);
    want.push(long);
    await sink.close();
    assert.equal(readFileSync(join(dir, 'z.log'), 'utf8'), want.join(''));
  });

  test('Logs.dropped counts lines over the cap', async () => {
    const dir = tmp();
    const logs = createLogs({ dir, access: true, health: true, bufferBytes: 2000 });
    // All in one turn of the event loop: nothing can reach the disk before the cap is hit.
    for (let i = 0; i < 50; i++) logs.access(rec({ requestId: `r${i}` }));
    const dropped = logs.dropped();
    assert.ok(dropped > 0 && dropped < 50, `dropped ${dropped}`);
    await logs.flush();
    assert.equal(lines(join(dir, 'access.log')).length, 50 - dropped);
    await logs.close();
  });
});

describe('a log directory Wharf cannot write', () => {
  /**
   * Resolves when the Problems are gone (each file is retried on its own, so they may go one by one).
   * No sleeps: the retry timer drives it. That timer does not hold the process open (unref), so a
   * bounded guard timer keeps the test's event loop alive.
   */
  const cleared = (logs: ReturnType<typeof createLogs>) =>
    new Promise<void>((resolve, reject) => {
      const guard = setTimeout(() => reject(new Error('Problems not cleared within 5 s')), 5000);
      const off = logs.onProblems((p) => {
        if (p.length > 0) return;
        off();
        clearTimeout(guard);
        resolve();
      });
    });

  test('lines go to stdout, a Problem is reported, and the files are used once they can be opened', async () => {
    const base = tmp();
    // A regular file where the directory should be: mkdir and open fail (ENOTDIR) even for root.
    const dir = join(base, 'logs');
    fs.writeFileSync(dir, 'not a directory');
    const out = join(base, 'stdout');
    const fd = openSync(out, 'a');
    const logs = createLogs({ dir, access: true, health: true, fd, retryMs: 20 });
    const seen: (readonly { code: string; message: string }[])[] = [];
    logs.onProblems((p) => seen.push(p));
    assert.equal(seen.length, 1, 'replayed at once');
    assert.equal(seen[0][0].code, 'log-dir-unwritable');
    assert.match(seen[0][0].message, /access\.log, health\.log, wharf\.log/);
    assert.match(seen[0][0].message, /ENOTDIR|EEXIST/);

    logs.access(rec({ requestId: 'to-stdout' }));
    logs.event(health());
    await logs.flush();
    await new Promise((r) => setTimeout(r, 20)); // the stdout sink batches for up to 10 ms
    const fallback = lines(out);
    assert.ok(fallback.some((l) => l.log === 'access' && l.requestId === 'to-stdout'));
    assert.ok(fallback.some((l) => l.log === 'health' && l.type === 'health'));
    assert.ok(fallback.some((l) => l.log === 'wharf' && l.msg === 'log files not writable'));

    // The operator fixes the node: the next retry opens the files.
    const done = cleared(logs);
    fs.rmSync(dir);
    fs.mkdirSync(dir);
    await done;
    assert.deepEqual(seen.at(-1), []);
    logs.access(rec({ requestId: 'to-file' }));
    await logs.flush();
    assert.deepEqual(
      lines(join(dir, 'access.log')).map((l) => l.requestId),
      ['to-file'],
    );
    await logs.close();
  });

  test('SIGUSR1 (reopen) tries a failed file at once', async () => {
    const base = tmp();
    const dir = join(base, 'logs');
    fs.writeFileSync(dir, 'x');
    const fd = openSync(join(base, 'stdout'), 'a');
    // A retry far away: only reopen() can open the files within the test.
    const logs = createLogs({ dir, access: true, health: true, fd, retryMs: 3_600_000 });
    const done = cleared(logs);
    fs.rmSync(dir);
    fs.mkdirSync(dir);
    logs.reopen();
    await done;
    await logs.close();
  });
});
