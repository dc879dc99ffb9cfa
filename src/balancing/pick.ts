// Picks the endpoint for one request attempt. Pure and synchronous: reads the route, the health view
// and the proxy's in-flight counts; writes nothing but tiny per-route memo state (round-robin
// counters, token maps), kept in WeakMaps so a retired route takes its state with it.

import type { HealthState, HealthView } from '../model/health.ts';
import type { Endpoint, EndpointId, PortRoute } from '../model/routes.ts';
import { hashString, pairScore } from './hash.ts';

export interface PickInput {
  readonly route: PortRoute;
  readonly health: HealthView;
  /** Outstanding requests per endpoint (the proxy keeps the counts). */
  readonly inflight: (id: EndpointId) => number;
  /** Endpoints already tried by this request (retries). */
  readonly exclude?: ReadonlySet<EndpointId>;
  /** Value of the affinity cookie, if any. */
  readonly stickyToken?: string;
  /** Header value or client IP for `header:<name>` / `ip` affinity. */
  readonly hashKey?: string;
  readonly random?: () => number;
}

export interface PickResult {
  readonly endpoint: Endpoint;
  /** Cookie affinity only: the response must set (or replace) the affinity cookie with `endpoint.token`. */
  readonly issueCookie: boolean;
}

/**
 * Candidate tiers, best first. A tier is used only when every better tier is empty:
 *  0. healthy, not draining: the normal case.
 *  1. pending, not draining: a fresh table (or a fresh process) before the first probes answer must
 *     not turn into a burst of 503s.
 *  2. healthy but draining: the last serving instances of a rolling update. Kubernetes does the
 *     same (KEP-1669: serving-terminating endpoints are used when nothing is ready), because
 *     answering from a terminating pod beats a 503 while its replacement starts.
 * Unhealthy endpoints are never candidates.
 */
const TIERS = 3;

function tierOf(state: HealthState, draining: boolean): number {
  if (state === 'healthy') return draining ? 2 : 0;
  if (state === 'pending' && !draining) return 1;
  return -1;
}

// One scratch array reused by uncached picks: the event loop runs one pick at a time, and this keeps
// the hot path free of per-request allocations. Nothing keeps a reference to it past a pick, and the
// callbacks a pick makes (health.state, inflight) must not pick in turn.
const scratch: Endpoint[] = [];

function scan(
  route: PortRoute,
  health: HealthView,
  exclude: ReadonlySet<EndpointId> | undefined,
  out: Endpoint[],
): void {
  const eps = route.endpoints;
  let best = TIERS;
  let n = 0;
  for (let i = 0; i < eps.length; i++) {
    const e = eps[i];
    if (exclude?.has(e.id)) continue;
    const t = tierOf(health.state(e.id), e.draining);
    if (t < 0 || t > best) continue;
    if (t < best) {
      best = t;
      n = 0;
    }
    out[n++] = e;
  }
  out.length = n;
}

/**
 * The best tier of a route per health version. A view that exposes `version` (HealthService does)
 * promises that no state changes without it changing, so a first attempt (no exclusions) costs
 * O(1) instead of one state lookup per endpoint: 28 us per pick at 500 instances before this.
 */
interface Tier0 {
  readonly health: HealthView;
  readonly version: number;
  readonly list: Endpoint[];
  /** Rendezvous seeds parallel to `list`, filled on first use. */
  seeds: Uint32Array | undefined;
}

const tierCache = new WeakMap<PortRoute, Tier0>();

/** The best non-empty tier (empty: nothing eligible), cached when possible. Valid until the next pick. */
function candidates(input: PickInput): Tier0 | Endpoint[] {
  const { route, health, exclude } = input;
  const version = health.version;
  if (version === undefined || (exclude !== undefined && exclude.size > 0)) {
    scan(route, health, exclude, scratch);
    return scratch;
  }
  let c = tierCache.get(route);
  if (!c || c.version !== version || c.health !== health) {
    c = { health, version, list: [], seeds: undefined };
    scan(route, health, undefined, c.list);
    tierCache.set(route, c);
  }
  return c;
}

