// Health checking at cluster scale, simulated (issue 24, docs/health-at-scale.md): the real
// HealthService, scheduler, probe loops and state machines over 150,000 simulated endpoints, with
// a fake clock, a simulated prober (bench/lib/sim-prober.ts) and a simulated data plane. It measures
// what one Wharf replica does under each design: probes and new connections per second, TIME_WAIT
// left in upstreams, how fast each kind of failure is found, and false ejections. CPU per replica
// is these rates times the per-probe costs the real benchmark measured (bench/results/health.json).
//
//   node --import tsx bench/health-sim.ts [--quick] [--only name,name] [--out bench/results/health-sim.md]

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { World, type WorldOptions } from './lib/sim-world.ts';

interface Scenario {
  readonly name: string;
  readonly design: string;
  readonly world: Omit<WorldOptions, 'seed'>;
  /** Replicas sharing the endpoints (sharded design): this replica simulates endpoints / shards. */
  readonly shards?: number;
  readonly failures: boolean;
  readonly measureMs: number;
}

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    out: { type: 'string', default: 'bench/results/health-sim.md' },
    /** Re-render the table from the last run's health-sim.json (with newer per-probe costs). */
    render: { type: 'boolean', default: false },
  },
});

const N = args.quick ? 15_000 : 150_000;
const base = { perProject: 10, perNode: 30, busyShare: 0.2, tcp: false, serverKeepAliveMs: 75_000 };

const scenarios: Scenario[] = [
  {
    name: 'today',
    design: 'every instance every 1 s (no idle interval)',
    world: { ...base, endpoints: N, idleIntervalMs: 0 },
    failures: false,
    measureMs: 10_000,
  },
  ...[20_000, 60_000].flatMap((idle): Scenario[] => [
    {
      name: `aware-${idle / 1000}s`,
      design: `traffic-aware, idle ${idle / 1000} s, HTTP, server keep-alive 75 s (nginx)`,
      world: { ...base, endpoints: N, idleIntervalMs: idle },
      failures: true,
      measureMs: 60_000,
    },
    {
      name: `aware-${idle / 1000}s-ka5`,
      design: `traffic-aware, idle ${idle / 1000} s, HTTP, server keep-alive 5 s (Node.js)`,
      world: { ...base, endpoints: N, idleIntervalMs: idle, serverKeepAliveMs: 5000 },
      failures: false,
      measureMs: 60_000,
    },
    {
      name: `aware-${idle / 1000}s-tcp`,
      design: `traffic-aware, idle ${idle / 1000} s, TCP checks`,
      world: { ...base, endpoints: N, idleIntervalMs: idle, tcp: true },
      failures: false,
      measureMs: 60_000,
    },
  ]),
  ...[3, 10].flatMap((r): Scenario[] => [
    {
      name: `sharded-${r}`,
      design: `sharded over ${r} replicas, idle 20 s, HTTP, keep-alive 5 s (one replica's shard)`,
      world: { ...base, endpoints: Math.round(N / r), idleIntervalMs: 20_000, serverKeepAliveMs: 5000 },
      shards: r,
      failures: r === 3,
      measureMs: 60_000,
    },
    {
      name: `sharded-${r}-tcp`,
      design: `sharded over ${r} replicas, idle 20 s, TCP checks (one replica's shard)`,
      world: { ...base, endpoints: Math.round(N / r), idleIntervalMs: 20_000, tcp: true },
      shards: r,
      failures: false,
      measureMs: 60_000,
    },
  ]),
];

interface Detection {
  readonly label: string;
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly missed: number;
}

