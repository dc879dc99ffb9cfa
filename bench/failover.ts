// `npm run bench:failover`: what clients see when one of three upstreams dies (SIGKILL) or hangs
// (SIGSTOP) under an open-loop load, for Wharf, nginx (passive defaults) and HAProxy (active L4
// checks, with and without retry-on + redispatch), as in shared/reference/peer-baselines.md.
//
//   npm run bench:failover                          # all targets, SIGKILL + SIGSTOP, GET and 10% POST mix
//   npm run bench:failover -- --only wharf,nginx    # subset (target keys below)
//   npm run bench:failover -- --quick               # smoke: 6 s load, kill at 2 s, grace 5 s, GET only
//   npm run bench:failover -- --signals SIGSTOP --mix post --grace 70

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { type Analysis, analyse as analyseWith, type Outcome } from './lib/failover-analysis.ts';
import { ensureTools } from './lib/install.ts';
import type { OpenLoopResult } from './lib/open-loop.ts';
import { QuietWaiter, signal, sleep, start, stopAll } from './lib/procs.ts';
import { fmt } from './lib/stats.ts';
import { machineInfo } from './lib/sysinfo.ts';
import {
  BENCH_DIR,
  baseWharfConfig,
  haproxyTarget,
  makeRunDir,
  nginxTarget,
  nodeProxyTarget,
  PORTS,
  probeTarget,
  REPO_DIR,
  startUpstreams,
  stopUpstreams,
  type Target,
  type Upstream,
  wharfPresent,
  wharfTarget,
} from './lib/targets.ts';

const PROXY_CPU = '0';

const { values: args } = parseArgs({
  options: {
    only: { type: 'string' },
    quick: { type: 'boolean', default: false },
    rate: { type: 'string' },
    duration: { type: 'string' },
    'kill-at': { type: 'string' },
    grace: { type: 'string' },
    signals: { type: 'string' },
    mix: { type: 'string' },
    out: { type: 'string' },
    'quiet-max': { type: 'string' },
    'load-cpu': { type: 'string' },
    'quiet-threshold': { type: 'string' },
    'quiet-budget': { type: 'string' },
  },
});
const quick = args.quick!;
const rate = Number(args.rate ?? 1000);
const durationS = Number(args.duration ?? (quick ? 6 : 15));
const killAtS = Number(args['kill-at'] ?? (quick ? 2 : 5));
const graceS = Number(args.grace ?? (quick ? 5 : 70));
const signals = (args.signals ?? 'SIGKILL,SIGSTOP').split(',').map((s) => s.trim()) as Array<
  'SIGKILL' | 'SIGSTOP'
>;
const mixes = (args.mix ?? (quick ? 'get' : 'get,post')).split(',').map((s) => s.trim());
if (
  !(rate > 0 && rate <= 5000 && durationS > 0 && durationS <= 120 && killAtS >= 0 && killAtS < durationS) ||
  !(graceS >= 0 && graceS <= 300) ||
  signals.some((s) => s !== 'SIGKILL' && s !== 'SIGSTOP') ||
  mixes.some((m) => m !== 'get' && m !== 'post')
) {
  console.error(
    'bad arguments: --rate 1-5000, --duration 1-120, --kill-at < duration, --grace 0-300, --signals SIGKILL,SIGSTOP, --mix get,post',
  );
  process.exit(2);
}
/** CPU for the load generator process (`--load-cpu none` leaves it unpinned). */
const LOAD_CPU = args['load-cpu'] === 'none' ? undefined : (args['load-cpu'] ?? '1');
const quietMaxMs = Number(args['quiet-max'] ?? (quick ? 2 : 60)) * 1000;
const quietThreshold = Number(args['quiet-threshold'] ?? 0.1);
/** Total time all quiet-machine waits of one invocation may take. */
const quietBudgetMs = Number(args['quiet-budget'] ?? (quick ? 10 : 300)) * 1000;
const quiet = new QuietWaiter(quietThreshold, quietMaxMs, quietBudgetMs);
/** A generator this late is not open-loop any more: the run's numbers are flagged. */
const MAX_LAG_P99_MS = 50;
const VICTIM = 1; // u2 = 127.0.0.1:18102, as in the reference run
const SLOW_MS = 1000;
const POST_SHARE = 0.1;