// ---- balancers -------------------------------------------------------------------------------

/** Power of two choices on outstanding requests, random tie-break. */
function pickP2C(
  list: readonly Endpoint[],
  inflight: (id: EndpointId) => number,
  random: () => number,
): Endpoint {
  const n = list.length;
  if (n === 1) return list[0];
  const i = Math.floor(random() * n) % n;
  let j = Math.floor(random() * (n - 1)) % (n - 1);
  if (j >= i) j++;
  const a = list[i];
  const b = list[j];
  const la = inflight(a.id);
  const lb = inflight(b.id);
  if (la !== lb) return la < lb ? a : b;
  return random() < 0.5 ? a : b;
}

const rrCounters = new WeakMap<PortRoute, { n: number }>();

function pickRoundRobin(route: PortRoute, list: readonly Endpoint[]): Endpoint {
  let c = rrCounters.get(route);
  if (!c) {
    c = { n: 0 };
    rrCounters.set(route, c);
  }
  const e = list[c.n % list.length];
  // Wrap well before 2^53 so the modulo stays exact forever.
  c.n = c.n >= 0x3fffffff ? 0 : c.n + 1;
  return e;
}

// ---- consistent hashing ------------------------------------------------------------------------

/**
 * Rendezvous (highest-random-weight) hashing: every candidate scores hash(key, candidate) and the
 * highest wins. Chosen over Maglev and bounded-load rings because it gives both required properties
 * exactly rather than approximately:
 *  - agreement: the result depends only on the key and the candidates' tokens, so two replicas with
 *    the same healthy set agree on 100% of keys (a bounded-load ring cannot promise this: its loads
 *    are per process);
 *  - minimal movement: removing a candidate moves exactly the keys it owned (1/N of them) and no
 *    other key; Maglev moves a few more, a ring needs many virtual nodes to get close.
 * It needs no table, so nothing is rebuilt when health flips. The cost is O(N) cheap integer
 * hashes per request, a few microseconds even for hundreds of instances. Retries fall through to the
 * next-highest score, which is again the same on every replica.
 */
const seeds = new WeakMap<Endpoint, number>();

function seedOf(e: Endpoint): number {
  let s = seeds.get(e);
  if (s === undefined) {
    // The token is stable for (instance, port) on every replica; it is what the cookie carries too.
    s = hashString(e.token);
    seeds.set(e, s);
  }
  return s;
}

function seedsOf(list: readonly Endpoint[]): Uint32Array {
  const seeds = new Uint32Array(list.length);
  for (let i = 0; i < list.length; i++) seeds[i] = seedOf(list[i]);
  return seeds;
}

function pickRendezvous(list: readonly Endpoint[], key: string, seeds?: Uint32Array): Endpoint {
  const k = hashString(key);
  let best = list[0];
  let bestScore = pairScore(k, seeds ? seeds[0] : seedOf(best));
  for (let i = 1; i < list.length; i++) {
    const e = list[i];
    const s = pairScore(k, seeds ? seeds[i] : seedOf(e));
    // Ties (1 in 2^32) go to the lower token so replicas still agree.
    if (s > bestScore || (s === bestScore && e.token < best.token)) {
      best = e;
      bestScore = s;
    }
  }
  return best;
}

/** Exposed for the property tests and the admin API ("where would this key go?"). */
export function rendezvousPick(candidates: readonly Endpoint[], key: string): Endpoint | undefined {
  return candidates.length === 0 ? undefined : pickRendezvous(candidates, key);
}

// ---- cookie affinity ---------------------------------------------------------------------------

const tokenMaps = new WeakMap<PortRoute, ReadonlyMap<string, Endpoint>>();

function byToken(route: PortRoute, token: string): Endpoint | undefined {
  let m = tokenMaps.get(route);
  if (!m) {
    m = new Map(route.endpoints.map((e) => [e.token, e]));
    tokenMaps.set(route, m);
  }
  return m.get(token);
}

