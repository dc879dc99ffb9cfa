// `npm run bench`: throughput and latency of Wharf against nginx, HAProxy and a naive Node proxy,
// measured like the reference run in shared/reference/peer-baselines.md: three Node upstreams,
// proxy pinned to CPU 0, wrk -t1 -c64 pinned to CPU 1, warm-up + fixed measured duration,
// interleaved rounds, wait for a quiet machine before each run.
//
// Many short rounds rather than a few long ones, and rows that are compared run next to each other
// (nginx | wharf | wharf + logs | wharf HTTPS | nginx HTTPS), forward in one round and reversed in the
// next. Why: this VM's speed changes in steps of up to 2-3x that last seconds to minutes (the same
// process measured 32 and 92 CPU-us per request a minute apart; the guest sees no steal time), so a
// ratio is only meaningful between runs a few seconds apart, and the median over many such pairs
// is what survives the steps.
//
//   npm run bench                           # 8 rounds x 5 s, writes bench/results/throughput.md
//   npm run bench -- --rounds 12 --duration 5
//   npm run bench -- --quick                # smoke run (1 round x 3 s), report in the run dir
//   npm run bench -- --cpu-prof             # also profile Wharf and print the top self-time functions
//   npm run bench -- --only nginx,wharf     # subset (row names starting with these)
//   npm run bench -- --only '=wharf,wharf +' # '=' matches the whole name: the plain Wharf row alone
//   npm run bench -- --paired 12            # paired windows for issue 5 (default 10; 0 = none)
//
// Issue 5 (the cost of logging) is decided by paired windows (bench/lib/paired.ts): "wharf" and
// "wharf + access log" pinned to the same CPU and loaded at the same time, which cancels the VM's
// speed steps that sequential rounds cannot, with a same-program pair as the control.

import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { busyMs, type CpuProfile, type SelfTime, topSelfTime } from './lib/cpuprofile.ts';
import { ensureTools, which } from './lib/install.ts';
import {
  cpuUsPerRequest,
  type PairedSummary,
  type PairedWindow,
  runPairedWindow,
  summarizePaired,
  throughputCost,
} from './lib/paired.ts';
import { QuietWaiter, signalTree, stopAll, treeCpuSeconds, treePeakRssMiB } from './lib/procs.ts';
import { fmt, fmtInt, median, percentile } from './lib/stats.ts';
import { machineInfo } from './lib/sysinfo.ts';
import {
  adminPortOf,
  BENCH_DIR,
  baseWharfConfig,
  benchProject,
  caddyTarget,
  directTarget,
  haproxyTarget,
  makeCert,
  makeRunDir,
  nginxTarget,
  nodeProxyTarget,
  PORTS,
  probeTarget,
  REPO_DIR,
  startUpstreams,
  stopUpstreams,
  type Target,
  type WharfVariant,
  wharfPresent,
  wharfTarget,
} from './lib/targets.ts';
import { runWrk, type WrkResult, wrkArgs } from './lib/wrk.ts';

const PROXY_CPU = '0';
const LOAD_CPU = '1';

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string' },
    rounds: { type: 'string' },
    warmup: { type: 'string' },
    quick: { type: 'boolean', default: false },
    'cpu-prof': { type: 'boolean', default: false },
    only: { type: 'string' },
    out: { type: 'string' },
    paired: { type: 'string' },
    'quiet-max': { type: 'string' },
    'quiet-threshold': { type: 'string' },
    'quiet-budget': { type: 'string' },
  },
});
const quick = args.quick!;
const durationS = Number(args.duration ?? (quick ? 3 : 5));
const rounds = Number(args.rounds ?? (quick ? 1 : 8));
const warmupS = Number(args.warmup ?? 1);
const pairedWindows = Number(args.paired ?? (quick ? 1 : 10));
/** The first round's warm-up is longer: V8 is still compiling the Node proxies' hot paths then. */
const firstWarmupS = Math.max(warmupS, quick ? 1 : 3);
/**
 * Warm-up of each paired window's fresh processes. The logging process takes longer to reach its
 * steady state: with 1, 3 and 6 s of warm-up its measured cost was 24%, 9.9% and 7.0% (2026-12-05);
 * a long-running proxy lives at the steady state.
 */
const pairedWarmupS = Math.max(firstWarmupS, quick ? 1 : 6);
const quietMaxMs = Number(args['quiet-max'] ?? (quick ? 2 : 60)) * 1000;
const quietThreshold = Number(args['quiet-threshold'] ?? 0.1);
/** Total time all quiet-machine waits of one invocation may take. */
const quietBudgetMs = Number(args['quiet-budget'] ?? (quick ? 10 : 300)) * 1000;
const quiet = new QuietWaiter(quietThreshold, quietMaxMs, quietBudgetMs);
if (
  !(
    durationS > 0 &&
    durationS <= 600 &&
    rounds >= 1 &&
    rounds <= 50 &&
    warmupS >= 0 &&
    warmupS <= 60 &&
    Number.isInteger(pairedWindows) &&
    pairedWindows >= 0 &&
    pairedWindows <= 50
  )
) {
  console.error('bad --duration (1-600), --rounds (1-50), --warmup (0-60) or --paired (0-50)');
  process.exit(2);
}

