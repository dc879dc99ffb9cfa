// `npm run bench:h2`: HTTP/2 and gRPC through Wharf against nginx, in the same run, measured as
// `npm run bench` measures HTTP/1.1 (proxy pinned to CPU 0, load pinned to CPU 1, interleaved rounds,
// forward then reversed, a quiet machine before each run, the other proxies frozen meanwhile).
//
// - HTTP/2 over TLS (h2load, 16 connections x 4 streams) against Wharf's edge and nginx `http2`, and
//   the same two over HTTP/1.1 (wrk -c64) in the same rounds: issue 21's target is that Wharf's h2
//   rps is at least the same fraction of nginx's h2 as its HTTP/1.1 rps is of nginx's HTTP/1.1.
// - gRPC unary calls (h2load over h2c with a fixed gRPC request) through Wharf's internal tier and
//   nginx `grpc_pass`, to the same three grpc-js servers: calls per second, CPU per call, and each
//   instance's share of the calls (every call balanced on its own, target 1/3 +- 5%).
// - One of three gRPC servers SIGKILLed under load (our own HTTP/2 client, which reads each call's
//   grpc-status): calls failed, for each proxy.
//
//   npm run bench:h2                       # 6 rounds x 5 s, writes bench/results/h2.md
//   npm run bench:h2 -- --quick            # smoke run, report in the run dir

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureTools, which } from './lib/install.ts';
import {
  type Managed,
  QuietWaiter,
  signalTree,
  start,
  stop,
  stopAll,
  treeCpuSeconds,
  waitForPort,
} from './lib/procs.ts';
import { fmt, fmtInt, median, percentile } from './lib/stats.ts';
import { machineInfo } from './lib/sysinfo.ts';
import {
  adminPortOf,
  BENCH_DIR,
  benchProject,
  CONF_DIR,
  DOMAIN,
  makeCert,
  makeRunDir,
  nginxTarget,
  nodeProxyTarget,
  PORTS,
  processTarget,
  REPO_DIR,
  startUpstreams,
  stopUpstreams,
  type Target,
  WHARF_HOST,
  wharfTarget,
} from './lib/targets.ts';
import { runWrk } from './lib/wrk.ts';

const PROXY_CPU = '0';
const LOAD_CPU = '1';
const GRPC_PORTS = [18231, 18232, 18233];
const NGINX_H2 = 18212;
const NGINX_GRPC = 18240;
const WHARF_GRPC = 18241;
/** The bare stacks under Wharf's edge: node:https / node:http2 + undici, nothing on top. */
const FLOOR_TLS = 18251;
const FLOOR_H2 = 18252;
const GRPC_HOST = `echo.${DOMAIN}`;
const GRPC_PATH = '/wharf.test.Echo/Unary';

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string' },
    rounds: { type: 'string' },
    quick: { type: 'boolean', default: false },
    out: { type: 'string' },
  },
});
const quick = args.quick!;
const durationS = Number(args.duration ?? (quick ? 3 : 5));
const rounds = Number(args.rounds ?? (quick ? 1 : 6));
const quiet = new QuietWaiter(0.1, (quick ? 2 : 60) * 1000, (quick ? 10 : 300) * 1000);

