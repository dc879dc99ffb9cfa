// One demo instance: a real child process (so SIGSTOP really freezes it) serving each of its named
// ports on 127.0.0.1 and answering with its own name and port name. Plain JavaScript with no
// imports beyond node: so it starts in ~50 ms without a TypeScript loader; restarts stay fast.
//
// Config comes as JSON in WHARF_DEMO_INSTANCE: { project, instance, ports: { name: port|0 }, healthPath }.
// When every port listens it sends { type: 'ready', ports: { name: port } } over IPC.
//
// Requests: the health path answers 200 `ok`; `?status=503` answers that status; `?delay=200`
// waits that many ms (at most 10 s) first; anything else gets a JSON line naming the instance.

import http from 'node:http';

const cfg = JSON.parse(process.env.WHARF_DEMO_INSTANCE ?? '{}');
const healthPath = cfg.healthPath ?? '/healthz';
const started = Date.now();
let served = 0;

function handler(portName) {
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://instance');
    if (url.pathname === healthPath) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok\n');
      return;
    }
    served++;
    const delay = Math.min(10_000, Math.max(0, Number(url.searchParams.get('delay')) || 0));
    const status = Number(url.searchParams.get('status')) || 200;
    const body = `${JSON.stringify({
      project: cfg.project,
      instance: cfg.instance,
      port: portName,
      method: req.method,
      path: url.pathname,
      pid: process.pid,
      served,
      uptimeSeconds: Math.round((Date.now() - started) / 1000),
    })}\n`;
    const send = () => {
      res.writeHead(status >= 100 && status <= 599 ? status : 200, {
        'content-type': 'application/json',
        'x-demo-instance': cfg.instance,
      });
      res.end(body);
    };
    req.resume();
    if (delay > 0) setTimeout(send, delay);
    else req.on('end', send);
  };
}

const servers = [];
const bound = {};
await Promise.all(
  Object.entries(cfg.ports ?? {}).map(
    ([name, port]) =>
      new Promise((resolve, reject) => {
        const s = http.createServer({ keepAliveTimeout: 65_000 }, handler(name));
        s.once('error', reject);
        s.listen(port, '127.0.0.1', () => {
          bound[name] = s.address().port;
          servers.push(s);
          resolve();
        });
      }),
  ),
).catch((err) => {
  process.stderr.write(`demo instance ${cfg.instance}: ${err.message}\n`);
  process.exit(3);
});

process.send?.({ type: 'ready', ports: bound });

// The parent going away (Ctrl-C, crash) takes the instance with it: no orphans.
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => {
  for (const s of servers) s.close();
  process.exit(0);
});
