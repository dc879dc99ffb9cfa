// Discovery benchmark (`npm run bench:discovery`): a synthetic cluster of 10,000 Services and 50,000
// endpoints in the fake apiserver (a child process, so its memory and CPU are not Wharf's), and the
// whole Wharf (discovery -> routing -> health -> proxy) in another child process, a fresh one per
// trial so every figure belongs to one process that did one sync. Reports:
//   - initial sync: Wharf.start() until all 10,000 projects are in the route table;
//   - event-to-routable under churn of 100 endpoint changes per second: from just before the
//     apiserver write until a request pinned to the new endpoint is answered by that endpoint;
//   - RSS of the Wharf process after its sync, and its peak during churn.
// Three processes: this one (orchestrator: the upstream servers the churned pods point at, and the
// relay of churn writes), the apiserver, and the measured Wharf. Everything runs on 127.0.0.1 and
// every loop is bounded in time and count.

import { type ChildProcess, fork } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { parseConfig } from '../src/config/load.ts';
import { ControlPlane } from '../src/control/plane.ts';
import { NO_CREDENTIALS } from '../src/discovery/credentials.ts';
import { KubernetesSource } from '../src/discovery/source.ts';
import { endpointSlice, FakeApiServer, service } from '../src/fake-apiserver/index.ts';
import { Wharf } from '../src/main.ts';
import type { RouteTable } from '../src/model/routes.ts';
import type { ProjectChange } from '../src/model/snapshot.ts';
import { DEFAULT_ADDRESS_POLICY } from '../src/routing/addresses.ts';
import { DEFAULT_CONVENTIONS } from '../src/routing/build.ts';
import { systemClock } from '../src/util/clock.ts';

const SERVICES = Number(process.env.BENCH_SERVICES ?? 10_000);
const ENDPOINTS_PER_SERVICE = 5;
const CHURN_PER_S = Number(process.env.BENCH_CHURN ?? 100);
const CHURN_SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const UPSTREAMS = 20;
const DEADLINE_MS = 5000;
/** `wharf`: the whole proxy. `routing`: KubernetesSource + the control plane only (no health, no proxy). */
const LEVEL = process.env.BENCH_LEVEL === 'routing' ? 'routing' : 'wharf';
const SYNC_TRIALS = Number(process.env.BENCH_SYNC_TRIALS ?? 3);
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP ?? 3);
/** Probe interval of the synthetic endpoints (real probes; see the report text). */
const HEALTH_INTERVAL = process.env.BENCH_HEALTH_INTERVAL ?? '60s';

const name = (i: number) => `svc-${String(i).padStart(5, '0')}`;
const mib = (b: number) => Math.round((b / 1024 / 1024) * 10) / 10;

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

// Messages between the processes.
type ChurnWrite = { type: 'churn'; i: number; seq: number; port: number };
interface SyncResult {
  type: 'sync';
  syncMs: number;
  listMs: number;
  endpoints: number;
  rssBefore: number;
  rssRoutable: number;
  /** After health has adopted every endpoint and the process has settled for a second. */
  rssSynced: number;
  heapSynced: number;
}
interface ChurnResult {
  type: 'churn';
  latencies: number[];
  published: number[];
  rebuilds: number[];
  failures: number;
  superseded: number;
  churnMs: number;
  peakRss: number;
  peakHeap: number;
  loadBefore: number;
  loadAfter: number;
  probes: { now: number; peak: number; max: number } | null;
}

// ------------------------------------------------------------------ child: the fake apiserver

async function apiserverRole(): Promise<void> {
  const api = await new FakeApiServer({ bookmarkIntervalMs: 30_000, maxHistory: 200_000 }).start();
  const t0 = performance.now();
  for (let i = 0; i < SERVICES; i++) {
    const svc = name(i);
    api.apply(service(svc, { namespace: `ns-${i % 50}`, ports: ['http'] }));
    api.apply(
      endpointSlice(svc, {
        namespace: `ns-${i % 50}`,
        name: `${svc}-main`,
        // Loopback addresses where nothing listens (port 1): health probes are refused at once
        // instead of hanging on unroutable addresses, and no traffic leaves the machine.
        ports: { http: 1 },
        endpoints: Array.from({ length: ENDPOINTS_PER_SERVICE }, (_, k) => ({
          ip: `127.${k + 1}.${(i >> 8) & 255}.${i & 255}`,
          pod: `${svc}-${k}`,
        })),
      }),
    );
  }
  const fillMs = performance.now() - t0;
  process.send!({ type: 'ready', url: api.url, fillMs });
  process.on('message', (m: ChurnWrite | { type: 'exit' }) => {
    if (m.type === 'churn') {
      // One EndpointSlice write = one endpoint replaced: the previous churned pod of this Service
      // goes, a new one (a real local server) comes.
      const svc = name(m.i);
      api.apply(
        endpointSlice(svc, {
          namespace: `ns-${m.i % 50}`,
          name: `${svc}-churn`,
          ports: { http: m.port },
          endpoints: [{ ip: '127.0.0.1', pod: `${svc}-c${m.seq}` }],
        }),
      );
    } else if (m.type === 'exit') {
      api.close().then(() => process.exit(0));
    }
  });
}

