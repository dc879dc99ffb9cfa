// Health checking at scale (issue 24): Wharf pinned to CPU 0 probes N endpoints on loopback
// addresses served by one nginx worker on CPU 1 (bench/lib/loopback-fleet.ts), with a 50 req/s
// side client through Wharf. Per row: probes/s, Wharf CPU (main thread and the others: the probe
// thread), the interval each endpoint is probed at, the side client's p99, TIME_WAIT, new
// connections/s, RSS, how fast a killed idle instance and a killed or frozen busy one are found,
// and any false ejection. Writes bench/results/health.md and health.json (which the simulation,
// bench/health-sim.ts, reads its per-probe costs from).
//
//   flock /tmp/wharf-heavy.lock npm run bench:health [-- --sizes 0,1000 --checks http --quick]

import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import {
  FLEET_PORT,
  fleetAddress,
  type Nginx,
  openFilesLimit,
  type StubStatus,
  startFleet,
  startVictim,
  stubStatus,
} from './lib/loopback-fleet.ts';
import { runOpenLoop } from './lib/open-loop.ts';
import { assertPortFree, foreignCpu, type Managed, sleep, start, stop, waitForPort } from './lib/procs.ts';
import { percentile } from './lib/stats.ts';
import { machineInfo } from './lib/sysinfo.ts';
import { REPO_DIR } from './lib/targets.ts';
import { rssMiB, threadCpu } from './lib/threads.ts';

const { values: args } = parseArgs({
  options: {
    sizes: { type: 'string', default: '0,1000,5000,20000,50000,150000' },
    checks: { type: 'string', default: 'http,tcp' },
    /** Extra row: HTTP at this size against a fleet that closes idle connections after 5 s. */
    ka5: { type: 'string', default: '50000' },
    /** Extra rows: these sizes with the idle interval sized for them (health-at-scale.md), HTTP and TCP. */
    sized: { type: 'string', default: '150000:60s' },
    /** Leave out the rows that measure the CPU cost per probe (see costs()). */
    'no-costs': { type: 'boolean', default: false },
    /** Nice values of the probe thread to compare (WHARF_PROBE_NICE), one row each; default: Wharf's own. */
    nice: { type: 'string', default: '' },
    idle: { type: 'string', default: '20s' },
    warm: { type: 'string', default: '65' },
    window: { type: 'string', default: '20' },
    quick: { type: 'boolean', default: false },
    wharf: { type: 'string', default: join(REPO_DIR, 'bin', 'wharf.js') },
    out: { type: 'string', default: 'bench/results/health.md' },
  },
});

const WHARF_PORT = 18680;
const ADMIN_PORT = 18681;
const DOMAIN = 'bench.local';
const WHARF_CPU = '0';
const OTHER_CPU = '1';
const SIDE_RATE = 50;
const seconds = (d: string) => Number(/^(\d+)s$/.exec(d)?.[1] ?? 20) * 1000;
const warmS = args.quick ? 10 : Number(args.warm);
const windowS = args.quick ? 8 : Number(args.window);

interface HealthLine {
  readonly time: number;
  readonly project: string;
  readonly instance: string;
  readonly to: string;
  readonly reason: string;
}

interface RowSpec {
  readonly n: number;
  readonly check: 'http' | 'tcp';
  readonly fleetKeepAliveS: number;
  /** health.idle-interval, e.g. `20s`. */
  readonly idle: string;
  /** WHARF_PROBE_NICE, when compared. */
  readonly nice?: number;
}

interface Row extends RowSpec {
  readonly startS: number;
  readonly probesPerS: number;
  readonly cpuTotal: number;
  readonly cpuMain: number;
  readonly cpuOthers: number;
  /** Seconds between probes of one endpoint, on average. */
  readonly intervalS: number;
  readonly p50: number;
  readonly p99: number;
  readonly sideErrors: number;
  readonly timeWaitWharf: number;
  readonly timeWaitFleet: number;
  readonly newConnsPerS: number;
  /** Connections open at the fleet at the end of the window: Wharf's kept probe connections. */
  readonly fleetOpen: number;
  readonly rss: number;
  readonly rssPeak: number;
  readonly idleKilledS: number | undefined;
  readonly busyKilledS: number | undefined;
  readonly busyKilledFailed: number;
  readonly busyHungS: number | undefined;
  readonly busyHungFailed: number;
  readonly falseEjections: number;
  readonly foreignCpu: number;
  readonly loadBefore: number;
  readonly loadAfter: number;
}

