// The event bus between producers (health, routing, discovery) and consumers (logs, metrics, SSE),
// and the per-second traffic aggregator that turns access records into small summaries for the
// dashboard. Both are synchronous and cheap: producers never wait for consumers.

import type { WharfEvent } from '../model/events.ts';
import { type AccessRecord, isErrorStatus } from './access-log.ts';

export type Unsubscribe = () => void;

export class EventBus<E = WharfEvent> {
  private readonly listeners = new Set<(e: E) => void>();
  private readonly onError: (err: unknown) => void;

  constructor(onError: (err: unknown) => void = () => {}) {
    this.onError = onError;
  }

  on(listener: (e: E) => void): Unsubscribe {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  emit(e: E): void {
    for (const l of this.listeners) {
      // One broken consumer must not starve the others, nor throw into the producer.
      try {
        l(e);
      } catch (err) {
        this.onError(err);
      }
    }
  }

  get size(): number {
    return this.listeners.size;
  }
}

/** One instance port over one second (`rps`, `errorRate`, `p99Ms`) and over the last `window` s. */
export interface TrafficPoint {
  readonly project: string;
  readonly port: string;
  /** Empty for requests that reached no instance (no healthy instance, unknown port). */
  readonly instance: string;
  readonly rps: number;
  /** 0..1: 5xx and failed requests over all requests. */
  readonly errorRate: number;
  /** null when there was no request. */
  readonly p99Ms: number | null;
  readonly windowRps: number;
  readonly windowErrorRate: number;
  readonly windowP99Ms: number | null;
}

export interface TrafficSummaryEvent {
  readonly type: 'traffic';
  /** Epoch ms of the start of the second summarised. */
  readonly time: number;
  readonly windowSeconds: number;
  readonly points: readonly TrafficPoint[];
}

/** Per-second history of one instance port, oldest first, ending at `end` (epoch ms of the last second). */
export interface TrafficSeries {
  readonly project: string;
  readonly port: string;
  readonly instance: string;
  readonly end: number;
  readonly rps: readonly number[];
  readonly errorRate: readonly number[];
  readonly p99Ms: readonly (number | null)[];
}

// Latency histogram: bucket i holds [0.1 ms * 1.25^i, 0.1 ms * 1.25^(i+1)); 64 buckets reach ~2 min.
// 25% resolution is plenty for a dashboard p99 and costs 256 bytes per second per instance.
const NB = 64;
const BASE_MS = 0.1;
const LOG_GROWTH = Math.log(1.25);

function bucketOf(ms: number): number {
  if (!(ms > BASE_MS)) return 0;
  const i = Math.floor(Math.log(ms / BASE_MS) / LOG_GROWTH);
  return i >= NB ? NB - 1 : i;
}

function bucketUpper(i: number): number {
  return BASE_MS * 1.25 ** (i + 1);
}

function quantile(hist: Uint32Array, total: number, q: number): number | null {
  if (total === 0) return null;
  const target = Math.ceil(q * total);
  let acc = 0;
  for (let i = 0; i < NB; i++) {
    acc += hist[i];
    if (acc >= target) return Math.round(bucketUpper(i) * 100) / 100;
  }
  return Math.round(bucketUpper(NB - 1) * 100) / 100;
}

interface Slot {
  sec: number;
  count: number;
  errors: number;
  readonly hist: Uint32Array;
}

class Entry {
  readonly slots: Slot[];
  // History rings: index = second % historySeconds.
  readonly rps: Float64Array;
  readonly err: Float64Array;
  readonly p99: Float64Array; // NaN = no request
  readonly secs: Float64Array; // which second each history cell holds
  lastActive: number;

  constructor(
    readonly project: string,
    readonly port: string,
    readonly instance: string,
    window: number,
    history: number,
    sec: number,
  ) {
    this.slots = Array.from({ length: window }, () => ({
      sec: -1,
      count: 0,
      errors: 0,
      hist: new Uint32Array(NB),
    }));
    this.rps = new Float64Array(history);
    this.err = new Float64Array(history);
    this.p99 = new Float64Array(history).fill(Number.NaN);
    this.secs = new Float64Array(history).fill(-1);
    this.lastActive = sec;
  }
}

export interface TrafficOptions {
  /** Sliding window for the `window*` figures, seconds. Default 10. */
  readonly windowSeconds?: number;
  /** Per-second history kept for replay, seconds. Default 600 (10 minutes). */
  readonly historySeconds?: number;
  /** Instance ports tracked at most; beyond, traffic is folded into one `_overflow` entry. Default 2000. */
  readonly maxEntries?: number;
  readonly now?: () => number;
}

export class TrafficAggregator {
  private readonly window: number;
  private readonly history: number;
  private readonly maxEntries: number;
  private readonly now: () => number;
  private readonly entries = new Map<string, Entry>();
  /** project -> port -> instance -> entry: the hot path's lookup, which builds no key string. */
  private readonly index = new Map<string, Map<string, Map<string, Entry>>>();
  private readonly bus = new EventBus<TrafficSummaryEvent>();
  private timer: NodeJS.Timeout | undefined;
  private lastTicked = -1;

  constructor(opts: TrafficOptions = {}) {
    this.window = opts.windowSeconds ?? 10;
    this.history = opts.historySeconds ?? 600;
    this.maxEntries = opts.maxEntries ?? 2000;
    this.now = opts.now ?? Date.now;
  }

