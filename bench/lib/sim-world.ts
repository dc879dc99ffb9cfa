// One simulated Wharf replica for the health-check simulation: the real HealthService (in-process
// prober, so the real scheduler, loops and state machines) over a simulated cluster of endpoints,
// a simulated data plane (busy instances answer requests; dead, hung and unreachable ones fail them
// the way the proxy reports it), and failures injected at chosen times.

import { HealthService } from '../../src/health/service.ts';
import type { HealthTransitionEvent } from '../../src/model/events.ts';
import type { Endpoint, PortRoute, ProjectRoute, RouteTable } from '../../src/model/routes.ts';
import type { ProjectSettings } from '../../src/model/settings.ts';
import { DEFAULT_SETTINGS } from '../../src/routing/settings.ts';
import { type Condition, SimProber } from './sim-prober.ts';
import { SimTime } from './sim-time.ts';

export interface WorldOptions {
  readonly endpoints: number;
  readonly perProject: number;
  readonly perNode: number;
  /** Share of endpoints answering requests (at least every 250 ms). */
  readonly busyShare: number;
  /** 0: every instance probed every interval (today's design). */
  readonly idleIntervalMs: number;
  /** true: TCP checks; false: HTTP GET. */
  readonly tcp: boolean;
  readonly serverKeepAliveMs: number;
  readonly seed: number;
}

/** The proxy's timings that feed health (src/proxy/forward.ts, config defaults). */
const SUSPECT_AFTER_MS = 250;
const CONNECT_TIMEOUT_MS = 2000;
/** How often the simulated data plane reports outcomes for busy instances. */
const TRAFFIC_TICK_MS = 250;

/** A small deterministic generator (mulberry32), so runs repeat. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface SimEndpoint {
  readonly e: Endpoint;
  readonly busy: boolean;
  condition: Condition;
  /** When the condition began (sim epoch ms). */
  since: number;
  /** A failure injected here, and when it was detected. */
  injected: string | undefined;
  detectedAfter: number | undefined;
}

export class World {
  readonly time = new SimTime();
  readonly prober: SimProber;
  readonly svc: HealthService;
  readonly endpoints: SimEndpoint[] = [];
  private readonly byId = new Map<string, SimEndpoint>();
  readonly byNode = new Map<string, SimEndpoint[]>();
  /** Ejections of endpoints nothing was injected into. */
  falseEjections = 0;
  transitions = 0;
  readonly random: () => number;

  constructor(readonly opts: WorldOptions) {
    this.random = seeded(opts.seed);
    this.prober = new SimProber(this.time, {
      latencyMs: 1,
      slowShare: 0.002,
      slowMs: 400,
      serverKeepAliveMs: opts.serverKeepAliveMs,
      random: this.random,
    });
    this.svc = new HealthService({
      clock: this.time,
      timers: this.time,
      prober: this.prober,
      random: this.random,
      idleIntervalMs: opts.idleIntervalMs,
      thread: false,
      emit: (ev) => this.onTransition(ev),
    });
    this.svc.reconcile(this.build());
  }

  private build(): RouteTable {
    const { endpoints, perProject, perNode, busyShare, tcp } = this.opts;
    const settings: ProjectSettings = {
      ...DEFAULT_SETTINGS,
      health: { ...DEFAULT_SETTINGS.health, path: tcp ? null : '/healthz' },
    };
    const projects = new Map<string, ProjectRoute>();
    for (let p = 0; p * perProject < endpoints; p++) {
      const list: Endpoint[] = [];
      for (let k = 0; k < perProject && p * perProject + k < endpoints; k++) {
        const i = p * perProject + k;
        const address = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:8080`;
        const e: Endpoint = {
          id: `p${p}/http/i${k}@${address}`,
          project: `p${p}`,
          port: 'http',
          instance: `i${k}`,
          host: address.slice(0, -5),
          portNumber: 8080,
          address,
          draining: false,
          token: `t${i}`,
          probeAddress: address,
          // Pods of a project spread over nodes, as the scheduler's anti-affinity does.
          node: `node-${Math.floor(((i * 7919) % endpoints) / perNode)}`,
        };
        list.push(e);
        const sim: SimEndpoint = {
          e,
          busy: this.random() < busyShare,
          condition: 'up',
          since: 0,
          injected: undefined,
          detectedAfter: undefined,
        };
        this.endpoints.push(sim);
        this.byId.set(e.id, sim);
        const n = this.byNode.get(e.node!);
        if (n) n.push(sim);
        else this.byNode.set(e.node!, [sim]);
      }
      const route: PortRoute = {
        project: `p${p}`,
        port: 'http',
        endpoints: list,
        byInstance: new Map(list.map((e) => [e.instance, e])),
        settings,
        protocol: 'http1',
      };
      projects.set(`p${p}`, {
        name: `p${p}`,
        origin: 'config',
        defaultPort: 'http',
        ports: new Map([['http', route]]),
        settings,
      });
    }
    return { version: 1, projects };
  }

  private onTransition(ev: HealthTransitionEvent): void {
    this.transitions++;
    if (ev.to !== 'unhealthy') return;
    const id = `${ev.project}/${ev.port}/${ev.instance}@${ev.address}`;
    const sim = this.byId.get(id);
    if (!sim) return;
    if (sim.injected === undefined) this.falseEjections++;
    else if (sim.detectedAfter === undefined) sim.detectedAfter = this.time.now() - sim.since;
  }

  /** Puts an instance into a condition now (a failure to detect). */
  inject(sim: SimEndpoint, condition: Condition, label: string): void {
    sim.condition = condition;
    sim.since = this.time.now();
    sim.injected = label;
    this.prober.condition.set(sim.e.probeAddress, condition);
  }

  /** Runs the simulation for `ms`, with the data plane's outcomes every TRAFFIC_TICK_MS. */
  run(ms: number): void {
    const end = this.time.now() + ms;
    while (this.time.now() < end) {
      const next = Math.min(end, this.time.now() + TRAFFIC_TICK_MS);
      this.time.runUntil(next);
      this.traffic();
    }
  }

  /** What the proxy reports for busy instances it still sends requests to. */
  private traffic(): void {
    const now = this.time.now();
    const svc = this.svc;
    for (const sim of this.endpoints) {
      if (!sim.busy) continue;
      const id = sim.e.id;
      if (svc.state(id) === 'unhealthy') continue;
      switch (sim.condition) {
        case 'up':
          svc.report({ endpoint: id, status: 200, durationMs: 5 });
          break;
        case 'dead':
          svc.report({ endpoint: id, error: 'connect-refused', durationMs: 0 });
          break;
        case 'hung':
          if (now - sim.since >= SUSPECT_AFTER_MS) svc.suspect(id);
          break;
        case 'blackhole':
          if (now - sim.since >= CONNECT_TIMEOUT_MS)
            svc.report({ endpoint: id, error: 'connect-timeout', durationMs: CONNECT_TIMEOUT_MS });
          break;
      }
    }
  }

  close(): void {
    this.svc.close();
  }
}
