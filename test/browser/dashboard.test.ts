// The dashboard in a real browser. Part 1 drives it from a synthetic event stream (always runs when
// chromium is there): live updates, values on hover, filters, the time range, collapsed bursts in
// the timeline, the 800 px layout. Part 2 runs the whole demo: freeze a real instance process, see
// it turn unhealthy within 3 s with its reason, revive it, see it come back. Part 3 runs the demo
// with 200 generated projects: first paint, and long tasks while updates stream in.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { serveDashboard } from '../../src/admin/dashboard/serve.ts';
import { trafficRoute } from '../../src/admin/observe-routes.ts';
import type { AttemptRecord } from '../../src/model/attempt.ts';
import type { WharfEvent } from '../../src/model/events.ts';
import { EventBus } from '../../src/observe/event-bus.ts';
import { SseHub } from '../../src/observe/sse.ts';
import { TrafficAggregator } from '../../src/observe/traffic.ts';
import { accessRecord } from '../support/records.ts';
import { chromiumMissing, launch, OUTPUT, snap } from './browser.ts';

const skip = chromiumMissing();

/**
 * Waits until `expr` (page code as a string: this file is typechecked without the DOM library) is
 * true. Not page.waitForFunction: that compiles its predicate with eval, which the dashboard's CSP
 * forbids.
 */
