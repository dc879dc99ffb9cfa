// What the benchmarks run against. A Target is anything with a start/stop, a pid whose process tree
// is "the proxy", and a URL + Host header to load. Upstreams, nginx, HAProxy, the naive Node proxy
// and Wharf (with config variants) are all built here so both benchmarks share them.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { assertPortFree, type Managed, type StartOptions, start, stop, waitForPort } from './procs.ts';

export const BENCH_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const REPO_DIR = resolve(BENCH_DIR, '..');
export const CONF_DIR = join(BENCH_DIR, 'conf');
const TSX = ['--import', 'tsx'];

/** Ports, as in the reference run (peer-configs hard-code 18101-18103, 18201, 18202). */
export const PORTS = {
  upstreams: [18101, 18102, 18103],
  nginx: 18201,
  haproxy: 18202,
  nodeProxy: 18203,
  wharf: 18204,
  wharfLogs: 18205,
  /** Only in the paired windows: the A/A control, the plain Wharf config again. */
  wharfTwin: 18207,
  undiciFloor: 18206,
  undiciFloorHttps: 18216,
  nginxHttps: 18211,
  wharfHttps: 18214,
  /** Fixed by shared/reference/peer-configs/Caddyfile (copied to bench/conf/Caddyfile). */
  caddy: 18222,
  adminBase: 18300,
} as const;

export const DOMAIN = 'bench.local';
export const PROJECT = 'bench';
/** `<project>.D` routes to the project's `http` port. */
export const WHARF_HOST = `${PROJECT}.${DOMAIN}`;

export interface Target {
  /** Row label. */
  readonly name: string;
  readonly url: string;
  readonly hostHeader?: string;
  /** Set when the target cannot run here; the reason is reported instead of numbers. */
  unavailable?: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Root of the process tree counted as the proxy (for "direct": the upstream). */
  pid(): number | undefined;
}

export interface RunDir {
  dir: string;
}

export function makeRunDir(kind: string): string {
  const dir = join('/tmp/bench', `${kind}-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

// ---- upstreams -----------------------------------------------------------------------------------

export interface Upstream {
  readonly name: string;
  readonly port: number;
  proc?: Managed;
}

export async function startUpstreams(runDir: string, capture: boolean): Promise<Upstream[]> {
  const ups: Upstream[] = PORTS.upstreams.map((port, i) => ({ name: `u${i + 1}`, port }));
  for (const u of ups) await assertPortFree(u.port);
  for (const u of ups) {
    u.proc = start(
      `upstream ${u.name}`,
      process.execPath,
      [...TSX, join(BENCH_DIR, 'upstream.ts'), String(u.port), u.name],
      { cwd: REPO_DIR, logFile: join(runDir, `upstream-${u.name}.log`), captureStdout: capture },
    );
  }
  for (const u of ups) await waitForPort(u.port, 15_000, u.proc!.exited);
  return ups;
}

export async function stopUpstreams(ups: Upstream[]): Promise<void> {
  await Promise.all(ups.map((u) => stop(u.proc)));
}

// ---- generic process target ---------------------------------------------------------------------

interface ProcSpec {
  name: string;
  port: number;
  url: string;
  hostHeader?: string;
  cmd: () => { cmd: string; args: string[]; opts: StartOptions };
  /** Called after the process exits (e.g. to collect a CPU profile). */
  afterStop?: () => void;
  stopGraceMs?: number;
}

export function processTarget(spec: ProcSpec): Target {
  let proc: Managed | undefined;
  return {
    name: spec.name,
    url: spec.url,
    hostHeader: spec.hostHeader,
    async start() {
      await assertPortFree(spec.port);
      const c = spec.cmd();
      proc = start(spec.name, c.cmd, c.args, c.opts);
      // Generous: Wharf compiles its TypeScript through tsx at start-up, slow on a busy machine.
      await waitForPort(spec.port, 60_000, proc.exited);
    },
    async stop() {
      await stop(proc, spec.stopGraceMs ?? 5000);
      proc = undefined;
      spec.afterStop?.();
    },
    pid: () => proc?.pid,
  };
}

/** wrk straight at one upstream; its CPU/RSS columns are that upstream's. */
export function directTarget(up: Upstream): Target {
  return {
    name: 'direct (1 upstream)',
    url: `http://127.0.0.1:${up.port}/`,
    hostHeader: WHARF_HOST,
    async start() {},
    async stop() {},
    pid: () => up.proc?.pid,
  };
}

// ---- nginx ---------------------------------------------------------------------------------------

export interface NginxOptions {
  runDir: string;
  cpus?: string;
  workers?: number;
  /** HTTPS variant: the template conf/nginx-https.conf with this certificate. */
  tls?: { cert: string; key: string };
  name?: string;
}

