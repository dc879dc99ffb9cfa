// The floor of Wharf's stack: node:http in front, one undici Pool per upstream, the dispatch handler
// API, round robin, headers passed through untouched, no routing, health, retries, logs or metrics.
// `npm run bench:instructions` measures Wharf against it, so "what Wharf adds" is a number.
//   node --import tsx bench/undici-floor.ts LISTEN_PORT UPSTREAM_PORT...
//   FLOOR_CERT=cert.pem FLOOR_KEY=key.pem node --import tsx bench/undici-floor.ts ...   # HTTPS
//   FLOOR_H2=1 FLOOR_CERT=... FLOOR_KEY=... node --import tsx bench/undici-floor.ts ...  # h2 only,
//     node:http2's stream API in front: the floor of Wharf's HTTP/2 edge (bench:h2)
import { readFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import { type Dispatcher, Pool } from 'undici';

const [listen, ...upstreams] = process.argv.slice(2).map(Number);
if (!listen || upstreams.length === 0) {
  process.stderr.write('usage: undici-floor.ts LISTEN_PORT UPSTREAM_PORT...\n');
  process.exit(2);
}
// No response timeouts: an armed undici timeout is a timer object undici keeps in its list for up to a
// second after the request (two per request when headersTimeout and bodyTimeout differ), and the GC
// then promotes them. Wharf keeps its deadlines in one sweep (src/proxy/forward.ts) and arms none.
const pools = upstreams.map(
  (p) =>
    new Pool(`http://127.0.0.1:${p}`, { connections: 64, pipelining: 1, headersTimeout: 0, bodyTimeout: 0 }),
);
let next = 0;

class Relay implements Dispatcher.DispatchHandler {
  constructor(private readonly res: http.ServerResponse) {}
  onConnect(): void {}
  onHeaders(status: number, raw: Buffer[]): boolean {
    const flat: string[] = [];
    for (const b of raw) flat.push(b.toString('latin1'));
    this.res.writeHead(status, flat);
    return true;
  }
  onData(chunk: Buffer): boolean {
    this.res.write(chunk);
    return true;
  }
  onComplete(): void {
    this.res.end();
  }
  onError(err: Error): void {
    this.res.destroy(err);
  }
}

const relay = (req: http.IncomingMessage, res: http.ServerResponse): void => {
  const pool = pools[next++ % pools.length];
  pool.dispatch(
    {
      path: req.url ?? '/',
      method: req.method as Dispatcher.HttpMethod,
      headers: req.rawHeaders,
      body: null,
    },
    new Relay(res),
  );
};

/** Response headers HTTP/2 must not carry (RFC 9113 §8.2.2); node refuses to send them. */
const CONNECTION_SPECIFIC = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
]);

class H2Relay implements Dispatcher.DispatchHandler {
  constructor(private readonly stream: http2.ServerHttp2Stream) {}
  onConnect(): void {}
  onHeaders(status: number, raw: Buffer[]): boolean {
    const headers: http2.OutgoingHttpHeaders = { ':status': status };
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i].toString('latin1').toLowerCase();
      if (!CONNECTION_SPECIFIC.has(name)) headers[name] = raw[i + 1].toString('latin1');
    }
    if (!this.stream.destroyed) this.stream.respond(headers);
    return true;
  }
  onData(chunk: Buffer): boolean {
    if (!this.stream.destroyed) this.stream.write(chunk);
    return true;
  }
  onComplete(): void {
    if (!this.stream.destroyed) this.stream.end();
  }
  onError(): void {
    this.stream.destroy();
  }
}

const relayStream = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void => {
  const pool = pools[next++ % pools.length];
  pool.dispatch(
    {
      path: headers[':path'] ?? '/',
      method: (headers[':method'] ?? 'GET') as Dispatcher.HttpMethod,
      headers: { host: headers[':authority'] ?? '' },
      body: null,
    },
    new H2Relay(stream),
  );
};

// FLOOR_CERT / FLOOR_KEY (PEM files): terminate TLS like the HTTPS rows, with node's defaults.
const tls = process.env.FLOOR_CERT && process.env.FLOOR_KEY;
const h2 = process.env.FLOOR_H2 === '1';
const server = h2
  ? // h2 only, on the stream API: a 'request' listener would make node build its compatibility
    // request/response objects for every stream, which Wharf does not use either.
    http2
      .createSecureServer({
        cert: readFileSync(process.env.FLOOR_CERT as string),
        key: readFileSync(process.env.FLOOR_KEY as string),
      })
      .on('stream', relayStream)
  : tls
    ? https.createServer(
        {
          cert: readFileSync(process.env.FLOOR_CERT as string),
          key: readFileSync(process.env.FLOOR_KEY as string),
          ALPNProtocols: ['http/1.1'],
        },
        relay,
      )
    : http.createServer(relay);
server.listen(listen, '127.0.0.1');
// Exit normally on SIGTERM so `node --cpu-prof` writes its profile.
process.on('SIGTERM', () => process.exit(0));
