// The probe thread (see thread.ts): a ProbeEngine with the network prober, real timers and a clock
// in milliseconds since the service started, fed by the main thread's operations.

import os from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { ProbeEngine, type ProbeSink, type TargetSpec } from './engine.ts';
import { netProber } from './prober.ts';
import type { Signals } from './signals.ts';
import {
  OP_ADD,
  OP_CLOSE,
  OP_HINT,
  OP_KICK,
  OP_NODE,
  OP_REMOVE,
  OP_SIGNALS,
  OP_SUSPECT,
  type WorkerInit,
  type WorkerReport,
} from './thread.ts';
import { systemTimers } from './time.ts';

/** Latencies of quiet successes are posted this often (metrics only: no hurry, few messages). */
const QUIET_FLUSH_MS = 100;

/**
 * The probe thread yields the core to the proxy when both want it (a nice value is per thread on
 * Linux): the proxy's requests should not wait behind probes. A starved prober cannot time out a
 * healthy instance for it (loop.ts reads sockets before a deadline counts); it probes less often.
 * WHARF_PROBE_NICE overrides it (benchmarks).
 */
const NICE = Number(process.env.WHARF_PROBE_NICE ?? 10);

const port = parentPort;
if (!port) throw new Error('health/worker.ts runs as a worker thread');
const init = workerData as WorkerInit;
try {
  os.setPriority(0, NICE);
} catch {
  // Not permitted here: the thread runs at the process's priority.
}

let results: unknown[] = [];
let resultsQueued = false;
let quiet = new Float64Array(3 * 1024);
let quietLength = 0;

function flushResults(): void {
  resultsQueued = false;
  if (results.length === 0) return;
  const r = results;
  results = [];
  port!.postMessage({ r } satisfies WorkerReport);
}

let localAt = 0;

const sink: ProbeSink = {
  localError(reason) {
    const now = Date.now();
    if (now - localAt < 1000) return;
    localAt = now;
    port!.postMessage({ l: reason } satisfies WorkerReport);
  },
  result(slot, id, r) {
    results.push(slot, id, r.ok ? 1 : 0, r.reason, r.latencyMs, r.status ?? 0, r.connectTimeout ? 1 : 0);
    if (resultsQueued) return;
    resultsQueued = true;
    // Everything answered in this turn of the loop goes in one message.
    setImmediate(flushResults);
  },
  quiet(slot, id, latencyMs) {
    if (quietLength + 3 > quiet.length) {
      const bigger = new Float64Array(quiet.length * 2);
      bigger.set(quiet);
      quiet = bigger;
    }
    quiet[quietLength++] = slot;
    quiet[quietLength++] = id;
    quiet[quietLength++] = latencyMs;
  },
};

const engine = new ProbeEngine({
  clock: { now: () => Date.now() - init.base },
  timers: systemTimers,
  prober: netProber,
  random: Math.random,
  maxInFlight: init.maxInFlight,
  idleMs: init.idleMs,
  signals: init.signals,
  sink,
});

let flushes = 0;
const quietTimer = setInterval(() => {
  // Stats once a second; latencies whenever there are some.
  if (quietLength === 0 && ++flushes % 10 !== 0) return;
  const st = engine.stats();
  const q = quiet.slice(0, quietLength);
  quietLength = 0;
  port.postMessage({ q, s: [st.now, st.peak, st.max] } satisfies WorkerReport, [q.buffer]);
}, QUIET_FLUSH_MS);

port.on('message', (ops: unknown[][]) => {
  for (const op of ops) {
    switch (op[0]) {
      case OP_ADD:
        engine.add(op[1] as TargetSpec, op[2] as number);
        break;
      case OP_REMOVE:
        engine.remove(op[1] as number);
        break;
      case OP_KICK:
        engine.kick(op[1] as number);
        break;
      case OP_SUSPECT:
        engine.suspect(op[1] as number);
        break;
      case OP_HINT:
        engine.hint(op[1] as number);
        break;
      case OP_NODE:
        engine.suspectNode(op[1] as string);
        break;
      case OP_SIGNALS:
        engine.setSignals(op[1] as Signals);
        break;
      case OP_CLOSE:
        clearInterval(quietTimer);
        engine.close();
        port.close();
        return;
    }
  }
});

port.postMessage({ ready: true } satisfies WorkerReport);