export function nginxTarget(o: NginxOptions): Target {
  const prefix = join(o.runDir, o.tls ? 'nginx-https' : 'nginx');
  const port = o.tls ? PORTS.nginxHttps : PORTS.nginx;
  return processTarget({
    name: o.name ?? (o.tls ? 'nginx HTTPS (1 worker, pinned)' : 'nginx (1 worker, pinned)'),
    port,
    url: `${o.tls ? 'https' : 'http'}://127.0.0.1:${port}/`,
    hostHeader: WHARF_HOST,
    cmd: () => {
      mkdirSync(prefix, { recursive: true });
      let conf = join(CONF_DIR, 'nginx.conf');
      if (o.tls) {
        conf = join(prefix, 'nginx-https.conf');
        writeFileSync(
          conf,
          readFileSync(join(CONF_DIR, 'nginx-https.conf'), 'utf8')
            .replaceAll('@CERT@', o.tls.cert)
            .replaceAll('@KEY@', o.tls.key),
        );
      }
      return {
        cmd: 'nginx',
        args: [
          '-p',
          prefix,
          '-e',
          join(prefix, 'error.log'),
          '-c',
          conf,
          '-g',
          `daemon off; worker_processes ${o.workers ?? 1};`,
        ],
        opts: { cpus: o.cpus, logFile: join(prefix, 'stdout.log') },
      };
    },
  });
}

// ---- HAProxy -------------------------------------------------------------------------------------

export function haproxyTarget(o: { runDir: string; cpus?: string; retry?: boolean; name?: string }): Target {
  const env: NodeJS.ProcessEnv = { ...process.env, HAPROXY_BENCH_NBTHREAD: '1' };
  if (o.retry) env.HAPROXY_BENCH_RETRY = '1';
  return processTarget({
    name: o.name ?? 'haproxy (1 thread, pinned)',
    port: PORTS.haproxy,
    url: `http://127.0.0.1:${PORTS.haproxy}/`,
    hostHeader: WHARF_HOST,
    cmd: () => ({
      cmd: 'haproxy',
      args: ['-db', '-f', join(CONF_DIR, 'haproxy.cfg')],
      opts: { cpus: o.cpus, env, logFile: join(o.runDir, `haproxy${o.retry ? '-retry' : ''}.log`) },
    }),
  });
}

// ---- Caddy ---------------------------------------------------------------------------------------

/**
 * Caddy (Go, Traefik's class of proxy) with shared/reference/peer-configs/Caddyfile: one Go thread
 * (GOMAXPROCS=1), pinned like the others. HOME is the run dir: Caddy keeps state under it.
 */
export function caddyTarget(o: { runDir: string; cpus?: string }): Target {
  const home = join(o.runDir, 'caddy');
  return processTarget({
    name: 'caddy (GOMAXPROCS=1, pinned)',
    port: PORTS.caddy,
    url: `http://127.0.0.1:${PORTS.caddy}/`,
    hostHeader: WHARF_HOST,
    cmd: () => {
      mkdirSync(home, { recursive: true });
      return {
        cmd: 'caddy',
        args: ['run', '--config', join(CONF_DIR, 'Caddyfile'), '--adapter', 'caddyfile'],
        opts: {
          cpus: o.cpus,
          env: { ...process.env, GOMAXPROCS: '1', HOME: home, XDG_DATA_HOME: home, XDG_CONFIG_HOME: home },
          logFile: join(o.runDir, 'caddy.log'),
        },
      };
    },
  });
}

// ---- naive Node proxy ----------------------------------------------------------------------------

export function nodeProxyTarget(o: {
  runDir: string;
  cpus?: string;
  name?: string;
  port?: number;
  /** The proxy script in bench/ (default the naive node-proxy.ts). */
  script?: string;
  /** Serve HTTPS with this certificate (undici-floor.ts only). */
  tls?: { cert: string; key: string };
  /** Serve h2 (with `tls`; undici-floor.ts only). */
  h2?: boolean;
  nodeArgs?: string[];
  afterStop?: () => void;
}): Target {
  const port = o.port ?? PORTS.nodeProxy;
  const script = o.script ?? 'node-proxy.ts';
  return processTarget({
    name: o.name ?? 'node-proxy (pinned)',
    port,
    url: `${o.tls ? 'https' : 'http'}://127.0.0.1:${port}/`,
    hostHeader: WHARF_HOST,
    afterStop: o.afterStop,
    cmd: () => ({
      cmd: process.execPath,
      args: [
        ...(o.nodeArgs ?? []),
        ...TSX,
        join(BENCH_DIR, script),
        String(port),
        ...PORTS.upstreams.map(String),
      ],
      opts: {
        cpus: o.cpus,
        cwd: REPO_DIR,
        logFile: join(o.runDir, `${script.replace(/\.ts$/, '')}-${port}.log`),
        env: o.tls
          ? {
              ...process.env,
              FLOOR_CERT: o.tls.cert,
              FLOOR_KEY: o.tls.key,
              ...(o.h2 ? { FLOOR_H2: '1' } : {}),
            }
          : undefined,
      },
    }),
  });
}

// ---- Wharf ---------------------------------------------------------------------------------------

export const WHARF_BIN = join(REPO_DIR, 'bin', 'wharf.js');

/** True once the lead's CLI has landed in this checkout. */
export function wharfPresent(): boolean {
  return existsSync(WHARF_BIN);
}