function log(msg: string): void {
  process.stderr.write(`[bench:h2 ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

// ---- h2load ------------------------------------------------------------------------------------

interface LoadResult {
  rps: number;
  requests: number;
  failed: number;
  p50ms: number;
  p99ms: number;
}

/** h2load pinned to the load CPU; latencies from its per-request log (it prints no percentiles). */
async function runH2load(o: {
  url: string;
  authority: string;
  durationS: number;
  runDir: string;
  extra?: string[];
}): Promise<LoadResult> {
  const logFile = join(o.runDir, `h2load-${Date.now()}.tsv`);
  const a = [
    '-c',
    LOAD_CPU,
    'h2load',
    '-t1',
    '-c16',
    '-m4',
    `-D${o.durationS}`,
    '--warm-up-time=1',
    `--log-file=${logFile}`,
    '-H',
    `:authority: ${o.authority}`,
    ...(o.extra ?? []),
    o.url,
  ];
  const m = start('h2load', 'taskset', a, { captureStdout: true });
  const killer = setTimeout(() => m.child.kill('SIGKILL'), (o.durationS + 30) * 1000);
  const code = await m.exited;
  clearTimeout(killer);
  const out = m.stdoutLines.join('\n');
  if (code !== 0) throw new Error(`h2load exited ${code}: ${out.slice(-500)}`);
  const rps = Number(/finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(out)?.[1] ?? Number.NaN);
  const req = /requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed/.exec(out);
  // Answers that were not 2xx (h2load counts them as succeeded). Counted from the status line, not
  // as succeeded - 2xx: the status line includes the warm-up's answers, the request line does not.
  const status = /status codes: \d+ 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
  const lat = readFileSync(logFile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => Number(l.split('\t')[2]) / 1000)
    .sort((x, y) => x - y);
  return {
    rps,
    requests: Number(req?.[2] ?? 0),
    failed: Number(req?.[4] ?? 0) + (status ? Number(status[1]) + Number(status[2]) + Number(status[3]) : 0),
    p50ms: percentile(lat, 50),
    p99ms: percentile(lat, 99),
  };
}

/** One gRPC frame of the Echo Msg {text: "bench"}: what every benchmark call sends. */
function grpcBody(runDir: string): string {
  const msg = Buffer.concat([Buffer.from([0x0a, 5]), Buffer.from('bench')]);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(msg.length, 1);
  const file = join(runDir, 'grpc-request.bin');
  writeFileSync(file, Buffer.concat([head, msg]));
  return file;
}

// ---- targets -------------------------------------------------------------------------------------

function nginxConfTarget(o: {
  runDir: string;
  name: string;
  conf: string;
  port: number;
  url: string;
  host: string;
  cert?: { cert: string; key: string };
}): Target {
  const prefix = join(o.runDir, o.name.replace(/\W+/g, '-'));
  return processTarget({
    name: o.name,
    port: o.port,
    url: o.url,
    hostHeader: o.host,
    cmd: () => {
      mkdirSync(prefix, { recursive: true });
      const conf = join(prefix, 'nginx.conf');
      writeFileSync(
        conf,
        readFileSync(join(CONF_DIR, o.conf), 'utf8')
          .replaceAll('@CERT@', o.cert?.cert ?? '')
          .replaceAll('@KEY@', o.cert?.key ?? ''),
      );
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
          'daemon off; worker_processes 1;',
        ],
        opts: { cpus: PROXY_CPU, logFile: join(prefix, 'stdout.log') },
      };
    },
  });
}

interface GrpcServers {
  procs: (Managed | undefined)[];
  counts(): number[];
  restart(i: number): Promise<void>;
  stop(): Promise<void>;
}

async function startGrpcServers(runDir: string): Promise<GrpcServers> {
  const procs: (Managed | undefined)[] = [];
  const file = (i: number) => join(runDir, `grpc-count-${i}`);
  const launch = async (i: number) => {
    writeFileSync(file(i), '0');
    procs[i] = start(
      `grpc ${i}`,
      process.execPath,
      ['--import', 'tsx', join(BENCH_DIR, 'grpc-upstream.ts'), String(GRPC_PORTS[i]), `g${i}`, file(i)],
      { cwd: REPO_DIR, logFile: join(runDir, `grpc-${i}.log`) },
    );
    await waitForPort(GRPC_PORTS[i]!, 30_000, procs[i]!.exited);
  };
  for (let i = 0; i < GRPC_PORTS.length; i++) await launch(i);
  return {
    procs,
    counts: () => GRPC_PORTS.map((_, i) => readCount(file(i))),
    restart: async (i) => {
      await stop(procs[i]);
      await launch(i);
    },
    stop: async () => {
      await Promise.all(procs.map((p) => stop(p)));
    },
  };
}

// ---- the kill scenario ---------------------------------------------------------------------------

/**
 * `concurrency` streams of unary calls over one HTTP/2 connection for `ms`; `atMs` in, `kill` runs.
 * A call counts as failed when its stream errors or its grpc-status is not 0.
 */
async function killUnderLoad(
  url: string,
  authority: string,
  kill: () => void,
  o: { concurrency: number; ms: number; atMs: number },
): Promise<{ ok: number; failed: number; reasons: string[] }> {
  const body = Buffer.concat([Buffer.from([0, 0, 0, 0, 7, 0x0a, 5]), Buffer.from('bench')]);
  const session = http2.connect(url);
  session.on('error', () => {});
  const tally = { ok: 0, failed: 0, reasons: [] as string[] };
  const end = Date.now() + o.ms;
  const timer = setTimeout(kill, o.atMs);
  const call = () =>
    new Promise<void>((resolve) => {
      let status: string | undefined;
      const req = session.request({
        ':method': 'POST',
        ':path': GRPC_PATH,
        ':authority': authority,
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      req.on('response', (h) => {
        if (h['grpc-status'] !== undefined) status = String(h['grpc-status']);
      });
      req.on('trailers', (t) => {
        status = String(t['grpc-status']);
      });
      req.on('data', () => {});
      const done = (why?: string) => {
        if (why === undefined && status === '0') tally.ok++;
        else {
          tally.failed++;
          if (tally.reasons.length < 5) tally.reasons.push(why ?? `grpc-status ${status}`);
        }
        resolve();
      };
      req.on('end', () => done());
      req.on('error', (e) => done((e as Error).message));
      req.end(body);
    });
  await Promise.all(
    Array.from({ length: o.concurrency }, async () => {
      while (Date.now() < end) await call();
    }),
  );
  clearTimeout(timer);
  session.close();
  return tally;
}

/**
 * A server's call count. writeFileSync truncates before it writes, so a read can meet the file empty
 * for a moment (that read a count of 0 once and made a whole row invalid): read again until it is not.
 */
function readCount(path: string): number {
  for (let i = 0; i < 50; i++) {
    const text = readFileSync(path, 'utf8');
    if (text !== '') return Number(text);
  }
  throw new Error(`${path} stayed empty`);
}

/** One unary call with our own client: what the proxy answered (for a row whose calls went nowhere). */
async function grpcAnswer(url: string, authority: string): Promise<string> {
  const body = Buffer.concat([Buffer.from([0, 0, 0, 0, 7, 0x0a, 5]), Buffer.from('bench')]);
  const session = http2.connect(url);
  session.on('error', () => {});
  try {
    return await new Promise<string>((resolve) => {
      const req = session.request({
        ':method': 'POST',
        ':path': GRPC_PATH,
        ':authority': authority,
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      let got = '';
      const take = (h: http2.IncomingHttpHeaders) => {
        if (h['grpc-status'] !== undefined)
          got = `grpc-status ${h['grpc-status']}: ${h['grpc-message'] ?? ''}`;
      };
      req.on('response', (h) => take(h));
      req.on('trailers', (t) => take(t));
      req.on('data', () => {});
      req.on('end', () => resolve(got || 'no grpc-status'));
      req.on('error', (e) => resolve((e as Error).message));
      setTimeout(() => resolve('no answer in 5 s'), 5000).unref();
      req.end(body);
    });
  } finally {
    session.close();
  }
}

// ---- main ----------------------------------------------------------------------------------------

interface Run {
  round: number;
  res: LoadResult;
  cpuPer10k: number;
  share?: number[];
}

interface Row {
  name: string;
  target: Target;
  load: 'wrk' | 'h2' | 'grpc';
  /** Host / :authority the load sends. */
  authority: string;
  runs: Run[];
  /** Set when a run's calls did not reach the instances (answers that only look successful). */
  invalid?: string;
}

async function main(): Promise<void> {
  const runDir = makeRunDir('h2');
  log(`run dir ${runDir}`);
  const missing = ensureTools(['nginx', 'wrk', 'nghttp2-client']);
  if (!which('h2load'))
    throw new Error(`h2load is required: ${missing.get('nghttp2-client') ?? 'not found'}`);
  const cert = makeCert(runDir);
  if (typeof cert === 'string') throw new Error(cert);
  const ups = await startUpstreams(runDir, false);
  const grpcs = await startGrpcServers(runDir);
  const body = grpcBody(runDir);

  const nginxTls = nginxTarget({ runDir, cpus: PROXY_CPU, tls: cert });
  const nginxH2 = nginxConfTarget({
    runDir,
    name: 'nginx HTTPS h2 (1 worker, pinned)',
    conf: 'nginx-h2.conf',
    port: NGINX_H2,
    url: `https://127.0.0.1:${NGINX_H2}/`,
    host: WHARF_HOST,
    cert,
  });
  const nginxGrpc = nginxConfTarget({
    runDir,
    name: 'nginx grpc_pass (1 worker, pinned)',
    conf: 'nginx-grpc.conf',
    port: NGINX_GRPC,
    url: `http://127.0.0.1:${NGINX_GRPC}${GRPC_PATH}`,
    host: GRPC_HOST,
  });
  const wharfEdge = wharfTarget({
    runDir,
    cpus: PROXY_CPU,
    cert,
    variant: {
      name: 'wharf edge HTTPS',
      port: PORTS.wharfHttps,
      https: true,
      config: ({ cert: c }) => ({
        listen: `127.0.0.1:${PORTS.wharfHttps}`,
        admin: `127.0.0.1:${adminPortOf(PORTS.wharfHttps)}`,
        domain: DOMAIN,
        tier: 'edge',
        logs: { access: false },
        tls: { certificates: [{ hosts: ['*.bench.local', 'bench.local'], cert: c?.cert, key: c?.key }] },
        projects: benchProject({ public: true }),
      }),
    },
  });
  const wharfGrpc = wharfTarget({
    runDir,
    cpus: PROXY_CPU,
    variant: {
      name: 'wharf internal gRPC (h2c both sides)',
      port: WHARF_GRPC,
      config: () => ({
        listen: `127.0.0.1:${WHARF_GRPC}`,
        admin: `127.0.0.1:${adminPortOf(WHARF_GRPC)}`,
        domain: DOMAIN,
        logs: { access: false },
        projects: {
          echo: {
            protocol: 'h2c',
            'health-path': 'tcp',
            instances: Object.fromEntries(GRPC_PORTS.map((p, i) => [`g${i}`, { grpc: `127.0.0.1:${p}` }])),
          },
        },
      }),
    },
  });
  const floorTls = nodeProxyTarget({
    runDir,
    cpus: PROXY_CPU,
    script: 'undici-floor.ts',
    name: 'undici floor HTTPS (node:https + undici)',
    port: FLOOR_TLS,
    tls: cert,
  });
  const floorH2 = nodeProxyTarget({
    runDir,
    cpus: PROXY_CPU,
    script: 'undici-floor.ts',
    name: 'undici floor h2 (node:http2 + undici)',
    port: FLOOR_H2,
    tls: cert,
    h2: true,
  });
  const all = [nginxTls, wharfEdge, nginxH2, nginxGrpc, wharfGrpc, floorTls, floorH2];
  for (const t of all) {
    if (t.unavailable) throw new Error(`${t.name}: ${t.unavailable}`);
    await t.start();
    log(`up: ${t.name} (pid ${t.pid()})`);
  }
  const rows: Row[] = [
    { name: 'nginx HTTPS, HTTP/1.1 (wrk)', target: nginxTls, load: 'wrk', authority: WHARF_HOST, runs: [] },
    {
      name: 'wharf edge HTTPS, HTTP/1.1 (wrk)',
      target: wharfEdge,
      load: 'wrk',
      authority: WHARF_HOST,
      runs: [],
    },
    { name: 'nginx HTTPS, h2 (h2load)', target: nginxH2, load: 'h2', authority: WHARF_HOST, runs: [] },
    { name: 'wharf edge HTTPS, h2 (h2load)', target: wharfEdge, load: 'h2', authority: WHARF_HOST, runs: [] },
    {
      name: 'nginx grpc_pass, gRPC unary (h2load, h2c)',
      target: nginxGrpc,
      load: 'grpc',
      authority: GRPC_HOST,
      runs: [],
    },
    {
      name: 'wharf internal, gRPC unary (h2load, h2c)',
      target: wharfGrpc,
      load: 'grpc',
      authority: GRPC_HOST,
      runs: [],
    },
    { name: 'floor HTTPS, HTTP/1.1 (wrk)', target: floorTls, load: 'wrk', authority: WHARF_HOST, runs: [] },
    { name: 'floor HTTPS, h2 (h2load)', target: floorH2, load: 'h2', authority: WHARF_HOST, runs: [] },
  ];
  const proxies = all;
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? rows : [...rows].reverse();
    for (const r of order) {
      const frozen = proxies.filter((p) => p !== r.target).map((p) => p.pid());
      for (const pid of frozen) if (pid) signalTree(pid, 'SIGSTOP');
      try {
        await measure(r, round, runDir, body, grpcs);
      } finally {
        for (const pid of frozen) if (pid) signalTree(pid, 'SIGCONT');
      }
    }
  }

  // The kill scenario, once per proxy: SIGKILL one gRPC server 2 s into 6 s of calls.
  const kills: { name: string; ok: number; failed: number; reasons: string[] }[] = [];
  for (const [name, t, port] of [
    ['nginx grpc_pass', nginxGrpc, NGINX_GRPC],
    ['wharf internal', wharfGrpc, WHARF_GRPC],
  ] as const) {
    const frozen = proxies.filter((p) => p !== t).map((p) => p.pid());
    for (const pid of frozen) if (pid) signalTree(pid, 'SIGSTOP');
    try {
      const tally = await killUnderLoad(
        `http://127.0.0.1:${port}`,
        GRPC_HOST,
        () => grpcs.procs[0]?.child.kill('SIGKILL'),
        { concurrency: 32, ms: quick ? 3000 : 6000, atMs: quick ? 1000 : 2000 },
      );
      kills.push({ name, ...tally });
      log(`kill under load, ${name}: ${tally.ok} ok, ${tally.failed} failed ${tally.reasons.join('; ')}`);
    } finally {
      for (const pid of frozen) if (pid) signalTree(pid, 'SIGCONT');
    }
    await grpcs.restart(0);
    // Let both proxies see the instance again before the next scenario.
    await new Promise((r) => setTimeout(r, 3000));
  }

  for (const t of all) await t.stop();
  await grpcs.stop();
  await stopUpstreams(ups);
  const md = report(rows, kills, runDir);
  const out = args.out ?? (quick ? join(runDir, 'h2.md') : join(BENCH_DIR, 'results', 'h2.md'));
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, md);
  process.stdout.write(md);
  log(`wrote ${out}`);
}