// ------------------------------------------------------------------ child: the measured Wharf

/** What the bench needs of Wharf; `RoutingOnly` provides it with discovery and the control plane alone. */
interface Target {
  table(): RouteTable;
  readonly control: ControlPlane;
  stop(ms?: number): Promise<void>;
  readonly frontAddress: { port: number };
}

class RoutingOnly implements Target {
  // The fleet listens on loopback: discovered loopback addresses are refused unless allowed.
  readonly control = new ControlPlane({
    conventions: { ...DEFAULT_CONVENTIONS, addresses: { ...DEFAULT_ADDRESS_POLICY, allowLoopback: true } },
    clock: systemClock,
  });
  readonly frontAddress = { port: 0 };
  constructor(url: string, log: (level: string, msg: string) => void) {
    this.control.add(new KubernetesSource({ servers: [{ url, credentials: NO_CREDENTIALS }], log }));
    this.control.start();
  }
  table(): RouteTable {
    return this.control.table();
  }
  stop(): Promise<void> {
    return this.control.stop();
  }
}

async function wharfRole(): Promise<void> {
  const url = process.env.BENCH_API_URL!;
  const ports = (process.env.BENCH_PORTS ?? '').split(',').map(Number);
  const churn = process.env.BENCH_DO_CHURN === '1';
  const send = (m: SyncResult | ChurnResult | ChurnWrite) => process.send!(m);

  const config = parseConfig(
    JSON.stringify({
      listen: '127.0.0.1:0',
      admin: '127.0.0.1:0',
      domain: 'bench.local',
      // The synthetic pods are loopback addresses (see the apiserver role): a local setup.
      kubernetes: { apiservers: [url], 'allow-loopback': true },
      // Every endpoint is probed for real (see the report): 50,000 every 60 s is about 830 probes
      // a second, at most health.concurrency (256) at a time.
      defaults: { 'health-interval': HEALTH_INTERVAL },
    }),
    'bench',
  );
  const rssBefore = process.memoryUsage().rss;
  const t0 = performance.now();
  let listedAt = 0;
  const log = (level: string, msg: string, fields?: Record<string, unknown>) => {
    if (msg === 'kubernetes: first sync complete') listedAt = performance.now();
    if (level === 'warn' || level === 'error') console.error(level, msg, fields ?? '');
  };
  const wharf: Target = LEVEL === 'routing' ? new RoutingOnly(url, log) : await Wharf.start({ config, log });
  const deadline = Date.now() + 60_000;
  while (wharf.table().projects.size < SERVICES && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 2));
  const syncMs = performance.now() - t0;
  const rssRoutable = process.memoryUsage().rss;
  let endpoints = 0;
  for (const p of wharf.table().projects.values())
    for (const r of p.ports.values()) endpoints += r.endpoints.length;
  // Health adopts a big change in chunks after the swap; RSS "after sync" is once that is done.
  if (wharf instanceof Wharf) while (wharf.health.adopting) await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, 1000));
  const mem = process.memoryUsage();
  send({
    type: 'sync',
    syncMs,
    listMs: listedAt - t0,
    endpoints,
    rssBefore,
    rssRoutable,
    rssSynced: mem.rss,
    heapSynced: mem.heapUsed,
  });
  if (!churn) {
    await wharf.stop(100);
    process.exit(0);
  }

  // Rebuild cost as the control plane sees it (the aggregated change -> routing -> swap -> health,
  // pools, certificates, events).
  const rebuilds: number[] = [];
  const published: number[] = [];
  const runtime = wharf.control.runtime;
  const orig = runtime.apply.bind(runtime);
  // Each pending change waits for the swap that makes its pod routable (no busy polling: 50+
  // pollers at 1 ms saturate two cores and measure themselves), then a request pinned to the pod
  // must be answered by it. If it is not (a race), it polls every 2 ms until the deadline.
  const waiting = new Map<string, () => void>(); // `${svc}|${pod}` -> wake
  const startedAt = new Map<string, number>();
  const publishedAt = new Set<string>();
  runtime.apply = (change: ProjectChange) => {
    const t = performance.now();
    if (waiting.size) {
      // Discovery's own share: write -> the published change holds the new pod.
      for (const p of change.added) {
        for (const inst of p.instances) {
          const k = `${p.name}|${inst.name}`;
          if (waiting.has(k) && !publishedAt.has(k)) {
            publishedAt.add(k);
            published.push(t - startedAt.get(k)!);
          }
        }
      }
    }
    orig(change);
    rebuilds.push(performance.now() - t);
    for (const [key, wake] of waiting) {
      const [svc, pod] = key.split('|');
      if (wharf.table().projects.get(svc)?.ports.get('http')?.byInstance.has(pod)) {
        waiting.delete(key);
        wake();
      }
    }
  };

  const front = `http://127.0.0.1:${wharf.frontAddress.port}`;
  const latencies: number[] = [];
  let failures = 0;
  let peakRss = process.memoryUsage().rss;
  let peakHeap = process.memoryUsage().heapUsed;
  let atPeak = process.memoryUsage();
  const memTimer = setInterval(() => {
    const m = process.memoryUsage();
    if (m.rss > peakRss) atPeak = m;
    peakRss = Math.max(peakRss, m.rss);
    peakHeap = Math.max(peakHeap, m.heapUsed);
  }, 100);
  const lastSeq = new Map<number, number>();
  const inFlight = new Map<number, number>();
  const measure = async (i: number, seq: number, port: number, start: number) => {
    const svc = name(i);
    const pod = `${svc}-c${seq}`;
    const key = `${svc}|${pod}`;
    startedAt.set(key, start);
    const swapped = await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => {
        waiting.delete(key);
        resolve(false);
      }, DEADLINE_MS);
      waiting.set(key, () => {
        clearTimeout(t);
        resolve(true);
      });
    });
    if (LEVEL === 'routing') {
      // No proxy at this level: routable = in the swapped table.
      if (!swapped) failures++;
      else latencies.push(performance.now() - start);
      return;
    }
    const host = `${pod}.http.${svc}.bench.local`;
    while (performance.now() - start < DEADLINE_MS) {
      // A newer change of the same Service replaced this pod: stop measuring it.
      if (lastSeq.get(i) !== seq) return;
      try {
        const r = await request(front, { headers: { host } });
        const body = await r.body.text();
        if (r.statusCode === 200 && body === String(port)) {
          latencies.push(performance.now() - start);
          return;
        }
      } catch {
        // keep polling
      }
      await new Promise((r) => setTimeout(r, 2));
    }
    failures++;
  };
  const track = async (i: number, seq: number, port: number, start: number) => {
    inFlight.set(i, (inFlight.get(i) ?? 0) + 1);
    await measure(i, seq, port, start);
    inFlight.set(i, inFlight.get(i)! - 1);
  };
  let superseded = 0;
  let seq = 0;
  const runPhase = async (count: number) => {
    const phaseStart = performance.now();
    const pending: Promise<void>[] = [];
    for (let n = 0; n < count; n++, seq++) {
      const due = phaseStart + (n * 1000) / CHURN_PER_S;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const i = Math.floor(Math.random() * SERVICES);
      if (inFlight.get(i)) superseded++;
      lastSeq.set(i, seq);
      const port = ports[seq % ports.length];
      const start = performance.now();
      send({ type: 'churn', i, seq, port });
      pending.push(track(i, seq, port, start));
    }
    await Promise.all(pending);
  };
  // Warm-up at the same rate, not counted: the first proxied requests JIT-compile the data path
  // and open the first upstream connections.
  await runPhase(CHURN_PER_S * WARMUP_SECONDS);
  latencies.length = 0;
  published.length = 0;
  rebuilds.length = 0;
  failures = 0;
  superseded = 0;
  const loadBefore = loadavg()[0];
  // BENCH_ALLOC_PROF=file: where the churn phase allocates (collected objects included).
  const allocProf = process.env.BENCH_ALLOC_PROF;
  const inspector = allocProf ? new (await import('node:inspector/promises')).Session() : undefined;
  if (inspector) {
    inspector.connect();
    await inspector.post('HeapProfiler.startSampling', {
      samplingInterval: 32768,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: process.env.BENCH_ALLOC_MINOR !== '0',
    });
  }
  const churnStart = performance.now();
  await runPhase(CHURN_PER_S * CHURN_SECONDS);
  const churnMs = performance.now() - churnStart;
  clearInterval(memTimer);
  if (inspector && allocProf) {
    const { profile } = await inspector.post('HeapProfiler.stopSampling');
    (await import('node:fs')).writeFileSync(allocProf, JSON.stringify(profile));
    inspector.disconnect();
  }
  if (process.env.BENCH_DEBUG)
    for (const sp of (await import('node:v8')).getHeapSpaceStatistics())
      console.log(
        `  ${sp.space_name}: size ${mib(sp.space_size)} MiB, used ${mib(sp.space_used_size)} MiB, physical ${mib(sp.physical_space_size)} MiB`,
      );
  if (process.env.BENCH_DEBUG)
    console.log(
      `at peak RSS: heap used ${mib(atPeak.heapUsed)} / total ${mib(atPeak.heapTotal)} MiB, external ${mib(atPeak.external)} MiB, array buffers ${mib(atPeak.arrayBuffers)} MiB`,
    );
  if (process.env.BENCH_HEAPSNAP)
    console.log('heap snapshot', (await import('node:v8')).writeHeapSnapshot(process.env.BENCH_HEAPSNAP));
  send({
    type: 'churn',
    latencies,
    published,
    rebuilds,
    failures,
    superseded,
    churnMs,
    peakRss,
    peakHeap,
    loadBefore,
    loadAfter: loadavg()[0],
    probes: wharf instanceof Wharf ? wharf.health.probesInFlight : null,
  });
  await wharf.stop(500);
  process.exit(0);
}