async function until(page: Page, expr: string, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await page.evaluate(expr))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${expr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function attempt(over: Partial<AttemptRecord>): AttemptRecord {
  return {
    project: 'shop',
    port: 'web',
    instance: 'shop-0',
    outcome: 200,
    durationMs: 2,
    retry: false,
    ...over,
  };
}

function instances(names: string[], state = 'healthy') {
  return names.map((name, i) => ({
    name,
    address: `127.0.0.1:${18101 + i}`,
    state,
    reason: '',
    ejected: false,
    draining: false,
    since: null,
  }));
}

describe('dashboard (synthetic event stream)', { skip }, () => {
  let browser: Browser;
  let server: http.Server;
  let hub: SseHub;
  let base: string;
  let now = Date.now();
  const bus = new EventBus<WharfEvent>();
  const traffic = new TrafficAggregator({ now: () => now });
  const state = {
    version: 4,
    domain: 'apps.example.com',
    projects: [
      {
        name: 'shop',
        origin: 'default/shop',
        affinity: 'cookie',
        ports: [
          { name: 'web', instances: instances(['shop-0', 'shop-1', 'shop-2']) },
          { name: 'admin', instances: instances(['shop-0', 'shop-1', 'shop-2']) },
        ],
      },
      { name: 'blog', ports: [{ name: 'http', instances: instances(['blog-0', 'blog-1'], 'pending') }] },
    ],
    problems: [
      {
        object: 'service default/blog',
        field: 'wharf.io/health-interval',
        severity: 'warning',
        code: 'bad-setting',
        message: 'expected a duration such as 500ms, 1s or 2m; using 1s',
      },
    ],
    sources: [{ type: 'source', time: now, source: 'kubernetes', state: 'synced' }],
  };

  before(async () => {
    hub = new SseHub({ bus, traffic, replay: () => state, heartbeatMs: 5000 });
    const trafficApi = trafficRoute(traffic);
    server = http.createServer((req, res) => {
      if (serveDashboard(req, res)) return;
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname === '/events') return hub.handle(req, res);
      if (trafficApi(req, res, url)) return;
      if (url.pathname === '/api/projects') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ version: state.version, projects: state.projects }));
        return;
      }
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"error":"not found"}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    // Some history so the charts have lines on connect: attempts per instance, requests per port.
    for (let s = 0; s < 30; s++) {
      for (let i = 0; i < 3; i++) {
        for (let n = 0; n < 5 + i * 3; n++) {
          const failed = n === 0 && i === 1 && s % 5 === 0;
          traffic.attempt(
            attempt({ instance: `shop-${i}`, outcome: failed ? 502 : 200, durationMs: 2 + i * 3 + (s % 7) }),
          );
          if (failed) traffic.attempt(attempt({ instance: 'shop-2', durationMs: 4, retry: true }));
          traffic.record(
            accessRecord({
              time: now,
              host: 'web.shop.apps.example.com',
              bytesOut: 10,
              durationMs: 3 + i * 3 + (s % 7) + (failed ? 5 : 0),
              instance: failed ? 'shop-2' : `shop-${i}`,
              attempts: failed ? 2 : 1,
            }),
          );
        }
      }
      now += 1000;
      traffic.tick();
    }
    browser = await launch();
  });

  after(async () => {
    await browser?.close();
    hub?.close();
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
  });

  test('replays state, then shows a transition with its reason within a second', async () => {
    const page = await browser.newPage({ viewport: { width: 1366, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${base}/`);
    const row = (port: string, inst: string) =>
      page.locator(`.project[data-project="shop"] .port[data-port="${port}"] tr[data-instance="${inst}"]`);
    await row('web', 'shop-1').waitFor({ timeout: 5000 });
    assert.equal(await row('web', 'shop-1').getAttribute('data-state'), 'healthy');
    assert.equal(await page.locator('.port[data-port="http"] tr[data-state="pending"]').count(), 2);
    assert.match((await page.locator('#problems').textContent()) ?? '', /health-interval/);
    assert.equal(await page.locator('#conn').getAttribute('data-state'), 'live');
    // uPlot drew the four charts of every port (3 projects: all open).
    await page.locator('.project[data-project="shop"] .port[data-port="web"] canvas').nth(3).waitFor();
    assert.equal(
      await page.locator('.project[data-project="shop"] .port[data-port="web"] canvas').count(),
      4,
    );

    const t0 = Date.now();
    bus.emit({
      type: 'health',
      time: t0,
      project: 'shop',
      port: 'web',
      instance: 'shop-1',
      address: '127.0.0.1:18102',
      from: 'healthy',
      to: 'unhealthy',
      ejected: false,
      reason: 'probe: timeout after 500 ms',
      probeLatencyMs: 500,
    });
    await page
      .locator('.port[data-port="web"] tr[data-instance="shop-1"][data-state="unhealthy"]')
      .waitFor({ timeout: 1000 });
    assert.ok(Date.now() - t0 < 1000, 'within a second');
    assert.match((await row('web', 'shop-1').textContent()) ?? '', /probe: timeout after 500 ms/);
    assert.match((await page.locator('#timeline').textContent()) ?? '', /shop\/web\/shop-1/);

    // Live traffic moves the numbers (a quiet spell first, so they read '–').
    now += 11_000;
    traffic.tick();
    await until(
      page,
      `document.querySelector('.port[data-port="web"] tr[data-instance="shop-0"] td:nth-child(5)')?.textContent === '–'`,
      2000,
    );
    for (let n = 0; n < 40; n++) {
      traffic.attempt(attempt({ durationMs: 3 }));
      traffic.record(accessRecord({ time: now, bytesOut: 1, durationMs: 3 }));
    }
    now += 1000;
    traffic.tick();
    // Page code as strings: this file is typechecked without the DOM library.
    await until(
      page,
      `document.querySelector('.port[data-port="web"] tr[data-instance="shop-0"] td:nth-child(5)')?.textContent !== '–'`,
      2000,
    );

    // Wall mode: bigger type, no buttons.
    await page.click('#wall-toggle');
    const fs = await page.evaluate('getComputedStyle(document.documentElement).fontSize');
    assert.equal(fs, '20px');
    await snap(page, join(OUTPUT, 'dashboard-synthetic-wall.png'));
    await page.click('#wall-toggle');

    bus.emit({
      type: 'health',
      time: Date.now(),
      project: 'shop',
      port: 'web',
      instance: 'shop-1',
      address: '127.0.0.1:18102',
      from: 'unhealthy',
      to: 'healthy',
      ejected: false,
      reason: 'probe: 2 consecutive successes',
    });
    await page
      .locator('.port[data-port="web"] tr[data-instance="shop-1"][data-state="healthy"]')
      .waitFor({ timeout: 1000 });
    await snap(page, join(OUTPUT, 'dashboard-synthetic.png'));
    assert.deepEqual(errors, []);
    await page.close();
  });

  test('values on hover: every series at the time under the pointer', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    await page.goto(`${base}/`);
    const chart = page.locator(
      '.project[data-project="shop"] .port[data-port="web"] .chart[data-chart="p99"] .plot',
    );
    await chart.locator('canvas').waitFor();
    await page.waitForTimeout(300); // the history fetch redraws the charts once
    const box = (await chart.boundingBox())!;
    // Near the right edge: the synthetic history is the last half minute of a 5-minute axis.
    await page.mouse.move(box.x + box.width - 24, box.y + box.height / 2);
    const tip = chart.locator('.u-tip');
    await tip.waitFor({ state: 'visible', timeout: 2000 });
    const text = (await tip.textContent()) ?? '';
    assert.match(text, /^\d\d:\d\d:\d\d/, `a time first: ${text}`);
    assert.match(text, /clients[\d.]+ ms/, `the port's own (client) p99: ${text}`);
    for (const i of ['shop-0', 'shop-1', 'shop-2']) assert.match(text, new RegExp(`${i}[\\d.]+ ms`), text);
    await page.mouse.move(box.x + box.width - 24, box.y - 40);
    await tip.waitFor({ state: 'hidden', timeout: 2000 });
    await page.close();
  });

  test('search and state filters, kept in the URL', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    await page.goto(`${base}/`);
    await page.locator('.project[data-project="blog"]').waitFor();
    const visible = () =>
      page.evaluate(
        `[...document.querySelectorAll('.project')].filter((p) => !p.hidden).map((p) => p.dataset.project).join(',')`,
      );
    await page.fill('#search', 'blo');
    await until(page, `!document.querySelector('.project[data-project="shop"]:not([hidden])')`);
    assert.equal(await visible(), 'blog');
    assert.match(page.url(), /\?q=blo$/);
    assert.match((await page.locator('#shown').textContent()) ?? '', /^1 of 2 projects$/);
    // An instance name finds its project too.
    await page.fill('#search', 'shop-2');
    await until(page, `!document.querySelector('.project[data-project="blog"]:not([hidden])')`);
    assert.equal(await visible(), 'shop');
    await page.fill('#search', 'nothing-like-this');
    await page.locator('#no-match').waitFor({ state: 'visible' });
    await page.fill('#search', '');
    // Only what is not healthy: the pending blog instances, and no healthy row anywhere.
    await page.selectOption('#state-filter', 'pending');
    await until(page, `!document.querySelector('.project[data-project="shop"]:not([hidden])')`);
    assert.equal(await visible(), 'blog');
    assert.equal(await page.locator('.project:not([hidden]) tr[data-state="healthy"]').count(), 0);
    assert.equal(await page.locator('.project[data-project="blog"] tr[data-state="pending"]').count(), 2);
    assert.match(page.url(), /state=pending/);
    // A fresh page with the same URL shows the same view.
    const again = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    await again.goto(page.url());
    await again.locator('.project[data-project="blog"]').waitFor();
    await until(again, `document.querySelector('.project[data-project="shop"]')?.hidden === true`);
    assert.equal(await again.inputValue('#state-filter'), 'pending');
    await again.close();
    await page.close();
  });

  test('a startup burst in the timeline is one line; retries and rescues get theirs', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    await page.goto(`${base}/`);
    await page.locator('#conn[data-state="live"]').waitFor();
    const t = Date.now();
    for (let i = 0; i < 12; i++)
      bus.emit({
        type: 'health',
        time: t + i * 50,
        project: 'fleet',
        port: 'http',
        instance: `fleet-${i}`,
        address: `127.0.0.1:${20000 + i}`,
        from: 'pending',
        to: 'healthy',
        ejected: false,
        reason: 'probe: ok',
      });
    const burst = page.locator('#timeline li[data-burst="12"]');
    await burst.waitFor({ timeout: 2000 });
    assert.match((await burst.locator('summary').textContent()) ?? '', /^12 instances pending → healthy/);
    assert.equal(
      await page.locator('#timeline li[data-type="health"]:not([data-burst])', { hasText: 'fleet' }).count(),
      0,
      'no fleet instance on a line of its own',
    );
    await burst.locator('summary').click();
    assert.match(
      (await burst.locator('ul').textContent()) ?? '',
      /fleet\/http\/fleet-0.*fleet\/http\/fleet-11/s,
    );
    // Retries and rescues on a port: one growing timeline entry per burst.
    traffic.attempt(attempt({ instance: 'shop-1', outcome: 'rescued', durationMs: 900 }));
    traffic.attempt(attempt({ instance: 'shop-0', retry: true }));
    traffic.record(accessRecord({ time: now, durationMs: 905, attempts: 2 }));
    now += 1000;
    traffic.tick();
    const up = page.locator('#timeline li[data-type="upstream"]', { hasText: 'rescued' });
    await up.waitFor({ timeout: 2000 });
    assert.match((await up.textContent()) ?? '', /shop\/web 1 retries, 1 rescued/);
    await page.close();
  });

  test('at 800 px: nothing scrolls sideways, charts two by two, the reason stays in view', async () => {
    const page = await browser.newPage({ viewport: { width: 800, height: 900 } });
    await page.goto(`${base}/`);
    await page.locator('.project[data-project="shop"] .port[data-port="web"] canvas').nth(3).waitFor();
    bus.emit({
      type: 'health',
      time: Date.now(),
      project: 'shop',
      port: 'web',
      instance: 'shop-2',
      address: '127.0.0.1:18103',
      from: 'healthy',
      to: 'unhealthy',
      ejected: true,
      reason: 'passive: connection refused',
    });
    const row = page.locator(
      '.port[data-port="web"] tr[data-instance="shop-2"][data-display-state="ejected"]',
    );
    await row.waitFor({ timeout: 2000 });
    assert.equal(await page.evaluate('document.documentElement.scrollWidth'), 800, 'no horizontal scroll');
    const boxes = (await page.evaluate(
      `[...document.querySelectorAll('.project[data-project="shop"] .port[data-port="web"] .chart')].map((e) => e.getBoundingClientRect().top)`,
    )) as number[];
    assert.equal(boxes[0], boxes[1], 'two charts side by side');
    assert.ok(boxes[2] > boxes[0], 'the next two below');
    assert.ok(await row.locator('.why-inline').isVisible(), 'the reason shows under the name');
    assert.match((await row.locator('.why-inline').textContent()) ?? '', /connection refused/);
    for (const b of await row.locator('button').all()) assert.ok(await b.isVisible());
    await snap(page, join(OUTPUT, 'dashboard-synthetic-800.png'));
    await page.close();
  });

  test('longer time range: an hour at 10 s from /api/traffic', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    await page.goto(`${base}/`);
    await page.locator('.project[data-project="shop"] .port[data-port="web"] canvas').nth(3).waitFor();
    const asked = page.waitForRequest((r) => r.url().includes('/api/traffic?range=3600'));
    await page.selectOption('#range', '3600');
    const req = await asked;
    assert.match(req.url(), /project=shop/);
    const body = (await (await req.response())!.json()) as { step: number; length: number };
    assert.equal(body.step, 10);
    assert.equal(body.length, 360);
    assert.match(page.url(), /range=3600/);
    await page.locator('.project[data-project="shop"] .port[data-port="web"] canvas').nth(3).waitFor();
    await page.close();
  });

  test('static assets: no CDN, CSP, uPlot from the package', async () => {
    const html = await (await fetch(`${base}/`)).text();
    // Nothing loaded from elsewhere: every src/href is a path on the admin port (or a data: URI).
    assert.doesNotMatch(html, /(src|href)="(https?:)?\/\//);
    const r = await fetch(`${base}/`);
    assert.match(r.headers.get('content-security-policy') ?? '', /script-src 'self'/);
    const js = await fetch(`${base}/dashboard/vendor/uPlot.iife.min.js`);
    assert.equal(js.status, 200);
    assert.match(await js.text(), /uPlot/);
    const etag = r.headers.get('etag')!;
    const again = await fetch(`${base}/`, { headers: { 'if-none-match': etag } });
    assert.equal(again.status, 304);
  });
});

