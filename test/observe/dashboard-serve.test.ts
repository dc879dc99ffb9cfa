// The dashboard's static files without a browser: paths, headers, conditional GET, fall-through.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { serveDashboard } from '../../src/admin/dashboard/serve.ts';

describe('serveDashboard', () => {
  let server: http.Server;
  let base: string;
  before(async () => {
    server = http.createServer((req, res) => {
      if (serveDashboard(req, res)) return;
      res.writeHead(404);
      res.end('fell through');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  test('serves the page and its assets from the package, with a CSP and revalidation', async () => {
    for (const [path, type] of [
      ['/', 'text/html'],
      ['/?token=abc', 'text/html'],
      ['/dashboard/app.js', 'text/javascript'],
      ['/dashboard/style.css', 'text/css'],
      ['/dashboard/vendor/uPlot.iife.min.js', 'text/javascript'],
      ['/dashboard/vendor/uPlot.min.css', 'text/css'],
      ['/dashboard/vendor/uPlot.LICENSE', 'text/plain'],
    ]) {
      const r = await fetch(base + path);
      assert.equal(r.status, 200, path);
      assert.ok(r.headers.get('content-type')?.startsWith(type), path);
      assert.equal(r.headers.get('cache-control'), 'no-cache');
      assert.ok((await r.arrayBuffer()).byteLength > 100, path);
    }
    const page = await fetch(`${base}/`);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    const again = await fetch(`${base}/`, { headers: { 'if-none-match': page.headers.get('etag')! } });
    assert.equal(again.status, 304);
    const head = await fetch(`${base}/dashboard/app.js`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), '');
  });

  test('anything else falls through to the next route', async () => {
    for (const path of [
      '/api/projects',
      '/events',
      '/metrics',
      '/dashboard/../package.json',
      '/dashboard/nope.js',
    ]) {
      const r = await fetch(base + path);
      assert.equal(r.status, 404, path);
      assert.equal(await r.text(), 'fell through');
    }
    const post = await fetch(`${base}/`, { method: 'POST' });
    assert.equal(post.status, 404);
  });
});