interface TargetSpec {
  key: string;
  label: string;
  make(runDir: string): Target;
}

function wharfOrStandIn(runDir: string): Target {
  if (!wharfPresent()) {
    return nodeProxyTarget({
      runDir,
      cpus: PROXY_CPU,
      port: PORTS.wharf,
      name: 'wharf (STAND-IN: naive node proxy)',
    });
  }
  return wharfTarget({
    runDir,
    cpus: PROXY_CPU,
    variant: { name: 'wharf', port: PORTS.wharf, config: () => baseWharfConfig(PORTS.wharf) },
  });
}

const SPECS: TargetSpec[] = [
  { key: 'wharf', label: 'wharf (defaults)', make: wharfOrStandIn },
  {
    key: 'nginx',
    label: 'nginx (passive, defaults)',
    make: (d) => nginxTarget({ runDir: d, cpus: PROXY_CPU }),
  },
  {
    key: 'haproxy',
    label: 'haproxy, L4 check',
    make: (d) => haproxyTarget({ runDir: d, cpus: PROXY_CPU, name: 'haproxy, L4 check' }),
  },
  {
    key: 'haproxy-retry',
    label: 'haproxy, L4 + retry-on + redispatch',
    make: (d) =>
      haproxyTarget({ runDir: d, cpus: PROXY_CPU, retry: true, name: 'haproxy, L4 + retry-on + redispatch' }),
  },
  {
    key: 'node-proxy',
    label: 'node-proxy (no retry, no health check)',
    make: (d) => nodeProxyTarget({ runDir: d, cpus: PROXY_CPU }),
  },
];
const DEFAULT_KEYS = ['wharf', 'nginx', 'haproxy', 'haproxy-retry'];

const analyse = (o: Outcome): Analysis =>
  analyseWith(o, { victim: `u${VICTIM + 1}`, slowMs: SLOW_MS, durationS });

/**
 * Runs the open-loop generator (bench/load.ts) as its own process pinned to the load CPU, bounded
 * to duration + grace + 60 s, and returns its result.
 */
async function runLoad(dir: string, name: string, argv: string[]): Promise<OpenLoopResult> {
  const out = join(dir, `${name}.json`);
  const d = Number(argv[argv.indexOf('--duration') + 1]);
  const g = Number(argv[argv.indexOf('--grace') + 1]) + 10; // + warm-up and its grace
  const m = start(
    `load ${name}`,
    process.execPath,
    ['--import', 'tsx', join(BENCH_DIR, 'load.ts'), ...argv, '--out', out],
    {
      cpus: LOAD_CPU,
      cwd: REPO_DIR,
      logFile: join(dir, `${name}.log`),
    },
  );
  const killer = setTimeout(() => signal(m, 'SIGKILL'), (d + g + 60) * 1000);
  const code = await m.exited;
  clearTimeout(killer);
  if (code !== 0) throw new Error(`load generator exited ${code}: see ${join(dir, `${name}.log`)}`);
  return JSON.parse(readFileSync(out, 'utf8')) as OpenLoopResult;
}

