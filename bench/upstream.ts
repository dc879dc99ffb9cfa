// Benchmark upstream: node:http, keep-alive, a fixed 100-byte body for every path, `/healthz` for
// health checks. Run as its own process so the harness can SIGKILL / SIGSTOP it:
//   node --import tsx bench/upstream.ts PORT [NAME]
// Requests carrying an `x-bench-tag` header (the failover load generator's sequence number) are
// logged to stdout as `A <tag> <method> <arrival ms epoch>`; for POSTs, once the body is complete,
// `P <id from body>` so the harness can detect a POST delivered twice. Untagged requests (wrk) log
// nothing, so logging costs the throughput benchmark nothing.

import http from 'node:http';

const port = Number(process.argv[2]);
const name = process.argv[3] ?? `u${port}`;
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write('usage: upstream.ts PORT [NAME]\n');
  process.exit(2);
}

const BODY = Buffer.alloc(100, 'x');
BODY.write(`${name}\n`.padEnd(20, ' '));
BODY[99] = 0x0a;
const HEALTH = Buffer.from('ok\n');

const server = http.createServer((req, res) => {
  const tag = req.headers['x-bench-tag'];
  if (typeof tag === 'string') process.stdout.write(`A ${tag} ${req.method} ${Date.now()}\n`);
  if (req.method === 'POST' || req.method === 'PUT') {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const m = /"id":"([^"]+)"/.exec(Buffer.concat(chunks).toString('utf8'));
      if (m) process.stdout.write(`P ${m[1]}\n`);
      reply(req, res);
    });
    return;
  }
  // GET bodies (none expected) are drained by node:http itself.
  reply(req, res);
});

function reply(req: http.IncomingMessage, res: http.ServerResponse): void {
  const body = req.url === '/healthz' ? HEALTH : BODY;
  res.writeHead(200, {
    'content-type': 'text/plain',
    'content-length': body.length,
    'x-bench-upstream': name,
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

// Long idle timeout so pooled proxy connections are not recycled during a run (the peers' configs
// keep upstream connections up to 60 s).
server.keepAliveTimeout = 65_000;
server.headersTimeout = 66_000;
server.requestTimeout = 0;
server.maxRequestsPerSocket = 0;
server.listen(port, '127.0.0.1', () => process.stderr.write(`upstream ${name} on 127.0.0.1:${port}\n`));
process.on('SIGTERM', () => process.exit(0));
