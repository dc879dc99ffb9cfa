// The dashboard in a real browser. Part 1 drives it from a synthetic event stream (always runs when
// chromium is there). Part 2 runs the whole demo: freeze a real instance process, see it turn
// unhealthy within 3 s with its reason, revive it, see it come back.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { serveDashboard } from '../../src/admin/dashboard/serve.ts';
import type { WharfEvent } from '../../src/model/events.ts';
import { EventBus, TrafficAggregator } from '../../src/observe/bus.ts';
import { SseHub } from '../../src/observe/sse.ts';
import { accessRecord } from '../support/records.ts';
import { chromiumMissing, launch, OUTPUT, snap } from './browser.ts';

const skip = chromiumMissing();

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
    server = http.createServer((req, res) => {
      if (serveDashboard(req, res)) return;
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname === '/events') return hub.handle(req, res);
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
    // Some history so the charts have lines on connect.
    for (let s = 0; s < 30; s++) {
      for (let i = 0; i < 3; i++) {
        for (let n = 0; n < 5 + i * 3; n++) {
          traffic.record(
            accessRecord({
              time: now,
              host: 'web.shop.apps.example.com',
              status: n === 0 && i === 1 && s % 5 === 0 ? 502 : 200,
              bytesOut: 10,
              durationMs: 2 + i * 3 + (s % 7),
              instance: `shop-${i}`,
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
    // uPlot drew the three charts of every port.
    assert.equal(
      await page.locator('.project[data-project="shop"] .port[data-port="web"] canvas').count(),
      3,
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

    // Live traffic moves the numbers.
    for (let n = 0; n < 40; n++) {
      traffic.record(accessRecord({ time: now, bytesOut: 1, durationMs: 3 }));
    }
    now += 1000;
    traffic.tick();
    // Page code as strings: this file is typechecked without the DOM library.
    await page.waitForFunction(
      `document.querySelector('.port[data-port="web"] tr[data-instance="shop-0"] td:nth-child(5)')?.textContent !== '–'`,
      undefined,
      { timeout: 2000 },
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