function log(msg: string): void {
  process.stderr.write(`[failover ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

async function oneRun(
  runDir: string,
  spec: TargetSpec,
  sig: 'SIGKILL' | 'SIGSTOP',
  mix: string,
): Promise<Outcome> {
  const out: Outcome = { target: spec.label, signal: sig, mix };
  const sub = join(runDir, `${spec.key}-${sig}-${mix}`);
  mkdirSync(sub, { recursive: true });
  const target = spec.make(sub);
  if (!wharfPresent() && spec.key === 'wharf') out.target = target.name;
  if (target.unavailable) return { ...out, unavailable: target.unavailable };
  let ups: Upstream[] = [];
  try {
    ups = await startUpstreams(sub, true);
    await target.start();
    const bad = await probeTarget(target);
    if (bad) throw new Error(bad);
    // Let active checkers see every instance up (rise 2 x 1 s), then a short untagged warm-up.
    await sleep(2500);
    out.foreign = await quiet.wait();
    const victim = ups[VICTIM]!;
    log(
      `${spec.key} ${sig} ${mix}: load ${rate}/s for ${durationS} s, ${sig} ${victim.name} at ${killAtS} s`,
    );
    const r = await runLoad(sub, 'load', [
      '--url',
      target.url,
      '--host',
      target.hostHeader ?? '',
      '--rate',
      String(rate),
      '--duration',
      String(durationS),
      '--grace',
      String(graceS),
      '--post-share',
      String(mix === 'post' ? POST_SHARE : 0),
      '--run-id',
      `${spec.key}-${sig}-${mix}`,
      '--kill-at',
      String(killAtS),
      '--kill-pid',
      String(victim.proc!.pid),
      '--signal',
      sig,
      '--warmup',
      '1',
    ]);
    out.r = r;
    out.killAtMs = r.eventTimes[0] ?? killAtS * 1000;
    if (sig === 'SIGSTOP') {
      // Thaw the victim so it processes whatever the proxy left in its socket buffers, and logs it.
      signal(victim.proc!, 'SIGCONT');
      await sleep(2000);
    }
    await target.stop();
    await stopUpstreams(ups);
    out.arrivals = new Map();
    out.postIds = [];
    for (const u of ups) {
      const seqs: number[] = [];
      for (const line of u.proc!.stdoutLines) {
        if (line.startsWith('A ')) seqs.push(Number(line.split(' ')[1]));
        else if (line.startsWith('P ')) out.postIds.push(line.slice(2));
      }
      out.arrivals.set(u.name, seqs);
    }
    return out;
  } catch (e) {
    return { ...out, unavailable: `failed: ${(e as Error).message}` };
  } finally {
    await target.stop();
    await stopUpstreams(ups);
  }
}

// ---- analysis ------------------------------------------------------------------------------------

function report(outcomes: Outcome[], runDir: string): string {
  const L: string[] = [];
  L.push('# Failover: one of three upstreams killed (SIGKILL) or frozen (SIGSTOP) under open-loop load', '');
  L.push(`Date: ${new Date().toISOString()}. Run dir (configs, logs): \`${runDir}\`.`, '');
  if (quick) L.push('**QUICK SMOKE RUN: shortened load and grace. Do not quote these numbers.**', '');
  if (outcomes.some((o) => o.target.includes('STAND-IN')))
    L.push('**The "wharf" rows are a STAND-IN (the naive node proxy): bin/wharf.js was not present.**', '');
  L.push('## Machine', '');
  for (const l of machineInfo(REPO_DIR)) L.push(`* ${l}`);
  L.push('', '## Method', '');
  L.push(
    `* Three upstreams (\`bench/upstream.ts\`) on 127.0.0.1:${PORTS.upstreams.join(', ')}, fresh for every run; the proxy pinned to CPU ${PROXY_CPU}, the load generator (its own process, \`bench/load.ts\`) ${LOAD_CPU ? `to CPU ${LOAD_CPU}` : 'unpinned'}. Configs: \`bench/conf/nginx.conf\`, \`bench/conf/haproxy.cfg\` (HAPROXY_BENCH_RETRY=1 for the retry variant), Wharf with its defaults (health-path /healthz).`,
    `* Open-loop load (\`bench/lib/open-loop.ts\`, undici Pool, up to 8000 connections): ${rate} req/s on a fixed schedule for ${durationS} s; request i is due at i/${rate} s whatever happened to the others. Every request is counted. The generator checks itself: dispatch lag, requests sent per second, and requests that waited for a free client connection ("queued", must be 0). 2.5 s after start-up (so active checkers see all up) and a 1 s untagged warm-up in the generator process precede it.`,
    `* At t=${killAtS} s upstream u${VICTIM + 1} (:${PORTS.upstreams[VICTIM]}) gets SIGKILL, or SIGSTOP (it stays frozen until the end: after the load, up to ${graceS} s of grace for outstanding requests, then SIGCONT and 2 s for it to drain its socket buffers).`,
    `* Before each run the harness waits (at most ${quietMaxMs / 1000} s per run, ${quietBudgetMs / 1000} s in all${quiet.exhausted ? ': this budget ran out, so later runs started on a busy machine' : ''}) until CPU used by processes that are not ours is below ${quietThreshold * 100}% of one core ("foreign CPU" in the table). A run whose generator dispatch lag p99 exceeds ${MAX_LAG_P99_MS} ms is flagged as not valid: the machine could not keep the open-loop schedule.`,
    '* **failed**: non-2xx or a connection error. **slow**: 2xx after >= 1 s. **hung**: no answer by the end of the grace period (counted as failed too). **max latency**: over all requests, hung ones counted up to the end of the grace.',
    '* **routed for** (client view, as in the reference run): the span after the kill during which requests that ended failed, slow or hung were *sent*. **errors until**: when the last failed response arrived, after the kill.',
    '* **reached victim** (upstream view): every request carries `x-bench-tag: <seq>`, and each upstream logs the tags it receives (`A <seq> <method> <ms>` on stdout). For SIGSTOP the frozen victim logs, after SIGCONT, the requests that were waiting in its socket buffers or accept queue: these are the requests the proxy sent to it while it was frozen. "until" = send time of the last such request, after the kill. Limits: a request whose connection the proxy reset (RST) before SIGCONT is lost from the kernel buffer and not counted (a FIN-closed one is still read and counted); the victim can only take in what fits its accept queue (backlog 511) and connections, so a proxy that keeps opening new connections to it shows fewer arrivals and an earlier "until" than it really routed: read it together with "routed for"; a SIGKILLed victim cannot log, so for SIGKILL only the client view exists (connection attempts are refused by the kernel).',
    `* **POST mix**: ${POST_SHARE * 100}% of requests are POSTs with a unique id in the JSON body. Upstreams log every POST they receive (tag at headers, id once the body is complete). **dup POSTs**: POSTs that reached upstreams more than once (by tag or by body id, including the victim's log after SIGCONT), i.e. a POST sent twice. dup GETs are shown for information (retries of idempotent requests are allowed).`,
    '',
  );
  L.push('## Results', '');
  L.push(
    '| target | signal | mix | failed | slow (>=1 s) | hung | max latency s | routed for s | errors until s | reached victim after kill (until s) | POSTs failed / dup | dup GETs | generator |',
  );
  L.push('|---|---|---|---:|---:|---:|---:|---:|---:|---|---|---:|---|');
  for (const o of outcomes) {
    if (o.unavailable || !o.r) {
      L.push(
        `| ${o.target} | ${o.signal} | ${o.mix} | not available: ${(o.unavailable ?? '').replaceAll('|', '/')} | | | | | | | | | |`,
      );
      continue;
    }
    const a = analyse(o);
    const behind = o.r.lag.p99 > MAX_LAG_P99_MS ? ' **GENERATOR BEHIND SCHEDULE: not valid**' : '';
    const victim =
      o.signal === 'SIGKILL'
        ? 'n/a (dead)'
        : `${a.victimAfterKill}${a.victimUntilS !== undefined ? ` (${fmt(a.victimUntilS)})` : ''}`;
    L.push(
      `| ${o.target} | ${o.signal} | ${o.mix} | ${a.failed}${a.failedKinds ? ` (${a.failedKinds})` : ''} | ${a.slow} | ${a.hung} | ${fmt(a.maxLatencyMs / 1000)} | ` +
        `${a.routedForS === undefined ? '-' : fmt(a.routedForS)} | ${a.errorsUntilS === undefined ? '-' : fmt(a.errorsUntilS)} | ${victim} | ` +
        `${o.mix === 'post' ? `${a.failedPosts} / ${a.dupPosts} (of ${a.posts})` : '-'} | ${a.dupGets} | ${a.lag}; foreign CPU ${fmt((o.foreign ?? 0) * 100, 0)}%${behind} |`,
    );
  }
  L.push('', '## Targets for Wharf (issue 4)', '');
  const w = outcomes.filter((o) => o.target.startsWith('wharf') && o.r);
  const standIn = w.some((o) => o.target.includes('STAND-IN')) ? ' [stand-in, not Wharf]' : '';
  const check = (name: string, sig: string, mix: string, pred: (a: Analysis) => [boolean, string]) => {
    const o = w.find((x) => x.signal === sig && x.mix === mix);
    if (!o) return L.push(`* ${name}: not measured`);
    const [ok, d] = pred(analyse(o));
    const invalid = o.r!.lag.p99 > MAX_LAG_P99_MS ? ' [not valid: generator behind schedule]' : '';
    L.push(`* ${name}: ${ok ? '**met**' : '**NOT met**'} (${d})${standIn}${invalid}`);
  };
  check('SIGKILL: 0 failed, none slower than 1 s', 'SIGKILL', 'get', (a) => [
    a.failed === 0 && a.slow === 0,
    `${a.failed} failed, ${a.slow} slow`,
  ]);
  check(
    'SIGSTOP: 0 failed GETs, max latency <= 3 s, no new requests to the victim after <= 2 s',
    'SIGSTOP',
    'get',
    (a) => [
      a.failed === 0 && a.maxLatencyMs <= 3000 && (a.victimUntilS ?? 0) <= 2 && (a.routedForS ?? 0) <= 2,
      `${a.failed} failed, max ${fmt(a.maxLatencyMs / 1000)} s, victim reached until ${fmt(a.victimUntilS ?? 0)} s, routed for ${fmt(a.routedForS ?? 0)} s`,
    ],
  );
  for (const sig of ['SIGKILL', 'SIGSTOP'])
    check(
      `${sig} with 10% POSTs: as above except that POSTs already sent to the victim may fail; no POST sent twice`,
      sig,
      'post',
      (a) => {
        const latOk = sig === 'SIGKILL' ? a.slowExclVictimPosts === 0 : a.maxLatencyMsExclVictimPosts <= 3000;
        return [
          a.failedGets === 0 && a.failedPostsElsewhere === 0 && a.dupPosts === 0 && latOk,
          `${a.failedGets} failed GETs, ${a.failedPosts} failed POSTs of which ${a.failedPostsElsewhere} never reached the victim, ` +
            `${a.dupPosts} POSTs sent twice, max ${fmt(a.maxLatencyMsExclVictimPosts / 1000)} s and ${a.slowExclVictimPosts} slow leaving out POSTs at the victim`,
        ];
      },
    );
  L.push(
    '',
    '## Command',
    '',
    '```sh',
    `npm run bench:failover -- ${process.argv.slice(2).join(' ')}`.trim(),
    '```',
    '',
  );
  return `${L.join('\n')}\n`;
}