// ------------------------------------------------------------------ orchestrator

async function main(): Promise<void> {
  const self = fileURLToPath(import.meta.url);
  const children = new Set<ChildProcess>();
  const killAll = () => {
    for (const c of children) c.kill('SIGKILL');
  };
  process.on('exit', killAll);
  process.on('SIGINT', () => process.exit(130));
  const apiserver = fork(self, ['--role=apiserver'], { execArgv: ['--import', 'tsx'], stdio: 'inherit' });
  children.add(apiserver);
  const ready = await new Promise<{ url: string; fillMs: number }>((resolve, reject) => {
    apiserver.once('message', (m) => resolve(m as { url: string; fillMs: number }));
    apiserver.once('exit', (code) => reject(new Error(`apiserver child exited with ${code}`)));
  });
  console.log(
    `fake apiserver: ${SERVICES} Services, ${SERVICES * ENDPOINTS_PER_SERVICE} endpoints (filled in ${Math.round(ready.fillMs)} ms)`,
  );

  // Local upstreams that the churned endpoints point at; each answers with its own port. They live
  // here, not in the measured process.
  const upstreams: http.Server[] = [];
  const ports: number[] = [];
  for (let i = 0; i < UPSTREAMS; i++) {
    let port = 0;
    const s = http.createServer((_req, res) => res.end(String(port)));
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    port = (s.address() as AddressInfo).port;
    upstreams.push(s);
    ports.push(port);
  }

  // One fresh process per trial; the last one also runs the churn.
  const syncs: SyncResult[] = [];
  let churn: ChurnResult | undefined;
  for (let trial = 0; trial < SYNC_TRIALS; trial++) {
    const last = trial === SYNC_TRIALS - 1;
    const child = fork(self, ['--role=wharf'], {
      // BENCH_NODE_ARGS: extra node flags for the measured process (--cpu-prof, --heap-prof, ...).
      execArgv: ['--import', 'tsx', ...(process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [])],
      stdio: 'inherit',
      env: {
        ...process.env,
        BENCH_API_URL: ready.url,
        BENCH_PORTS: ports.join(','),
        BENCH_DO_CHURN: last ? '1' : '0',
      },
    });
    children.add(child);
    child.on('message', (m: SyncResult | ChurnResult | ChurnWrite) => {
      if (m.type === 'churn' && 'i' in m) apiserver.send(m);
      else if (m.type === 'sync') {
        syncs.push(m);
        console.log(
          `trial ${trial + 1}: LISTs done in ${Math.round(m.listMs)} ms, ${Math.round(m.syncMs)} ms to ${SERVICES} projects / ${m.endpoints} endpoints routable; RSS ${mib(m.rssBefore)} MiB before start, ${mib(m.rssRoutable)} MiB when routable, ${mib(m.rssSynced)} MiB after sync (heap ${mib(m.heapSynced)} MiB)`,
        );
      } else if (m.type === 'churn') churn = m as ChurnResult;
    });
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    children.delete(child);
    if (code !== 0) throw new Error(`wharf child (trial ${trial + 1}) exited with ${code}`);
  }
  if (!churn) throw new Error('no churn results');

  const bySync = [...syncs].sort((a, b) => a.syncMs - b.syncMs);
  const med = bySync[Math.floor(bySync.length / 2)];
  const syncAll = syncs.map((x) => Math.round(x.syncMs)).join(', ');
  const rssSyncedAll = syncs.map((x) => mib(x.rssSynced)).join(', ');
  const rssSynced = [...syncs].sort((a, b) => a.rssSynced - b.rssSynced)[Math.floor(syncs.length / 2)]
    .rssSynced;
  const { latencies, published, rebuilds, failures, superseded, churnMs, peakRss } = churn;
  latencies.sort((a, b) => a - b);
  published.sort((a, b) => a - b);
  rebuilds.sort((a, b) => a - b);
  const total = CHURN_PER_S * CHURN_SECONDS;
  const p50 = pct(latencies, 50);
  const p99 = pct(latencies, 99);
  const max = latencies[latencies.length - 1];
  const rate = Math.round((total / churnMs) * 1000);
  console.log(
    `churn: ${total} changes in ${Math.round(churnMs)} ms (${rate}/s); measured ${latencies.length}, failed ${failures}, superseded before routable ${superseded}`,
  );
  console.log(
    `event-to-routable: p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${max.toFixed(1)} ms`,
  );
  console.log(
    `write -> published by discovery: p50 ${pct(published, 50).toFixed(1)} ms, p99 ${pct(published, 99).toFixed(1)} ms`,
  );
  console.log(`RSS: after sync ${mib(rssSynced)} MiB, peak during churn ${mib(peakRss)} MiB`);
  const rebuildLine = `${rebuilds.length} table rebuilds during churn (${(rebuilds.length ? total / rebuilds.length : 0).toFixed(1)} changes each on average), rebuild time (${LEVEL === 'routing' ? 'routing and swap' : 'routing, health, pools, swap'}) p50 ${pct(rebuilds, 50).toFixed(1)} ms, p99 ${pct(rebuilds, 99).toFixed(1)} ms`;
  console.log(rebuildLine);

  const ok = (b: boolean) => (b ? 'yes' : '**no**');
  const probeLine = churn.probes
    ? ` Probes in flight at the end: ${churn.probes.now}, at most ${churn.probes.peak} at once (cap ${churn.probes.max}).`
    : '';
  const report = `# Discovery benchmark${LEVEL === 'routing' ? ': KubernetesSource + control plane only (BENCH_LEVEL=routing)' : ''}

\`npm run bench:discovery\` (bench/discovery.ts), ${new Date().toISOString().slice(0, 16)}Z, Node ${process.version},
${process.env.BENCH_NOTE ?? 'the shared 2-core machine with other work running at the same time'}: 1-minute load average
${churn.loadBefore.toFixed(1)} when the churn started, ${churn.loadAfter.toFixed(1)} at the end (2 cores).

Synthetic cluster in the fake apiserver (a separate process): ${SERVICES.toLocaleString('en')} Services labelled
\`wharf.io/project\` in 50 namespaces, one EndpointSlice each with ${ENDPOINTS_PER_SERVICE} endpoints
(${(SERVICES * ENDPOINTS_PER_SERVICE).toLocaleString('en')} endpoints on loopback addresses where nothing listens). Each trial is a fresh
process: ${SYNC_TRIALS} sync trials, the last of which then runs the churn; the upstream servers of the churned
pods and the relay of the churn writes run in a third process (the orchestrator), so neither their CPU
nor their memory is counted. ${
    LEVEL === 'routing'
      ? 'Only discovery (KubernetesSource: paged LIST of 500, WATCH) and the control plane (aggregator, RouteTableBuilder, swap) run in the measured process: no health checks, no proxy; routable = the new pod is in the swapped table.'
      : `The whole Wharf runs in the measured process: discovery (paged LIST of 500, WATCH),
routing, health, the proxy. Active health checks run for real on every endpoint: a TCP connect and
HTTP GET per probe (refused at once on the synthetic endpoints), \`defaults.health-interval\` ${HEALTH_INTERVAL}
(50,000 endpoints every 60 s is about 830 probes a second; at the default 1 s it would be 50,000 a second,
more than two cores can open sockets for), at most \`health.concurrency\` (256) at a time, the first sync's
first probes spread over one interval, each churned pod probed at once.${probeLine}`
  } Churn: ${CHURN_PER_S} EndpointSlice writes per second
