// Per-second traffic summaries and a bounded history for the dashboard, kept apart by who saw what:
//
// - per instance, the attempts it took: attempts/s, failed attempts, p99 of the attempt's own time
//   (to response headers or to the failure). A request retried from a frozen instance to a healthy
//   one counts its wait on the frozen one, not on the one that answered.
// - per port, what clients saw: requests/s, error rate, p99 of the whole request; plus retries,
//   rescues (attempts moved off an instance ejected while they waited) and ejections per second.
//
// History: the last 5 minutes at 1 s and the last hour at 10 s resolution, for at most
// `maxInstances` instance ports and `maxPorts` ports (about 11 KB and 19 KB each); beyond the caps
// traffic folds into one `_overflow` entry. An entry idle for the whole hour is dropped.

import type { AccessRecord } from '../model/access.ts';
import type { AttemptRecord } from '../model/attempt.ts';
import type { WharfEvent } from '../model/events.ts';
import { isErrorStatus } from './access-log.ts';
import { EventBus, type Unsubscribe } from './event-bus.ts';
import { BUCKETS, bucketOf, quantile } from './latency-histogram.ts';

/** One instance port: the attempts it took, over one second and over the last `window` seconds. */
export interface TrafficPoint {
  readonly project: string;
  readonly port: string;
  readonly instance: string;
  /** Attempts per second this instance took. */
  readonly rps: number;
  /** 0..1: attempts that failed (5xx, connection errors, timeouts, rescues) over attempts. */
  readonly errorRate: number;
  /** p99 of the attempts' own time; null when there was none. */
  readonly p99Ms: number | null;
  readonly windowRps: number;
  readonly windowErrorRate: number;
  readonly windowP99Ms: number | null;
}

/** One port: what its clients saw, and how much retrying and rescuing it took. */
export interface PortTrafficPoint {
  readonly project: string;
  readonly port: string;
  /** Requests per second answered. */
  readonly rps: number;
  /** 0..1: requests answered 5xx (or not at all) over requests. */
  readonly errorRate: number;
  /** p99 of the whole request as the client saw it (every attempt included). */
  readonly p99Ms: number | null;
  /** Per second: attempts beyond a request's first, rescues, ejections of its instances. */
  readonly retries: number;
  readonly rescues: number;
  readonly ejections: number;
  readonly windowRps: number;
  readonly windowErrorRate: number;
  readonly windowP99Ms: number | null;
  readonly windowRetries: number;
  readonly windowRescues: number;
  readonly windowEjections: number;
}

export interface TrafficSummaryEvent {
  readonly type: 'traffic';
  /** Epoch ms of the start of the second summarised. */
  readonly time: number;
  readonly windowSeconds: number;
  /** Instance ports with attempts in the window (absent: none). */
  readonly points: readonly TrafficPoint[];
  /** Ports with requests, retries, rescues or ejections in the window (absent: none). */
  readonly ports: readonly PortTrafficPoint[];
}

/** Values per time step, oldest first; null before the entry existed (or, for p99, no request). */
export interface SeriesValues {
  readonly rps: (number | null)[];
  readonly errorRate: (number | null)[];
  readonly p99Ms: (number | null)[];
}

export interface InstanceSeries extends SeriesValues {
  readonly project: string;
  readonly port: string;
  readonly instance: string;
}

export interface PortSeries extends SeriesValues {
  readonly project: string;
  readonly port: string;
  readonly retries: (number | null)[];
  readonly rescues: (number | null)[];
  readonly ejections: (number | null)[];
}

/** A stretch of history on one time axis: `length` steps of `step` s, the last starting at `end`. */
export interface TrafficHistory {
  /** Epoch ms of the start of the last step. */
  readonly end: number;
  readonly step: number;
  readonly length: number;
  readonly ports: PortSeries[];
  readonly instances: InstanceSeries[];
}

export interface TrafficOptions {
  /** Sliding window for the `window*` figures, seconds. Default 10. */
  readonly windowSeconds?: number;
  /** Per-second history, seconds. Default 300. */
  readonly recentSeconds?: number;
  /** 10-second history, in 10 s steps. Default 360 (one hour). */
  readonly hourSteps?: number;
  /** Instance ports tracked at most. Default 2000. */
  readonly maxInstances?: number;
  /** Ports tracked at most. Default 1000. */
  readonly maxPorts?: number;
  readonly now?: () => number;
}

const COARSE = 10;
const OVERFLOW = '_overflow';

/** One second of one entry (a slot of the sliding window). */
interface Slot {
  sec: number;
  count: number;
  errors: number;
  retries: number;
  rescues: number;
  ejections: number;
  readonly hist: Uint32Array;
}

