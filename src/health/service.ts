// The health overlay: the only writer of health state. Keyed by EndpointId so it survives every
// route-table swap (a Traefik bug readmits dead servers on each reload; here an unchanged id keeps
// its state, counters and hold-out), and pruned when an endpoint leaves.

import type { HealthTransitionEvent } from '../model/events.ts';
import type { HealthState, HealthStatus, HealthView } from '../model/health.ts';
import type { AttemptOutcome } from '../model/outcome.ts';
import type { Endpoint, EndpointId, PortRoute, RouteTable } from '../model/routes.ts';
import type { HealthCheckSettings } from '../model/settings.ts';
import type { Log } from '../util/log.ts';
import { type LoopDeps, type LoopOwner, ProbeLoop, type ProbeReport } from './loop.ts';
import { netProber, type Prober } from './prober.ts';
import { DEFAULT_MAX_IN_FLIGHT, ProbeScheduler } from './scheduler.ts';
import { EndpointHealth, type Transition } from './state.ts';
import { type Clock, systemClock, systemTimers, type Timers } from './time.ts';

export interface HealthServiceOptions {
  /** The tier's domain: HTTP probes send `Host: <project>.<domain>` (just `<project>` when empty). */
  readonly domain?: string;
  /** Every transition, for observe/ (logs, metrics, SSE). */
  readonly emit?: (e: HealthTransitionEvent) => void;
  readonly clock?: Clock;
  readonly timers?: Timers;
  readonly prober?: Prober;
  readonly random?: () => number;
  readonly log?: Log;
  /** Every probe result per endpoint (metrics, probe-failure log lines). */
  readonly onProbe?: (endpoint: Endpoint, ok: boolean, reason: string, latencyMs: number) => void;
  /**
   * At most this many probes in flight at once, across every project (config `health.concurrency`,
   * default 256). More wait for a slot, new instances first; a probe's timeout starts with its slot.
   */
  readonly maxInFlight?: number;
}

export type EjectListener = (id: EndpointId, reason: string) => void;

interface Member {
  endpoint: Endpoint;
  readonly health: EndpointHealth;
  loop: SharedLoop;
  /** Every member of the same port route, for the 5xx ejection guard. */
  peers: readonly Member[];
}

class SharedLoop implements LoopOwner {
  /** Usually one; two ports of an instance probed on the same health port share a loop. */
  members: Member[] = [];
  readonly loop: ProbeLoop;
  /** Another loop probing the same address with other settings (rare), chained off the map entry. */
  sibling: SharedLoop | undefined;

  constructor(
    private readonly svc: HealthService,
    make: (owner: LoopOwner) => ProbeLoop,
  ) {
    this.loop = make(this);
  }

  /** Probes `address` with these settings and Host header. */
  matches(host: string, h: HealthCheckSettings): boolean {
    return this.loop.target.host === host && sameProbe(this.loop.settings, h);
  }

  onProbe(report: ProbeReport): void {
    this.svc.applyProbe(this, report);
  }

  falling(): boolean {
    for (const m of this.members) if (m.health.falling()) return true;
    return false;
  }

  serving(): boolean {
    for (const m of this.members) if (m.health.state !== 'unhealthy') return true;
    return false;
  }
}

/** Settings that make two probes of one address the same probe (the health port is in the address). */
function sameProbe(a: HealthCheckSettings, b: HealthCheckSettings): boolean {
  if (a === b) return true;
  if (
    a.path !== b.path ||
    a.intervalMs !== b.intervalMs ||
    a.timeoutMs !== b.timeoutMs ||
    a.fall !== b.fall ||
    a.rise !== b.rise ||
    a.expect.length !== b.expect.length
  )
    return false;
  for (let i = 0; i < a.expect.length; i++)
    if (a.expect[i].from !== b.expect[i].from || a.expect[i].to !== b.expect[i].to) return false;
  return true;
}

export class HealthService implements HealthView {
  private readonly members = new Map<EndpointId, Member>();
  /** Probe address -> its loop (others for the same address chained by `sibling`). */
  private readonly loops = new Map<string, SharedLoop>();
  private readonly scheduler: ProbeScheduler;
  private readonly deps: LoopDeps;
  private readonly listeners = new Set<EjectListener>();
  private readonly clock: Clock;
  private readonly timers: Timers;
  private readonly prober: Prober;
  private readonly random: () => number;
  private closed = false;
  /** Changes with every transition and reconcile: the balancer caches eligible sets on it. */
  version = 0;

  private readonly domain: string;
  private readonly emit: (e: HealthTransitionEvent) => void;
  private readonly log: Log;
  private readonly onProbe?: HealthServiceOptions['onProbe'];

