// Composition root: builds each part, connects the one-way flow of DESIGN.md §5 and starts/stops
// them in order. Nothing else in src/ wires parts together.
//
//   config file / discovery -> ClusterSnapshot -> buildRouteTable -> current table -> Forwarder
//                                   health (probes + outcomes) -> HealthView -------------^

import { createHash } from 'node:crypto';
import { type FSWatcher, readFileSync, watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import { serveDashboard } from './admin/dashboard/serve.ts';
import { dashboardState, SourceStates } from './admin/dashboard/state.ts';
import { type AdminRoute, AdminServer, type Readiness } from './admin/server.ts';
import { type Config, ConfigError, loadConfig, type Overrides } from './config/load.ts';
import { type ApiServerTarget, resolveTargets } from './discovery/credentials.ts';
import { SecretWatcher } from './discovery/secrets.ts';
import { KubernetesSource, type KubernetesSourceOptions } from './discovery/source.ts';
import { HealthService, type Prober } from './health/index.ts';
import type { AccessRecord } from './model/access.ts';
import type { WharfEvent } from './model/events.ts';
import type { Problem } from './model/problem.ts';
import type { Endpoint, ProjectRoute, RouteTable } from './model/routes.ts';
import type { ProjectChange, ProjectRecord } from './model/snapshot.ts';
import type { LogOptions } from './observe/log.ts';
import { createObserve, type Observe } from './observe/observe.ts';
import { observeRoutes } from './observe/routes.ts';
import { CertificateStore, fileSource } from './proxy/certificates.ts';
import { Forwarder, type ForwarderOptions } from './proxy/forward.ts';
import { ClientLimits } from './proxy/limits.ts';
import { RetryBudget } from './proxy/retry-budget.ts';
import { SecretCertificates } from './proxy/secret-certs.ts';
import { createRedirectServer, FrontServer } from './proxy/server.ts';
import { UpstreamPools } from './proxy/upstreams.ts';
import { type Conventions, RouteTableBuilder } from './routing/build.ts';
import { cidrMatcher } from './util/cidr.ts';
import { type Clock, systemClock } from './util/clock.ts';
import { type Log, stderrLog } from './util/log.ts';

export interface WharfOptions {
  readonly config: Config;
  /** Enables reload on change and on SIGHUP (via `reload()`). */
  readonly configPath?: string;
  readonly overrides?: Overrides;
  readonly log?: Log;
  readonly clock?: Clock;
  readonly onAccess?: (rec: AccessRecord) => void;
  readonly onEvent?: (e: WharfEvent) => void;
  /** Per upstream attempt (metrics). */
  readonly onAttempt?: ForwarderOptions['onAttempt'];
  /** Per probe result (metrics); failed probes also go to onEvent as `probe` events. */
  readonly onProbe?: (endpoint: Endpoint, ok: boolean, latencyMs: number) => void;
  readonly adminRoutes?: readonly AdminRoute[];
  /** Replaces the network prober of active health checks (benchmarks with synthetic endpoints). */
  readonly healthProber?: Prober;
  /**
   * Kubernetes discovery tuning (tests use short timeouts); `servers` replaces what
   * `config.kubernetes` would resolve to. Ignored unless `config.kubernetes` is set.
   */
  readonly discovery?: Partial<Omit<KubernetesSourceOptions, 'servers'>> & {
    readonly servers?: readonly ApiServerTarget[];
  };
}

export interface SourceState {
  readonly projects: readonly ProjectRecord[];
  readonly problems: readonly Problem[];
}

/** The change between two versions of one source's records, by identity (config files are small). */
function diffRecords(prev: readonly ProjectRecord[], next: readonly ProjectRecord[]): ProjectChange {
  const before = new Set(prev);
  const after = new Set(next);
  return {
    removed: prev.filter((p) => !after.has(p)),
    added: next.filter((p) => !before.has(p)),
  };
}

/**
 * Endpoints added and removed between two tables, looking only at the projects the builder says
 * changed (and the edge's forward route): O(changed endpoints) per swap, not O(all endpoints).
 */
function diffEndpoints(
  prev: RouteTable,
  next: RouteTable,
  changed: Iterable<string>,
): { added: Endpoint[]; removed: Endpoint[] } {
  const added: Endpoint[] = [];
  const removed: Endpoint[] = [];
  const ids = (r: ProjectRoute | undefined) => {
    const m = new Map<string, Endpoint>();
    if (r) for (const port of r.ports.values()) for (const e of port.endpoints) m.set(e.id, e);
    return m;
  };
  for (const name of changed) {
    const old = prev.projects.get(name);
    const route = next.projects.get(name);
    if (old === route) continue;
    const a = ids(old);
    const b = ids(route);
    for (const [id, e] of b) if (!a.has(id)) added.push(e);
    for (const [id, e] of a) if (!b.has(id)) removed.push(e);
  }
  // The edge tier's forward target is outside `projects`: diff it too.
  if (prev.forward !== next.forward) {
    const a = new Set(prev.forward?.endpoints.map((e) => e.id));
    const b = new Set(next.forward?.endpoints.map((e) => e.id));
    for (const e of next.forward?.endpoints ?? []) if (!a.has(e.id)) added.push(e);
    for (const e of prev.forward?.endpoints ?? []) if (!b.has(e.id)) removed.push(e);
  }
  return { added, removed };
}

export class Wharf {
  private config: Config;
  private conventions: Conventions;
  private builder: RouteTableBuilder;
  private current: RouteTable;
  private tableVersion = 0;
  private snapshotVersion = 0;
  private readonly sources = new Map<string, SourceState>();
  /** Every source's problems in one array, rebuilt only when one of them changes. */
  private sourceProblems: {
    readonly parts: readonly (readonly Problem[])[];
    readonly all: readonly Problem[];
  } = { parts: [], all: [] };
  /** Endpoints per upstream address in the current table, so a swap knows which pools to release. */
  private readonly addressRefs = new Map<string, number>();
  private endpointCount = 0;
  private readonly log: Log;
  private readonly clock: Clock;
  readonly health: HealthService;
  readonly pools: UpstreamPools;
  readonly forwarder: Forwarder;
  readonly front: FrontServer;
  readonly admin: AdminServer;
  readonly certificates?: CertificateStore;
  readonly limits: ClientLimits;
  private redirect?: import('node:http').Server;
  private watcher?: FSWatcher;
  private reloadTimer?: NodeJS.Timeout;
  private configHash = '';
  private stopping?: Promise<void>;
  /** Kubernetes discovery, when configured. */
  kubernetes?: KubernetesSource;
  /** Edge tier with TLS and discovery: the `kubernetes.io/tls` Secrets it serves certificates from. */
  secretWatcher?: SecretWatcher;
  private secretCerts?: SecretCertificates;
  private secretsSettled = false;
  frontAddress = { host: '', port: 0 };
  adminAddress = { host: '', port: 0 };

  private constructor(private readonly opts: WharfOptions) {
    this.config = opts.config;
    this.log = opts.log ?? stderrLog;
    this.clock = opts.clock ?? systemClock;
    this.conventions = this.conventionsFor(this.config);
    this.builder = new RouteTableBuilder(this.conventions);
    this.current = this.builder.apply({ removed: [], added: [] }, [], 0, 0).table;
    const c = this.config;
    this.health = new HealthService({
      domain: c.domain,
      maxInFlight: c.health.concurrency,
      emit: (e) => opts.onEvent?.(e),
      log: this.log,
      ...(opts.healthProber ? { prober: opts.healthProber } : {}),
      onProbe: (e, ok, reason, latencyMs) => {
        opts.onProbe?.(e, ok, latencyMs);
        if (!ok) {
          opts.onEvent?.({
            type: 'probe',
            time: this.clock.now(),
            project: e.project,
            port: e.port,
            instance: e.instance,
            address: e.address,
            reason,
            latencyMs,
          });
        }
      },
    });
    this.pools = new UpstreamPools({
      connections: c.upstream.connections,
      connectTimeoutMs: c.timeouts.connectMs,
      idleTimeoutMs: c.timeouts.upstreamIdleMs,
    });
    if (c.tls) {
      this.certificates = new CertificateStore(
        c.tls.certificates.map((x) => fileSource(x.cert, x.key, x.hosts)),
        {
          minVersion: c.tls.minVersion,
          clock: this.clock,
          onChange: (problems, loaded) => {
            this.log(problems.length ? 'error' : 'info', 'certificates loaded', {
              loaded,
              problems: problems.length,
            });
            if (this.sources.has('tls') || problems.length > 0) this.setSource('tls', [], problems);
          },
        },
      );
      this.certificates.loadOrThrow();
    }
    this.limits = new ClientLimits(c.limits.clientConnections, c.limits.clientRate, this.clock);
    const trustedProxy = cidrMatcher(c.trustedProxies);
    this.forwarder = new Forwarder({
      domain: c.domain,
      tier: c.tier,
      proto: c.tls ? 'https' : 'http',
      instanceHeader: c.instanceHeader,
      bodyIdleMs: c.timeouts.bodyIdleMs,
      maxBodyBytes: c.limits.maxBodyBytes,
      bodyBufferBytes: c.limits.bodyBufferBytes,
      queueMs: c.timeouts.queueMs,
      uploadsPerClient: c.upstream.uploadsPerClient,
      trustedProxy,
      maxHeaders: c.limits.maxHeaders,
      limits: this.limits,
      table: () => this.current,
      health: this.health,
      pools: this.pools,
      budget: new RetryBudget(c.upstream.retryBudget, c.upstream.retryBudgetMin, this.clock),
      clock: this.clock,
      // In-cluster clients of the internal tier are trusted; the edge believes only listed proxies.
      trusted: c.tier === 'internal' ? () => true : trustedProxy,
      onAccess: opts.onAccess,
      onAttempt: opts.onAttempt,
    });
    this.health.onEjected((id) => this.forwarder.rescue(id));
    this.front = new FrontServer(this.forwarder, {
      maxHeaderBytes: c.limits.maxHeaderBytes,
      maxHeaders: c.limits.maxHeaders,
      requestHeadersMs: c.timeouts.requestHeadersMs,
      clientIdleMs: c.timeouts.clientIdleMs,
      limits: this.limits,
      tls:
        this.certificates && c.tls ? { store: this.certificates, minVersion: c.tls.minVersion } : undefined,
    });
    this.admin = new AdminServer({
      token: c.adminToken,
      hosts: c.adminHosts,
      table: () => this.current,
      health: this.health,
      readiness: () => this.readiness(),
      routes: opts.adminRoutes,
    });
    this.setSource('config', c.projects, []);
  }

  static async start(opts: WharfOptions): Promise<Wharf> {
    const w = new Wharf(opts);
    const c = w.config;
    // Credentials first: a bad kubeconfig fails the start before anything listens.
    const servers = c.kubernetes
      ? (opts.discovery?.servers ??
        (await resolveTargets({
          inCluster: c.kubernetes.inCluster,
          kubeconfig: c.kubernetes.kubeconfig,
          context: c.kubernetes.contexts,
          apiservers: c.kubernetes.apiservers,
          tokenFile: c.kubernetes.tokenFile,
          caFile: c.kubernetes.caFile,
          insecureSkipTlsVerify: c.kubernetes.insecureSkipTlsVerify,
        })))
      : undefined;
    w.frontAddress = await w.front.listen(c.listen.host, c.listen.port);
    w.certificates?.watch();
    try {
      if (c.tls?.redirectHttp) {
        const r = c.tls.redirectHttp;
        const redirect = createRedirectServer(w.frontAddress.port);
        w.redirect = redirect;
        await new Promise<void>((resolve, reject) => {
          redirect.once('error', reject);
          redirect.listen(r.port, r.host, () => resolve());
        });
      }
      w.adminAddress = await w.admin.listen(c.admin.host, c.admin.port);
    } catch (err) {
      // Nothing starts half-way: a listener that could not bind stops the ones that did.
      w.redirect?.close();
      w.certificates?.close();
      w.forwarder.close();
      w.health.close();
      w.limits.close();
      await w.front.drain(0);
      await w.pools.destroy();
      throw err;
    }
    if (opts.configPath) w.watchConfig(opts.configPath);
    if (servers) w.startKubernetes(servers);
    w.log('info', 'wharf started', {
      listen: `${w.frontAddress.host}:${w.frontAddress.port}`,
      admin: `${w.adminAddress.host}:${w.adminAddress.port}`,
      domain: c.domain,
      tier: c.tier,
      projects: w.current.projects.size,
    });
    return w;
  }

  private conventionsFor(c: Config): Conventions {
    return { tier: c.tier, defaults: c.defaults, forwardTo: c.forwardTo };
  }

  table(): RouteTable {
    return this.current;
  }

  /**
   * Not ready until Kubernetes discovery has completed its first sync. When the apiserver is away
   * afterwards Wharf stays ready (it serves from the last good snapshot) but says `degraded`:
   * pulling every replica out of the Service because the control plane is down would turn an
   * apiserver outage into a data-plane outage.
   */
  readiness(): Readiness {
    if (this.stopping) return { ready: false, status: 'stopping', reasons: [] };
    const k = this.kubernetes?.state;
    if (k?.state === 'syncing')
      return {
        ready: false,
        status: 'starting',
        reasons: [`kubernetes: waiting for the first complete sync${k.reason ? ` (${k.reason})` : ''}`],
      };
    // Only a starting replica waits for its Secrets, so it never serves fewer certificates than the
    // others; later, a newly named Secret that the apiserver is slow to give must not take every
    // replica out of the Service at once.
    const secrets = this.secretsSettled ? [] : (this.secretCerts?.pending() ?? []);
    if (secrets.length > 0)
      return {
        ready: false,
        status: 'starting',
        reasons: [`tls: waiting for Secrets ${secrets.join(', ')}`],
      };
    if (this.secretCerts) this.secretsSettled = true;
    if (this.certificates && this.certificates.size === 0)
      return { ready: false, status: 'starting', reasons: ['tls: no certificate to serve yet'] };
    if (k?.state === 'degraded')
      return {
        ready: true,
        status: 'degraded',
        reasons: [`kubernetes: ${k.reason ?? 'apiserver unreachable'}`],
      };
    return { ready: true, status: 'ok', reasons: [] };
  }

  private startKubernetes(servers: readonly ApiServerTarget[]): void {
    const k = this.config.kubernetes!;
    const { servers: _s, ...tuning } = this.opts.discovery ?? {};
    const src = new KubernetesSource({
      servers,
      namespaces: k.namespaces,
      log: (level, msg, fields) => this.log(level, msg, fields),
      ...tuning,
    });
    this.kubernetes = src;
    src.onState((st) =>
      this.opts.onEvent?.({
        type: 'source',
        time: this.clock.now(),
        source: 'kubernetes',
        state: st.state,
        ...(st.reason ? { reason: st.reason } : {}),
      }),
    );
    src.onSnapshot((u) => this.updateSource('kubernetes', u, u.change));
    src.start();
    this.startTlsSecrets(servers);
    this.log('info', 'kubernetes discovery started', {
      apiservers: servers.map((s) => s.url),
      namespaces: k.namespaces.length ? k.namespaces : 'all',
    });
  }

  /** Only an edge with TLS reads Secrets; the internal tier never does (and has no RBAC for them). */
  private startTlsSecrets(servers: readonly ApiServerTarget[]): void {
    const c = this.config;
    if (c.tier !== 'edge' || !c.tls || !this.certificates) return;
    const d = this.opts.discovery ?? {};
    this.secretWatcher = new SecretWatcher({
      servers,
      log: (level, msg, fields) => this.log(level, msg, fields),
      random: d.random,
      silenceMs: d.silenceMs,
      watchTimeoutSeconds: d.watchTimeoutSeconds,
      backoffInitialMs: d.backoffInitialMs,
      backoffMaxMs: d.backoffMaxMs,
    });
    this.secretCerts = new SecretCertificates({
      watcher: this.secretWatcher,
      store: this.certificates,
      secrets: c.tls.secrets,
      domain: c.domain,
      onProblems: (problems) => this.setSource('tls-secrets', [], problems),
    });
    this.secretCerts.tableChanged(this.current);
  }

  /** A source (config file, Kubernetes) publishes its whole current view; the table is rebuilt at once. */
  setSource(
    name: string,
    projects: readonly ProjectRecord[],
    problems: readonly Problem[],
    change?: ProjectChange,
  ): void {
    this.updateSource(name, { projects, problems }, change);
  }

  /**
   * `change` is what differs from the source's previous state (computed here when not given). The
   * table is rebuilt from the change alone; `state.projects` is read only when the conventions
   * change and everything is built again.
   */
  updateSource(name: string, state: SourceState, change?: ProjectChange): void {
    const prev = this.sources.get(name);
    const delta = change ?? diffRecords(prev?.projects ?? [], state.projects);
    this.sources.set(name, state);
    const prevTable = this.current;
    const { table, changed } = this.builder.apply(
      delta,
      this.allSourceProblems(),
      ++this.tableVersion,
      ++this.snapshotVersion,
    );
    this.swap(prevTable, table, changed);
  }

  private allSourceProblems(): readonly Problem[] {
    const parts = [...this.sources.values()].map((s) => s.problems);
    const cached = this.sourceProblems;
    if (parts.length === cached.parts.length && parts.every((p, i) => p === cached.parts[i]))
      return cached.all;
    this.sourceProblems = { parts, all: Object.freeze(parts.flat()) };
    return this.sourceProblems.all;
  }

  /** New conventions (a reloaded `defaults:`): everything is built again with a new builder. */
  private rebuildAll(): void {
    const prev = this.current;
    this.builder = new RouteTableBuilder(this.conventions);
    const added: ProjectRecord[] = [];
    for (const s of this.sources.values()) for (const p of s.projects) added.push(p);
    const { table } = this.builder.apply(
      { removed: [], added },
      this.allSourceProblems(),
      ++this.tableVersion,
      ++this.snapshotVersion,
    );
    this.swap(prev, table, new Set([...prev.projects.keys(), ...table.projects.keys()]));
  }

  private swap(prev: RouteTable, next: RouteTable, changed: Iterable<string>): void {
    // Swap first: from here every new request sees the new table as one object.
    this.current = next;
    const { added: addedEps, removed: removedEps } = diffEndpoints(prev, next, changed);
    for (const e of addedEps) this.addressRefs.set(e.address, (this.addressRefs.get(e.address) ?? 0) + 1);
    const unused: string[] = [];
    for (const e of removedEps) {
      const n = (this.addressRefs.get(e.address) ?? 1) - 1;
      if (n > 0) this.addressRefs.set(e.address, n);
      else {
        this.addressRefs.delete(e.address);
        unused.push(e.address);
      }
    }
    this.pools.release(unused);
    this.health.reconcile(next, changed);
    this.endpointCount += addedEps.length - removedEps.length;
    const added = addedEps.map((e) => e.id);
    const removed = removedEps.map((e) => e.id);
    this.opts.onEvent?.({
      type: 'routes',
      time: this.clock.now(),
      version: next.version,
      projects: next.projects.size,
      endpoints: this.endpointCount,
      added,
      removed,
    });
    if (next.problems !== prev.problems && (next.problems.length > 0 || prev.problems.length > 0)) {
      this.opts.onEvent?.({ type: 'problems', time: this.clock.now(), problems: next.problems });
    }
    this.secretCerts?.tableChanged(next, changed);
  }

  /** Re-reads the config file; a bad file is rejected with a logged reason and the old config keeps serving. */
  reload(): boolean {
    const path = this.opts.configPath;
    if (!path) return false;
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      this.log('error', 'config reload failed; keeping the running config', {
        file: path,
        reason: (err as Error).message,
      });
      return false;
    }
    const hash = createHash('sha256').update(text).digest('hex');
    if (hash === this.configHash) return true;
    let next: Config;
    try {
      next = loadConfig(path, this.opts.overrides);
    } catch (err) {
      const issues = err instanceof ConfigError ? err.issues : [(err as Error).message];
      this.log('error', 'config reload rejected; keeping the running config', { file: path, issues });
      return false;
    }
    this.configHash = hash;
    const prev = this.config;
    const needsRestart = (
      ['listen', 'admin', 'tier', 'domain', 'adminToken', 'adminHosts', 'instanceHeader'] as const
    ).filter((k) => JSON.stringify(prev[k]) !== JSON.stringify(next[k]));
    if (JSON.stringify(prev.timeouts) !== JSON.stringify(next.timeouts))
      needsRestart.push('timeouts' as never);
    if (JSON.stringify(prev.limits) !== JSON.stringify(next.limits)) needsRestart.push('limits' as never);
    if (JSON.stringify(prev.kubernetes) !== JSON.stringify(next.kubernetes))
      needsRestart.push('kubernetes' as never);
    if (JSON.stringify(prev.upstream) !== JSON.stringify(next.upstream))
      needsRestart.push('upstream' as never);
    if (prev.health.concurrency !== next.health.concurrency) needsRestart.push('health' as never);
    // tls.secrets apply live (Secret watches start and stop); the rest of `tls` needs a restart.
    const tlsSecrets = this.secretCerts && next.tls ? next.tls.secrets : prev.tls?.secrets;
    const tlsRest = (t: Config['tls']) => JSON.stringify(t ? { ...t, secrets: undefined } : null);
    const applied = JSON.stringify(tlsSecrets ?? []) === JSON.stringify(next.tls?.secrets ?? []);
    if (tlsRest(prev.tls) !== tlsRest(next.tls) || !applied) needsRestart.push('tls' as never);
    if (needsRestart.length > 0) {
      this.log('warn', 'config changes that need a restart were not applied', { fields: needsRestart });
    }
    this.config = {
      ...prev,
      defaults: next.defaults,
      projects: next.projects,
      ...(prev.tls && tlsSecrets ? { tls: { ...prev.tls, secrets: tlsSecrets } } : {}),
    };
    if (tlsSecrets && tlsSecrets !== prev.tls?.secrets) this.secretCerts?.setConfigured(tlsSecrets);
    const conventions = this.conventionsFor({ ...prev, defaults: next.defaults });
    if (JSON.stringify(conventions) !== JSON.stringify(this.conventions)) {
      this.conventions = conventions;
      this.sources.set('config', { projects: next.projects, problems: [] });
      this.rebuildAll();
    } else this.setSource('config', next.projects, []);
    this.log('info', 'config reloaded', {
      file: path,
      version: this.current.version,
      projects: this.current.projects.size,
    });
    return true;
  }

  private watchConfig(path: string): void {
    try {
      this.configHash = createHash('sha256').update(readFileSync(path, 'utf8')).digest('hex');
    } catch {}
    // Watch the directory, not the file: editors and Kubernetes ConfigMaps replace files by rename.
    const name = basename(path);
    try {
      this.watcher = watch(dirname(path), (_event, file) => {
        if (file && file !== name && file !== '..data') return;
        clearTimeout(this.reloadTimer);
        this.reloadTimer = setTimeout(() => this.reload(), 100);
      });
      this.watcher.on('error', (err) =>
        this.log('warn', 'config watch failed; SIGHUP still reloads', { reason: err.message }),
      );
    } catch (err) {
      this.log('warn', 'cannot watch config file; SIGHUP still reloads', { reason: (err as Error).message });
    }
  }

  /** Graceful stop: stop accepting, finish in-flight requests up to the drain timeout, close pools. */
  stop(drainMs = this.config.timeouts.drainMs): Promise<void> {
    this.stopping ??= (async () => {
      this.watcher?.close();
      clearTimeout(this.reloadTimer);
      this.certificates?.close();
      this.limits.close();
      this.redirect?.close();
      this.redirect?.closeAllConnections();
      this.log('info', 'draining', { drainMs });
      await this.front.drain(drainMs);
      await this.kubernetes?.stop();
      this.secretCerts?.close();
      await this.secretWatcher?.stop();
      this.forwarder.close();
      this.health.close();
      await this.admin.close();
      await this.pools.destroy();
      this.log('info', 'stopped');
    })();
    return this.stopping;
  }
}

