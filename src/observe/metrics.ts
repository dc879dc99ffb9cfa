// Prometheus metrics (prom-client) on a registry of our own, so tests and several instances in one
// process never share state. Label values are bounded: project and port names come from the route
// table (the proxy passes undefined for anything it could not route), instance names only from
// health events, and a cap folds anything beyond it into `_overflow`. No paths, no raw hosts.

import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { AttemptRecord, AttemptResult } from '../model/attempt.ts';
import type { WharfEvent } from '../model/events.ts';
import type { HealthState } from '../model/health.ts';
import {
  CLASSES,
  classIndex,
  InstanceMeters,
  instanceMetricView,
  PortMeters,
  portMetricViews,
  protocolIndex,
  ScrapedMetric,
} from './port-meters.ts';

export const UNKNOWN = '_unknown';
export const OVERFLOW = '_overflow';

const HEALTH_STATES: readonly HealthState[] = ['pending', 'healthy', 'unhealthy'];
const SOURCE_STATES = ['syncing', 'synced', 'degraded'] as const;
const ATTEMPT_ERRORS: ReadonlySet<string> = new Set<Exclude<AttemptResult, number>>([
  'connect-refused',
  'connect-timeout',
  'connect-error',
  'reset',
  'response-timeout',
  'invalid-response',
  'cancelled',
  'rescued',
  'refused-stream',
  'deadline-exceeded',
  'request-error',
  'proxy-error',
]);

export interface MetricsOptions {
  /** Also export Node's process metrics (CPU, memory, event loop lag), prefixed `wharf_`. */
  readonly defaultMetrics?: boolean;
  /** Total dropped log lines, read at scrape time (Logs.dropped). */
  readonly droppedLogLines?: () => number;
  /** Retries the retry budget refused, per project port, read at scrape time (RetryBudget.denials). */
  readonly retryBudgetDenials?: () => Iterable<{ project: string; port: string; denied: number }>;
  /** Distinct (project, port) pairs before folding into `_overflow`. Default 1000. */
  readonly maxProjectPorts?: number;
  /** Distinct instances before folding into `_overflow`. Default 10000. */
  readonly maxInstances?: number;
  /**
   * Instance ports with their own attempt-duration histogram (17 series each) before the rest fold
   * into `instance="_overflow"` of their port. Default 2000.
   */
  readonly maxInstanceHistograms?: number;
  readonly now?: () => number;
}