  constructor(opts: HealthServiceOptions = {}) {
    this.onProbe = opts.onProbe;
    this.domain = opts.domain ?? '';
    this.emit = opts.emit ?? (() => {});
    this.log = opts.log ?? (() => {});
    this.clock = opts.clock ?? systemClock;
    this.timers = opts.timers ?? systemTimers;
    this.prober = opts.prober ?? netProber;
    this.random = opts.random ?? Math.random;
    this.scheduler = new ProbeScheduler(this.clock, this.timers, opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT);
    this.deps = {
      clock: this.clock,
      timers: this.timers,
      prober: this.prober,
      random: this.random,
      scheduler: this.scheduler,
    };
  }

  /** Probes running now, and the most that ever ran at once (tests, metrics). */
  get probesInFlight(): { readonly now: number; readonly peak: number; readonly max: number } {
    const s = this.scheduler;
    return { now: s.inFlight, peak: s.peakInFlight, max: s.maxInFlight };
  }

  // ---- HealthView (hot path) -------------------------------------------------------------------

  /** Unknown ids read as `pending`: a table the service has not seen yet is usable as a fallback. */
  state(id: EndpointId): HealthState {
    return this.members.get(id)?.health.state ?? 'pending';
  }

  status(id: EndpointId): HealthStatus | undefined {
    return this.members.get(id)?.health.status();
  }

  list(): Array<{ id: EndpointId; status: HealthStatus; endpoint: Endpoint }> {
    return [...this.members].map(([id, m]) => ({ id, status: m.health.status(), endpoint: m.endpoint }));
  }

