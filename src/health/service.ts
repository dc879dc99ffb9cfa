// The health overlay: the only writer of health state. Keyed by EndpointId so it survives every
// route-table swap (a Traefik bug readmits dead servers on each reload; here an unchanged id keeps
// its state, counters and hold-out), and pruned when an endpoint leaves.

import type { HealthTransitionEvent } from '../model/events.ts';
import type { HealthState, HealthStatus, HealthView } from '../model/health.ts';
import type { AttemptOutcome } from '../model/outcome.ts';
import type { Endpoint, EndpointId, PortRoute, RouteTable } from '../model/routes.ts';
import type { HealthCheckSettings } from '../model/settings.ts';
import type { Log } from '../util/log.ts';
import { exact, flat } from '../util/strings.ts';
import { type LoopDeps, ProbeLoop, type ProbeReport } from './loop.ts';
import { netProber, type Prober } from './prober.ts';
import { DEFAULT_MAX_IN_FLIGHT, ProbeScheduler } from './scheduler.ts';
import { EndpointHealth, type Transition } from './state.ts';
import { type Clock, systemClock, systemTimers, type TimerHandle, type Timers } from './time.ts';

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

/** Projects adopted per tick when a change is too big to adopt at once (500 of 5 endpoints: ~25 ms here). */
export const RECONCILE_CHUNK = 500;

export type EjectListener = (id: EndpointId, reason: string) => void;

/** One endpoint: its health state machine, where it is probed, and its route's members. */
class Member extends EndpointHealth {
  constructor(
    public endpoint: Endpoint,
    now: number,
    public loop: SharedLoop,
    /** Every member of the same port route, for the 5xx ejection guard. */
    public peers: readonly Member[],
  ) {
    super(now);
  }
}

/** The probe loop of one target (an address, a Host header and probe settings) and its members. */
class SharedLoop extends ProbeLoop {
  /** Usually one; two ports of an instance probed on the same health port share a loop. */
  members: Member[] = [];
  /** Another loop probing the same address with other settings (rare), chained off the map entry. */
  sibling: SharedLoop | undefined;
  /** The reconcile pass that last listed it (dedupes without a Set). */
  mark = 0;

  constructor(
    private readonly svc: HealthService,
    readonly address: string,
    readonly host: string,
    settings: HealthCheckSettings,
    deps: LoopDeps,
  ) {
    // Its own probe target and owner: 50,000 targets are 50,000 objects, not 150,000.
    super(settings, deps);
  }

  join(m: Member): void {
    // Nearly always the only member: a one-element literal, not a push-grown array.
    if (this.members.length === 0) this.members = [m];
    else this.members.push(m);
  }

  /** Probes with these settings and Host header (the address is the map key). */
  matches(host: string, h: HealthCheckSettings): boolean {
    return this.host === host && sameProbe(this.settings, h);
  }

  override onProbe(report: ProbeReport): void {
    this.svc.applyProbe(this, report);
  }

  override falling(): boolean {
    for (const m of this.members) if (m.falling()) return true;
    return false;
  }

