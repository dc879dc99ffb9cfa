import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { isPost, runOpenLoop } from '../../bench/lib/open-loop.ts';

function server(handler: http.RequestListener): Promise<{ url: string; close(): Promise<void> }> {
  const s = http.createServer(handler);
  return new Promise((resolve) =>
    s.listen(0, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${(s.address() as AddressInfo).port}/`,
        close: () =>
          new Promise<void>((r) => {
            s.closeAllConnections();
            s.close(() => r());
          }),
      }),
    ),
  );
}

test('sends every request on schedule, tags each one, mixes POSTs with unique ids, runs events', async () => {
  const seen: string[] = [];
  const ids: string[] = [];
  const srv = await server((req, res) => {
    seen.push(`${req.method} ${req.headers['x-bench-tag']} ${req.headers.host}`);
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      if (req.method === 'POST') ids.push(JSON.parse(body).id);
      res.setHeader('x-bench-upstream', 'u9');
      res.end('ok');
    });
  });
  let eventAt = -1;
  const t0 = performance.now();
  const r = await runOpenLoop({
    url: srv.url,
    host: 'bench.bench.local',
    rate: 200,
    durationS: 1,
    graceS: 2,
    postShare: 0.1,
    runId: 't',
    events: [{ atMs: 500, run: () => (eventAt = performance.now() - t0) }],
  });
  await srv.close();
  assert.equal(r.records.length, 200);
  assert.equal(r.hung, 0);
  assert.ok(r.records.every((x) => x.status === 200 && x.upstream === 'u9'));
  assert.equal(r.records.filter((x) => x.method === 'POST').length, 20);
  assert.equal(new Set(ids).size, 20);
  assert.equal(seen.length, 200);
  assert.ok(seen.every((l) => l.endsWith(' bench.bench.local')));
  assert.equal(new Set(seen.map((l) => l.split(' ')[1])).size, 200);
  assert.ok(eventAt >= 490 && eventAt < 2000, `event at ${eventAt}`);
  // Every request is counted in some second, even those a busy machine made late.
  assert.equal(
    r.perSecond.reduce((a, b) => a + b, 0),
    200,
  );
  assert.ok(r.perSecond[0]! >= 100, `sent in the first second: ${r.perSecond[0]}`);
  assert.ok(r.lag.max >= r.lag.p99 && r.lag.p99 >= 0);
  // Schedule: request i is due at i/rate, and never sent before it is due.
  assert.ok(r.records.every((x) => x.due === x.seq * 5 && x.sent >= x.due));
});

test('requests still unanswered after the grace period are counted as hung, not lost', async () => {
  const srv = await server((req, res) => {
    if (Number(req.headers['x-bench-tag']) % 2 === 0) res.end('ok'); // odd ones never answered
  });
  const r = await runOpenLoop({ url: srv.url, rate: 100, durationS: 0.2, graceS: 0.3 });
  await srv.close();
  assert.equal(r.records.length, 20);
  assert.equal(r.hung, 10);
  assert.equal(r.records.filter((x) => x.error === 'hung').length, 10);
  assert.ok(r.records.filter((x) => x.status === 200).length === 10);
});

test('POST selection is an even 1-in-N spread', () => {
  const posts = Array.from({ length: 100 }, (_, i) => isPost(i, 0.1)).filter(Boolean).length;
  assert.equal(posts, 10);
  assert.equal(isPost(5, 0), false);
});
