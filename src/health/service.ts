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
import { ProbeEngine, type ProbeSink, START_NOW, START_SPREAD, type TargetSpec } from './engine.ts';
import { EARLY_PROBE_MS, NEVER, type ProbeReport } from './loop.ts';
import { netProber, type Prober } from './prober.ts';
import { DEFAULT_MAX_IN_FLIGHT } from './scheduler.ts';
import { allocSignals, SERVING, type Signals, signalsCapacity, WANT_OK } from './signals.ts';
import { EndpointHealth, type Transition } from './state.ts';
import { type ProbeLink, startProbeThread } from './thread.ts';
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
  /**
   * Probe period of an idle instance (config `health.idle-interval`): one that answered no request
   * within its project's interval. Instances with traffic are judged by their answers (see loop.ts).
   * Default: no idle slowdown, every instance is probed every interval.
   */
  readonly idleIntervalMs?: number;
  /**
   * Run the probes in a worker thread, off the event loop that serves requests: `true` at once,
   * `false` never. Default: once there are THREAD_MIN_TARGETS targets (thread.ts), unless a clock,
   * timers or prober is injected (those live in this thread).
   */
  readonly thread?: boolean;
}

/** Projects adopted per tick when a change is too big to adopt at once (500 of 5 endpoints: ~25 ms here). */
export const RECONCILE_CHUNK = 500;

export type EjectListener = (id: EndpointId, reason: string) => void;

/** One endpoint: its health state machine, where it is probed, and its route's members. */
class Member extends EndpointHealth {
  constructor(
    public endpoint: Endpoint,
    now: number,
    public target: Target,
    /** Every member of the same port route, for the 5xx ejection guard. */
    public peers: readonly Member[],
  ) {
    super(now);
  }
}

/** One probe target (an address, a Host header and probe settings) and the endpoints probed there. */
class Target implements TargetSpec {
  /** Usually one; two ports of an instance probed on the same health port share a target. */
  members: Member[] = [];
  /** Another target at the same address with other settings (rare), chained off the map entry. */
  sibling: Target | undefined;
  /** The reconcile pass that last listed it (dedupes without a Set). */
  mark = 0;
  /** Registered with the prober (targets are registered when their pass finishes). */
  added = false;
  removed = false;
  /** When failed traffic last asked the prober to look (HealthService ms), to send at most a few a second. */
  hintedAt = -Infinity;

  constructor(
    readonly slot: number,
    readonly id: number,
    readonly address: string,
    readonly host: string,
    readonly settings: HealthCheckSettings,
    readonly node: string | undefined,
  ) {}

  join(m: Member): void {
    // Nearly always the only member: a one-element literal, not a push-grown array.
    if (this.members.length === 0) this.members = [m];
    else this.members.push(m);
  }

  /** Probes with these settings and Host header (the address is the map key), on the same node. */
  matches(host: string, h: HealthCheckSettings, node: string | undefined): boolean {
    return this.host === host && this.node === node && sameProbe(this.settings, h);
  }

  /** The flags the prober reads for this target (signals.ts). */
  flags(): number {
    let f = 0;
    for (const m of this.members) {
      if (m.state !== 'unhealthy') f |= SERVING;
      if (m.state !== 'healthy' || m.failStreak > 0) f |= WANT_OK;
    }
    return f;
  }
}