async function measure(
  r: Row,
  round: number,
  runDir: string,
  body: string,
  grpcs: GrpcServers,
): Promise<void> {
  await quiet.wait();
  const pid = r.target.pid();
  const t = r.target;
  let res: LoadResult;
  let share: number[] | undefined;
  if (r.load === 'wrk') {
    await runWrk({ url: t.url, host: r.authority, cpus: LOAD_CPU, durationS: 1, latency: false });
    const cpu0 = pid ? treeCpuSeconds(pid) : Number.NaN;
    const w = await runWrk({ url: t.url, host: r.authority, cpus: LOAD_CPU, durationS });
    res = { rps: w.rps, requests: w.requests, failed: w.non2xx, p50ms: w.p50ms, p99ms: w.p99ms };
    r.runs.push({
      round,
      res,
      cpuPer10k: ((pid ? treeCpuSeconds(pid) : Number.NaN) - cpu0) / (w.requests / 10_000),
    });
  } else {
    const extra =
      r.load === 'grpc' ? ['-d', body, '-H', 'content-type: application/grpc', '-H', 'te: trailers'] : [];
    const before = grpcs.counts();
    const cpu0 = pid ? treeCpuSeconds(pid) : Number.NaN;
    // h2load's warm-up (1 s) is inside its run: the CPU of it is counted, and divided over the
    // measured requests only, so CPU per request reads slightly high for both proxies alike.
    // gRPC calls go to the Echo method's path whatever the target's URL says (Wharf's is its root,
    // where a gRPC server answers every call with UNIMPLEMENTED, an HTTP 200 h2load counts as done).
    const url = r.load === 'grpc' ? new URL(GRPC_PATH, t.url).href : t.url;
    res = await runH2load({ url, authority: r.authority, durationS, runDir, extra });
    const cpu = (pid ? treeCpuSeconds(pid) : Number.NaN) - cpu0;
    if (r.load === 'grpc') {
      const after = grpcs.counts();
      const d = after.map((x, i) => x - before[i]!);
      const sum = d.reduce((a, b) => a + b, 0);
      share = d.map((x) => x / sum);
      // h2load counts HTTP 200 as success, and a gRPC error is an HTTP 200 too: the instances' own
      // counts say whether the calls were served (its 1 s of warm-up adds to them).
      if (sum < res.requests * 0.9)
        r.invalid = `round ${round + 1}: h2load saw ${res.requests} answers, the instances served ${sum} calls (a call now: ${await grpcAnswer(t.url, r.authority)})`;
    }
    r.runs.push({
      round,
      res,
      cpuPer10k: cpu / ((res.requests * (durationS + 1)) / durationS / 10_000),
      share,
    });
  }
  log(
    `round ${round + 1}/${rounds} ${r.name}: ${fmtInt(res.rps)} rps, p50 ${fmt(res.p50ms)} ms, p99 ${fmt(res.p99ms)} ms` +
      `${res.failed ? `, FAILED ${res.failed}` : ''}${share ? `, share ${share.map((x) => fmt(x * 100, 1)).join('/')}%` : ''}`,
  );
}