/** A sticky request keeps its instance while that instance may serve, draining included. */
function stickyTarget(input: PickInput): Endpoint | undefined {
  const token = input.stickyToken;
  if (!token) return undefined;
  const e = byToken(input.route, token);
  if (!e || input.exclude?.has(e.id)) return undefined;
  // Pending counts as usable: a freshly started replica must not reshuffle every session in the
  // few milliseconds before its first probes answer.
  const s = input.health.state(e.id);
  return s === 'healthy' || s === 'pending' ? e : undefined;
}

// ---- entry points ------------------------------------------------------------------------------

/** The endpoint for this attempt, or undefined when nothing is eligible (answer 503 at once). */
export function pickEndpoint(input: PickInput): PickResult | undefined {
  const { route } = input;
  const affinity = route.settings.affinity;
  const cookie = affinity.kind === 'cookie';
  if (cookie) {
    const sticky = stickyTarget(input);
    if (sticky) return { endpoint: sticky, issueCookie: false };
  }
  const c = candidates(input);
  const cached = Array.isArray(c) ? undefined : c;
  const list = cached ? cached.list : (c as Endpoint[]);
  if (list.length === 0) return undefined;
  let endpoint: Endpoint;
  if ((affinity.kind === 'header' || affinity.kind === 'ip') && input.hashKey !== undefined) {
    if (cached) cached.seeds ??= seedsOf(list);
    endpoint = pickRendezvous(list, input.hashKey, cached?.seeds);
  } else if (route.settings.balancer === 'round-robin') {
    endpoint = pickRoundRobin(route, list);
  } else {
    endpoint = pickP2C(list, input.inflight, input.random ?? Math.random);
  }
  return { endpoint, issueCookie: cookie };
}

const MAX_LISTED = 5;

/**
 * Reason text for the 503 body when pickEndpoint returned undefined: `no instances`,
 * `all 3 instances unhealthy: shop-0 (probe: timeout after 1000ms), ...`, or a mixed list.
 */
export function describeNoEndpoint(input: Pick<PickInput, 'route' | 'health' | 'exclude'>): string {
  const { route, health, exclude } = input;
  const eps = route.endpoints;
  if (eps.length === 0) return 'no instances';
  const parts: string[] = [];
  let unhealthy = 0;
  for (const e of eps) {
    const st = health.status(e.id);
    if (exclude?.has(e.id)) parts.push(`${e.instance} (already tried)`);
    else if ((st?.state ?? health.state(e.id)) === 'unhealthy') {
      unhealthy++;
      parts.push(`${e.instance} (${st?.reason || 'unhealthy'})`);
    } else if (e.draining) parts.push(`${e.instance} (draining)`);
    else parts.push(`${e.instance} (${st?.state ?? health.state(e.id)})`);
  }
  const listed =
    parts.length > MAX_LISTED
      ? `${parts.slice(0, MAX_LISTED).join(', ')}, and ${parts.length - MAX_LISTED} more`
      : parts.join(', ');
  const count = `${eps.length} instance${eps.length === 1 ? '' : 's'}`;
  if (unhealthy === eps.length)
    return `${eps.length === 1 ? 'the only instance is' : `all ${count}`} unhealthy: ${listed}`;
  return `no eligible instance among ${count}: ${listed}`;
}

export type PinResult = { readonly endpoint: Endpoint } | { readonly reason: string };

/**
 * Strict pinning (`<instance>.<port>.<project>.D`, `x-wharf-instance`): the named instance or a
 * reason, never another instance. Draining instances still take pinned requests while they serve;
 * pending ones are tried (their first probe is in flight).
 */
export function pinEndpoint(route: PortRoute, instance: string, health: HealthView): PinResult {
  const e = route.byInstance.get(instance);
  if (!e) return { reason: `instance "${instance}" not found in ${route.project}/${route.port}` };
  const st = health.status(e.id);
  const state = st?.state ?? health.state(e.id);
  if (state === 'unhealthy') {
    return { reason: `instance "${instance}" is unhealthy: ${st?.reason || 'failed health checks'}` };
  }
  return { endpoint: e };
}