  /** Hot path: one call per answered request. */
  record(rec: AccessRecord): void {
    const sec = Math.floor(this.now() / 1000);
    const project = rec.project ?? '_unknown';
    const port = rec.port ?? '';
    const instance = rec.instance ?? '';
    let e = this.index.get(project)?.get(port)?.get(instance);
    if (e === undefined) {
      if (this.entries.size >= this.maxEntries) {
        const ok = '_overflow\u0000\u0000';
        e = this.entries.get(ok);
        if (e === undefined) {
          e = new Entry('_overflow', '', '', this.window, this.history, sec);
          this.entries.set(ok, e);
        }
      } else {
        e = new Entry(project, port, instance, this.window, this.history, sec);
        this.entries.set(`${project}\u0000${port}\u0000${instance}`, e);
        this.indexAdd(e);
      }
    }
    const slot = e.slots[sec % this.window];
    if (slot.sec !== sec) {
      slot.sec = sec;
      slot.count = 0;
      slot.errors = 0;
      slot.hist.fill(0);
    }
    slot.count++;
    if (isErrorStatus(rec.status)) slot.errors++;
    slot.hist[bucketOf(rec.durationMs)]++;
    e.lastActive = sec;
  }

  private indexAdd(e: Entry): void {
    let ports = this.index.get(e.project);
    if (!ports) {
      ports = new Map();
      this.index.set(e.project, ports);
    }
    let instances = ports.get(e.port);
    if (!instances) {
      instances = new Map();
      ports.set(e.port, instances);
    }
    instances.set(e.instance, e);
  }

  private indexRemove(e: Entry): void {
    const ports = this.index.get(e.project);
    const instances = ports?.get(e.port);
    if (!ports || !instances || instances.get(e.instance) !== e) return;
    instances.delete(e.instance);
    if (instances.size === 0) ports.delete(e.port);
    if (ports.size === 0) this.index.delete(e.project);
  }

  on(listener: (e: TrafficSummaryEvent) => void): Unsubscribe {
    return this.bus.on(listener);
  }

  /** Emit a summary every second, just after the second ends. */
  start(): void {
    if (this.timer) return;
    const schedule = (): void => {
      const ms = this.now();
      this.timer = setTimeout(
        () => {
          this.tick();
          schedule();
        },
        1000 - (ms % 1000) + 5,
      );
      this.timer.unref();
    };
    schedule();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Summarise the last complete second, store it in the history and emit it. Idempotent per second. */
  tick(): TrafficSummaryEvent | undefined {
    const sec = Math.floor(this.now() / 1000) - 1;
    if (sec <= this.lastTicked) return undefined;
    this.lastTicked = sec;
    const points: TrafficPoint[] = [];
    const win = new Uint32Array(NB);
    for (const [key, e] of this.entries) {
      if (sec - e.lastActive > this.history) {
        this.entries.delete(key);
        this.indexRemove(e);
        continue;
      }
      const slot = e.slots[sec % this.window];
      const cur = slot.sec === sec ? slot : undefined;
      const count = cur?.count ?? 0;
      const errors = cur?.errors ?? 0;
      const p99 = cur ? quantile(cur.hist, count, 0.99) : null;
      win.fill(0);
      let wCount = 0;
      let wErrors = 0;
      for (const s of e.slots) {
        if (s.sec <= sec - this.window || s.sec > sec) continue;
        wCount += s.count;
        wErrors += s.errors;
        for (let i = 0; i < NB; i++) win[i] += s.hist[i];
      }
      const h = sec % this.history;
      e.secs[h] = sec;
      e.rps[h] = count;
      e.err[h] = count ? errors / count : 0;
      e.p99[h] = p99 ?? Number.NaN;
      points.push({
        project: e.project,
        port: e.port,
        instance: e.instance,
        rps: count,
        errorRate: round4(count ? errors / count : 0),
        p99Ms: p99,
        windowRps: round4(wCount / this.window),
        windowErrorRate: round4(wCount ? wErrors / wCount : 0),
        windowP99Ms: quantile(win, wCount, 0.99),
      });
    }
    const ev: TrafficSummaryEvent = { type: 'traffic', time: sec * 1000, windowSeconds: this.window, points };
    this.bus.emit(ev);
    return ev;
  }

  /** The kept per-second history of every tracked instance port, for a replay on connect. */
  series(): TrafficSeries[] {
    const end = this.lastTicked;
    const out: TrafficSeries[] = [];
    if (end < 0) return out;
    for (const e of this.entries.values()) {
      const rps: number[] = [];
      const errorRate: number[] = [];
      const p99Ms: (number | null)[] = [];
      for (let s = end - this.history + 1; s <= end; s++) {
        const h = ((s % this.history) + this.history) % this.history;
        if (e.secs[h] === s) {
          rps.push(e.rps[h]);
          errorRate.push(round4(e.err[h]));
          p99Ms.push(Number.isNaN(e.p99[h]) ? null : e.p99[h]);
        } else if (rps.length > 0) {
          rps.push(0);
          errorRate.push(0);
          p99Ms.push(null);
        }
      }
      out.push({
        project: e.project,
        port: e.port,
        instance: e.instance,
        end: end * 1000,
        rps,
        errorRate,
        p99Ms,
      });
    }
    return out;
  }
}

function round4(x: number): number {
  return Math.round(x * 10_000) / 10_000;
}