// ---- report --------------------------------------------------------------------------------------

function ratios(a: Row, b: Row, pick: (r: Run) => number): number[] {
  const out: number[] = [];
  for (const run of a.runs) {
    const other = b.runs.find((x) => x.round === run.round);
    if (other) out.push(pick(run) / pick(other));
  }
  return out;
}

function spread(xs: number[]): string {
  if (xs.length === 0) return '-';
  return `${fmt(median(xs))}x (middle half ${fmt(percentile(xs, 25))}-${fmt(percentile(xs, 75))}, ${xs.length} rounds)`;
}

function report(
  rows: Row[],
  kills: { name: string; ok: number; failed: number; reasons: string[] }[],
  runDir: string,
): string {
  const L: string[] = [];
  const rps = (r: Run) => r.res.rps;
  const cpu = (r: Run) => r.cpuPer10k;
  L.push('# HTTP/2 and gRPC: Wharf vs nginx', '');
  L.push(`Date: ${new Date().toISOString()}. Run dir: \`${runDir}\`.`, '');
  if (quick) L.push('**QUICK SMOKE RUN: too short and too few rounds to quote.**', '');
  L.push('## Machine', '');
  for (const l of machineInfo(REPO_DIR)) L.push(`* ${l}`);
  L.push('', '## Method', '');
  L.push(
    `* Each proxy pinned to CPU ${PROXY_CPU}; the load generator pinned to CPU ${LOAD_CPU}; the other proxies frozen (SIGSTOP) while a row runs. ${rounds} interleaved round(s) of ${durationS} s per row, forward then reversed; a quiet machine awaited before each run.`,
    "* HTTP/1.1 rows: `wrk -t1 -c64` after 1 s of warm-up. h2 rows: `h2load -t1 -c16 -m4` (64 streams in flight, as wrk's 64 connections) with 1 s of warm-up, over TLS with ALPN h2; latencies from h2load's per-request log. Upstreams: the three node:http servers of `npm run bench` (100-byte body), over HTTP/1.1 keep-alive from both proxies.",
    `* gRPC rows: h2load over h2c with one fixed unary Echo call (\`${GRPC_PATH}\`, 12-byte request) to three grpc-js servers (\`bench/grpc-upstream.ts\`); nginx \`grpc_pass\` (\`bench/conf/nginx-grpc.conf\`), Wharf's internal tier with \`protocol: h2c\`. Share: calls each server answered during the measured run.`,
    '* CPU s / 10k: user+system CPU of the proxy process tree per 10,000 requests. Configs: `bench/conf/nginx-https.conf`, `bench/conf/nginx-h2.conf`, `bench/conf/nginx-grpc.conf`; Wharf configs in the run dir.',
    '',
  );
  L.push('## Results', '');
  L.push(
    '| row | median rps | p50 ms | p99 ms | CPU s / 10k req | failed | per-round rps | share of calls per instance (median) |',
  );
  L.push('|---|---:|---:|---:|---:|---:|---|---|');
  for (const r of rows) {
    const m = (f: (x: Run) => number) => median(r.runs.map(f));
    const shares = r.runs[0]?.share
      ? r.runs[0].share.map((_, i) => `${fmt(median(r.runs.map((x) => x.share![i]!)) * 100, 1)}%`).join(' / ')
      : '';
    if (r.invalid) {
      L.push(`| ${r.name} | INVALID: ${r.invalid} | | | | | | |`);
      continue;
    }
    L.push(
      `| ${r.name} | ${fmtInt(m(rps))} | ${fmt(m((x) => x.res.p50ms))} | ${fmt(m((x) => x.res.p99ms))} | ${fmt(m(cpu), 3)} | ` +
        `${r.runs.reduce((a, x) => a + x.res.failed, 0)} | ${r.runs.map((x) => fmtInt(x.res.rps)).join(' / ')} | ${shares} |`,
    );
  }
  const [nTls, wTls, nH2, wH2, nG, wG, fTls, fH2] = rows;
  const h1frac = ratios(wTls!, nTls!, rps);
  const h2frac = ratios(wH2!, nH2!, rps);
  const perRound = wH2!.runs.map((run) => {
    const a = h2frac[wH2!.runs.indexOf(run)] ?? Number.NaN;
    const b = h1frac[wH2!.runs.indexOf(run)] ?? Number.NaN;
    return a / b;
  });
  L.push('', '## Targets (issue 21)', '');
  L.push(
    `* Wharf h2 at least the same fraction of nginx h2 as Wharf HTTP/1.1 is of nginx HTTP/1.1: h2 ${spread(h2frac)} of nginx, HTTP/1.1 ${spread(h1frac)}; (h2 fraction) / (HTTP/1.1 fraction) ${spread(perRound)}: **${median(perRound) >= 1 ? 'met' : 'NOT met'}**${quick ? ' [quick run]' : ''}.`,
    `  * p99: Wharf / nginx h2 ${spread(ratios(wH2!, nH2!, (r) => r.res.p99ms))}; CPU per request Wharf / nginx h2 ${spread(ratios(wH2!, nH2!, cpu))}.`,
    `  * Against the bare stacks under it (node:https or node:http2 in front, undici behind, nothing on top): Wharf / floor HTTP/1.1 ${spread(ratios(wTls!, fTls!, rps))}, Wharf / floor h2 ${spread(ratios(wH2!, fH2!, rps))} rps; the floors themselves: h2 floor / nginx h2 ${spread(ratios(fH2!, nH2!, rps))}, HTTP/1.1 floor / nginx HTTP/1.1 ${spread(ratios(fTls!, nTls!, rps))}. Where Wharf / floor is about the same for both protocols, the h2 gap is node:http2's, not Wharf's.`,
    `* gRPC calls per second, Wharf / nginx grpc_pass: ${spread(ratios(wG!, nG!, rps))}; p99 ${spread(ratios(wG!, nG!, (r) => r.res.p99ms))}; CPU per call ${spread(ratios(wG!, nG!, cpu))}.`,
  );
  for (const r of [nG!, wG!]) {
    const worst = Math.max(
      ...r.runs.flatMap((x) => (x.share ?? []).map((s) => Math.abs(s - 1 / 3) / (1 / 3))),
    );
    L.push(
      `* Per-call balance, ${r.name}: worst instance over all rounds ${fmt(worst * 100, 1)}% from a third: **${worst <= 0.05 ? 'within' : 'NOT within'} +-5%**.`,
    );
  }
  for (const k of kills)
    L.push(
      `* One of three gRPC servers SIGKILLed under load (32 calls in flight on one connection, 6 s), ${k.name}: ${k.ok} calls ok, **${k.failed} failed**${k.reasons.length ? ` (${k.reasons.join('; ')})` : ''}.`,
    );
  L.push(
    '',
    '## Per-round values',
    '',
    '| round | row | rps | p50 ms | p99 ms | CPU s / 10k | failed |',
    '|---:|---|---:|---:|---:|---:|---:|',
  );
  for (const r of rows)
    for (const x of r.runs)
      L.push(
        `| ${x.round + 1} | ${r.name} | ${fmtInt(x.res.rps)} | ${fmt(x.res.p50ms)} | ${fmt(x.res.p99ms)} | ${fmt(x.cpuPer10k, 3)} | ${x.res.failed} |`,
      );
  L.push('');
  return `${L.join('\n')}\n`;
}

main()
  .catch((e) => {
    log(`FAILED: ${(e as Error).stack ?? e}`);
    process.exitCode = 1;
  })
  .finally(async () => {
    await stopAll();
  });
