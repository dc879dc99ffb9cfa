// Composition root: builds each part, connects the one-way flow of DESIGN.md §5 (docs/architecture.md)
// and starts/stops them in order. Nothing but this file (and observed.ts on top of it) wires parts.

import { networkInterfaces } from 'node:os';
import { type AdminRoute, AdminServer } from './admin/server.ts';
import type { Config, Overrides } from './config/load.ts';
import { Certificates } from './control/certificates.ts';
import { ConfigFile } from './control/config-file.ts';
import { ControlPlane } from './control/plane.ts';
import { type BoundPorts, conventionsOf, type ReloadPlan, tlsSecretsLive } from './control/reload.ts';
import { resolveTargets } from './discovery/credentials.ts';
import { KubernetesSource, type KubernetesTuning } from './discovery/source.ts';
import { HealthService, type HealthServiceOptions, type Prober } from './health/index.ts';
import type { AccessRecord } from './model/access.ts';
import type { WharfEvent } from './model/events.ts';
import type { Problem } from './model/problem.ts';
import type { RouteTable } from './model/routes.ts';
import type { Readiness } from './model/source.ts';
import { Forwarder, type ForwarderOptions } from './proxy/forward.ts';
import { ClientLimits } from './proxy/limits.ts';
import { RetryBudget } from './proxy/retry-budget.ts';
import { FrontServer } from './proxy/server.ts';
import { UpstreamPools } from './proxy/upstreams.ts';
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
  /** Per probe result (metrics, `probe` events). */
  readonly onProbe?: HealthServiceOptions['onProbe'];
  readonly adminRoutes?: readonly AdminRoute[];
  /** Replaces the network prober of active health checks (benchmarks with synthetic endpoints). */
  readonly healthProber?: Prober;
  /** Kubernetes discovery tuning (tests). */
  readonly discovery?: KubernetesTuning;
}

export class Wharf {
  private config: Config;
  readonly control: ControlPlane;
  readonly health: HealthService;
  readonly pools: UpstreamPools;
  readonly forwarder: Forwarder;
  readonly front: FrontServer;
  readonly admin: AdminServer;
  readonly limits: ClientLimits;
  /** Certificate files and, on an edge with discovery, Secrets: what the TLS listener serves. */
  readonly tls?: Certificates;
  /** Kubernetes discovery, when configured. */
  kubernetes?: KubernetesSource;
  private configFile?: ConfigFile;
  private stopping?: Promise<void>;
  private readonly log: Log;
  frontAddress = { host: '', port: 0 };
  adminAddress = { host: '', port: 0 };