function slot(): Slot {
  return {
    sec: -1,
    count: 0,
    errors: 0,
    retries: 0,
    rescues: 0,
    ejections: 0,
    hist: new Uint32Array(BUCKETS),
  };
}

/** A ring of cells, one per step; `stamp` says which step a cell holds (NaN: empty). */
class Ring {
  readonly stamp: Float64Array;
  readonly rps: Float32Array;
  readonly err: Float32Array;
  readonly p99: Float32Array;
  readonly retries?: Float32Array;
  readonly rescues?: Float32Array;
  readonly ejections?: Float32Array;

  constructor(
    readonly size: number,
    port: boolean,
  ) {
    this.stamp = new Float64Array(size).fill(Number.NaN);
    this.rps = new Float32Array(size);
    this.err = new Float32Array(size);
    this.p99 = new Float32Array(size);
    if (port) {
      this.retries = new Float32Array(size);
      this.rescues = new Float32Array(size);
      this.ejections = new Float32Array(size);
    }
  }

  put(step: number, seconds: number, s: Omit<Slot, 'sec' | 'hist'>, p99: number | null): void {
    const i = step % this.size;
    this.stamp[i] = step;
    this.rps[i] = s.count / seconds;
    this.err[i] = s.count > 0 ? s.errors / s.count : Number.NaN;
    this.p99[i] = p99 ?? Number.NaN;
    if (this.retries) {
      this.retries[i] = s.retries / seconds;
      this.rescues![i] = s.rescues / seconds;
      this.ejections![i] = s.ejections / seconds;
    }
  }
}

class Entry {
  readonly slots: Slot[];
  /** The 10 s step being summed, and its sums. */
  coarseStep = -1;
  readonly coarse = slot();
  readonly recent: Ring;
  readonly hour: Ring;
  lastActive: number;

  constructor(
    readonly project: string,
    readonly port: string,
    /** Undefined for a port entry. */
    readonly instance: string | undefined,
    window: number,
    recent: number,
    hour: number,
    /** The second it was created: history before it is null, after it zero. */
    readonly born: number,
  ) {
    this.slots = Array.from({ length: window }, slot);
    this.recent = new Ring(recent, instance === undefined);
    this.hour = new Ring(hour, instance === undefined);
    this.lastActive = born;
  }

  /** The slot of `sec`, cleared when it held an older second. */
  at(sec: number): Slot {
    const s = this.slots[sec % this.slots.length];
    if (s.sec !== sec) {
      s.sec = sec;
      s.count = s.errors = s.retries = s.rescues = s.ejections = 0;
      s.hist.fill(0);
    }
    return s;
  }
}

const round4 = (x: number) => Math.round(x * 10_000) / 10_000;

/** Whether an attempt's outcome counts as a failure of the instance that took it. */
function attemptFailed(outcome: AttemptRecord['outcome']): boolean {
  if (typeof outcome === 'number') return outcome >= 500;
  return outcome !== 'cancelled';
}

export class TrafficAggregator {
  private readonly window: number;
  private readonly recentSize: number;
  private readonly hourSize: number;
  private readonly maxInstances: number;
  private readonly maxPorts: number;
  private readonly now: () => number;
  /** project -> port -> entry (port entries), and project -> port -> instance -> entry. */
  private readonly portIndex = new Map<string, Map<string, Entry>>();
  private readonly instanceIndex = new Map<string, Map<string, Map<string, Entry>>>();
  private readonly entries = new Set<Entry>();
  private instanceCount = 0;
  private portCount = 0;
  private overflowInstance?: Entry;
  private overflowPort?: Entry;
  private readonly bus = new EventBus<TrafficSummaryEvent>();
  private timer: NodeJS.Timeout | undefined;
  private lastTicked = -1;

  constructor(opts: TrafficOptions = {}) {
    this.window = opts.windowSeconds ?? 10;
    this.recentSize = opts.recentSeconds ?? 300;
    this.hourSize = opts.hourSteps ?? 360;
    this.maxInstances = opts.maxInstances ?? 2000;
    this.maxPorts = opts.maxPorts ?? 1000;
    this.now = opts.now ?? Date.now;
  }

  private second(): number {
    return Math.floor(this.now() / 1000);
  }

  private portEntry(project: string, port: string, sec: number): Entry {
    let byPort = this.portIndex.get(project);
    const found = byPort?.get(port);
    if (found) return found;
    if (this.portCount >= this.maxPorts) {
      this.overflowPort ??= this.add(
        new Entry(OVERFLOW, '', undefined, this.window, this.recentSize, this.hourSize, sec),
      );
      return this.overflowPort;
    }
    const e = this.add(new Entry(project, port, undefined, this.window, this.recentSize, this.hourSize, sec));
    this.portCount++;
    if (!byPort) {
      byPort = new Map();
      this.portIndex.set(project, byPort);
    }
    byPort.set(port, e);
    return e;
  }