function timeWait(filter: string): number {
  const r = spawnSync('ss', ['-Htan', 'state', 'time-wait', filter], {
    encoding: 'utf8',
    maxBuffer: 1 << 28,
  });
  return r.stdout.split('\n').filter((l) => l.trim()).length;
}

function wharfConfig(
  n: number,
  check: 'http' | 'tcp',
  idle: string,
  victims: Record<string, string>,
): object {
  const projects: Record<string, unknown> = {
    // The side client's project: HTTP checks whatever the row checks, so a frozen instance is found.
    side: {
      'health-path': '/healthz',
      instances: {
        a: { http: victims.a },
        h: { http: victims.h },
        b: { http: victims.b },
        c: { http: victims.c },
      },
    },
    quiet: { instances: { v: { http: victims.v } } },
  };
  for (let p = 0; p * 10 < n; p++) {
    const instances: Record<string, { http: string }> = {};
    for (let k = 0; k < 10 && p * 10 + k < n; k++) instances[`i${k}`] = { http: fleetAddress(p * 10 + k) };
    projects[`p${p}`] = { instances };
  }
  return {
    listen: `127.0.0.1:${WHARF_PORT}`,
    admin: `127.0.0.1:${ADMIN_PORT}`,
    domain: DOMAIN,
    logs: { access: false, health: true },
    defaults: { 'health-path': check === 'tcp' ? 'tcp' : '/healthz' },
    health: { 'idle-interval': idle },
    projects,
  };
}

/** Health lines Wharf printed, parsed as they come (stdout is JSON lines). */
class HealthWatch {
  private seen = 0;
  readonly lines: HealthLine[] = [];
  healthy = 0;

  constructor(private readonly m: Managed) {}

  poll(): void {
    const out = this.m.stdoutLines;
    for (; this.seen < out.length; this.seen++) {
      const l = out[this.seen];
      if (!l.includes('"type":"health"')) continue;
      try {
        const j = JSON.parse(l) as HealthLine;
        this.lines.push(j);
        if (j.to === 'healthy') this.healthy++;
      } catch {}
    }
    // Keep memory flat: the lines are parsed.
    if (this.seen > 100_000) {
      out.splice(0, this.seen);
      this.seen = 0;
    }
  }

  /** When `instance` of `project` went unhealthy after `since` (epoch ms). */
  ejectedAt(project: string, instance: string, since: number): number | undefined {
    this.poll();
    return this.lines.find(
      (l) => l.project === project && l.instance === instance && l.to === 'unhealthy' && l.time >= since,
    )?.time;
  }
}

async function waitFor<T>(fn: () => T | undefined, ms: number, step = 50): Promise<T | undefined> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > end) return undefined;
    await sleep(step);
  }
}

