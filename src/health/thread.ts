// The probe thread, seen from the main thread: the prober (engine.ts) runs in a worker thread so
// that probing any number of endpoints never takes time from the event loop that serves requests
// (issue 24: 5,000 endpoints probed on that loop added 140-220 ms to the proxy's p99).
//
// What crosses the thread boundary: targets added and removed, kicks (a joining member, a suspect
// hint, a node that stopped connecting) one way; results that may change a state (failures, a first
// success after one, any while a member is unsettled) the other way, batched per turn of the
// worker's loop, and the latencies of the other successes every 500 ms for the metrics. Traffic
// evidence and per-target flags are shared memory (signals.ts), not messages.
//
// The worker's file is found next to this one with this module's own extension: `.ts` under tsx
// (development, tests), `.js` in the compiled `dist/`. A `.ts` worker registers tsx itself: Node
// does not pass module hooks registered by `tsx/esm/api` (bin/wharf.js) or `--import tsx` on to a
// worker on Node 20. Until a worker is ready, and whenever it is lost, the same prober runs in the
// main thread (logged); a thread that fails more than three times within a minute is not started
// again: a degraded but working health checker, never none.

import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Log } from '../util/log.ts';
import { type ProbeEngine, type ProbeSink, START_RESUME, type TargetSpec } from './engine.ts';
import type { ProbeReport } from './loop.ts';
import type { Signals } from './signals.ts';

/** What HealthService needs from a prober, in its thread or in a worker. */
export interface ProbeLink {
  readonly maxInFlight: number;
  /** HealthService probes this many targets now (a thread may start once there are enough). */
  targetsNow?(count: number): void;
  /** True while the probes run in a worker thread. */
  readonly threaded?: boolean;
  add(spec: TargetSpec, start: number): void;
  remove(slot: number): void;
  kick(slot: number): void;
  suspect(slot: number): void;
  hint(slot: number): void;
  suspectNode(node: string): void;
  setSignals(signals: Signals): void;
  stats(): { readonly now: number; readonly peak: number; readonly max: number };
  close(): void;
}

/** Operations sent to the worker, in order, as arrays: [op, ...args]. */
export const OP_ADD = 1;
export const OP_REMOVE = 2;
export const OP_KICK = 3;
export const OP_SUSPECT = 4;
export const OP_NODE = 5;
export const OP_SIGNALS = 6;
export const OP_CLOSE = 7;
export const OP_HINT = 8;

export interface WorkerInit {
  readonly base: number;
  readonly maxInFlight: number;
  readonly idleMs: number;
  readonly signals: Signals;
}

/**
 * What the worker posts: `ready` once it can take targets, `r` results (7 fields each), `q` quiet
 * latencies (slot, id, ms), `s` stats.
 */
export interface WorkerReport {
  readonly ready?: boolean;
  /** A probe could not be made from this host (see ProbeResult.local). */
  readonly l?: string;
  readonly r?: unknown[];
  readonly q?: Float64Array;
  readonly s?: readonly [number, number, number];
}

/** Fields per result in WorkerReport.r: slot, id, ok (0/1), reason, latency, status (0: none), connect timeout (0/1). */
export const RESULT_FIELDS = 7;

export interface ThreadOptions extends WorkerInit {
  readonly sink: ProbeSink;
  readonly log: Log;
  /** The in-process prober to use when the thread cannot run. */
  readonly fallback: () => ProbeEngine;
  /** Every registered target, to register again with a restarted thread. */
  readonly targets: () => TargetSpec[];
  /** Start the thread at once, not when the targets reach THREAD_MIN_TARGETS. */
  readonly eager: boolean;
}

/**
 * Below this many targets the prober stays in the main thread: there probing costs a few
 * milliseconds a second at most (issue 24 measured the proxy's p99 unchanged up to about 100
 * endpoints), and a worker would cost a thread, its heap and, under tsx, a second of start-up CPU
 * for every small Wharf (tests, the demo, a small cluster).
 */