export interface WharfVariant {
  /** Row label. */
  name: string;
  port: number;
  https?: boolean;
  /** Scrape the admin /metrics endpoint once a second while loaded. */
  scrapeMetrics?: boolean;
  /** Builds the config object (YAML is written from it). */
  config: (ctx: { runDir: string; cert?: { cert: string; key: string } }) => Record<string, unknown>;
}

export function adminPortOf(port: number): number {
  return PORTS.adminBase + (port % 100);
}

/** The static project every Wharf variant serves: three instances on the port named `http`. */
export function benchProject(extra: Record<string, unknown> = {}): Record<string, unknown> {
  const instances: Record<string, Record<string, string>> = {};
  PORTS.upstreams.forEach((p, i) => {
    instances[`u${i + 1}`] = { http: `127.0.0.1:${p}` };
  });
  return { [PROJECT]: { 'health-path': '/healthz', ...extra, instances } };
}

export function baseWharfConfig(port: number): Record<string, unknown> {
  return {
    listen: `127.0.0.1:${port}`,
    admin: `127.0.0.1:${adminPortOf(port)}`,
    domain: DOMAIN,
    // The plain rows measure the data plane; the access-log row turns logging on into files.
    logs: { access: false },
    projects: benchProject(),
  };
}

export function writeWharfConfig(
  runDir: string,
  v: WharfVariant,
  cert?: { cert: string; key: string },
): string {
  const file = join(runDir, `wharf-${v.port}.yaml`);
  writeFileSync(file, YAML.stringify(v.config({ runDir, cert })));
  return file;
}

/**
 * `wharf check-config FILE`: undefined when accepted, else the reason (exit 2 = rejected config, e.g.
 * a key of a feature that has not landed yet).
 */
export function wharfCheckConfig(file: string): string | undefined {
  if (!wharfPresent()) return 'bin/wharf.js not present in this checkout';
  const r = spawnSync(process.execPath, [WHARF_BIN, 'check-config', file], {
    cwd: REPO_DIR,
    encoding: 'utf8',
    timeout: 30_000,
  });
  if (r.status === 0) return undefined;
  const msg = `${r.stderr}\n${r.stdout}`
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(0, 3)
    .join('; ');
  return `check-config exit ${r.status}: ${msg.replaceAll(file, 'config').slice(0, 300)}`;
}

export function wharfTarget(o: {
  runDir: string;
  variant: WharfVariant;
  cpus?: string;
  cert?: { cert: string; key: string };
  nodeArgs?: string[];
  afterStop?: () => void;
}): Target {
  const v = o.variant;
  const file = writeWharfConfig(o.runDir, v, o.cert);
  const t = processTarget({
    name: v.name,
    port: v.port,
    url: `${v.https ? 'https' : 'http'}://127.0.0.1:${v.port}/`,
    hostHeader: WHARF_HOST,
    afterStop: o.afterStop,
    stopGraceMs: 15_000,
    cmd: () => ({
      cmd: process.execPath,
      args: [...(o.nodeArgs ?? []), WHARF_BIN, 'serve', '--config', file],
      opts: { cpus: o.cpus, cwd: REPO_DIR, logFile: join(o.runDir, `wharf-${v.port}.out.log`) },
    }),
  });
  t.unavailable = wharfCheckConfig(file);
  return t;
}

// ---- TLS material --------------------------------------------------------------------------------

/** A self-signed certificate for bench.local, *.bench.local and 127.0.0.1, shared by nginx and Wharf. */
export function makeCert(runDir: string): { cert: string; key: string } | string {
  const cert = join(runDir, 'bench-cert.pem');
  const key = join(runDir, 'bench-key.pem');
  const r = spawnSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=${DOMAIN}`,
      '-addext',
      `subjectAltName=DNS:${DOMAIN},DNS:*.${DOMAIN},IP:127.0.0.1`,
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { encoding: 'utf8', timeout: 30_000 },
  );
  if (r.status !== 0) return `openssl failed: ${r.stderr.slice(-300)}`;
  return { cert, key };
}

// ---- sanity check --------------------------------------------------------------------------------

/** One GET through the target: must be 200 with the upstream's 100-byte body. */
export function probeTarget(t: Target, timeoutMs = 5000): Promise<string | undefined> {
  const u = new URL(t.url);
  const mod = u.protocol === 'https:' ? https : http;
  return new Promise((resolve) => {
    const req = mod.request(
      {
        host: u.hostname,
        port: u.port,
        path: '/',
        method: 'GET',
        headers: t.hostHeader ? { host: t.hostHeader } : {},
        rejectUnauthorized: false,
        servername: t.hostHeader,
        agent: false,
        timeout: timeoutMs,
      },
      (res) => {
        let n = 0;
        res.on('data', (c: Buffer) => {
          n += c.length;
        });
        res.on('end', () =>
          resolve(
            res.statusCode === 200 && n === 100
              ? undefined
              : `probe got status ${res.statusCode}, ${n} bytes`,
          ),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve(`probe failed: ${e.message}`));
    req.end();
  });
}