async function row(runDir: string, spec: RowSpec): Promise<Row> {
  const { n, check, fleetKeepAliveS, idle } = spec;
  const idleMs = seconds(idle);
  const dir = join(runDir, `${check}-${n}-ka${fleetKeepAliveS}-idle${idle}-nice${spec.nice ?? 'default'}`);
  mkdirSync(dir, { recursive: true });
  const loadBefore = os.loadavg()[0];
  const foreign = await foreignCpu(2000);
  for (const p of [FLEET_PORT, WHARF_PORT, ADMIN_PORT]) await assertPortFree(p);
  const fleet = startFleet(dir, OTHER_CPU, fleetKeepAliveS);
  const vs = {
    a: startVictim(dir, OTHER_CPU, 1),
    h: startVictim(dir, OTHER_CPU, 2),
    b: startVictim(dir, OTHER_CPU, 3),
  };
  const more = { c: startVictim(dir, OTHER_CPU, 4), v: startVictim(dir, OTHER_CPU, 5) };
  const victims = { ...vs, ...more };
  await fleet.ready();
  for (const v of Object.values(victims)) await v.ready();
  const file = join(dir, 'wharf.yaml');
  writeFileSync(
    file,
    YAML.stringify(
      wharfConfig(
        n,
        check,
        idle,
        Object.fromEntries(Object.entries(victims).map(([k, v]) => [k, v.address])),
      ),
    ),
  );
  const t0 = Date.now();
  // BENCH_NODE_ARGS: e.g. `--cpu-prof --cpu-prof-dir=/tmp/p` (the probe thread writes its own profile).
  const nodeArgs = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const env = spec.nice === undefined ? process.env : { ...process.env, WHARF_PROBE_NICE: String(spec.nice) };
  const wharf = start('wharf', process.execPath, [...nodeArgs, args.wharf, 'serve', '--config', file], {
    cpus: WHARF_CPU,
    cwd: REPO_DIR,
    env,
    captureStdout: true,
    logFile: join(dir, 'wharf.err.log'),
  });
  const watch = new HealthWatch(wharf);
  try {
    await waitForPort(WHARF_PORT, 120_000 + n, wharf.exited);
    const up = await waitFor(
      () => {
        watch.poll();
        return watch.healthy >= n + 5 ? true : undefined;
      },
      60_000 + n,
      200,
    );
    if (!up) throw new Error(`only ${watch.healthy} of ${n + 5} endpoints healthy`);
    const startS = (Date.now() - t0) / 1000;
    process.stderr.write(`  all ${n + 5} healthy after ${startS.toFixed(1)} s; warming ${warmS} s\n`);
    await sleep(warmS * 1000);
    watch.poll();

    // ---- the window: rates, CPU, side client, and an idle instance killed at a random moment
    const s0: StubStatus = await stubStatus();
    const c0 = threadCpu(wharf.pid);
    const w0 = performance.now();
    const killIdleAt = 2000 + Math.random() * 3000;
    let idleKilled = 0;
    const side = await runOpenLoop({
      url: `http://127.0.0.1:${WHARF_PORT}/`,
      host: `side.${DOMAIN}`,
      rate: SIDE_RATE,
      durationS: windowS,
      graceS: 5,
      connections: 64,
      untagged: false,
      events: [
        {
          atMs: killIdleAt,
          run: () => {
            idleKilled = Date.now();
            victims.v.kill();
          },
        },
      ],
    });
    const secs = (performance.now() - w0) / 1000;
    const s1 = await stubStatus();
    const c1 = threadCpu(wharf.pid);
    const rss = rssMiB(wharf.pid);
    const twWharf = timeWait(`( dport = :${FLEET_PORT} )`);
    const twFleet = timeWait(`( sport = :${FLEET_PORT} )`);
    const lat = side.records
      .filter((r) => r.status === 200 && r.end !== undefined)
      .map((r) => r.end! - r.sent);
    const sideErrors = side.records.filter((r) => r.status !== 200).length;
    // Probes reach the fleet as requests (HTTP) or connections (TCP); the status reads are one request each.
    const probes = check === 'http' ? s1.requests - s0.requests - 1 : s1.accepts - s0.accepts - 1;

    // ---- a busy instance killed, then one frozen, under the side client's load
    const busy = async (victim: Nginx, name: string, sig: 'SIGKILL' | 'SIGSTOP') => {
      let at = 0;
      const r = await runOpenLoop({
        url: `http://127.0.0.1:${WHARF_PORT}/`,
        host: `side.${DOMAIN}`,
        rate: SIDE_RATE,
        durationS: 5,
        graceS: 35,
        connections: 256,
        events: [
          {
            atMs: 1000,
            run: () => {
              at = Date.now();
              if (sig === 'SIGSTOP') victim.signal('SIGSTOP');
              else victim.kill();
            },
          },
        ],
      });
      const out = await waitFor(() => watch.ejectedAt('side', name, at), 5000);
      if (process.env.BENCH_DEBUG)
        process.stderr.write(
          `  ${name} ${sig} at ${at}: ${JSON.stringify(watch.lines.filter((l) => l.project === 'side'))}\n`,
        );
      return {
        s: out === undefined ? undefined : (out - at) / 1000,
        failed: r.records.filter((x) => x.status !== 200).length,
      };
    };
    const killed = await busy(victims.a, 'a', 'SIGKILL');
    const hung = await busy(victims.h, 'h', 'SIGSTOP');
    victims.h.signal('SIGCONT');

    const idleOut = await waitFor(() => watch.ejectedAt('quiet', 'v', idleKilled), idleMs + 5000);
    watch.poll();
    const falseEjections = watch.lines.filter(
      (l) =>
        l.to === 'unhealthy' &&
        !(l.project === 'side' && (l.instance === 'a' || l.instance === 'h')) &&
        l.project !== 'quiet',
    ).length;
    const cpu = (c1.main + c1.others - c0.main - c0.others) / secs;
    return {
      ...spec,
      startS,
      probesPerS: probes / secs,
      cpuTotal: cpu,
      cpuMain: (c1.main - c0.main) / secs,
      cpuOthers: (c1.others - c0.others) / secs,
      intervalS: probes > 0 ? n / (probes / secs) : Number.NaN,
      p50: percentile(lat, 50),
      p99: percentile(lat, 99),
      sideErrors,
      timeWaitWharf: twWharf,
      timeWaitFleet: twFleet,
      newConnsPerS: (s1.accepts - s0.accepts - 1) / secs,
      fleetOpen: s1.active - 1,
      rss: rss.now,
      rssPeak: rss.peak,
      idleKilledS: idleOut === undefined ? undefined : (idleOut - idleKilled) / 1000,
      busyKilledS: killed.s,
      busyKilledFailed: killed.failed,
      busyHungS: hung.s,
      busyHungFailed: hung.failed,
      falseEjections,
      foreignCpu: foreign,
      loadBefore,
      loadAfter: os.loadavg()[0],
    };
  } finally {
    await stop(wharf, 20_000);
    for (const v of Object.values(victims)) v.kill();
    fleet.kill();
    await Promise.all([...Object.values(victims), fleet].map((x) => x.m.exited));
  }
}

