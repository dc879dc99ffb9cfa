// Fake time and a scriptable prober for health tests: no sleeps, exact timing assertions.

import {
  ProbeCancel,
  type ProbeResult,
  type Prober,
  type ProbeSignal,
  type ProbeTarget,
  STAGE_CONNECTED,
  STAGE_CONNECTING,
} from '../../src/health/prober.ts';
import type { Clock, TimerHandle, Timers } from '../../src/health/time.ts';
import type { HealthTransitionEvent } from '../../src/model/events.ts';
import type { Endpoint, PortRoute, ProjectRoute, RouteTable } from '../../src/model/routes.ts';
import type { HealthCheckSettings, ProjectSettings } from '../../src/model/settings.ts';
import { DEFAULT_SETTINGS } from '../../src/routing/settings.ts';

export const T0 = 1_700_000_000_000;

interface Pending {
  readonly id: number;
  readonly at: number;
  readonly fn: () => void;
}

export class FakeTime implements Clock, Timers {
  t = T0;
  private seq = 0;
  private queue: Pending[] = [];

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const p = { id: ++this.seq, at: this.t + Math.max(0, ms), fn };
    this.queue.push(p);
    return p.id;
  }

  clearTimeout(handle: TimerHandle): void {
    this.queue = this.queue.filter((p) => p.id !== handle);
  }

  get pendingTimers(): number {
    return this.queue.length;
  }

  /** Runs every timer due within `ms`, in time order, letting promise callbacks settle in between. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    await settle();
    for (;;) {
      let next: Pending | undefined;
      for (const p of this.queue)
        if (p.at <= end && (!next || p.at < next.at || (p.at === next.at && p.id < next.id))) next = p;
      if (!next) break;
      const run = next;
      this.queue = this.queue.filter((p) => p !== run);
      this.t = Math.max(this.t, run.at);
      run.fn();
      await settle();
    }
    this.t = end;
  }

  /** Runs the one earliest timer that is due now (not those it schedules), if any. */
  async runOne(): Promise<boolean> {
    await settle();
    let next: Pending | undefined;
    for (const p of this.queue)
      if (p.at <= this.t && (!next || p.at < next.at || (p.at === next.at && p.id < next.id))) next = p;
    if (!next) return false;
    const run = next;
    this.queue = this.queue.filter((p) => p !== run);
    run.fn();
    await settle();
    return true;
  }

  /** Advances until `cond()` holds, in `step` ms steps, at most `limit` ms. Returns the time taken. */
  async until(cond: () => boolean, limit: number, step = 1): Promise<number> {
    const start = this.t;
    while (!cond()) {
      if (this.t - start >= limit) throw new Error(`condition not met within ${limit}ms`);
      await this.advance(step);
    }
    return this.t - start;
  }
}

export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

/**
 * `hang`: connected, never answers (a SIGSTOPped process); `blackhole`: never connects (a dead node,
 * a dropped SYN), so its timeout is a connect timeout.
 */
export type Behaviour =
  | ProbeResult
  | 'hang'
  | 'blackhole'
  | { readonly after: number; readonly result: ProbeResult };

export const OK: ProbeResult = { ok: true, reason: 'ok (200)', status: 200 };
export const REFUSED: ProbeResult = { ok: false, reason: 'connect refused' };
export const S503: ProbeResult = { ok: false, reason: 'status 503', status: 503 };

/** A prober whose answer per address is set by the test; `hang` answers only to the abort. */
export class FakeProber implements Prober {
  readonly calls: Array<{ target: ProbeTarget; at: number; aborted: () => boolean }> = [];
  private readonly behaviour = new Map<string, Behaviour>();

  constructor(
    private readonly time: FakeTime,
    private fallback: Behaviour = OK,
  ) {}

  set(address: string, b: Behaviour): void {
    this.behaviour.set(address, b);
  }

  setAll(b: Behaviour): void {
    this.behaviour.clear();
    this.fallback = b;
  }

  callsTo(address: string): number[] {
    return this.calls.filter((c) => c.target.address === address).map((c) => c.at);
  }

  probe(target: ProbeTarget, signal: ProbeSignal): Promise<ProbeResult> {
    this.calls.push({ target, at: this.time.now(), aborted: () => signal.aborted });
    const b = this.behaviour.get(target.address) ?? this.fallback;
    if (signal instanceof ProbeCancel) signal.stage = b === 'blackhole' ? STAGE_CONNECTING : STAGE_CONNECTED;
    return new Promise((resolve) => {
      signal.addEventListener('abort', () => resolve({ ok: false, reason: 'aborted' }), { once: true });
      if (b === 'hang' || b === 'blackhole') return;
      if ('after' in b) this.time.setTimeout(() => resolve(b.result), b.after);
      else resolve(b);
    });
  }
}

export function collect(): { events: HealthTransitionEvent[]; emit: (e: HealthTransitionEvent) => void } {
  const events: HealthTransitionEvent[] = [];
  return { events, emit: (e) => events.push(e) };
}

export function settingsWith(health: Partial<HealthCheckSettings> = {}): ProjectSettings {
  // `path: null` alone means a TCP check, as the `health-path: tcp` setting makes it.
  const check = health.check ?? (health.path === null ? 'tcp' : DEFAULT_SETTINGS.health.check);
  return { ...DEFAULT_SETTINGS, health: { ...DEFAULT_SETTINGS.health, check, ...health } };
}

export interface InstanceSpec {
  readonly name: string;
  readonly address: string;
  readonly probeAddress?: string;
  readonly draining?: boolean;
  /** EndpointSlice nodeName. */
  readonly node?: string;
}

export function portRoute(
  project: string,
  port: string,
  instances: readonly InstanceSpec[],
  settings: ProjectSettings,
): PortRoute {
  const endpoints: Endpoint[] = instances.map((i) => {
    const [host, p] = i.address.split(':');
    return Object.freeze({
      id: `${project}/${port}/${i.name}@${i.address}`,
      project,
      port,
      instance: i.name,
      host,
      portNumber: Number(p),
      address: i.address,
      draining: i.draining ?? false,
      token: `tok-${project}-${i.name}-${port}`,
      probeAddress: i.probeAddress ?? i.address,
      ...(i.node ? { node: i.node } : {}),
    });
  });
  return {
    project,
    port,
    endpoints,
    byInstance: new Map(endpoints.map((e) => [e.instance, e])),
    settings,
    protocol: 'http1',
  };
}

let version = 0;

export function table(...routes: PortRoute[]): RouteTable {
  const projects = new Map<string, ProjectRoute>();
  for (const r of routes) {
    let p = projects.get(r.project) as { ports: Map<string, PortRoute> } | undefined;
    if (!p) {
      const pr: ProjectRoute = {
        name: r.project,
        origin: 'config',
        defaultPort: r.port,
        ports: new Map(),
        settings: r.settings,
      };
      projects.set(r.project, pr);
      p = pr as unknown as { ports: Map<string, PortRoute> };
    }
    p.ports.set(r.port, r);
  }
  return { version: ++version, projects };
}