async function main(): Promise<void> {
  const runDir = makeRunDir('failover');
  log(`run dir ${runDir}`);
  const missing = ensureTools(['nginx', 'haproxy']);
  const keys = args.only ? args.only.split(',').map((s) => s.trim()) : DEFAULT_KEYS;
  const specs = keys.map((k) => {
    const s = SPECS.find((x) => x.key === k);
    if (!s) throw new Error(`unknown target ${k}; one of ${SPECS.map((x) => x.key).join(', ')}`);
    return s;
  });
  const outcomes: Outcome[] = [];
  for (const spec of specs) {
    const tool = spec.key.startsWith('haproxy') ? 'haproxy' : spec.key === 'nginx' ? 'nginx' : undefined;
    for (const sig of signals)
      for (const mix of mixes) {
        if (tool && missing.has(tool)) {
          outcomes.push({ target: spec.label, signal: sig, mix, unavailable: missing.get(tool) });
          continue;
        }
        const o = await oneRun(runDir, spec, sig, mix);
        outcomes.push(o);
        if (o.r) {
          const a = analyse(o);
          log(
            `  -> failed ${a.failed} ${a.failedKinds}, slow ${a.slow}, hung ${a.hung}, max ${fmt(a.maxLatencyMs / 1000)} s, ` +
              `routed for ${fmt(a.routedForS ?? 0)} s, victim after kill ${a.victimAfterKill}, dup POSTs ${a.dupPosts}; ${a.lag}`,
          );
        } else log(`  -> ${o.unavailable}`);
      }
  }
  const md = report(outcomes, runDir);
  const out = args.out ?? (quick ? join(runDir, 'failover.md') : join(BENCH_DIR, 'results', 'failover.md'));
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, md);
  process.stdout.write(md);
  log(`wrote ${out}`);
}

main()
  .catch((e) => {
    log(`FAILED: ${(e as Error).stack ?? e}`);
    process.exitCode = 1;
  })
  .finally(async () => {
    await stopAll();
  });
