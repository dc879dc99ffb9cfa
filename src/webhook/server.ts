// `wharf webhook`: the HTTPS server the apiserver calls with AdmissionReview v1 requests.
// POST /mutate answers with mutatePod(); GET /healthz is for the kubelet probes.

import { readFileSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { type Log, stderrLog } from '../util/log.ts';
import { type MutateOptions, mutatePod } from './mutate.ts';
import { parseAdmissionReview, ReviewError } from './review.ts';

export interface WebhookOptions extends MutateOptions {
  /** `host:port`, `[v6]:port` or `:port`; port 0 picks a free one (tests). */
  listen: string;
  certFile: string;
  keyFile: string;
  /** URL path the MutatingWebhookConfiguration calls. */
  path?: string;
  /** How often to look for a renewed certificate (cert-manager rewrites the Secret). 0 = never. */
  reloadIntervalMs?: number;
  /** Largest accepted request body; a Pod is far below the apiserver's 3 MiB object limit. */
  maxBodyBytes?: number;
  /** How long close() lets in-flight reviews finish before cutting connections. */
  closeGraceMs?: number;
  log?: Log;
}

export interface WebhookHandle {
  readonly address: { host: string; port: number };
  /** Re-reads the certificate and key now if they changed; returns whether they were swapped. */
  reloadCertificates(): boolean;
  close(): Promise<void>;
}

export const DEFAULT_MAX_BODY = 4 * 1024 * 1024;

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(listen.trim());
  if (!m) throw new Error(`listen must be host:port, got ${JSON.stringify(listen)}`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`port out of range in ${JSON.stringify(listen)}`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer | 'too-large'> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) over = true;
      // Keep draining so the 413 can be written on a healthy socket, but stop buffering.
      if (!over) chunks.push(c);
    });
    req.on('end', () => resolve(over ? 'too-large' : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export async function startWebhook(opts: WebhookOptions): Promise<WebhookHandle> {
  const path = opts.path ?? '/mutate';
  const maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY;
  const log = opts.log ?? stderrLog;
  const mutateOpts: MutateOptions = {
    hostPath: opts.hostPath,
    mountPath: opts.mountPath,
    volumeName: opts.volumeName,
  };
  const { host, port } = parseListen(opts.listen);

  const stamp = () => `${statSync(opts.certFile).mtimeMs}:${statSync(opts.keyFile).mtimeMs}`;
  let loaded = stamp();
  const server: Server = createServer({
    cert: readFileSync(opts.certFile),
    key: readFileSync(opts.keyFile),
    minVersion: 'TLSv1.2',
  });
  // The apiserver gives a webhook at most timeoutSeconds (<= 30 s); nothing should wait longer.
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const url = (req.url ?? '/').split('?')[0];
    if (url === '/healthz' && (req.method === 'GET' || req.method === 'HEAD')) {
      send(res, 200, { status: 'ok' });
      return;
    }
    if (url !== path) {
      send(res, 404, { error: `no such path ${url}` });
      return;
    }
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      send(res, 405, { error: 'use POST' });
      return;
    }
    readBody(req, maxBody).then(
      (body) => {
        if (body === 'too-large') {
          send(res, 413, { error: `body larger than ${maxBody} bytes` });
          return;
        }
        let review: ReturnType<typeof parseAdmissionReview>;
        try {
          review = parseAdmissionReview(JSON.parse(body.toString('utf8')));
        } catch (err) {
          const reason = err instanceof ReviewError ? err.message : 'body is not valid JSON';
          log('warn', 'webhook: bad AdmissionReview', { reason, remote: req.socket.remoteAddress });
          send(res, 400, { error: reason });
          return;
        }
        try {
          const answer = mutatePod(review, mutateOpts);
          const r = review.request!;
          log('debug', 'webhook: reviewed', {
            uid: r.uid,
            namespace: r.namespace,
            kind: r.kind?.kind,
            patched: answer.response?.patch !== undefined,
          });
          send(res, 200, answer);
        } catch (err) {
          // mutatePod is written not to throw; if it ever does, fail open rather than crash.
          log('error', 'webhook: mutation failed', { reason: String(err) });
          send(res, 500, { error: 'internal error' });
        }
      },
      () => {
        if (!res.headersSent) send(res, 400, { error: 'request body could not be read' });
      },
    );
  });
  server.on('tlsClientError', (err) => log('warn', 'webhook: TLS handshake failed', { reason: err.message }));

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });

  const reloadCertificates = (): boolean => {
    let now: string;
    try {
      now = stamp();
    } catch {
      return false; // mid-rotation: the Secret volume swaps a symlink; try again next tick
    }
    if (now === loaded) return false;
    try {
      server.setSecureContext({
        cert: readFileSync(opts.certFile),
        key: readFileSync(opts.keyFile),
        minVersion: 'TLSv1.2',
      });
    } catch (err) {
      log('warn', 'webhook: certificate reload failed, keeping the old one', { reason: String(err) });
      return false;
    }
    loaded = now;
    log('info', 'webhook: certificate reloaded', { certFile: opts.certFile });
    return true;
  };
  const interval = opts.reloadIntervalMs ?? 60_000;
  const timer = interval > 0 ? setInterval(reloadCertificates, interval) : undefined;
  timer?.unref();

  const addr = server.address() as AddressInfo;
  return {
    address: { host: addr.address, port: addr.port },
    reloadCertificates,
    close: () =>
      new Promise<void>((resolve) => {
        if (timer) clearInterval(timer);
        // Stop accepting, drop idle keep-alive connections now, give in-flight reviews a moment.
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
        const force = setTimeout(() => server.closeAllConnections(), opts.closeGraceMs ?? 5000);
        force.unref();
      }),
  };
}