  private instanceEntry(project: string, port: string, instance: string, sec: number): Entry {
    let byPort = this.instanceIndex.get(project);
    let byInstance = byPort?.get(port);
    const found = byInstance?.get(instance);
    if (found) return found;
    if (this.instanceCount >= this.maxInstances) {
      this.overflowInstance ??= this.add(
        new Entry(OVERFLOW, '', OVERFLOW, this.window, this.recentSize, this.hourSize, sec),
      );
      return this.overflowInstance;
    }
    const e = this.add(new Entry(project, port, instance, this.window, this.recentSize, this.hourSize, sec));
    this.instanceCount++;
    if (!byPort) {
      byPort = new Map();
      this.instanceIndex.set(project, byPort);
    }
    if (!byInstance) {
      byInstance = new Map();
      byPort.set(port, byInstance);
    }
    byInstance.set(instance, e);
    return e;
  }

  private add(e: Entry): Entry {
    this.entries.add(e);
    return e;
  }

  private drop(e: Entry): void {
    this.entries.delete(e);
    if (e === this.overflowPort) this.overflowPort = undefined;
    else if (e === this.overflowInstance) this.overflowInstance = undefined;
    else if (e.instance === undefined) {
      const byPort = this.portIndex.get(e.project);
      if (byPort?.get(e.port) === e) {
        byPort.delete(e.port);
        this.portCount--;
        if (byPort.size === 0) this.portIndex.delete(e.project);
      }
    } else {
      const byPort = this.instanceIndex.get(e.project);
      const byInstance = byPort?.get(e.port);
      if (byInstance?.get(e.instance) === e) {
        byInstance.delete(e.instance);
        this.instanceCount--;
        if (byInstance.size === 0) byPort!.delete(e.port);
        if (byPort!.size === 0) this.instanceIndex.delete(e.project);
      }
    }
  }

  /** Hot path: once per answered request (what the client saw). */
  record(rec: AccessRecord): void {
    const sec = this.second();
    const e = this.portEntry(rec.project ?? '_unknown', rec.port ?? '', sec);
    const s = e.at(sec);
    s.count++;
    if (isErrorStatus(rec.status)) s.errors++;
    s.hist[bucketOf(rec.durationMs)]++;
    e.lastActive = sec;
  }

  /** Hot path: once per upstream attempt (what each instance did). */
  attempt(a: AttemptRecord): void {
    const sec = this.second();
    const e = this.instanceEntry(a.project, a.port, a.instance, sec);
    const s = e.at(sec);
    s.count++;
    if (attemptFailed(a.outcome)) s.errors++;
    s.hist[bucketOf(a.durationMs)]++;
    e.lastActive = sec;
    if (a.retry || a.outcome === 'rescued') {
      const p = this.portEntry(a.project, a.port, sec);
      const ps = p.at(sec);
      if (a.retry) ps.retries++;
      if (a.outcome === 'rescued') ps.rescues++;
      p.lastActive = sec;
    }
  }