interface Result {
  readonly scenario: Scenario;
  readonly probesPerS: number;
  readonly connsPerS: number;
  readonly serverTimeWaitPerS: number;
  readonly transitionsPerS: number;
  /** CPU of the simulation's health code (scheduler, loops, state machines, no sockets) per probe. */
  readonly schedulerUsPerProbe: number;
  readonly detections: Detection[];
  readonly falseEjections: number;
  readonly heapMiB: number;
  readonly wallS: number;
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function run(sc: Scenario): Result {
  const wall = Date.now();
  const w = new World({ ...sc.world, seed: 42 });
  const idle = sc.world.idleIntervalMs || 1000;
  // Warm up: adoption, first probes, one whole idle interval for the schedule to settle, and kept
  // connections past their first retirement (CONN_MAX_AGE_MS), so the window sees the steady state.
  w.run(sc.world.idleIntervalMs ? idle + 65_000 : 5000);
  const p0 = w.prober.probes;
  const c0 = w.prober.connections;
  const tw0 = w.prober.serverTimeWait;
  const t0 = w.transitions;
  const cpu0 = process.cpuUsage();
  w.run(sc.measureMs);
  const cpu = process.cpuUsage(cpu0);
  const s = sc.measureMs / 1000;
  const probes = w.prober.probes - p0;
  const conns = w.prober.connections - c0;
  const serverTimeWait = w.prober.serverTimeWait - tw0;
  const transitions = w.transitions - t0;
  const heapMiB = process.memoryUsage().heapUsed / 2 ** 20;
  const detections: Detection[] = [];
  if (sc.failures) {
    // Failures start at random points of a 30 s window, so every phase of the schedules is sampled.
    // Three nodes die; the single failures are picked from pods on other nodes.
    const nodes = [...w.byNode.keys()].filter((_, i) => i % 997 === 5).slice(0, 3);
    const onDeadNode = new Set(nodes.flatMap((n) => w.byNode.get(n)!));
    const picked = new Set<unknown>();
    const pick = (busy: boolean, n: number) => {
      const out = [];
      for (const e of w.endpoints) {
        if (out.length >= n) break;
        if (e.busy === busy && !onDeadNode.has(e) && !picked.has(e) && w.random() < 0.01) {
          picked.add(e);
          out.push(e);
        }
      }
      return out;
    };
    const plan: Array<[string, ReturnType<typeof pick>, 'dead' | 'hung']> = [
      ['busy instance killed (refused)', pick(true, 100), 'dead'],
      ['idle instance killed (refused)', pick(false, 100), 'dead'],
      ['busy instance hung (SIGSTOP)', pick(true, 100), 'hung'],
      ['idle instance hung (SIGSTOP)', pick(false, 100), 'hung'],
    ];
    for (const [label, list, cond] of plan)
      for (const e of list) w.time.setTimeout(() => w.inject(e, cond, label), w.random() * 30_000);
    // Every pod on a dead node stops connecting (SYN dropped).
    for (const node of nodes) {
      const at = w.random() * 30_000;
      w.time.setTimeout(() => {
        for (const e of w.byNode.get(node)!)
          if (e.injected === undefined) w.inject(e, 'blackhole', 'node died');
      }, at);
    }
    w.run(30_000 + idle + 10_000);
    const labels = [...plan.map((p) => p[0]), 'node died'];
    for (const label of labels) {
      const hit = w.endpoints.filter((e) => e.injected === label);
      const found = hit
        .map((e) => e.detectedAfter)
        .filter((x): x is number => x !== undefined)
        .sort((a, b) => a - b);
      detections.push({
        label,
        n: hit.length,
        p50: quantile(found, 0.5),
        p99: quantile(found, 0.99),
        max: found.at(-1) ?? Number.NaN,
        missed: hit.length - found.length,
      });
    }
  }
  const result: Result = {
    scenario: sc,
    probesPerS: probes / s,
    connsPerS: conns / s,
    serverTimeWaitPerS: serverTimeWait / s,
    transitionsPerS: transitions / s,
    schedulerUsPerProbe: probes > 0 ? (cpu.user + cpu.system) / probes : 0,
    detections,
    falseEjections: w.falseEjections,
    heapMiB,
    wallS: (Date.now() - wall) / 1000,
  };
  w.close();
  return result;
}

/** Per-probe CPU costs measured by the real benchmark (bench/health.ts), if it ran. */
function measuredCosts(): { keptUs: number; newUs: number; tcpUs: number; source: string } | undefined {
  const file = 'bench/results/health.json';
  if (!existsSync(file)) return undefined;
  const j = JSON.parse(readFileSync(file, 'utf8')) as {
    costs?: { keptUs: number; newUs: number; tcpUs: number };
  };
  return j.costs ? { ...j.costs, source: file } : undefined;
}

const fmt = (x: number, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '-');
const secs = (ms: number) => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(2)} s` : '-');

const chosen = args.only ? scenarios.filter((s) => args.only!.split(',').includes(s.name)) : scenarios;
const rawFile = args.out!.replace(/\.md$/, '.json');
const results: Result[] = args.render
  ? (JSON.parse(readFileSync(rawFile, 'utf8')) as { results: Result[] }).results
  : [];
for (const sc of args.render ? [] : chosen) {
  process.stderr.write(`sim ${sc.name}: ${sc.design}, ${sc.world.endpoints} endpoints ... `);
  const r = run(sc);
  results.push(r);
  process.stderr.write(
    `${fmt(r.probesPerS)} probes/s, ${fmt(r.connsPerS)} conns/s, ${r.falseEjections} false ejections (${fmt(r.wallS, 1)} s)\n`,
  );
}

const costs = measuredCosts();
const lines: string[] = [];
lines.push('# Health checking at scale: simulation');
lines.push('');
lines.push(
  `Generated by \`node --import tsx bench/health-sim.ts\` on ${new Date().toISOString()} (Node ${process.version}).` +
    ' The real HealthService, ProbeScheduler, probe loops and state machines run over simulated endpoints' +
    ' (fake clock, simulated prober and data plane, seed 42). Assumptions: 10 instances per project, 30 pods' +
    ' per node, 20% of instances busy (answering requests at least every 250 ms), probe interval 1 s,' +
    ' timeout 1 s, fall 2, rise 2, 0.2% of probes slow (400 ms), connect timeout 2 s, suspect hint after 250 ms.',
);
lines.push('');
lines.push(
  '| scenario | design | endpoints (this replica) | probes/s | new connections/s | TIME_WAIT made in upstreams /s | transitions/s | CPU per replica (est.) | false ejections |',
);
lines.push('|---|---|---|---|---|---|---|---|---|');
for (const r of results) {
  const sc = r.scenario;
  let cpu = '-';
  if (costs) {
    const kept = sc.world.tcp ? 0 : r.probesPerS - r.connsPerS;
    const fresh = sc.world.tcp ? 0 : r.connsPerS;
    const tcp = sc.world.tcp ? r.probesPerS : 0;
    const us = kept * costs.keptUs + fresh * costs.newUs + tcp * costs.tcpUs;
    cpu = `${fmt(us / 1e6, 2)} core`;
  }
  lines.push(
    `| ${sc.name} | ${sc.design} | ${sc.world.endpoints.toLocaleString('en-US')} | ${fmt(r.probesPerS)} | ${fmt(r.connsPerS)} | ${fmt(r.serverTimeWaitPerS)} | ${fmt(r.transitionsPerS, 1)} | ${cpu} | ${r.falseEjections} |`,
  );
}
lines.push('');
lines.push(
  costs
    ? `CPU per replica = kept-connection probes x ${fmt(costs.keptUs, 1)} us + new-connection probes x ${fmt(costs.newUs, 1)} us + TCP checks x ${fmt(costs.tcpUs, 1)} us, the per-probe costs of the probe thread measured by \`npm run bench:health\` (${costs.source}).`
    : 'CPU per replica: run `npm run bench:health` first; it measures the per-probe costs this column needs.',
);
lines.push('');
lines.push('## Detection (time from the failure to the ejection)');
lines.push('');
lines.push('| scenario | failure | cases | median | p99 | max | not found |');
lines.push('|---|---|---|---|---|---|---|');
for (const r of results)
  for (const d of r.detections)
    lines.push(
      `| ${r.scenario.name} | ${d.label} | ${d.n} | ${secs(d.p50)} | ${secs(d.p99)} | ${secs(d.max)} | ${d.missed} |`,
    );
lines.push('');
lines.push(
  'transitions/s counts state changes in the steady window (no churn is simulated: each pod start adds one, each failure two).',
);
const text = `${lines.join('\n')}\n`;
process.stdout.write(text);
if (!args.quick && !args.only) {
  writeFileSync(args.out!, text);
  if (!args.render) writeFileSync(rawFile, `${JSON.stringify({ results }, null, 2)}\n`);
}
process.exit(0);