// ---- Wharf rows ----------------------------------------------------------------------------------
// Each row is a config variant. A variant whose keys Wharf rejects (`check-config` exits 2, e.g.
// because the feature has not landed yet) is reported as "not available: <reason>".

const WHARF = 'wharf';
const WHARF_LOGS = 'wharf + access log to file + metrics';
const WHARF_HTTPS = 'wharf edge HTTPS';
const UNDICI_FLOOR = 'undici floor (node:http + undici, nothing on top)';
const UNDICI_FLOOR_HTTPS = 'undici floor HTTPS (node:https + undici, nothing on top)';
/** Only in the paired windows: the plain "wharf" config again, the A/A control. */
const WHARF_TWIN = 'wharf twin (A/A control)';

/**
 * Run order within a round (reversed every other round): rows that are compared sit side by side.
 * Rows not listed run first, in their table order.
 */
const ADJACENT = [
  'direct',
  'node-proxy',
  'haproxy',
  UNDICI_FLOOR,
  'nginx (1 worker',
  'caddy',
  WHARF,
  WHARF_LOGS,
  WHARF_HTTPS,
  'nginx HTTPS',
  UNDICI_FLOOR_HTTPS,
];
function runRank(name: string): number {
  // Exact names first: 'wharf' is also a prefix of the other Wharf rows.
  const exact = ADJACENT.indexOf(name);
  return exact >= 0 ? exact : ADJACENT.findIndex((a) => name.startsWith(a));
}

const wharfVariants: WharfVariant[] = [
  { name: WHARF, port: PORTS.wharf, config: () => baseWharfConfig(PORTS.wharf) },
  {
    name: WHARF_LOGS,
    port: PORTS.wharfLogs,
    scrapeMetrics: true,
    config: ({ runDir }) => ({
      ...baseWharfConfig(PORTS.wharfLogs),
      logs: { dir: join(runDir, 'wharf-logs'), access: true },
    }),
  },
  {
    name: WHARF_HTTPS,
    port: PORTS.wharfHttps,
    https: true,
    config: ({ cert }) => ({
      ...baseWharfConfig(PORTS.wharfHttps),
      tier: 'edge',
      tls: { certificates: [{ hosts: ['*.bench.local', 'bench.local'], cert: cert?.cert, key: cert?.key }] },
      projects: benchProject({ public: true }),
    }),
  },
];

type Run = WrkResult & { cpuPer10k: number; foreign: number; round: number; metricsScrapes?: string };

interface Row {
  target: Target;
  runs: Run[];
  rssMiB?: number;
  commandLine?: string;
  error?: string;
}