describe('dashboard on the running demo', { skip }, () => {
  let browser: Browser;
  let demo: Awaited<ReturnType<typeof import('../../src/demo/index.ts').startDemo>>;

  before(async () => {
    const { startDemo } = await import('../../src/demo/index.ts');
    demo = await startDemo({
      listen: '127.0.0.1:0',
      admin: '127.0.0.1:0',
      logDir: join(tmpdir(), `wharf-demo-test-${process.pid}`),
      rps: 10,
    });
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
    await demo?.stop();
  });

  test('freeze an instance: unhealthy within 3 s with its reason; revive: healthy again', async () => {
    const page: Page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
    await page.goto(`${demo.adminUrl}/`);
    const row = page.locator(
      '.project[data-project="shop"] .port[data-port="web"] tr[data-instance="shop-1"]',
    );
    await page
      .locator(
        '.project[data-project="shop"] .port[data-port="web"] tr[data-instance="shop-1"][data-state="healthy"]',
      )
      .waitFor({ timeout: 15_000 });
    const t0 = Date.now();
    await row.locator('button[data-demo="freeze"]').click();
    await page
      .locator(
        '.project[data-project="shop"] .port[data-port="web"] tr[data-instance="shop-1"][data-state="unhealthy"]',
      )
      .waitFor({ timeout: 3000 });
    const took = Date.now() - t0;
    const text = (await row.locator('td.reason').textContent()) ?? '';
    assert.ok(text.trim().length > 0, 'a reason is shown');
    process.stdout.write(`# frozen instance shown unhealthy after ${took} ms: ${text}\n`);
    await snap(page, join(OUTPUT, 'dashboard-demo-frozen.png'));

    await row.locator('button[data-demo="revive"]').click();
    await page
      .locator(
        '.project[data-project="shop"] .port[data-port="web"] tr[data-instance="shop-1"][data-state="healthy"]',
      )
      .waitFor({ timeout: 10_000 });
    await snap(page, join(OUTPUT, 'dashboard.png'));
    await page.close();
  });
});
