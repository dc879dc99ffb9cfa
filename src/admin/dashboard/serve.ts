// Serves the dashboard's static files from the package itself: no CDN, works offline. uPlot comes
// from its npm package (node_modules/uplot/dist) so there is no vendored copy to keep in sync.
// Files are read once and kept in memory; they are small (~70 KB together).

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

interface Asset {
  readonly body: Buffer;
  readonly type: string;
  readonly etag: string;
}

const here = dirname(fileURLToPath(import.meta.url));

function uplotDir(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('uplot/package.json')), 'dist');
}

const FILES: Record<string, () => [string, string]> = {
  '/': () => [join(here, 'index.html'), 'text/html; charset=utf-8'],
  '/index.html': () => [join(here, 'index.html'), 'text/html; charset=utf-8'],
  '/dashboard/app.js': () => [join(here, 'app.js'), 'text/javascript; charset=utf-8'],
  '/dashboard/style.css': () => [join(here, 'style.css'), 'text/css; charset=utf-8'],
  '/dashboard/vendor/uPlot.iife.min.js': () => [
    join(uplotDir(), 'uPlot.iife.min.js'),
    'text/javascript; charset=utf-8',
  ],
  '/dashboard/vendor/uPlot.min.css': () => [join(uplotDir(), 'uPlot.min.css'), 'text/css; charset=utf-8'],
  '/dashboard/vendor/uPlot.LICENSE': () => [join(uplotDir(), '..', 'LICENSE'), 'text/plain; charset=utf-8'],
};

const cache = new Map<string, Asset>();

function load(path: string): Asset | undefined {
  const hit = cache.get(path);
  if (hit) return hit;
  const spec = FILES[path];
  if (!spec) return undefined;
  const [file, type] = spec();
  const body = readFileSync(file);
  const asset = { body, type, etag: `"${createHash('sha1').update(body).digest('base64url').slice(0, 16)}"` };
  cache.set(path, asset);
  return asset;
}

// Inline styles are needed for the per-instance colour dots and by uPlot; scripts are ours only.
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

/** Serve `/` and `/dashboard/*` (GET/HEAD). Returns false for anything else, so other routes run. */
export function serveDashboard(req: IncomingMessage, res: ServerResponse): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q >= 0 ? url.slice(0, q) : url;
  if (!(path in FILES)) return false;
  let asset: Asset | undefined;
  try {
    asset = load(path);
  } catch (err) {
    res.writeHead(500, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: 'dashboard asset missing', reason: (err as Error).message }));
    return true;
  }
  if (!asset) return false;
  const headers: Record<string, string> = {
    'content-type': asset.type,
    etag: asset.etag,
    // Revalidate every time: a new version of Wharf must never show a stale dashboard.
    'cache-control': 'no-cache',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
  };
  if (asset.type.startsWith('text/html')) headers['content-security-policy'] = CSP;
  if (req.headers['if-none-match'] === asset.etag) {
    res.writeHead(304, headers);
    res.end();
    return true;
  }
  headers['content-length'] = String(asset.body.length);
  res.writeHead(200, headers);
  res.end(req.method === 'HEAD' ? undefined : asset.body);
  return true;
}