  /** Called on every transition into `unhealthy` (probe or passive). Returns an unsubscribe. */
  onEjected(listener: EjectListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  // ---- writers ---------------------------------------------------------------------------------

  /**
   * Adopt a new route table: new endpoints start `pending` with a probe at once, unchanged ids keep
   * their state, changed probe settings restart that endpoint's loop (state kept), and endpoints
   * gone from the table are pruned with their timers. Call it when the table is published (just
   * before or just after: ids it has not seen yet read as `pending` meanwhile).
   */
  reconcile(table: RouteTable, changed?: Iterable<string>): void {
    if (this.closed) return;
    const fresh = new Set<SharedLoop>();
    const joined = new Set<SharedLoop>();
    // Work grows with what changed: routing reuses the ProjectRoute object of an unchanged project,
    // so an identical object means identical endpoints and settings, and is skipped. With
    // `changed` (the project names whose route changed since the last reconcile, as
    // RouteTableBuilder reports them) the other projects are not even looked at.
    const adopt = (key: string, obj: object | undefined, host: string, routes: () => Iterable<PortRoute>) => {
      if (this.lastUnits.get(key) === obj) return;
      const ids = new Set<EndpointId>();
      if (obj) for (const route of routes()) this.adoptRoute(route, host, ids, fresh, joined);
      for (const id of this.unitIds.get(key) ?? []) if (!ids.has(id)) this.prune(id);
      if (obj) {
        this.unitIds.set(key, [...ids]);
        this.lastUnits.set(key, obj);
      } else {
        this.unitIds.delete(key);
        this.lastUnits.delete(key);
      }
    };
    const names = changed ?? new Set([...this.lastUnits.keys(), ...table.projects.keys()]);
    for (const name of names) {
      if (name.startsWith('\0')) continue;
      const project = table.projects.get(name);
      adopt(name, project, this.domain ? `${name}.${this.domain}` : name, () => project!.ports.values());
    }
    // The edge's upstream (the internal tier) is probed like any project.
    const fwd = table.forward;
    const fwdKey = fwd ? `\0forward/${fwd.project}` : undefined;
    if (this.forwardKey !== undefined && this.forwardKey !== fwdKey)
      adopt(this.forwardKey, undefined, '', () => []);
    this.forwardKey = fwdKey;
    if (fwd && fwdKey)
      adopt(fwdKey, fwd, this.domain ? `${fwd.project}.${this.domain}` : fwd.project, () => [fwd]);
    this.version++;
    // Start probes only once the whole table is adopted, so shared loops see all their members.
    // New targets are probed at once, ahead of periodic probes; a batch larger than the probe slots
    // (an initial sync, a relist after an outage) is spread over one interval instead, so a pod
    // that arrives meanwhile still gets its first probe at once.
    const spread = fresh.size > this.scheduler.maxInFlight;
    for (const l of fresh) {
      if (spread) l.loop.startSpread();
      else l.loop.start();
    }
    for (const l of joined) if (!fresh.has(l)) l.loop.kick();
  }

  private forwardKey: string | undefined;

  /** Last adopted object per unit (a project, or the edge's forward route), and the ids it holds. */
  private readonly lastUnits = new Map<string, object>();
  private readonly unitIds = new Map<string, readonly EndpointId[]>();

  private adoptRoute(
    route: PortRoute,
    host: string,
    ids: Set<EndpointId>,
    fresh: Set<SharedLoop>,
    joined: Set<SharedLoop>,
  ): void {
    const peers: Member[] = [];
    const h = route.settings.health;
    for (const e of route.endpoints) {
      if (ids.has(e.id)) continue;
      ids.add(e.id);
      let m = this.members.get(e.id);
      if (!m) {
        const loop = this.loopFor(e, h, host, fresh);
        m = { endpoint: e, health: new EndpointHealth(this.clock.now()), loop, peers };
        this.members.set(e.id, m);
        loop.members.push(m);
        joined.add(loop);
      } else {
        m.endpoint = e;
        m.peers = peers;
        if (m.loop.loop.target.address !== e.probeAddress || !m.loop.matches(host, h)) {
          this.leave(m);
          m.loop = this.loopFor(e, h, host, fresh);
          m.loop.members.push(m);
          joined.add(m.loop);
        }
      }
      peers.push(m);
    }
  }

  private prune(id: EndpointId): void {
    const m = this.members.get(id);
    if (!m) return;
    this.members.delete(id);
    this.leave(m);
  }

  /** Passive outlier detection: one outcome per upstream attempt, from the proxy. */
  report(outcome: AttemptOutcome): void {
    const m = this.members.get(outcome.endpoint);
    if (!m) return;
    const t = m.health.passive(outcome, this.clock.now(), () => this.may5xxEject(m));
    if (t) this.publish(m, t, undefined);
  }

  /**
   * Optional hint from the proxy: a live request to this endpoint has waited unusually long for
   * response headers (say 500 ms). Starts an out-of-cycle probe, so a hung instance is detected
   * from the moment traffic notices it instead of at the next scheduled probe: worst case about
   * 1.5 s after the hang plus the hint delay, rather than 2.35 s. Cheap to call often.
   */
  suspect(id: EndpointId): void {
    const m = this.members.get(id);
    if (m && m.health.state !== 'unhealthy') m.loop.loop.suspect();
  }

  close(): void {
    this.closed = true;
    for (let l of this.loops.values()) for (; l; l = l.sibling!) l.loop.stop();
    this.scheduler.close();
    this.loops.clear();
    this.members.clear();
    this.listeners.clear();
    this.version++;
  }

  /** @internal Called by a shared loop with each applied probe result. */
  applyProbe(loop: SharedLoop, r: ProbeReport): void {
    const now = this.clock.now();
    const { fall, rise } = loop.loop.settings;
    for (const m of loop.members) {
      const t = m.health.probe(r.ok, r.reason, now, fall, rise);
      if (t) this.publish(m, t, r.latencyMs);
      this.onProbe?.(m.endpoint, r.ok, r.reason, r.latencyMs);
    }
  }

  // ---- internals -------------------------------------------------------------------------------

  private loopFor(
    e: Endpoint,
    settings: HealthCheckSettings,
    host: string,
    fresh: Set<SharedLoop>,
  ): SharedLoop {
    const head = this.loops.get(e.probeAddress);
    for (let l = head; l; l = l.sibling) if (l.matches(host, settings)) return l;
    const target = { address: e.probeAddress, path: settings.path, host, expect: settings.expect };
    const l = new SharedLoop(this, (owner) => new ProbeLoop(target, settings, this.deps, owner));
    l.sibling = head;
    this.loops.set(e.probeAddress, l);
    fresh.add(l);
    return l;
  }

  private leave(m: Member): void {
    const l = m.loop;
    const i = l.members.indexOf(m);
    if (i >= 0) l.members.splice(i, 1);
    if (l.members.length > 0) return;
    l.loop.stop();
    const address = l.loop.target.address;
    const head = this.loops.get(address);
    if (head === l) {
      if (l.sibling) this.loops.set(address, l.sibling);
      else this.loops.delete(address);
      return;
    }
    for (let p = head; p; p = p.sibling) {
      if (p.sibling === l) {
        p.sibling = l.sibling;
        return;
      }
    }
  }

  /**
   * 3 consecutive 5xx eject only while at most half of the route is out. A 5xx means the instance
   * answers; when a whole project returns 500 (a bad deploy, a shared database down), ejecting
   * every instance would turn its errors into Wharf 503s and hide them. Connect errors and
   * timeouts are not limited: an instance that cannot be reached is no help to anyone.
   */
  private may5xxEject(m: Member): boolean {
    let out = 0;
    for (const p of m.peers) if (p.health.state === 'unhealthy') out++;
    return (out + 1) * 2 <= m.peers.length;
  }

  private publish(m: Member, t: Transition, latencyMs: number | undefined): void {
    this.version++;
    const e = m.endpoint;
    const event: HealthTransitionEvent = {
      type: 'health',
      time: this.clock.now(),
      project: e.project,
      port: e.port,
      instance: e.instance,
      address: e.address,
      from: t.from,
      to: t.to,
      ejected: t.ejected,
      reason: t.reason,
      ...(latencyMs !== undefined ? { probeLatencyMs: latencyMs } : {}),
    };
    try {
      this.emit(event);
    } catch (err) {
      this.log('warn', 'health event listener failed', { error: String(err) });
    }
    if (t.to !== 'unhealthy') return;
    for (const fn of this.listeners) {
      try {
        fn(e.id, t.reason);
      } catch (err) {
        this.log('warn', 'ejection listener failed', { error: String(err), endpoint: e.id });
      }
    }
  }
}