function log(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

async function main(): Promise<void> {
  const runDir = makeRunDir('throughput');
  log(`run dir ${runDir}`);
  const missing = ensureTools(['nginx', 'haproxy', 'caddy', 'wrk']);
  if (!which('wrk')) throw new Error(`wrk is required: ${missing.get('wrk') ?? 'not found'}`);
  if (!which('taskset')) throw new Error('taskset (util-linux) is required');
  const cert = makeCert(runDir);
  const certOk = typeof cert === 'string' ? undefined : cert;

  const ups = await startUpstreams(runDir, false);
  const profDir = join(runDir, 'prof');
  let profile: SelfTime[] | undefined;
  const readProfile = () => {
    try {
      // One profile per thread (tsx's module loader runs in a worker): take the busiest.
      const profiles = readdirSync(profDir)
        .filter((x) => x.endsWith('.cpuprofile'))
        .map((x) => JSON.parse(readFileSync(join(profDir, x), 'utf8')) as CpuProfile);
      const main = profiles.sort((a, b) => busyMs(b) - busyMs(a))[0];
      if (main) profile = topSelfTime(main, 15);
    } catch (e) {
      log(`could not read the CPU profile: ${(e as Error).message}`);
    }
  };
  const profArgs = args['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [];

  const targets: Target[] = [
    directTarget(ups[0]!),
    nginxTarget({ runDir, cpus: PROXY_CPU }),
    haproxyTarget({ runDir, cpus: PROXY_CPU }),
    caddyTarget({ runDir, cpus: PROXY_CPU }),
    nodeProxyTarget({ runDir, cpus: PROXY_CPU }),
    // What the mandated stack does with nothing on top: the ceiling for any Wharf row.
    nodeProxyTarget({
      runDir,
      cpus: PROXY_CPU,
      name: UNDICI_FLOOR,
      port: PORTS.undiciFloor,
      script: 'undici-floor.ts',
    }),
  ];
  if (wharfPresent()) {
    for (const v of wharfVariants) {
      const t = wharfTarget({
        runDir,
        variant: v,
        cpus: PROXY_CPU,
        cert: certOk,
        nodeArgs: v.name === WHARF ? profArgs : [],
        afterStop: v.name === WHARF && profArgs.length ? readProfile : undefined,
      });
      if (v.https && !certOk) t.unavailable = String(cert);
      targets.push(t);
    }
  } else {
    // Until the lead's CLI lands, the naive proxy stands in so the harness can be exercised.
    log('bin/wharf.js not found: using the naive node proxy as a stand-in for the "wharf" row');
    targets.push(
      nodeProxyTarget({
        runDir,
        cpus: PROXY_CPU,
        port: PORTS.wharf,
        name: `${WHARF} (STAND-IN: naive node proxy)`,
        nodeArgs: profArgs,
        afterStop: profArgs.length ? readProfile : undefined,
      }),
    );
    for (const v of wharfVariants.slice(1)) {
      targets.push({ ...nodeProxyTarget({ runDir }), name: v.name, unavailable: 'bin/wharf.js not present' });
    }
  }
  const https = nginxTarget({ runDir, cpus: PROXY_CPU, tls: certOk });
  if (!certOk) https.unavailable = String(cert);
  targets.push(https);
  const floorHttps = nodeProxyTarget({
    runDir,
    cpus: PROXY_CPU,
    name: UNDICI_FLOOR_HTTPS,
    port: PORTS.undiciFloorHttps,
    script: 'undici-floor.ts',
    tls: certOk,
  });
  if (!certOk) floorHttps.unavailable = String(cert);
  targets.push(floorHttps);

  for (const t of targets) {
    if (t.name.startsWith('nginx') && missing.has('nginx')) t.unavailable = missing.get('nginx');
    if (t.name.startsWith('haproxy') && missing.has('haproxy')) t.unavailable = missing.get('haproxy');
    if (t.name.startsWith('caddy') && missing.has('caddy')) t.unavailable = missing.get('caddy');
  }
  const only = args.only?.split(',').map((s) => s.trim().toLowerCase());
  const selected = targets.filter(
    (t) =>
      !only ||
      only.some((o) =>
        o.startsWith('=') ? t.name.toLowerCase() === o.slice(1) : t.name.toLowerCase().startsWith(o),
      ),
  );
  const rows: Row[] = selected.map((target) => ({ target, runs: [] }));

  for (const r of rows) {
    if (r.target.unavailable) continue;
    try {
      await r.target.start();
      const bad = await probeTarget(r.target);
      if (bad) throw new Error(bad);
      log(`up: ${r.target.name} (pid ${r.target.pid() ?? '-'})`);
    } catch (e) {
      r.target.unavailable = `failed to start: ${(e as Error).message}`;
      log(`${r.target.name}: ${r.target.unavailable}`);
      await r.target.stop();
    }
  }

  const active = rows
    .filter((r) => !r.target.unavailable)
    .sort((a, b) => runRank(a.target.name) - runRank(b.target.name));
  const upstreamPids = new Set(ups.map((u) => u.proc?.pid));
  const proxies = active.map((r) => r.target).filter((t) => !upstreamPids.has(t.pid()));
  for (let round = 0; round < rounds; round++) {
    // ABBA: forward, then reversed, so no row always runs before its partner.
    const order = round % 2 === 0 ? active : [...active].reverse();
    for (const r of order) {
      const t = r.target;
      const thaw = freezeAllBut(proxies, [t]);
      try {
        await measureRow(r, round);
      } finally {
        thaw();
      }
    }
  }
  for (const r of active) {
    const pid = r.target.pid();
    if (pid) r.rssMiB = treePeakRssMiB(pid);
  }
  const thaw = freezeAllBut(
    proxies,
    active.map((r) => r.target).filter((t) => t.name === WHARF || t.name === WHARF_LOGS),
  );
  const paired = await runPaired(active, runDir).finally(thaw);
  for (const r of rows) await r.target.stop();
  await stopUpstreams(ups);
  const md = report(rows, runDir, profile, paired);
  const out =
    args.out ?? (quick ? join(runDir, 'throughput.md') : join(BENCH_DIR, 'results', 'throughput.md'));
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, md);
  process.stdout.write(md);
  log(`wrote ${out}`);
  if (profile) {
    log('top self-time functions (Wharf):');
    for (const p of profile) log(`  ${fmt(p.share * 100, 1)}%  ${fmt(p.selfMs, 0)} ms  ${p.fn}  ${p.where}`);
  }
}

/**
 * Freezes (SIGSTOP) every proxy of `all` except `measured`; returns the function that thaws them. All
 * proxies are pinned to the same CPU, and one that is idle still runs timers, health probes and GC
 * there (an idle Wharf used about 8 ms of CPU a second), at moments no row chooses.
 */
function freezeAllBut(all: readonly Target[], measured: readonly Target[]): () => void {
  const pids = all
    .filter((t) => !measured.includes(t))
    .map((t) => t.pid())
    .filter((p): p is number => p !== undefined);
  for (const p of pids) signalTree(p, 'SIGSTOP');
  return () => {
    for (const p of pids) signalTree(p, 'SIGCONT');
  };
}

/** One measured run of one row: warm-up, then wrk with CPU accounting (and /metrics scrapes). */
async function measureRow(r: Row, round: number): Promise<void> {
  const t = r.target;
  const foreign = await quiet.wait();
  const base = { url: t.url, host: t.hostHeader, cpus: LOAD_CPU };
  const warm = round === 0 ? firstWarmupS : warmupS;
  if (warm > 0) await runWrk({ ...base, durationS: warm, latency: false });
  const pid = t.pid();
  const cpu0 = pid ? treeCpuSeconds(pid) : Number.NaN;
  const variant = wharfVariants.find((v) => v.name === t.name);
  const scraper = variant?.scrapeMetrics ? scrapeMetrics(adminPortOf(variant.port)) : undefined;
  const res = await runWrk({ ...base, durationS });
  const scrapes = scraper?.stop();
  const cpu = pid ? treeCpuSeconds(pid) - cpu0 : Number.NaN;
  r.commandLine = wrkArgs({ ...base, durationS })
    .map((a) => (/[\s']/.test(a) ? `'${a}'` : a))
    .join(' ');
  r.runs.push({
    ...res,
    cpuPer10k: (cpu / res.requests) * 10_000,
    foreign,
    round,
    metricsScrapes: scrapes,
  });
  const errs = res.non2xx + res.socketErrors.connect + res.socketErrors.read + res.socketErrors.timeout;
  log(
    `round ${round + 1}/${rounds} ${t.name}: ${fmtInt(res.rps)} rps, p50 ${fmt(res.p50ms)} ms, p99 ${fmt(res.p99ms)} ms, ` +
      `cpu ${fmt(cpu, 2)} s, foreign cpu ${fmt(foreign * 100, 0)}%${errs ? `, ERRORS ${errs}` : ''}`,
  );
}

interface PairedResult {
  readonly logs: PairedWindow[];
  readonly control: PairedWindow[];
  readonly skipped?: string;
}

/**
 * Issue 5's decider: windows of "wharf" against "wharf + access log" (scraped as in its row) and of
 * "wharf" against its twin, alternating, both processes of a pair on the proxy CPU at once. Every
 * window starts its two processes afresh: two processes of the same code can settle into JIT states
 * that differ by a few percent for their whole life, so one long-lived process per side would carry
 * its luck into every window.
 */
async function runPaired(active: Row[], runDir: string): Promise<PairedResult> {
  const none = (skipped: string): PairedResult => ({ logs: [], control: [], skipped });
  if (pairedWindows === 0) return none('--paired 0');
  const plain = active.find((r) => r.target.name === WHARF)?.target;
  const logs = active.find((r) => r.target.name === WHARF_LOGS)?.target;
  if (!plain || !logs) return none(`needs the "${WHARF}" and "${WHARF_LOGS}" rows`);
  const twin = wharfTarget({
    runDir,
    cpus: PROXY_CPU,
    variant: { name: WHARF_TWIN, port: PORTS.wharfTwin, config: () => baseWharfConfig(PORTS.wharfTwin) },
  });
  if (twin.unavailable) return none(`control: ${twin.unavailable}`);
  const restart = async (t: Target) => {
    await t.stop();
    await t.start();
    const bad = await probeTarget(t);
    if (bad) throw new Error(`${t.name}: ${bad}`);
  };
  const result: PairedResult = { logs: [], control: [] };
  const logsVariant = wharfVariants.find((v) => v.name === WHARF_LOGS);
  const scrape = logsVariant?.scrapeMetrics ? () => scrapeMetrics(adminPortOf(logsVariant.port)) : undefined;
  try {
    await logs.stop();
    for (let i = 0; i < pairedWindows; i++) {
      const kinds = i % 2 === 0 ? (['logs', 'control'] as const) : (['control', 'logs'] as const);
      for (const kind of kinds) {
        const other = kind === 'logs' ? logs : twin;
        await Promise.all([plain, other].map(restart));
        await quiet.wait();
        const o = { durationS, warmupS: pairedWarmupS, loadCpus: LOAD_CPU };
        const w = await runPairedWindow(i, plain, other, kind === 'logs' ? { ...o, besideB: scrape } : o);
        await other.stop();
        result[kind].push(w);
        log(
          `paired ${i + 1}/${pairedWindows} ${kind}: ${fmt(cpuUsPerRequest(w.a), 1)} vs ${fmt(cpuUsPerRequest(w.b), 1)} CPU-us/req, ` +
            `cost ${fmt(throughputCost(w) * 100, 1)}%, rps ${fmtInt(w.a.rps)} / ${fmtInt(w.b.rps)}`,
        );
      }
    }
  } catch (e) {
    return { ...result, skipped: `failed: ${(e as Error).message}` };
  } finally {
    await twin.stop();
  }
  return result;
}

/** Polls the admin /metrics endpoint once a second (like an eager Prometheus) while loaded. */
function scrapeMetrics(port: number): { stop(): string } {
  let ok = 0;
  let bad = 0;
  let bytes = 0;
  const timer = setInterval(() => {
    const req = http.get({ host: '127.0.0.1', port, path: '/metrics', timeout: 2000 }, (res) => {
      res.on('data', (c: Buffer) => {
        bytes += c.length;
      });
      res.on('end', () => (res.statusCode === 200 ? ok++ : bad++));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => bad++);
  }, 1000);
  return {
    stop() {
      clearInterval(timer);
      return `${ok} ok / ${bad} failed scrapes, ${Math.round(bytes / Math.max(1, ok))} bytes each`;
    },
  };
}

// ---- report --------------------------------------------------------------------------------------

interface Summary {
  rps: number;
  p50: number;
  p99: number;
  cpu: number;
}

function summary(r: Row): Summary {
  return {
    rps: median(r.runs.map((x) => x.rps)),
    p50: median(r.runs.map((x) => x.p50ms)),
    p99: median(r.runs.map((x) => x.p99ms)),
    cpu: median(r.runs.map((x) => x.cpuPer10k)),
  };
}

/** (row / reference) within each round: the two ran seconds apart, on the same machine speed. */
function sameRoundRatios(r: Row, ref: Row | undefined, pick: (w: Run) => number): number[] {
  if (!ref) return [];
  const ratios: number[] = [];
  for (const run of r.runs) {
    const other = ref.runs.find((x) => x.round === run.round);
    if (other) ratios.push(pick(run) / pick(other));
  }
  return ratios;
}

/** Median over rounds of the same-round ratio, as in the reference run. */
function sameRoundRatio(r: Row, ref: Row | undefined, pick: (w: Run) => number): number {
  return median(sameRoundRatios(r, ref, pick));
}

/** "0.55x (middle half 0.52-0.58, 8 rounds)": the median and the spread a reader should weigh it by. */
function ratioSpread(r: Row, ref: Row | undefined, pick: (w: Run) => number): string {
  const xs = sameRoundRatios(r, ref, pick);
  if (xs.length === 0) return '-';
  return `${fmt(median(xs))}x (middle half ${fmt(percentile(xs, 25))}-${fmt(percentile(xs, 75))}, ${xs.length} rounds)`;
}

/** "8.1% (middle half 6.0-9.5%, 8 windows)" */
function costSpread(s: PairedSummary): string {
  const pct = (x: number) => fmt(x * 100, 1);
  return `${pct(s.cost)}% (middle half ${pct(s.costQ1)}-${pct(s.costQ3)}%, ${s.windows} windows)`;
}

function report(rows: Row[], runDir: string, profile: SelfTime[] | undefined, paired: PairedResult): string {
  const find = (prefix: string) => rows.find((r) => r.target.name.startsWith(prefix) && r.runs.length > 0);
  const nginx = rows.find((r) => r.target.name === 'nginx (1 worker, pinned)' && r.runs.length > 0);
  const nginxTls = find('nginx HTTPS');
  const wharfAny = rows.find(
    (r) => r.target.name === WHARF || r.target.name.startsWith(`${WHARF} (STAND-IN`),
  );
  const wharfLogs = rows.find((r) => r.target.name === WHARF_LOGS);
  const wharfTls = rows.find((r) => r.target.name === WHARF_HTTPS);
  const floor = rows.find((r) => r.target.name === UNDICI_FLOOR && r.runs.length > 0);
  const caddy = find('caddy');
  const floorTls = rows.find((r) => r.target.name === UNDICI_FLOOR_HTTPS && r.runs.length > 0);
  const refOf = (r: Row) => (r.target.url.startsWith('https') ? nginxTls : nginx);
  const L: string[] = [];
  L.push('# Throughput and latency: Wharf vs nginx, HAProxy, Caddy and a naive Node proxy', '');
  L.push(`Date: ${new Date().toISOString()}. Run dir (configs, logs): \`${runDir}\`.`, '');
  if (quick)
    L.push('**QUICK SMOKE RUN: too short and too few rounds to quote. Do not compare these numbers.**', '');
  if (rows.some((r) => r.target.name.includes('STAND-IN')))
    L.push('**The "wharf" row is a STAND-IN (the naive node proxy): bin/wharf.js was not present.**', '');
  L.push('## Machine', '');
  for (const l of machineInfo(REPO_DIR)) L.push(`* ${l}`);
  L.push('', '## Method', '');
  L.push(
    `* Three node:http upstreams (\`bench/upstream.ts\`, 100-byte body, keep-alive) on 127.0.0.1:${PORTS.upstreams.join(', ')}, not pinned.`,
    `* Each proxy pinned to CPU ${PROXY_CPU} with \`taskset\`; wrk pinned to CPU ${LOAD_CPU}: \`taskset -c ${LOAD_CPU} wrk -t1 -c64 -d${durationS}s --latency -H 'Host: bench.bench.local' URL\` after a warm-up (discarded). The other proxies are frozen (SIGSTOP) while a row runs, so their timers, probes and GC do not share its CPU; the upstreams are never frozen.`,
    `* ${rounds} interleaved round(s) of ${durationS} s per row. Rows that are compared run next to each other, forward in one round and reversed in the next (the VM's speed changes in steps lasting seconds to minutes, so only runs seconds apart compare). Warm-up ${firstWarmupS} s in the first round, ${warmupS} s after. Before each run the harness waits (at most ${quietMaxMs / 1000} s per run, ${quietBudgetMs / 1000} s in all${quiet.exhausted ? ': this budget ran out, so later runs started on a busy machine' : ''}) until CPU used by processes that are not ours is below ${quietThreshold * 100}% of one core; the value seen is recorded per run ("foreign").`,
    '* rps, p50 and p99 are medians over rounds, each metric separately. "x nginx" columns are the median over rounds of the ratio to nginx *in the same round* (HTTPS rows: to nginx HTTPS).',
    '* CPU s / 10k req: user+system CPU of the proxy process tree (nginx: master + worker) during the measured run, per 10,000 requests. For "direct", the upstream\'s. Peak RSS: VmHWM summed over the process tree, at the end of the run.',
    '* Configs: `bench/conf/nginx.conf`, `bench/conf/haproxy.cfg`, `bench/conf/Caddyfile` (copies of shared/reference/peer-configs; Caddy runs with GOMAXPROCS=1), `bench/conf/nginx-https.conf`; Wharf configs are generated into the run dir (`wharf-<port>.yaml`).',
    '',
  );
  L.push('## Results', '');
  L.push(
    '| target | median rps | p50 ms | p99 ms | rps x nginx | p99 x nginx | CPU s / 10k req | peak RSS MiB | errors | per-round rps |',
  );
  L.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---|');
  for (const r of rows) {
    if (r.target.unavailable || r.runs.length === 0) {
      L.push(
        `| ${r.target.name} | not available: ${(r.target.unavailable ?? 'no runs').replaceAll('|', '/')} | | | | | | | | |`,
      );
      continue;
    }
    const s = summary(r);
    const ref = refOf(r);
    const errs = r.runs.reduce(
      (a, x) =>
        a +
        x.non2xx +
        x.socketErrors.connect +
        x.socketErrors.read +
        x.socketErrors.write +
        x.socketErrors.timeout,
      0,
    );
    L.push(
      `| ${r.target.name} | ${fmtInt(s.rps)} | ${fmt(s.p50)} | ${fmt(s.p99)} | ${fmt(sameRoundRatio(r, ref, (w) => w.rps))} | ` +
        `${fmt(sameRoundRatio(r, ref, (w) => w.p99ms))} | ${fmt(s.cpu, 3)} | ${fmt(r.rssMiB ?? Number.NaN, 1)} | ${errs} | ` +
        `${r.runs.map((x) => fmtInt(x.rps)).join(' / ')} |`,
    );
  }
  L.push('', '## Targets (issues 2, 5, 7)', '');
  const allRuns = rows.flatMap((r) => r.runs);
  const noisy = allRuns.filter((x) => x.foreign >= quietThreshold).length;
  if (noisy > 0)
    L.push(
      `**${noisy} of ${allRuns.length} runs started while other processes used >= ${quietThreshold * 100}% of a core: these figures are contaminated by foreign load.**`,
      '',
    );
  const caveat = quick ? ' [quick run: not a verdict]' : noisy > 0 ? ' [noisy machine]' : '';
  const verdict = (ok: boolean | undefined, detail: string) =>
    `${ok === undefined ? 'not measured' : ok ? '**met**' : '**NOT met**'} (${detail})${caveat}`;
  const standIn = wharfAny?.target.name.includes('STAND-IN') ? ' [stand-in, not Wharf]' : '';
  if (wharfAny?.runs.length && nginx) {
    const rps = (w: WrkResult) => w.rps;
    const p99 = (w: WrkResult) => w.p99ms;
    const rr = sameRoundRatio(wharfAny, nginx, rps);
    const pr = sameRoundRatio(wharfAny, nginx, p99);
    L.push(
      `* Issue 2: Wharf >= 0.6x nginx rps: ${verdict(rr >= 0.6, ratioSpread(wharfAny, nginx, rps))}${standIn}`,
    );
    L.push(
      `* Issue 2: Wharf p99 <= 1.5x nginx p99: ${verdict(pr <= 1.5, ratioSpread(wharfAny, nginx, p99))}${standIn}`,
    );
    if (floor?.runs.length)
      L.push(
        `  * For scale, the bare node:http + undici stack Wharf is built on: ${ratioSpread(floor, nginx, rps)} rps; Wharf / floor ${ratioSpread(wharfAny, floor, rps)}.`,
      );
    // The targets set after issues 2 and 7: against the floor (rps) and against Caddy (per core).
    const cpu = (w: Run) => w.cpuPer10k;
    if (floor?.runs.length) {
      const fr = sameRoundRatio(wharfAny, floor, rps);
      L.push(
        `* Wharf >= 0.95x the node:http + undici floor rps: ${verdict(fr >= 0.95, ratioSpread(wharfAny, floor, rps))}${standIn}; CPU per request Wharf / floor ${ratioSpread(wharfAny, floor, cpu)}`,
      );
    }
    if (caddy?.runs.length) {
      // Throughput per core is 1 / CPU per request: Wharf per core / Caddy per core = Caddy CPU / Wharf CPU.
      const perCore = sameRoundRatios(caddy, wharfAny, cpu);
      const pc = median(perCore);
      L.push(
        `* Wharf >= 1.3x Caddy per core: ${verdict(pc >= 1.3, `${fmt(pc)}x (middle half ${fmt(percentile(perCore, 25))}-${fmt(percentile(perCore, 75))}, ${perCore.length} rounds; CPU per request Caddy / Wharf)`)}${standIn}; rps Wharf / Caddy ${ratioSpread(wharfAny, caddy, rps)}; Caddy / nginx ${ratioSpread(caddy, nginx, rps)} rps`,
      );
    }
  } else
    L.push(
      `* Issue 2: Wharf >= 0.6x nginx rps and p99 <= 1.5x: not measured (${wharfAny?.target.unavailable ?? 'missing row'})`,
    );
  const pairedLogs = paired.logs.length ? summarizePaired(paired.logs) : undefined;
  const pairedControl = paired.control.length ? summarizePaired(paired.control) : undefined;
  if (pairedLogs) {
    L.push(
      `* Issue 5: access log + metrics cost <= 10% of throughput: ${verdict(pairedLogs.cost <= 0.1, `paired windows: ${costSpread(pairedLogs)} of "wharf"'s throughput at equal CPU; request rate while sharing the core ${fmt(pairedLogs.rpsRatio)}x`)}`,
      `  * The A/A control (the same config on both sides) reads ${pairedControl ? costSpread(pairedControl) : 'nothing (not run)'}: the method's own error.`,
    );
  }
  if (wharfLogs?.runs.length && wharfAny?.runs.length) {
    const xs = sameRoundRatios(wharfLogs, wharfAny, (w) => w.rps);
    const rr = median(xs);
    const slower = (x: number) => fmt((1 - x) * 100, 1);
    const detail = `${slower(rr)}% slower than "wharf" in the same round; middle half ${slower(percentile(xs, 75))}-${slower(percentile(xs, 25))}%, ${xs.length} rounds`;
    if (pairedLogs)
      L.push(`  * Sequential rounds (the table above; not the decider, see "Paired windows"): ${detail}.`);
    else
      L.push(
        `* Issue 5: access log + metrics cost <= 10% of throughput: ${verdict(rr >= 0.9, `${detail}; no paired windows: ${paired.skipped ?? 'none'}`)}`,
      );
    const scr = wharfLogs.runs.map((x) => x.metricsScrapes).filter(Boolean);
    if (scr.length) L.push(`  * /metrics scrapes during measured runs: ${scr.join('; ')}`);
  } else
    L.push(
      `* Issue 5: logging + metrics cost <= 10%: not available: ${wharfLogs?.target.unavailable ?? 'not run'}`,
    );
  if (wharfTls?.runs.length && nginxTls) {
    const rps = (w: WrkResult) => w.rps;
    const cpu = (w: Run) => w.cpuPer10k;
    const rr = sameRoundRatio(wharfTls, nginxTls, rps);
    L.push(
      `* Issue 7: Wharf edge HTTPS >= 0.6x nginx HTTPS rps: ${verdict(rr >= 0.6, ratioSpread(wharfTls, nginxTls, rps))}`,
    );
    if (floorTls?.runs.length)
      L.push(
        `  * For scale, the bare node:https + undici stack: ${ratioSpread(floorTls, nginxTls, rps)} rps; Wharf edge / floor ${ratioSpread(wharfTls, floorTls, rps)}.`,
        // Why the floor bounds the edge: rps follows CPU per request once the proxy's core is full.
        `  * CPU per request: floor / nginx HTTPS ${ratioSpread(floorTls, nginxTls, cpu)}; Wharf edge / floor ${ratioSpread(wharfTls, floorTls, cpu)}.`,
      );
  } else
    L.push(`* Issue 7: HTTPS >= 0.6x nginx: not available: ${wharfTls?.target.unavailable ?? 'not run'}`);
  if (paired.logs.length || paired.control.length) {
    L.push('', '## Paired windows (issue 5)', '');
    L.push(
      `* Two Wharf processes, started afresh for each window, pinned together to CPU ${PROXY_CPU}, each loaded by its own \`wrk -t1 -c64\` on CPU ${LOAD_CPU}, started at the same instant: ${durationS} s measured after a ${pairedWarmupS} s warm-up (fresh processes need it to reach their steady state). Both see the same machine speed, so the VM's speed steps (which make sequential rounds disagree by more than this effect) cancel. See \`bench/lib/paired.ts\`.`,
      '* cost = 1 - (CPU per request of "wharf") / (CPU per request of the other): the throughput the other loses on a whole core, as both are CPU-bound. The rps columns are what each got while sharing the core (the scheduler shares it per thread, so a busy thread pool gets a little more than half).',
      `* "logs": "wharf" vs "${WHARF_LOGS}" (its /metrics scraped once a second, as in its row). "control": "wharf" vs "${WHARF_TWIN}", the same config on port ${PORTS.wharfTwin}. The two kinds alternate, ${pairedWindows} windows each.${paired.skipped ? ` Stopped early: ${paired.skipped}.` : ''}`,
      '',
      '| window | pair | "wharf" CPU-us/req | other CPU-us/req | cost % | "wharf" rps | other rps | errors | beside the other |',
      '|---:|---|---:|---:|---:|---:|---:|---:|---|',
    );
    const kinds = [
      ['logs', paired.logs],
      ['control', paired.control],
    ] as const;
    for (const [kind, ws] of kinds)
      for (const w of ws)
        L.push(
          `| ${w.window + 1} | ${kind} | ${fmt(cpuUsPerRequest(w.a), 1)} | ${fmt(cpuUsPerRequest(w.b), 1)} | ${fmt(throughputCost(w) * 100, 1)} | ` +
            `${fmtInt(w.a.rps)} | ${fmtInt(w.b.rps)} | ${w.a.errors + w.b.errors} | ${w.note ?? ''} |`,
        );
  } else if (paired.skipped) L.push('', `Paired windows (issue 5): not run: ${paired.skipped}.`);
  L.push('', '## Per-round values', '');
  L.push(
    '| round | target | rps | p50 ms | p99 ms | max ms | CPU s / 10k | foreign CPU % | non-2xx | socket errors |',
  );
  L.push('|---:|---|---:|---:|---:|---:|---:|---:|---:|---|');
  const all = rows.flatMap((r) => r.runs.map((x) => ({ r, x }))).sort((a, b) => a.x.round - b.x.round);
  for (const { r, x } of all) {
    const se = x.socketErrors;
    L.push(
      `| ${x.round + 1} | ${r.target.name} | ${fmtInt(x.rps)} | ${fmt(x.p50ms)} | ${fmt(x.p99ms)} | ${fmt(x.maxMs)} | ${fmt(x.cpuPer10k, 3)} | ` +
        `${fmt(x.foreign * 100, 0)} | ${x.non2xx} | c${se.connect} r${se.read} w${se.write} t${se.timeout} |`,
    );
  }
  L.push('', '## Commands', '', '```sh');
  L.push(`npm run bench -- ${process.argv.slice(2).join(' ')}`.trim());
  L.push(
    `node --import tsx bench/upstream.ts ${PORTS.upstreams[0]} u1 &  # and ${PORTS.upstreams.slice(1).join(', ')}`,
    `taskset -c ${PROXY_CPU} nginx -p ${runDir}/nginx -e ${runDir}/nginx/error.log -c bench/conf/nginx.conf -g 'daemon off; worker_processes 1;'`,
    `HAPROXY_BENCH_NBTHREAD=1 taskset -c ${PROXY_CPU} haproxy -db -f bench/conf/haproxy.cfg`,
    `GOMAXPROCS=1 HOME=${runDir}/caddy taskset -c ${PROXY_CPU} caddy run --config bench/conf/Caddyfile --adapter caddyfile`,
    `taskset -c ${PROXY_CPU} node --import tsx bench/node-proxy.ts ${PORTS.nodeProxy} ${PORTS.upstreams.join(' ')}`,
    `taskset -c ${PROXY_CPU} node --import tsx bench/undici-floor.ts ${PORTS.undiciFloor} ${PORTS.upstreams.join(' ')}`,
    `taskset -c ${PROXY_CPU} node bin/wharf.js serve --config ${runDir}/wharf-${PORTS.wharf}.yaml   # and -${PORTS.wharfLogs}, -${PORTS.wharfHttps}`,
    `taskset -c ${PROXY_CPU} nginx -p ${runDir}/nginx-https ... -c ${runDir}/nginx-https/nginx-https.conf   # from bench/conf/nginx-https.conf`,
  );
  for (const r of rows) if (r.commandLine) L.push(r.commandLine);
  L.push('```', '');
  if (profile) {
    L.push(
      '## CPU profile of the "wharf" row (`--cpu-prof`), top self time (share of busy time, idle excluded)',
      '',
    );
    L.push('| share | self ms | function | where |', '|---:|---:|---|---|');
    for (const p of profile)
      L.push(`| ${fmt(p.share * 100, 1)}% | ${fmt(p.selfMs, 0)} | ${p.fn} | ${p.where} |`);
    L.push('');
  }
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