export interface ObservedOptions
  extends Omit<WharfOptions, 'log' | 'onAccess' | 'onEvent' | 'onAttempt' | 'onProbe'> {
  /** Overrides of the config's `logs:` section (the demo writes to its own directory). */
  readonly logs?: Partial<LogOptions>;
}

/**
 * Wharf with its observability attached: logs, metrics, the event stream and the dashboard, all fed
 * by the typed events and per-request records that flow out of the data plane. `serve` and `demo`
 * both start through here.
 */
export async function startObserved(opts: ObservedOptions): Promise<{ wharf: Wharf; obs: Observe }> {
  const c = opts.config;
  const sources = new SourceStates();
  let wharf: Wharf | undefined;
  const obs = createObserve({
    logs: {
      dir: c.logs.dir,
      access: c.logs.access,
      health: c.logs.health,
      probeFailures: c.logs.probeFailures,
      bufferBytes: c.logs.bufferBytes,
      level: c.logs.level,
      ...opts.logs,
    },
    metrics: { defaultMetrics: true },
    sse: {
      token: c.adminToken,
      replay: () =>
        wharf
          ? dashboardState({
              table: wharf.table(),
              health: wharf.health,
              domain: c.domain,
              sources: sources.values(),
            })
          : { projects: [], problems: [] },
    },
  });
  obs.bus.on((e) => sources.observe(e));
  try {
    wharf = await Wharf.start({
      ...opts,
      log: obs.logs.app,
      onAccess: obs.access,
      onEvent: (e) => obs.bus.emit(e),
      onAttempt: (project, port, outcome, retry) => {
        obs.metrics.attempt(project, port, outcome);
        if (retry) obs.metrics.retry(project, port);
      },
      onProbe: (e, ok, latencyMs) => obs.metrics.probe(e.project, e.port, latencyMs / 1000, ok),
      adminRoutes: [
        (req, res) => serveDashboard(req, res),
        ...observeRoutes(obs),
        ...(opts.adminRoutes ?? []),
      ],
    });
  } catch (err) {
    await obs.close();
    throw err;
  }
  return { wharf, obs };
}