const f = (x: number | undefined, d = 1) => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d));
const int = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '-');

function table(rows: Row[]): string[] {
  const out = [
    '| endpoints | check | probes/s | Wharf CPU (main + others) | interval per endpoint | side p50 / p99 | side errors | TIME_WAIT (Wharf / fleet) | new conns/s | kept conns | RSS (peak) | idle killed found | busy killed found (failed) | busy frozen found (failed) | false ejections | load before / after |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    const label = [
      r.check.toUpperCase(),
      `idle ${r.idle}`,
      ...(r.fleetKeepAliveS === 75 ? [] : [`fleet keep-alive ${r.fleetKeepAliveS} s`]),
      ...(r.nice === undefined ? [] : [`nice ${r.nice}`]),
    ].join(', ');
    out.push(
      `| ${int(r.n)} | ${label} | ${int(r.probesPerS)} | ${f(r.cpuTotal * 100, 0)}% (${f(r.cpuMain * 100, 0)} + ${f(r.cpuOthers * 100, 0)}) | ${r.n ? `${f(r.intervalS, 1)} s` : '-'} | ${f(r.p50)} / ${f(r.p99)} ms | ${r.sideErrors} | ${int(r.timeWaitWharf)} / ${int(r.timeWaitFleet)} | ${int(r.newConnsPerS)} | ${int(r.fleetOpen)} | ${int(r.rss)} MiB (${int(r.rssPeak)}) | ${f(r.idleKilledS, 2)} s | ${f(r.busyKilledS, 2)} s (${r.busyKilledFailed}) | ${f(r.busyHungS, 2)} s (${r.busyHungFailed}) | ${r.falseEjections} | ${f(r.loadBefore, 2)} / ${f(r.loadAfter, 2)} |`,
    );
  }
  return out;
}

/** The cost rows (--costs): 5,000 targets, probed every 2 s and every 20 s, per kind of probe. */
const COST_N = 5000;
const COST_KINDS: Array<{ key: 'keptUs' | 'newUs' | 'tcpUs'; check: 'http' | 'tcp'; ka: number }> = [
  { key: 'keptUs', check: 'http', ka: 75 },
  { key: 'newUs', check: 'http', ka: 5 },
  { key: 'tcpUs', check: 'tcp', ka: 75 },
];

/**
 * CPU per probe of the probe thread (the non-main threads), for the simulation's estimates: the
 * extra CPU of 5,000 targets probed every 2 s over the same targets probed every 20 s, divided by
 * the extra probes, for kept connections, new connections (a fleet that closes idle ones after 5 s)
 * and TCP checks. Loopback charges the fleet's half of every TCP exchange to the sender's CPU too,
 * so these overstate what the probes cost over a real network.
 */
function costs(rows: Row[]): Record<'keptUs' | 'newUs' | 'tcpUs', number> | undefined {
  const out = { keptUs: Number.NaN, newUs: Number.NaN, tcpUs: Number.NaN };
  let any = false;
  for (const k of COST_KINDS) {
    const at = (idle: string) =>
      rows.find(
        (r) =>
          r.n === COST_N &&
          r.check === k.check &&
          r.fleetKeepAliveS === k.ka &&
          r.idle === idle &&
          r.nice === undefined,
      );
    const fast = at('2s');
    const slow = at('20s');
    if (!fast || !slow || fast.probesPerS <= slow.probesPerS) continue;
    out[k.key] = ((fast.cpuOthers - slow.cpuOthers) * 1e6) / (fast.probesPerS - slow.probesPerS);
    any = true;
  }
  return any ? out : undefined;
}

