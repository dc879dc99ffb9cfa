/* biome-ignore-all lint/suspicious/noExplicitAny: JSON from the wire, checked by the assertions */
// Shared helpers for discovery tests: TLS fixtures, a raw watch reader, and polling with a deadline.

import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

const TLS_DIR = join(import.meta.dirname, '../fixtures/discovery/tls');
export const TLS = {
  ca: readFileSync(join(TLS_DIR, 'ca.crt'), 'utf8'),
  cert: readFileSync(join(TLS_DIR, 'server.crt'), 'utf8'),
  key: readFileSync(join(TLS_DIR, 'server.key'), 'utf8'),
  clientCert: readFileSync(join(TLS_DIR, 'client.crt'), 'utf8'),
  clientKey: readFileSync(join(TLS_DIR, 'client.key'), 'utf8'),
  dir: TLS_DIR,
};

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  json(): any;
}

/** One GET with node:http(s); follows nothing, parses nothing. */
export function get(url: string, headers: Record<string, string> = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const mod = url.startsWith('https') ? https : http;
    const req = mod.get(url, { headers, ca: TLS.ca, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () =>
        resolve({ status: res.statusCode!, headers: res.headers, body, json: () => JSON.parse(body) }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

/** A watch as a stream of parsed events; `ended` resolves on a clean end, `closed` on any close. */
export class RawWatch {
  readonly events: any[] = [];
  status = 0;
  headersAt = 0;
  ended = false;
  closed: Promise<void>;
  private req: http.ClientRequest;
  private waiters: (() => void)[] = [];

  constructor(url: string, headers: Record<string, string> = {}) {
    const mod = url.startsWith('https') ? https : http;
    let done!: () => void;
    this.closed = new Promise((r) => (done = r));
    this.req = mod.get(url, { headers, ca: TLS.ca, agent: false }, (res) => {
      this.status = res.statusCode!;
      this.headersAt = Date.now();
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        buf += c;
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (line.trim()) this.events.push(JSON.parse(line));
        }
        this.wake();
      });
      res.on('end', () => {
        this.ended = true;
        this.wake();
      });
      res.on('close', () => {
        done();
        this.wake();
      });
    });
    this.req.on('error', () => {
      done();
      this.wake();
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Waits until at least `n` events arrived (or throws after `ms`). */
  async waitFor(n: number, ms = 3000): Promise<any[]> {
    const deadline = Date.now() + ms;
    while (this.events.length < n) {
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${n} events, got ${JSON.stringify(this.events)}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 50);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return this.events;
  }

  close(): void {
    this.req.destroy();
  }
}

/** Polls `fn` until it returns a truthy value or `ms` passes. */
export async function until<T>(fn: () => T | Promise<T>, ms = 5000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export interface KubectlResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * kubectl pointed at `apiUrl` over TLS with a bearer token, in a throwaway HOME (kubeconfig and
 * cache inside it, removed after the test). Undefined, with the test skipped and the reason printed,
 * when kubectl is not installed.
 */
export function kubectlAgainst(
  t: TestContext,
  apiUrl: string,
  token: string,
): ((args: string[], timeout?: number) => Promise<KubectlResult>) | undefined {
  const kubectl = ['/usr/bin/kubectl', '/usr/local/bin/kubectl'].find((p) => existsSync(p));
  if (!kubectl) {
    t.skip('kubectl not found: looked in /usr/bin and /usr/local/bin');
    return undefined;
  }
  const dir = mkdtempSync(join(tmpdir(), 'wharf-kubectl-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'ca.crt'), TLS.ca);
  const kubeconfig = join(dir, 'config');
  writeFileSync(
    kubeconfig,
    `apiVersion: v1
kind: Config
clusters: [{name: fake, cluster: {server: "${apiUrl}", certificate-authority: "${join(dir, 'ca.crt')}"}}]
users: [{name: u, user: {token: ${token}}}]
contexts: [{name: c, context: {cluster: fake, user: u}}]
current-context: c
`,
  );
  return (args, timeout = 20_000) =>
    new Promise((resolve) => {
      execFile(
        kubectl,
        ['--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'cache'), ...args],
        { timeout, env: { ...process.env, HOME: dir } },
        (err, stdout, stderr) =>
          resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
}
