// Test upstreams: real node:http servers on 127.0.0.1 that record what they receive.

import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
}

export interface TestUpstream {
  readonly name: string;
  readonly port: number;
  readonly address: string;
  readonly seen: Seen[];
  readonly server: http.Server;
  close(): Promise<void>;
}

export type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

const defaultHandler =
  (name: string): Handler =>
  (req, res) => {
    res.setHeader('content-type', 'text/plain');
    res.end(`${name} ${req.method} ${req.url}`);
  };

/** Starts a server that buffers each request body (small bodies only) before calling `handler`. */
export async function startUpstream(
  name: string,
  handler?: Handler,
  opts?: { raw?: boolean },
): Promise<TestUpstream> {
  const seen: Seen[] = [];
  const h = handler ?? defaultHandler(name);
  const server = http.createServer((req, res) => {
    // Wharf's active probes are not what the tests count.
    if (req.headers['user-agent'] === 'wharf-health') return res.end('ok');
    if (opts?.raw) return h(req, res, '');
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body,
      });
      h(req, res, body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    name,
    port,
    address: `127.0.0.1:${port}`,
    seen,
    server,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/** A port on which nothing listens (bound then released). */
export async function deadPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
