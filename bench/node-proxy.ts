// The naive Node reverse proxy of node-deps.md §1.3 (node:http server + http.request with a
// keep-alive Agent), round robin over the upstreams, no retries, no health checks, no timeouts.
// It is the reference point "what does a 20-line Node proxy do", and the harness's stand-in target
// while developing.   node --import tsx bench/node-proxy.ts LISTEN_PORT UPSTREAM_PORT...
import http from 'node:http';

const HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'proxy-authenticate',
  'proxy-authorization',
  'expect',
]);
function strip(h: http.IncomingHttpHeaders): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = {};
  const extra =
    typeof h.connection === 'string'
      ? h.connection
          .toLowerCase()
          .split(',')
          .map((s) => s.trim())
      : [];
  for (const k in h) if (!HOP.has(k) && !extra.includes(k)) out[k] = h[k];
  return out;
}

const [listen, ...ups] = process.argv.slice(2).map(Number);
const agent = new http.Agent({
  keepAlive: true,
  maxSockets: 128,
  maxFreeSockets: 128,
  scheduling: 'lifo',
  timeout: 60_000,
});
let next = 0;

http
  .createServer((req, res) => {
    const port = ups[next++ % ups.length];
    const headers = strip(req.headers);
    headers['x-forwarded-for'] = req.socket.remoteAddress;
    const preq = http.request(
      { host: '127.0.0.1', port, path: req.url, method: req.method, headers, agent },
      (pres) => {
        res.writeHead(pres.statusCode ?? 502, strip(pres.headers));
        pres.pipe(res);
        res.on('close', () => {
          if (!pres.complete) pres.destroy();
        });
      },
    );
    preq.on('error', () => {
      if (!res.headersSent) {
        res.writeHead(502);
        res.end();
      } else res.destroy();
    });
    res.on('close', () => {
      if (!res.writableFinished) preq.destroy();
    });
    req.pipe(preq);
  })
  .listen(listen, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