  /** Health events: an ejection counts on its port. */
  observe(e: WharfEvent): void {
    if (e.type !== 'health' || e.to !== 'unhealthy' || !(e.from === 'healthy' || e.ejected)) return;
    const sec = this.second();
    const p = this.portEntry(e.project, e.port, sec);
    p.at(sec).ejections++;
    p.lastActive = sec;
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

  /**
   * Summarise the last complete second into the history and emit it. Idempotent per second; after a
   * stall (a blocked event loop), the missed seconds still in the window are filed first.
   */
  tick(): TrafficSummaryEvent | undefined {
    const sec = this.second() - 1;
    if (sec <= this.lastTicked) return undefined;
    const from = Math.max(this.lastTicked + 1, sec - this.window + 1);
    this.lastTicked = sec;
    for (let s = from; s < sec; s++) for (const e of this.entries) this.file(e, s);
    const points: TrafficPoint[] = [];
    const ports: PortTrafficPoint[] = [];
    const win = new Uint32Array(BUCKETS);
    for (const e of this.entries) {
      if (sec - e.lastActive > this.hourSize * COARSE) {
        this.drop(e);
        continue;
      }
      const cur = this.file(e, sec);
      if (sec - e.lastActive >= this.window) continue; // nothing in the window: not in the summary
      win.fill(0);
      let count = 0;
      let errors = 0;
      let retries = 0;
      let rescues = 0;
      let ejections = 0;
      for (const s of e.slots) {
        if (s.sec <= sec - this.window || s.sec > sec) continue;
        count += s.count;
        errors += s.errors;
        retries += s.retries;
        rescues += s.rescues;
        ejections += s.ejections;
        for (let i = 0; i < BUCKETS; i++) win[i] += s.hist[i];
      }
      const n = cur?.count ?? 0;
      const base = {
        project: e.project,
        port: e.port,
        rps: n,
        errorRate: round4(n ? (cur?.errors ?? 0) / n : 0),
        p99Ms: cur ? quantile(cur.hist, n, 0.99) : null,
        windowRps: round4(count / this.window),
        windowErrorRate: round4(count ? errors / count : 0),
        windowP99Ms: quantile(win, count, 0.99),
      };
      if (e.instance !== undefined) points.push({ ...base, instance: e.instance });
      else
        ports.push({
          ...base,
          retries: cur?.retries ?? 0,
          rescues: cur?.rescues ?? 0,
          ejections: cur?.ejections ?? 0,
          windowRetries: round4(retries / this.window),
          windowRescues: round4(rescues / this.window),
          windowEjections: ejections,
        });
    }
    const ev: TrafficSummaryEvent = {
      type: 'traffic',
      time: sec * 1000,
      windowSeconds: this.window,
      points,
      ports,
    };
    this.bus.emit(ev);
    return ev;
  }

  /** Files second `sec` of `e` into both histories; returns its slot when it had any traffic. */
  private file(e: Entry, sec: number): Slot | undefined {
    const raw = e.slots[sec % this.window];
    const cur = raw.sec === sec ? raw : undefined;
    if (sec >= e.born) e.recent.put(sec, 1, cur ?? EMPTY, cur ? quantile(cur.hist, cur.count, 0.99) : null);
    const step = Math.floor(sec / COARSE);
    if (e.coarseStep !== step) {
      e.coarseStep = step;
      const c = e.coarse;
      c.count = c.errors = c.retries = c.rescues = c.ejections = 0;
      c.hist.fill(0);
    }
    if (cur) {
      const c = e.coarse;
      c.count += cur.count;
      c.errors += cur.errors;
      c.retries += cur.retries;
      c.rescues += cur.rescues;
      c.ejections += cur.ejections;
      for (let i = 0; i < BUCKETS; i++) c.hist[i] += cur.hist[i];
    }
    // The 10 s step is complete with its last second (a stall may skip it: the next step files it).
    if ((sec + 1) % COARSE === 0 && sec >= e.born) {
      const c = e.coarse;
      e.hour.put(step, COARSE, c, quantile(c.hist, c.count, 0.99));
    }
    return cur;
  }

  /**
   * The kept history: `range` seconds up to the last complete second, at 1 s steps when the
   * per-second history covers it, else at 10 s. `projects` limits it (the dashboard asks only for
   * the projects it shows).
   */
  history(range = this.recentSize, projects?: ReadonlySet<string>): TrafficHistory {
    const coarse = range > this.recentSize;
    const step = coarse ? COARSE : 1;
    const last = coarse ? Math.floor((this.lastTicked + 1) / COARSE) - 1 : this.lastTicked;
    const length = Math.max(1, Math.min(Math.ceil(range / step), coarse ? this.hourSize : this.recentSize));
    const out: TrafficHistory = { end: last * step * 1000, step, length, ports: [], instances: [] };
    if (this.lastTicked < 0) return out;
    for (const e of this.entries) {
      if (projects && !projects.has(e.project)) continue;
      const ring = coarse ? e.hour : e.recent;
      const values = read(ring, last, length);
      if (values === undefined) continue;
      if (e.instance !== undefined)
        out.instances.push({ project: e.project, port: e.port, instance: e.instance, ...values });
      else
        out.ports.push({
          project: e.project,
          port: e.port,
          ...values,
          retries: column(ring, ring.retries!, last, length),
          rescues: column(ring, ring.rescues!, last, length),
          ejections: column(ring, ring.ejections!, last, length),
        });
    }
    return out;
  }
}

const EMPTY: Omit<Slot, 'sec' | 'hist'> = { count: 0, errors: 0, retries: 0, rescues: 0, ejections: 0 };

const value = (x: number) => (Number.isNaN(x) ? null : round4(x));

function column(ring: Ring, col: Float32Array, last: number, length: number): (number | null)[] {
  const out: (number | null)[] = new Array(length);
  for (let k = 0; k < length; k++) {
    const step = last - length + 1 + k;
    const i = ((step % ring.size) + ring.size) % ring.size;
    out[k] = ring.stamp[i] === step ? value(col[i]) : null;
  }
  return out;
}

/** The last `length` steps of a ring ending at step `last`; undefined when none of them is there. */
function read(ring: Ring, last: number, length: number): SeriesValues | undefined {
  const rps = column(ring, ring.rps, last, length);
  if (rps.every((x) => x === null)) return undefined;
  return {
    rps,
    errorRate: column(ring, ring.err, last, length),
    p99Ms: column(ring, ring.p99, last, length),
  };
}