function costLine(rows: Row[]): string[] {
  const c = costs(rows);
  if (!c) return [];
  return [
    `CPU per probe of the probe thread (the extra CPU of ${COST_N.toLocaleString('en-US')} targets probed every 2 s over every 20 s, per extra probe): kept connection ${f(c.keptUs, 0)} us, new connection ${f(c.newUs, 0)} us, TCP check ${f(c.tcpUs, 0)} us. On loopback the sender's CPU also does the fleet's half of every exchange.`,
    '',
  ];
}

async function main(): Promise<void> {
  // The harness (side client, counters) shares CPU 1 with nginx; CPU 0 is Wharf's alone.
  spawnSync('taskset', ['-a', '-p', '-c', OTHER_CPU, String(process.pid)]);
  const runDir = join('/tmp/bench', `health-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  mkdirSync(runDir, { recursive: true });
  const sizes = args.sizes!.split(',').map(Number);
  const checks = args.checks!.split(',') as Array<'http' | 'tcp'>;
  const idle = args.idle!;
  const nices = args.nice ? args.nice.split(',').map(Number) : [undefined];
  const plan: RowSpec[] = [];
  for (const nice of nices) {
    for (const check of checks)
      for (const n of sizes)
        if (!(check === 'tcp' && n === 0)) plan.push({ n, check, fleetKeepAliveS: 75, idle, nice });
    for (const n of (args.ka5 ?? '').split(',').filter(Boolean).map(Number))
      plan.push({ n, check: 'http', fleetKeepAliveS: 5, idle, nice });
    for (const item of (args.sized ?? '').split(',').filter(Boolean)) {
      const [n, sizedIdle] = item.split(':');
      for (const check of checks)
        plan.push({ n: Number(n), check, fleetKeepAliveS: 75, idle: sizedIdle, nice });
    }
  }
  if (!args['no-costs']) {
    for (const k of COST_KINDS) {
      plan.push({ n: COST_N, check: k.check, fleetKeepAliveS: k.ka, idle: '2s' });
      const base = { n: COST_N, check: k.check, fleetKeepAliveS: k.ka, idle: '20s' };
      if (!plan.some((p) => JSON.stringify(p) === JSON.stringify({ ...base, nice: undefined })))
        plan.push({ ...base, nice: undefined });
    }
  }
  const rows: Row[] = [];
  const info = machineInfo(REPO_DIR);
  for (const spec of plan) {
    process.stderr.write(`[bench:health] ${JSON.stringify(spec)} (load ${os.loadavg()[0].toFixed(2)})\n`);
    try {
      const r = await row(runDir, spec);
      rows.push(r);
      process.stderr.write(`${table([r]).at(-1)}\n`);
    } catch (err) {
      process.stderr.write(`  row failed: ${(err as Error).stack ?? err}\n`);
    }
  }
  const lines = [
    '# Health checking at scale',
    '',
    `\`npm run bench:health\` (bench/health.ts), ${new Date().toISOString()}. ${info.join('. ')}.`,
    '',
    `Wharf pinned to CPU ${WHARF_CPU} (its probe thread included); one nginx worker serving every endpoint on CPU ${OTHER_CPU}, with the`,
    `harness (side client at ${SIDE_RATE} req/s through Wharf, counters). Interval 1 s, timeout 1 s, fall 2.`,
    `Warm-up ${warmS} s after every endpoint was healthy (past the first retirement of kept connections), then a ${windowS} s window.`,
    `Open files per process on this machine: ${openFilesLimit()} (the hard limit; raising it needs CAP_SYS_RESOURCE, which this container lacks), so Wharf keeps at most`,
    'half that many probe connections and the fleet nginx holds at most that many; containers on Kubernetes get 1,048,576 by default.',
    'probes/s and new connections/s from the fleet nginx\'s counters; CPU from /proc per thread ("others" is the probe thread plus V8 and libuv helpers);',
    'TIME_WAIT counted with ss at the end of the window, on Wharf\'s side and on the fleet\'s; "found" is the time from the kill (SIGKILL) or freeze',
    '(SIGSTOP) to Wharf\'s health log line; "failed" counts side requests that did not get a 200 in those runs.',
    '',
    ...table(rows),
    '',
    ...costLine(rows),
  ];
  // A quick run is a smoke test: its numbers stay in the run directory.
  const out = args.quick ? join(runDir, 'health.md') : args.out!;
  writeFileSync(out, `${lines.join('\n')}\n`);
  writeFileSync(
    out.replace(/\.md$/, '.json'),
    `${JSON.stringify({ rows, costs: costs(rows), info }, null, 2)}\n`,
  );
  process.stderr.write(`[bench:health] wrote ${out}\n`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

// Exit explicitly: a client pool or a stray handle must not keep the lock held after the table is written.
await main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`[bench:health] ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
