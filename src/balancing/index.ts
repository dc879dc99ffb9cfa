// INTERIM: replaced by the balancing helper's implementation (branch `health`).
import type { HealthView } from '../model/health.ts';
import type { Endpoint, EndpointId, PortRoute } from '../model/routes.ts';

export interface PickInput {
  readonly route: PortRoute;
  readonly health: HealthView;
  readonly inflight: (id: EndpointId) => number;
  readonly exclude?: ReadonlySet<EndpointId>;
  readonly stickyToken?: string;
  readonly hashKey?: string;
  readonly random?: () => number;
}
export interface PickResult {
  readonly endpoint: Endpoint;
  readonly issueCookie: boolean;
}

export function pickEndpoint(input: PickInput): PickResult | undefined {
  const { route, health, exclude } = input;
  let eligible = route.endpoints.filter(
    (e) => !e.draining && !exclude?.has(e.id) && health.state(e.id) === 'healthy',
  );
  if (eligible.length === 0)
    eligible = route.endpoints.filter(
      (e) => !e.draining && !exclude?.has(e.id) && health.state(e.id) === 'pending',
    );
  if (eligible.length === 0) return undefined;
  const rnd = input.random ?? Math.random;
  const a = eligible[Math.floor(rnd() * eligible.length)];
  const b = eligible[Math.floor(rnd() * eligible.length)];
  return { endpoint: input.inflight(a.id) <= input.inflight(b.id) ? a : b, issueCookie: false };
}

export function describeNoEndpoint(input: PickInput): string {
  const n = input.route.endpoints.length;
  if (n === 0) return 'no instances';
  return `none of ${n} instance(s) is available`;
}

export function affinityCookieName(tier: 'internal' | 'edge'): string {
  return tier === 'edge' ? 'wharf_e' : 'wharf_i';
}

export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export function affinityCookieHeader(name: string, token: string, secure: boolean): string {
  return `${name}=${token}; Path=/; HttpOnly; SameSite=Lax${secure ? '; Secure' : ''}`;
}