/** Settings that make two probes of one address the same probe (the health port is in the address). */
function sameProbe(a: HealthCheckSettings, b: HealthCheckSettings): boolean {
  if (a === b) return true;
  if (
    a.check !== b.check ||
    a.path !== b.path ||
    a.grpcService !== b.grpcService ||
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

export class HealthService implements HealthView, ProbeSink {
  private readonly members = new Map<EndpointId, Member>();
  /** Probe address -> its target (others for the same address chained by `sibling`). */
  private readonly targets = new Map<string, Target>();
  /** Targets by slot (index into the signals), and the free slots. */
  private readonly slots: (Target | undefined)[] = [];
  private readonly freeSlots: number[] = [];
  private nextId = 0;
  private signals: Signals;
  private readonly link: ProbeLink;
  private readonly listeners = new Set<EjectListener>();
  private readonly clock: Clock;
  private readonly timers: Timers;
  /** The clock at construction: probe times are kept as milliseconds since then (small integers). */
  private readonly base: number;
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
    const thread = opts.thread ?? (!opts.clock && !opts.timers && !opts.prober);
    const eager = opts.thread === true;
    // Loops and their scheduler keep time in milliseconds since now: small integers, unboxed in
    // every loop (epoch milliseconds are heap numbers).
    const base = this.clock.now();
    this.base = base;
    this.signals = allocSignals(1024, thread);
    const maxInFlight = opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
    const idleMs = opts.idleIntervalMs ?? 0;
    const inProcess = (): ProbeEngine => {
      const clock = this.clock;
      return new ProbeEngine({
        clock: { now: () => clock.now() - base },
        timers: this.timers,
        prober: opts.prober ?? netProber,
        random: opts.random ?? Math.random,
        maxInFlight,
        idleMs,
        signals: this.signals,
        sink: this,
      });
    };
    this.link = thread
      ? startProbeThread({
          base,
          maxInFlight,
          idleMs,
          signals: this.signals,
          sink: this,
          log: this.log,
          fallback: inProcess,
          targets: () => this.registered(),
          eager,
        })
      : inProcess();
  }

  /** Probes running now, and the most that ever ran at once (tests, metrics). */
  get probesInFlight(): { readonly now: number; readonly peak: number; readonly max: number } {
    return this.link.stats();
  }

  /** True while the probes run in a worker thread (tests, the admin API). */
  get threaded(): boolean {
    return this.link.threaded === true;
  }

  /** Milliseconds since the service started: the prober's time. */
  private loopNow(): number {
    return this.clock.now() - this.base;
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

  /** Adoption work in progress: targets created and targets joined by new members. */
  private newPass(): { fresh: Target[]; joined: Target[]; mark: number } {
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
    const spread = big || pass.fresh.length > this.link.maxInFlight;
    for (const t of pass.fresh) {
      if (t.removed) continue;
      t.added = true;
      this.link.add(t, spread ? START_SPREAD : START_NOW);
    }
    for (const t of pass.joined) if (t.mark !== -pass.mark && !t.removed) this.link.kick(t.slot);
    this.link.targetsNow?.(this.slots.length - this.freeSlots.length);
  }

  /** Every registered target (to register them again with a restarted prober thread). */
  private registered(): TargetSpec[] {
    const out: TargetSpec[] = [];
    for (const t of this.slots) if (t?.added) out.push(t);
    return out;
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
        const t = this.targetFor(e, h, host, pass);
        m = new Member(e, now, t, peers);
        this.members.set(e.id, m);
        t.join(m);
        this.joined(t, pass);
        this.sync(t);
      } else {
        m.endpoint = e;
        if (m.target.address !== e.probeAddress || !m.target.matches(host, h, e.node)) {
          this.leave(m);
          m.target = this.targetFor(e, h, host, pass);
          m.target.join(m);
          this.joined(m.target, pass);
          this.sync(m.target);
        }
      }
      peers.push(m);
    }
    const kept = exact(peers);
    for (const m of kept) m.peers = kept;
  }

  /** Lists a target that got a member in this pass (once; fresh ones are marked so they are not kicked). */
  private joined(t: Target, pass: ReturnType<HealthService['newPass']>): void {
    if (t.mark === pass.mark || t.mark === -pass.mark) return;
    t.mark = pass.mark;
    pass.joined.push(t);
  }

  private prune(id: EndpointId): void {
    const m = this.members.get(id);
    if (!m) return;
    this.members.delete(id);
    this.leave(m);
  }

  /**
   * Passive outlier detection, and traffic-aware probing: one outcome per upstream attempt, from the
   * proxy. A real answer below 500 is as good as a passing probe for an endpoint in service, and the
   * prober skips periodic probes of instances that answer (signals.ts).
   */
  report(outcome: AttemptOutcome): void {
    const m = this.members.get(outcome.endpoint);
    if (!m) return;
    const t = m.target;
    // Nearly every report is an answer below 500, once per request: it ends a run of 5xx and counts
    // as evidence; it needs no closure and usually no state change.
    if (outcome.error === undefined && outcome.status !== undefined && outcome.status < 500) {
      const now = this.loopNow();
      this.signals.answered[t.slot] = now;
      this.signals.traffic[t.slot] = now;
      m.answered();
      if (m.failStreak > 0 || m.state === 'pending') {
        const tr = m.trafficOk(this.clock.now());
        if (tr) this.publish(m, tr, undefined);
        this.sync(t);
      }
      return;
    }
    if (outcome.error === 'cancelled') return;
    this.signals.traffic[t.slot] = this.loopNow();
    const tr = m.passive(outcome, this.clock.now(), () => this.may5xxEject(m));
    if (tr) {
      this.publish(m, tr, undefined);
      this.sync(t);
    }
    // A failed request makes the instance a suspect: probed now (then fast while it fails, or at the
    // interval while it is out), even if it was idle. A 5xx is a milder hint (see ProbeEngine.hint).
    // A burst of failures asks once: the prober would ignore the rest anyway.
    const now = this.loopNow();
    const mild = outcome.error === undefined || outcome.error === 'invalid-response';
    if (now - t.hintedAt >= (mild ? t.settings.intervalMs : EARLY_PROBE_MS)) {
      t.hintedAt = now;
      if (mild) this.link.hint(t.slot);
      else this.link.suspect(t.slot);
    }
    // A live request that could not even connect: the node may be gone, look at its other pods now.
    if (outcome.error === 'connect-timeout' && t.node) this.link.suspectNode(t.node);
  }

  /**
   * Optional hint from the proxy: a live request to this endpoint has waited unusually long for
   * response headers (say 500 ms). Starts an out-of-cycle probe, so a hung instance is detected
   * from the moment traffic notices it instead of at the next scheduled probe: worst case about
   * 1.5 s after the hang plus the hint delay, rather than 2.35 s. Cheap to call often.
   */
  suspect(id: EndpointId): void {
    const m = this.members.get(id);
    if (m && m.state !== 'unhealthy') this.link.suspect(m.target.slot);
  }

  close(): void {
    this.closed = true;
    if (this.chunkTimer !== undefined) this.timers.clearTimeout(this.chunkTimer);
    this.chunkTimer = undefined;
    this.pending.clear();
    this.link.close();
    this.targets.clear();
    this.slots.length = 0;
    this.members.clear();
    this.listeners.clear();
    this.version++;
  }

  /** @internal ProbeSink: a probe result that may change states. */
  result(slot: number, id: number, r: ProbeReport): void {
    const t = this.slots[slot];
    if (!t || t.id !== id || this.closed) return;
    const now = this.clock.now();
    const { fall, rise } = t.settings;
    for (const m of t.members) {
      const tr = m.probe(r.ok, r.reason, now, fall, rise);
      if (tr) this.publish(m, tr, r.latencyMs);
      this.onProbe?.(m.endpoint, r.ok, r.reason, r.latencyMs);
    }
    this.sync(t);
  }

  private localLoggedAt = -Infinity;

  /** @internal ProbeSink: probes could not be made from this host. Logged at most every 10 s. */
  localError(reason: string): void {
    const now = this.clock.now();
    if (now - this.localLoggedAt < 10_000) return;
    this.localLoggedAt = now;
    this.log('warn', 'probes could not be made from this host; they count for no instance', { reason });
  }

  /**
   * @internal ProbeSink: a passing probe that changes no state. Only its latency is used: it may
   * arrive after a newer result (the prober batches these), so it must not touch a state machine.
   */
  quiet(slot: number, id: number, latencyMs: number): void {
    if (!this.onProbe) return;
    const t = this.slots[slot];
    if (!t || t.id !== id || this.closed) return;
    for (const m of t.members) this.onProbe(m.endpoint, true, 'ok', latencyMs);
  }

  // ---- internals -------------------------------------------------------------------------------

  private targetFor(
    e: Endpoint,
    settings: HealthCheckSettings,
    host: string,
    pass: ReturnType<HealthService['newPass']>,
  ): Target {
    const head = this.targets.get(e.probeAddress);
    for (let t = head; t; t = t.sibling) if (t.matches(host, settings, e.node)) return t;
    const t = new Target(this.allocSlot(), ++this.nextId, e.probeAddress, host, settings, e.node);
    this.slots[t.slot] = t;
    this.signals.answered[t.slot] = NEVER;
    this.signals.traffic[t.slot] = NEVER;
    this.signals.flags[t.slot] = 0;
    t.sibling = head;
    // Fresh targets start in finishPass, not kicked as joined ones.
    t.mark = -pass.mark;
    this.targets.set(e.probeAddress, t);
    pass.fresh.push(t);
    return t;
  }

  private allocSlot(): number {
    const free = this.freeSlots.pop();
    if (free !== undefined) return free;
    const slot = this.slots.length;
    const cap = signalsCapacity(this.signals);
    if (slot >= cap) {
      this.signals = allocSignals(
        cap * 2,
        this.signals.flags.buffer instanceof SharedArrayBuffer,
        this.signals,
      );
      this.link.setSignals(this.signals);
    }
    this.slots.push(undefined);
    return slot;
  }

  /** Publishes a target's flags to the prober. */
  private sync(t: Target): void {
    if (!t.removed) this.signals.flags[t.slot] = t.flags();
  }

  private leave(m: Member): void {
    const t = m.target;
    const i = t.members.indexOf(m);
    if (i >= 0) t.members.splice(i, 1);
    if (t.members.length > 0) return this.sync(t);
    t.removed = true;
    if (t.added) this.link.remove(t.slot);
    this.slots[t.slot] = undefined;
    this.signals.flags[t.slot] = 0;
    this.freeSlots.push(t.slot);
    const address = t.address;
    const head = this.targets.get(address);
    if (head === t) {
      if (t.sibling) this.targets.set(address, t.sibling);
      else this.targets.delete(address);
      return;
    }
    for (let p = head; p; p = p.sibling) {
      if (p.sibling === t) {
        p.sibling = t.sibling;
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