  private constructor(opts: WharfOptions) {
    const c = opts.config;
    const log = opts.log ?? stderrLog;
    const clock = opts.clock ?? systemClock;
    const emit = opts.onEvent; // none: no event is even built
    this.config = c;
    this.log = log;
    this.control = new ControlPlane({ conventions: conventionsOf(c, this.bound()), clock, emit });
    const health = {
      domain: c.domain,
      maxInFlight: c.health.concurrency,
      idleIntervalMs: c.health.idleIntervalMs,
      prober: opts.healthProber,
    };
    this.health = new HealthService({ ...health, emit, log, onProbe: opts.onProbe });
    const trustedProxy = cidrMatcher(c.trustedProxies);
    const { connectMs: connectTimeoutMs, upstreamIdleMs: idleTimeoutMs } = c.timeouts;
    this.pools = new UpstreamPools({ connections: c.upstream.connections, connectTimeoutMs, idleTimeoutMs });
    if (c.tls) this.tls = new Certificates(c.tls, { clock, log, problems: this.control.problems });
    this.limits = new ClientLimits(c.limits.clientConnections, c.limits.clientRate, clock);
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
      table: () => this.control.table(),
      health: this.health,
      pools: this.pools,
      budget: new RetryBudget(c.upstream.retryBudget, c.upstream.retryBudgetMin, clock),
      clock,
      // In-cluster clients of the internal tier are trusted; the edge believes only listed proxies.
      trusted: c.tier === 'internal' ? () => true : trustedProxy,
      onAccess: opts.onAccess,
      onAttempt: opts.onAttempt,
      log,
    });
    this.health.onEjected((id) => this.forwarder.rescue(id));
    this.front = new FrontServer(this.forwarder, {
      maxHeaderBytes: c.limits.maxHeaderBytes,
      maxHeaders: c.limits.maxHeaders,
      requestHeadersMs: c.timeouts.requestHeadersMs,
      clientIdleMs: c.timeouts.clientIdleMs,
      limits: this.limits,
      tls: this.tls?.server,
      proxyProtocol: c.proxyProtocol
        ? {
            trusted: trustedProxy,
            timeoutMs: c.timeouts.requestHeadersMs,
            onRejected: (peer, reason, alsoRefused) =>
              log('warn', 'PROXY protocol header refused; connection closed', { peer, reason, alsoRefused }),
          }
        : undefined,
    });
    this.admin = new AdminServer({
      token: c.adminToken,
      hosts: c.adminHosts,
      view: this,
      routes: opts.adminRoutes,
    });
    // What keeps state per endpoint follows every swap (observe's `routes` event comes from control).
    this.control.onSwap((s) => this.pools.reconcile(s));
    this.control.onSwap((s) => this.health.reconcile(s.next, s.changed));
    this.control.onSwap((s) => this.tls?.swapped(s));
    this.control.set('config', c.projects);
  }

  static async start(opts: WharfOptions): Promise<Wharf> {
    const w = new Wharf(opts);
    const c = w.config;
    const k = c.kubernetes;
    // Credentials first: a bad kubeconfig fails the start before anything listens.
    const servers = k && (opts.discovery?.servers ?? (await resolveTargets({ ...k, context: k.contexts })));
    try {
      w.frontAddress = await w.front.listen(c.listen.host, c.listen.port);
      // Behind a PROXY-protocol balancer the redirect port gets the header too.
      await w.tls?.start(w.frontAddress.port, w.front.proxyProtocol);
      w.adminAddress = await w.admin.listen(c.admin.host, c.admin.port);
    } catch (err) {
      await w.stop(0); // nothing starts half-way: a listener that could not bind stops the others
      throw err;
    }
    const log = w.log;
    const now = () => (opts.clock ?? systemClock).now();
    // The bound ports are known now (a configured port 0 was not): refuse endpoints at them.
    w.control.setConventions(conventionsOf(c, w.bound()));
    if (opts.configPath) {
      const o = {
        overrides: opts.overrides,
        log,
        current: () => w.config,
        apply: (p: ReloadPlan) => w.apply(p),
      };
      w.configFile = new ConfigFile(opts.configPath, o).watch();
    }
    if (k && servers) {
      const { servers: _, ...tuning } = opts.discovery ?? {};
      w.kubernetes = w.control.add(
        new KubernetesSource({
          servers,
          namespaces: k.namespaces,
          log,
          silenceMs: k.watchdogMs,
          onIncident: (i) => opts.onEvent?.({ type: 'discovery', time: now(), source: 'kubernetes', ...i }),
          ...tuning,
        }),
      );
      // Only an edge with TLS reads Secrets; the internal tier never does (and has no RBAC for them).
      if (tlsSecretsLive(c))
        w.tls?.watchSecrets(servers, c.domain, w.table(), { silenceMs: k.watchdogMs, ...tuning });
      const namespaces = k.namespaces.length ? k.namespaces : 'all';
      log('info', 'kubernetes discovery started', { apiservers: servers.map((s) => s.url), namespaces });
    }
    w.control.start();
    const [front, admin] = [w.frontAddress, w.adminAddress].map((a) => `${a.host}:${a.port}`);
    const projects = w.table().projects.size;
    log('info', 'wharf started', { listen: front, admin, domain: c.domain, tier: c.tier, projects });
    return w;
  }

  /** The ports Wharf's listeners are bound to (0 until they are): discovery may not route to them. */
  private bound(): BoundPorts {
    const redirect = (this.tls?.redirect?.address() as { port?: number } | null)?.port ?? 0;
    const localHosts = Object.values(networkInterfaces()).flatMap((l) => (l ?? []).map((a) => a.address));
    return { proxy: this.frontAddress.port, admin: this.adminAddress.port, redirect, localHosts };
  }

  /** The current route table (swapped whole by the control plane). */
  readonly table = (): RouteTable => this.control.table();
  /** Every owner's Problems: sources, name conflicts, routing, certificates. */
  readonly problems = (): readonly Problem[] => this.control.problems.list();

  readiness(): Readiness {
    return this.control.readiness(this.stopping !== undefined, this.tls?.gates);
  }

  /** Re-reads the config file; a bad file is rejected with a logged reason and the old config keeps serving. */
  reload(): boolean {
    return this.configFile?.reload() ?? false;
  }

  private apply(plan: ReloadPlan): void {
    this.config = plan.config;
    if (plan.live.includes('tls.secrets')) this.tls?.setConfigured(plan.config.tls?.secrets ?? []);
    this.control.setConventions(conventionsOf(plan.config, this.bound()));
    this.control.set('config', plan.config.projects);
  }

  /** Graceful stop: stop accepting, finish in-flight requests up to the drain timeout, close pools. */
  stop(drainMs = this.config.timeouts.drainMs): Promise<void> {
    this.stopping ??= (async () => {
      this.configFile?.close();
      this.tls?.close();
      this.limits.close();
      this.log('info', 'draining', { drainMs });
      await this.front.drain(drainMs);
      await this.control.stop();
      await this.tls?.stop();
      this.forwarder.close();
      this.health.close();
      await this.admin.close();
      await this.pools.destroy();
      this.log('info', 'stopped');
    })();
    return this.stopping;
  }
}