const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class Metrics {
  readonly registry = new Registry();
  private readonly now: () => number;
  private readonly maxPairs: number;
  private readonly maxInstances: number;
  private readonly pairs = new Set<string>();
  private readonly instanceSet = new Set<string>();
  /** project -> port -> counters of the per-request metrics (several keys may share the overflow one). */
  private readonly meters = new Map<string, Map<string, PortMeters>>();
  /** Each PortMeters once, in creation order: what the scrape walks. */
  private readonly meterList: PortMeters[] = [];
  private overflowMeters?: PortMeters;
  private overflowKeys = 0;
  /** project -> port -> instance -> attempt durations; each also in instanceList, for the scrape. */
  private readonly instanceMeters = new Map<string, Map<string, Map<string, InstanceMeters>>>();
  private readonly instanceList = new Set<InstanceMeters>();
  /** The same meters by their label values, so a label set is exported once. */
  private readonly instanceByLabels = new Map<string, InstanceMeters>();
  private readonly maxInstanceHistograms: number;
  private readonly sources = new Map<string, { state: string; since: number; lastSynced: number }>();

  private readonly health: Gauge<'project' | 'port' | 'instance' | 'state'>;
  private readonly ejections: Counter<'project' | 'port'>;
  private readonly transitions: Counter<'project' | 'port' | 'to'>;
  private readonly probeLatency: Histogram<'project' | 'port'>;
  private readonly probes: Counter<'project' | 'port' | 'result'>;
  private readonly routeVersion: Gauge;
  private readonly routeProjects: Gauge;
  private readonly routeEndpoints: Gauge;
  private readonly problems: Gauge<'severity'>;
  private readonly discoveryRejected: Counter<'source' | 'resource' | 'reason'>;
  private readonly discoveryRelists: Counter<'source' | 'resource' | 'reason'>;

  constructor(opts: MetricsOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.maxPairs = opts.maxProjectPorts ?? 1000;
    this.maxInstances = opts.maxInstances ?? 10_000;
    this.maxInstanceHistograms = opts.maxInstanceHistograms ?? 2000;
    const registers = [this.registry];
    for (const view of [
      ...portMetricViews(() => this.meterList, DURATION_BUCKETS),
      instanceMetricView(() => this.instanceList, DURATION_BUCKETS),
    ]) {
      // The Registry only calls name/help/type/get()/reset(), which ScrapedMetric has.
      this.registry.registerMetric(view as unknown as Counter);
    }
    this.health = new Gauge({
      name: 'wharf_instance_health',
      help: 'Health state of each instance port: 1 for its current state, 0 for the others.',
      labelNames: ['project', 'port', 'instance', 'state'],
      registers,
    });
    this.ejections = new Counter({
      name: 'wharf_ejections_total',
      help: 'Instances taken out of rotation (active or passive health checks).',
      labelNames: ['project', 'port'],
      registers,
    });
    this.transitions = new Counter({
      name: 'wharf_health_transitions_total',
      help: 'Health transitions, by the state entered.',
      labelNames: ['project', 'port', 'to'],
      registers,
    });
    this.probeLatency = new Histogram({
      name: 'wharf_probe_duration_seconds',
      help: 'Active health probe latency.',
      labelNames: ['project', 'port'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.probes = new Counter({
      name: 'wharf_probes_total',
      help: 'Active health probes, by result (ok, failed).',
      labelNames: ['project', 'port', 'result'],
      registers,
    });
    this.routeVersion = new Gauge({
      name: 'wharf_route_table_version',
      help: 'Version of the route table in use.',
      registers,
    });
    this.routeProjects = new Gauge({
      name: 'wharf_route_projects',
      help: 'Projects in the route table.',
      registers,
    });
    this.routeEndpoints = new Gauge({
      name: 'wharf_route_endpoints',
      help: 'Endpoints (instance ports) in the route table.',
      registers,
    });
    this.problems = new Gauge({
      name: 'wharf_problems',
      help: 'Current Problems, by severity.',
      labelNames: ['severity'],
      registers,
    });
    this.discoveryRejected = new Counter({
      name: 'wharf_discovery_rejected_total',
      help: 'Watch lines and list items from the apiserver that could not be used (each ends its stream and relists).',
      labelNames: ['source', 'resource', 'reason'],
      registers,
    });
    this.discoveryRelists = new Counter({
      name: 'wharf_discovery_relists_total',
      help: 'Lists after the first: the watch could not go on from its version (410, an error, a broken stream).',
      labelNames: ['source', 'resource', 'reason'],
      registers,
    });
    const sources = this.sources;
    const now = this.now;
    new Gauge({
      name: 'wharf_source_state',
      help: 'State of each discovery source (kubernetes, config): 1 for its current state.',
      labelNames: ['source', 'state'],
      registers,
      collect() {
        for (const [source, s] of sources) {
          for (const st of SOURCE_STATES) this.set({ source, state: st }, s.state === st ? 1 : 0);
        }
      },
    });
    new Gauge({
      name: 'wharf_source_last_sync_age_seconds',
      help: 'Seconds since the source was last known in sync (0 while synced).',
      labelNames: ['source'],
      registers,
      collect() {
        const t = now();
        for (const [source, s] of sources) {
          const age =
            s.state === 'synced' ? 0 : s.lastSynced > 0 ? (t - s.lastSynced) / 1000 : (t - s.since) / 1000;
          this.set({ source }, Math.max(0, age));
        }
      },
    });
    const dropped = opts.droppedLogLines;
    let lastDropped = 0;
    new Counter({
      name: 'wharf_log_dropped_lines_total',
      help: 'Log lines dropped because the log destination could not keep up.',
      registers,
      collect() {
        if (!dropped) return;
        const d = dropped();
        if (d > lastDropped) this.inc(d - lastDropped);
        lastDropped = d;
      },
    });
    const denials = opts.retryBudgetDenials;
    this.registry.registerMetric(
      new ScrapedMetric(
        'wharf_retry_budget_exhausted_total',
        'Retries not made because the retry budget of the project port was spent.',
        'counter',
        () =>
          [...(denials?.() ?? [])].map((d) => ({
            labels: { project: d.project, port: d.port },
            value: d.denied,
          })),
      ) as unknown as Counter,
    );
    if (opts.defaultMetrics) {
      collectDefaultMetrics({ register: this.registry, prefix: 'wharf_' });
      // prom-client names three gauges `*_total`, which is for counters (`promtool check metrics`
      // warns); their per-type twins (`wharf_nodejs_active_handles{type}` ...) carry the same numbers.
      for (const n of ['handles', 'requests', 'resources'])
        this.registry.removeSingleMetric(`wharf_nodejs_active_${n}_total`);
    }
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }

  /**
   * Hot path: one call per answered request. `project`/`port` undefined when it was not routed;
   * `protocol` is the client's (`http/1.1`, `h2`).
   */
  request(
    project: string | undefined,
    port: string | undefined,
    status: number,
    durationSeconds: number,
    protocol?: string,
  ): void {
    this.portMeters(project ?? UNKNOWN, port ?? UNKNOWN).request(
      status,
      durationSeconds,
      protocolIndex(protocol),
    );
  }

  /** One upstream attempt: its status (any number) or its AttemptError. */
  attempt(project: string | undefined, port: string | undefined, outcome: number | string): void {
    const o =
      typeof outcome === 'number'
        ? CLASSES[classIndex(outcome)]
        : ATTEMPT_ERRORS.has(outcome)
          ? outcome
          : 'other';
    this.portMeters(project ?? UNKNOWN, port ?? UNKNOWN).attempt(o);
  }

  retry(project: string | undefined, port: string | undefined): void {
    this.portMeters(project ?? UNKNOWN, port ?? UNKNOWN).retries++;
  }

  /**
   * Hot path: one call per upstream attempt. Its outcome and retry on the port; its duration on the
   * instance that took it, so a slow instance is not hidden behind the one that answered after it.
   */
  upstreamAttempt(a: AttemptRecord): void {
    this.attempt(a.project, a.port, a.outcome);
    const m = this.portMeters(a.project, a.port);
    if (a.retry) m.retries++;
    if (a.outcome === 'rescued') m.rescues++;
    this.instanceMetersOf(a.project, a.port, a.instance).observe(a.durationMs / 1000);
  }

  private instanceMetersOf(project: string, port: string, instance: string): InstanceMeters {
    let byPort = this.instanceMeters.get(project);
    let byInstance = byPort?.get(port);
    const found = byInstance?.get(instance);
    if (found !== undefined) return found;
    const [p, q] = this.pair(project, port);
    // Past the cap, new instances share their port's `_overflow` histogram.
    const name = this.instanceList.size >= this.maxInstanceHistograms ? OVERFLOW : instance;
    const key = `${p}\u0000${q}\u0000${name}`;
    let m = this.instanceByLabels.get(key);
    if (m === undefined) {
      m = new InstanceMeters(p, q, name, DURATION_BUCKETS);
      this.instanceByLabels.set(key, m);
      this.instanceList.add(m);
    }
    if (!byPort) {
      byPort = new Map();
      this.instanceMeters.set(project, byPort);
    }
    if (!byInstance) {
      byInstance = new Map();
      byPort.set(port, byInstance);
    }
    byInstance.set(instance, m);
    return m;
  }

  /** Stop exporting the attempt durations of an instance port that left the route table. */
  private forgetInstanceMeters(project: string, port: string, instance: string): void {
    const byInstance = this.instanceMeters.get(project)?.get(port);
    const m = byInstance?.get(instance);
    if (!m) return;
    byInstance!.delete(instance);
    if (m.instance !== instance) return; // a shared `_overflow` histogram stays
    this.instanceList.delete(m);
    this.instanceByLabels.delete(`${m.project}\u0000${m.port}\u0000${m.instance}`);
  }

  /** The counters of one pair: two Map lookups on strings from the route table (hashes cached). */
  private portMeters(project: string, port: string): PortMeters {
    const found = this.meters.get(project)?.get(port);
    if (found !== undefined) return found;
    const [p, q] = this.pair(project, port);
    const overflow = p === OVERFLOW;
    if (overflow) this.overflowMeters ??= this.newMeters(OVERFLOW, OVERFLOW);
    const m = overflow ? (this.overflowMeters as PortMeters) : this.newMeters(p, q);
    // Pairs within the cap are at most maxPairs; the names folded into `_overflow` are remembered
    // only up to a bound (past it, each of their requests pays pair() again, but allocates nothing).
    if (!overflow || this.overflowKeys++ < 4 * this.maxPairs) {
      let byPort = this.meters.get(project);
      if (byPort === undefined) {
        byPort = new Map();
        this.meters.set(project, byPort);
      }
      byPort.set(port, m);
    }
    return m;
  }

  private newMeters(project: string, port: string): PortMeters {
    const m = new PortMeters(project, port, DURATION_BUCKETS);
    this.meterList.push(m);
    return m;
  }

  /** One active probe (health/ calls it). */
  probe(project: string, port: string, latencySeconds: number, ok: boolean): void {
    const [p, q] = this.pair(project, port);
    this.probeLatency.labels(p, q).observe(latencySeconds);
    this.probes.labels(p, q, ok ? 'ok' : 'failed').inc();
  }

  /** Set the health gauge of one instance port. */
  instanceState(project: string, port: string, instance: string, state: HealthState): void {
    const [p, q] = this.pair(project, port);
    const key = `${p}\u0000${q}\u0000${instance}`;
    let i = instance;
    if (!this.instanceSet.has(key)) {
      if (this.instanceSet.size >= this.maxInstances) i = OVERFLOW;
      else this.instanceSet.add(key);
    }
    for (const s of HEALTH_STATES)
      this.health.set({ project: p, port: q, instance: i, state: s }, s === state ? 1 : 0);
  }

  /** Forget an instance port that left the route table, so its series stop being exported. */
  forgetInstance(project: string, port: string, instance: string): void {
    const key = `${project}\u0000${port}\u0000${instance}`;
    if (!this.instanceSet.delete(key)) return;
    for (const s of HEALTH_STATES) this.health.remove({ project, port, instance, state: s });
  }

  /**
   * Reconcile the health gauges with the full set of instance ports (call after a table swap):
   * sets every listed one, forgets every other.
   */
  syncInstances(
    list: Iterable<{ project: string; port: string; instance: string; state: HealthState }>,
  ): void {
    const keep = new Set<string>();
    for (const x of list) {
      keep.add(`${x.project}\u0000${x.port}\u0000${x.instance}`);
      this.instanceState(x.project, x.port, x.instance, x.state);
    }
    for (const key of [...this.instanceSet]) {
      if (keep.has(key)) continue;
      const [p, q, i] = key.split('\u0000');
      this.forgetInstance(p, q, i);
    }
  }

  /** Feed every WharfEvent (subscribe to the bus). */
  observe(e: WharfEvent): void {
    switch (e.type) {
      case 'health': {
        this.instanceState(e.project, e.port, e.instance, e.to);
        const [p, q] = this.pair(e.project, e.port);
        this.transitions.labels(p, q, e.to).inc();
        // Probe latency is observed per probe through probe(), not here, so it is not counted twice.
        if (e.to === 'unhealthy' && (e.from === 'healthy' || e.ejected)) this.ejections.labels(p, q).inc();
        break;
      }
      case 'routes':
        this.routeVersion.set(e.version);
        this.routeProjects.set(e.projects);
        this.routeEndpoints.set(e.endpoints);
        for (const id of e.removed) {
          // EndpointId: `<project>/<port>/<instance>@<host>:<port>`; anything else is not ours to parse.
          const m = /^([^/]+)\/([^/]+)\/([^@]+)@/.exec(id);
          if (m) {
            this.forgetInstance(m[1], m[2], m[3]);
            this.forgetInstanceMeters(m[1], m[2], m[3]);
          }
        }
        break;
      case 'problems': {
        let errors = 0;
        let warnings = 0;
        for (const p of e.problems) {
          if (p.severity === 'error') errors++;
          else warnings++;
        }
        this.problems.set({ severity: 'error' }, errors);
        this.problems.set({ severity: 'warning' }, warnings);
        break;
      }
      case 'source': {
        const prev = this.sources.get(e.source);
        const lastSynced =
          e.state === 'synced' ? e.time : prev?.state === 'synced' ? e.time : (prev?.lastSynced ?? 0);
        this.sources.set(e.source, { state: e.state, since: e.time, lastSynced });
        break;
      }
      case 'discovery':
        // Labels come from fixed sets in discovery (resource from the configured paths).
        (e.kind === 'relist' ? this.discoveryRelists : this.discoveryRejected)
          .labels(e.source, e.resource, e.reason)
          .inc();
        break;
      case 'probe':
        break;
    }
  }

  /** Bound (project, port) pairs; beyond the cap both labels become `_overflow`. */
  private pair(project: string, port: string): [string, string] {
    const key = `${project}\u0000${port}`;
    if (this.pairs.has(key)) return [project, port];
    if (this.pairs.size >= this.maxPairs) return [OVERFLOW, OVERFLOW];
    this.pairs.add(key);
    return [project, port];
  }
}