  override serving(): boolean {
    for (const m of this.members) if (m.state !== 'unhealthy') return true;
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
    // Loops and their scheduler keep time in milliseconds since now: small integers, unboxed in
    // every loop (epoch milliseconds are heap numbers).
    const base = this.clock.now();
    const clock = this.clock;
    const loopClock = { now: () => clock.now() - base };
    this.scheduler = new ProbeScheduler(loopClock, this.timers, opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT);
    this.deps = {
      clock: loopClock,
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
    return this.members.get(id)?.state ?? 'pending';
  }

  status(id: EndpointId): HealthStatus | undefined {
    return this.members.get(id)?.status();
  }

  list(): Array<{ id: EndpointId; status: HealthStatus; endpoint: Endpoint }> {
    return [...this.members].map(([id, m]) => ({ id, status: m.status(), endpoint: m.endpoint }));
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
   *
   * Work grows with what changed: `changed` names the projects whose route object changed since the
   * last reconcile (RouteTableBuilder reports them); without it every project is compared, and an
   * identical route object is skipped. A change of more than RECONCILE_CHUNK projects (a first sync
   * of a big cluster) is adopted in chunks across timer ticks, so it never holds the event loop for
   * long: requests are served meanwhile, the new endpoints reading as `pending` until adopted.
   */
  reconcile(table: RouteTable, changed?: Iterable<string>): void {
    if (this.closed) return;
    this.table = table;
    const names = changed ? [...changed] : [...new Set([...this.lastUnits.keys(), ...table.projects.keys()])];
    const pass = this.newPass();
    if (names.length <= RECONCILE_CHUNK) {
      for (const name of names) {
        this.pending.delete(name);
        this.adoptProject(name, pass);
      }
    } else {
      for (const name of names) this.pending.add(name);
      this.scheduleChunk();
    }
    this.adoptForward(pass);
    this.finishPass(pass, false);
  }

  /** Adoption work in progress: loops created and loops joined by new members. */
  private newPass(): { fresh: SharedLoop[]; joined: SharedLoop[]; mark: number } {
    return { fresh: [], joined: [], mark: ++this.passes };
  }

  private passes = 0;
  /** The latest table, and project names still to adopt from it (a big change, in chunks). */
  private table: RouteTable | undefined;
  private readonly pending = new Set<string>();
  private chunkTimer: TimerHandle | undefined;

  private scheduleChunk(): void {
    if (this.chunkTimer !== undefined || this.pending.size === 0) return;
    this.chunkTimer = this.timers.setTimeout(() => {
      this.chunkTimer = undefined;
      if (this.closed) return;
      const pass = this.newPass();
      let n = 0;
      for (const name of this.pending) {
        this.pending.delete(name);
        this.adoptProject(name, pass);
        if (++n >= RECONCILE_CHUNK) break;
      }
      this.finishPass(pass, true);
      this.scheduleChunk();
    }, 0);
  }

  /** True while a big change is still being adopted (tests). */
  get adopting(): boolean {
    return this.pending.size > 0;
  }

  private adoptProject(name: string, pass: ReturnType<HealthService['newPass']>): void {
    const project = this.table?.projects.get(name);
    this.adopt(
      name,
      project,
      this.domain ? flat(`${name}.${this.domain}`) : name,
      project?.ports.values(),
      pass,
    );
  }

  /** The edge's upstream (the internal tier) is probed like any project. */
  private adoptForward(pass: ReturnType<HealthService['newPass']>): void {
    const fwd = this.table?.forward;
    const key = fwd ? `\0forward/${fwd.project}` : undefined;
    if (this.forwardKey !== undefined && this.forwardKey !== key)
      this.adopt(this.forwardKey, undefined, '', undefined, pass);
    this.forwardKey = key;
    if (fwd && key)
      this.adopt(key, fwd, this.domain ? `${fwd.project}.${this.domain}` : fwd.project, [fwd], pass);
  }

  /**
   * Start probes only once the pass is adopted, so shared loops see all their members. New targets
   * are probed at once, ahead of periodic probes; a batch larger than the probe slots (an initial
   * sync, a relist after an outage, any chunked change) gets its first probes spread over one
   * interval instead, so a pod that arrives meanwhile still gets its first probe at once.
   */
  private finishPass(pass: ReturnType<HealthService['newPass']>, big: boolean): void {
    this.version++;
    const spread = big || pass.fresh.length > this.scheduler.maxInFlight;
    for (const l of pass.fresh) {
      if (spread) l.startSpread();
      else l.start();
    }
    for (const l of pass.joined) if (l.mark !== -pass.mark) l.kick();
  }

  private adopt(
    key: string,
    obj: object | undefined,
    host: string,
    routes: Iterable<PortRoute> | undefined,
    pass: ReturnType<HealthService['newPass']>,
  ): void {
    if (this.lastUnits.get(key) === obj) return;
    const ids: EndpointId[] = [];
    if (obj && routes) for (const route of routes) this.adoptRoute(route, host, ids, pass);
    const old = this.unitIds.get(key);
    if (old && old.length > 0) {
      const keep = new Set(ids);
      for (const id of old) if (!keep.has(id)) this.prune(id);
    }
    if (obj) {
      this.unitIds.set(key, exact(ids));
      this.lastUnits.set(key, obj);
    } else {
      this.unitIds.delete(key);
      this.lastUnits.delete(key);
    }
  }

  private forwardKey: string | undefined;

  /** Last adopted object per unit (a project, or the edge's forward route), and the ids it holds. */
  private readonly lastUnits = new Map<string, object>();
  private readonly unitIds = new Map<string, readonly EndpointId[]>();

  private adoptRoute(
    route: PortRoute,
    host: string,
    ids: EndpointId[],
    pass: ReturnType<HealthService['newPass']>,
  ): void {
    const peers: Member[] = [];
    const h = route.settings.health;
    const now = this.clock.now();
    for (const e of route.endpoints) {
      // Endpoint ids are unique within a project (port and instance are part of them).
      ids.push(e.id);
      let m = this.members.get(e.id);
      if (!m) {
        const loop = this.loopFor(e, h, host, pass);
        m = new Member(e, now, loop, peers);
        this.members.set(e.id, m);
        loop.join(m);
        this.joined(loop, pass);
      } else {
        m.endpoint = e;
        if (m.loop.target.address !== e.probeAddress || !m.loop.matches(host, h)) {
          this.leave(m);
          m.loop = this.loopFor(e, h, host, pass);
          m.loop.join(m);
          this.joined(m.loop, pass);
        }
      }
      peers.push(m);
    }
    const kept = exact(peers);
    for (const m of kept) m.peers = kept;
  }

  /** Lists a loop that got a member in this pass (once; fresh loops are marked so they are not kicked). */
  private joined(l: SharedLoop, pass: ReturnType<HealthService['newPass']>): void {
    if (l.mark === pass.mark || l.mark === -pass.mark) return;
    l.mark = pass.mark;
    pass.joined.push(l);
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
    // Nearly every report is an answer below 500, once per request: it only ends a run of 5xx, and
    // needs neither the clock nor the closure below.
    if (outcome.error === undefined && outcome.status !== undefined && outcome.status < 500)
      return m.answered();
    const t = m.passive(outcome, this.clock.now(), () => this.may5xxEject(m));
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
    if (m && m.state !== 'unhealthy') m.loop.suspect();
  }

  close(): void {
    this.closed = true;
    if (this.chunkTimer !== undefined) this.timers.clearTimeout(this.chunkTimer);
    this.chunkTimer = undefined;
    this.pending.clear();
    for (let l of this.loops.values()) for (; l; l = l.sibling!) l.stop();
    this.scheduler.close();
    this.loops.clear();
    this.members.clear();
    this.listeners.clear();
    this.version++;
  }

  /** @internal Called by a shared loop with each applied probe result. */
  applyProbe(loop: SharedLoop, r: ProbeReport): void {
    const now = this.clock.now();
    const { fall, rise } = loop.settings;
    for (const m of loop.members) {
      const t = m.probe(r.ok, r.reason, now, fall, rise);
      if (t) this.publish(m, t, r.latencyMs);
      this.onProbe?.(m.endpoint, r.ok, r.reason, r.latencyMs);
    }
  }

  // ---- internals -------------------------------------------------------------------------------

  private loopFor(
    e: Endpoint,
    settings: HealthCheckSettings,
    host: string,
    pass: ReturnType<HealthService['newPass']>,
  ): SharedLoop {
    const head = this.loops.get(e.probeAddress);
    for (let l = head; l; l = l.sibling) if (l.matches(host, settings)) return l;
    const l = new SharedLoop(this, e.probeAddress, host, settings, this.deps);
    l.sibling = head;
    // Fresh loops start in finishPass, not kicked as joined ones.
    l.mark = -pass.mark;
    this.loops.set(e.probeAddress, l);
    pass.fresh.push(l);
    return l;
  }

  private leave(m: Member): void {
    const l = m.loop;
    const i = l.members.indexOf(m);
    if (i >= 0) l.members.splice(i, 1);
    if (l.members.length > 0) return;
    l.stop();
    const address = l.target.address;
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
    for (const p of m.peers) if (p.state === 'unhealthy') out++;
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
