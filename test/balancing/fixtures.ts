// Builders for routes and health views in balancing tests. Endpoints mirror what routing builds.

import type { HealthState, HealthStatus, HealthView } from '../../src/model/health.ts';
import type { Endpoint, EndpointId, PortRoute } from '../../src/model/routes.ts';
import type { Affinity, BalancerKind, ProjectSettings } from '../../src/model/settings.ts';
import { DEFAULT_SETTINGS } from '../../src/routing/settings.ts';

export interface EpSpec {
  readonly name: string;
  readonly draining?: boolean;
  readonly token?: string;
}

export function endpoint(project: string, port: string, spec: EpSpec, i: number): Endpoint {
  const address = `10.0.${Math.floor(i / 250)}.${(i % 250) + 1}:8080`;
  return Object.freeze({
    id: `${project}/${port}/${spec.name}@${address}`,
    project,
    port,
    instance: spec.name,
    host: address.split(':')[0],
    portNumber: 8080,
    address,
    draining: spec.draining ?? false,
    token: spec.token ?? `tok-${spec.name}`,
    probeAddress: address,
  });
}

export function route(
  specs: readonly (EpSpec | string)[],
  opts: { balancer?: BalancerKind; affinity?: Affinity; project?: string; port?: string } = {},
): PortRoute {
  const project = opts.project ?? 'shop';
  const port = opts.port ?? 'http';
  const eps = specs
    .map((s) => (typeof s === 'string' ? { name: s } : s))
    .map((s, i) => endpoint(project, port, s, i))
    .sort((a, b) => (a.instance < b.instance ? -1 : a.instance > b.instance ? 1 : 0));
  const settings: ProjectSettings = {
    ...DEFAULT_SETTINGS,
    balancer: opts.balancer ?? 'p2c',
    affinity: opts.affinity ?? { kind: 'none' },
  };
  return Object.freeze({
    project,
    port,
    endpoints: Object.freeze(eps),
    byInstance: new Map(eps.map((e) => [e.instance, e])),
    settings,
    protocol: 'http1',
  });
}

/** A health view from a map of instance name -> state (default healthy). */
export class FakeHealth implements HealthView {
  readonly states = new Map<EndpointId, HealthState>();
  readonly reasons = new Map<EndpointId, string>();
  constructor(r?: PortRoute, byName: Record<string, HealthState> = {}) {
    if (r) for (const e of r.endpoints) this.states.set(e.id, byName[e.instance] ?? 'healthy');
  }
  set(id: EndpointId, s: HealthState, reason = ''): void {
    this.states.set(id, s);
    this.reasons.set(id, reason);
  }
  state(id: EndpointId): HealthState {
    return this.states.get(id) ?? 'pending';
  }
  status(id: EndpointId): HealthStatus | undefined {
    const state = this.states.get(id);
    if (!state) return undefined;
    return { state, reason: this.reasons.get(id) ?? '', ejected: false, since: 0 };
  }
}

/** The same, with the change counter HealthService has: the picker caches eligible sets on it. */
export class VersionedHealth extends FakeHealth {
  version = 0;
  override set(id: EndpointId, s: HealthState, reason = ''): void {
    super.set(id, s, reason);
    this.version++;
  }
}

/** Deterministic PRNG (mulberry32) so failures reproduce. */
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

export const zero = (): number => 0;