for ${CHURN_SECONDS} s (after ${WARMUP_SECONDS} s of the same churn as warm-up, not counted), each replacing one endpoint of a random Service with a new pod that is a real local server;
event-to-routable is measured from just before the apiserver write (an IPC message relayed by the orchestrator to the apiserver process)
until ${LEVEL === 'routing' ? 'the swap that contains it (no request at this level)' : 'a request pinned to the new pod (`<pod>.http.<svc>.bench.local`) is answered by that pod through the proxy'}. ${
    LEVEL === 'routing'
      ? 'It includes the apiserver write, the watch delivery, the coalescing window, translation and the route-table build.'
      : `The request is sent as soon as a table swap contains the pod (blind polling every 1 ms by
50+ concurrent pollers saturated the two cores and measured the pollers), and retried every 2 ms if it
does not reach the pod. So the figure includes the apiserver write, the watch delivery, the coalescing
window, translation, the route-table rebuild and swap, and one proxied request.`
  }

| metric | result | target | met |
| --- | --- | --- | --- |
| initial sync (start -> ${SERVICES.toLocaleString('en')} projects routable), median of ${SYNC_TRIALS} fresh processes (${syncAll} ms) | ${Math.round(med.syncMs)} ms | <= 3000 ms | ${ok(med.syncMs <= 3000)} |
| of which: paged LISTs of both resources complete | ${Math.round(med.listMs)} ms | | |
| event-to-routable p50 | ${p50.toFixed(1)} ms | | |
| event-to-routable p99 | ${p99.toFixed(1)} ms | <= 50 ms | ${ok(p99 <= 50)} |
| of which write -> snapshot published by discovery, p50 / p99 | ${pct(published, 50).toFixed(1)} / ${pct(published, 99).toFixed(1)} ms | | |
| event-to-routable max | ${max.toFixed(1)} ms | | |
| changes measured / failed (not routable in ${DEADLINE_MS / 1000} s) | ${latencies.length} / ${failures} | | |
| RSS after sync (${LEVEL === 'routing' ? '1 s after the table held every project' : 'every endpoint adopted by health, 1 s later'}), median of ${SYNC_TRIALS} (${rssSyncedAll} MiB) | ${mib(rssSynced)} MiB | <= 300 MiB | ${ok(rssSynced <= 300 * 1024 * 1024)} |
| RSS peak during churn (warm-up included; sampled every 100 ms) | ${mib(peakRss)} MiB | <= 300 MiB | ${ok(peakRss <= 300 * 1024 * 1024)} |
| of which: RSS of the same process before Wharf started (Node, tsx, modules) | ${mib(syncs[syncs.length - 1].rssBefore)} MiB | | |

${rebuildLine}.

Achieved churn rate: ${rate} changes/s. Changes superseded by a newer change of the
same Service before they were measured: ${superseded} (not counted).

Anchors (shared/reference/anchors.md): Traefik waits at least 2 s between reloads, ingress-nginx syncs
endpoints about once a second, Contour 100-500 ms.
`;
  if (process.env.BENCH_WRITE !== '0') {
    const file = LEVEL === 'routing' ? 'discovery-routing.md' : 'discovery.md';
    writeFileSync(new URL(`./results/${file}`, import.meta.url), report);
    console.log(`wrote bench/results/${file}`);
  }
  for (const s of upstreams) s.close();
  apiserver.send({ type: 'exit' });
  await new Promise((r) => apiserver.once('exit', r));
  children.delete(apiserver);
  process.exit(0);
}

if (process.argv.includes('--role=apiserver')) await apiserverRole();
else if (process.argv.includes('--role=wharf')) await wharfRole();
else await main();