export const THREAD_MIN_TARGETS = 64;

/** Thread failures allowed within RESTART_WINDOW_MS before probing stays in the main thread for good. */
const MAX_RESTARTS = 3;
const RESTART_WINDOW_MS = 60_000;

/** The worker module next to this one, and how to start it (see the file comment). */
export function workerEntry(): { url: URL; typescript: boolean } {
  const ext = extname(fileURLToPath(import.meta.url));
  return { url: new URL(`./worker${ext}`, import.meta.url), typescript: ext === '.ts' };
}

function spawnWorker(init: WorkerInit): Worker {
  const { url, typescript } = workerEntry();
  if (!typescript) return new Worker(url, { workerData: init });
  const tsx = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(url.href)}); });`;
  return new Worker(boot, { eval: true, workerData: init });
}

export function startProbeThread(opts: ThreadOptions): ProbeLink {
  return new ThreadLink(opts);
}

/**
 * Probes run in the main thread until a worker says it is ready (starting one takes tens of
 * milliseconds from compiled JavaScript, about a second under tsx, and a new instance is probed at
 * once all the same), then move to it; they move back whenever the worker is lost. The worker is
 * started when there are THREAD_MIN_TARGETS targets (or at once, if eager).
 */
class ThreadLink implements ProbeLink {
  readonly maxInFlight: number;
  /** The worker that probes, once it said it is ready. */
  private worker: Worker | undefined;
  /** A worker being started. */
  private starting: Worker | undefined;
  /** The in-process prober, while no worker is ready. */
  private engine: ProbeEngine | undefined;
  private ops: unknown[][] = [];
  private flushing = false;
  private closed = false;
  private signals: Signals;
  private lastStats: readonly [number, number, number];
  private readonly failures: number[] = [];
  private spawned = false;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: ThreadOptions) {
    this.maxInFlight = opts.maxInFlight;
    this.signals = opts.signals;
    this.lastStats = [0, 0, opts.maxInFlight];
    this.engine = opts.fallback();
    if (opts.eager) this.spawn();
  }

  targetsNow(count: number): void {
    if (!this.spawned && count >= THREAD_MIN_TARGETS) this.spawn();
  }

  add(spec: TargetSpec, start: number): void {
    if (this.engine) return this.engine.add(spec, start);
    // A plain copy: the target object itself belongs to the main thread.
    const { slot, id, address, host, settings, node } = spec;
    this.send([OP_ADD, { slot, id, address, host, settings, node }, start]);
  }

  remove(slot: number): void {
    if (this.engine) return this.engine.remove(slot);
    this.send([OP_REMOVE, slot]);
  }

  kick(slot: number): void {
    if (this.engine) return this.engine.kick(slot);
    this.send([OP_KICK, slot]);
  }

  suspect(slot: number): void {
    if (this.engine) return this.engine.suspect(slot);
    this.send([OP_SUSPECT, slot]);
  }

  hint(slot: number): void {
    if (this.engine) return this.engine.hint(slot);
    this.send([OP_HINT, slot]);
  }

  suspectNode(node: string): void {
    if (this.engine) return this.engine.suspectNode(node);
    this.send([OP_NODE, node]);
  }

  setSignals(signals: Signals): void {
    this.signals = signals;
    this.engine?.setSignals(signals);
    // A worker being started gets them too: it may become the prober before the next change.
    this.starting?.postMessage([[OP_SIGNALS, signals]]);
    if (this.worker) this.send([OP_SIGNALS, signals]);
  }

  stats(): { readonly now: number; readonly peak: number; readonly max: number } {
    if (this.engine) return this.engine.stats();
    const [now, peak, max] = this.lastStats;
    return { now, peak, max };
  }

  /** True while probes run in a worker thread (tests). */
  get threaded(): boolean {
    return this.worker !== undefined;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.engine?.close();
    this.engine = undefined;
    if (this.starting) void this.starting.terminate();
    const w = this.worker;
    this.worker = undefined;
    if (!w) return;
    this.ops.push([OP_CLOSE]);
    this.flush(w);
    // The worker closes its sockets and exits; if it cannot, it is stopped.
    setTimeout(() => void w.terminate(), 2000).unref();
  }

  private send(op: unknown[]): void {
    const w = this.worker;
    if (this.closed || !w) return;
    this.ops.push(op);
    if (this.flushing) return;
    this.flushing = true;
    queueMicrotask(() => this.flush(w));
  }

  private flush(w: Worker): void {
    this.flushing = false;
    const ops = this.ops;
    if (ops.length === 0) return;
    this.ops = [];
    if (w === this.worker || ops[ops.length - 1][0] === OP_CLOSE) w.postMessage(ops);
  }

  private spawn(): void {
    this.spawned = true;
    let w: Worker;
    try {
      w = spawnWorker({
        base: this.opts.base,
        maxInFlight: this.opts.maxInFlight,
        idleMs: this.opts.idleMs,
        signals: this.signals,
      });
    } catch (err) {
      return this.failed(`cannot start the probe thread: ${String(err)}`);
    }
    w.unref();
    this.starting = w;
    w.on('message', (m: WorkerReport) => {
      if (m.ready) this.ready(w);
      else if (w === this.worker) this.receive(m);
    });
    w.on('error', (err) => {
      this.opts.log('error', 'probe thread failed', { error: String(err?.stack ?? err) });
    });
    w.on('exit', (code) => {
      if (this.closed) return;
      if (w === this.starting) {
        this.starting = undefined;
        this.failed(`the probe thread exited while starting (code ${code})`);
      } else if (w === this.worker) {
        this.worker = undefined;
        this.ops = [];
        this.bridge(this.opts.fallback());
        this.failed(`the probe thread exited (code ${code})`);
      }
    });
  }

  /** The worker is ready: the probes move there, each at a random point within its period. */
  private ready(w: Worker): void {
    if (this.closed || w !== this.starting) return void w.terminate();
    this.starting = undefined;
    this.worker = w;
    const engine = this.engine;
    this.engine = undefined;
    engine?.close();
    for (const t of this.opts.targets()) this.add(t, START_RESUME);
  }

  /** Probes go on in this thread, each at a random point within its period. */
  private bridge(engine: ProbeEngine): void {
    this.engine = engine;
    engine.setSignals(this.signals);
    for (const t of this.opts.targets()) engine.add(t, START_RESUME);
  }

  private failed(why: string): void {
    const now = Date.now();
    while (this.failures.length > 0 && now - this.failures[0] > RESTART_WINDOW_MS) this.failures.shift();
    this.failures.push(now);
    if (this.failures.length > MAX_RESTARTS) {
      this.opts.log('error', 'probes run in the main thread', { reason: `${why}, too often` });
      return;
    }
    this.opts.log('warn', 'probes run in the main thread until the probe thread restarts', { reason: why });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (!this.closed) this.spawn();
    }, 1000);
    this.retryTimer.unref();
  }

  private receive(m: WorkerReport): void {
    if (this.closed) return;
    const sink = this.opts.sink;
    if (m.r) {
      const r = m.r;
      for (let i = 0; i + RESULT_FIELDS <= r.length; i += RESULT_FIELDS) {
        const status = r[i + 5] as number;
        const report: ProbeReport = {
          ok: r[i + 2] === 1,
          reason: r[i + 3] as string,
          latencyMs: r[i + 4] as number,
          ...(status ? { status } : {}),
          connectTimeout: r[i + 6] === 1,
        };
        sink.result(r[i] as number, r[i + 1] as number, report);
      }
    }
    if (m.q) {
      const q = m.q;
      for (let i = 0; i + 3 <= q.length; i += 3) sink.quiet(q[i], q[i + 1], q[i + 2]);
    }
    if (m.s) this.lastStats = m.s;
    if (m.l) sink.localError?.(m.l);
  }
}
