// A config reload as a pure function: the running config and the new file's -> what applies live
// and which changed fields need a restart. Every top-level field of Config is classified in
// HOW_FIELDS (the compiler checks none is missing), so a new config field must say how it reloads.

import type { Config } from '../config/load.ts';
import type { AddressPolicy } from '../routing/addresses.ts';
import type { Conventions } from '../routing/build.ts';

type Field = keyof Config;
/** The top-level fields that apply live; planReload builds the running config from them. */
type LiveField = 'defaults' | 'projects';

/**
 * `live`: applied at once (new conventions rebuild the table; new projects are a source update).
 * `restart`: listeners, pools, limits, timers and the like are built once at start; a change is
 * logged as needing a restart and not applied.
 */
const HOW_FIELDS: { readonly [K in Field]-?: K extends LiveField ? 'live' : 'restart' } = {
  listen: 'restart',
  admin: 'restart',
  adminToken: 'restart',
  adminHosts: 'restart',
  domain: 'restart',
  tier: 'restart',
  instanceHeader: 'restart',
  defaults: 'live',
  timeouts: 'restart',
  limits: 'restart',
  trustedProxies: 'restart',
  proxyProtocol: 'restart',
  // `tls.secrets` apply live where Secrets are watched (see tlsSecretsLive); the rest needs a restart.
  tls: 'restart',
  forwardTo: 'restart',
  logs: 'restart',
  health: 'restart',
  upstream: 'restart',
  projects: 'live',
  kubernetes: 'restart',
};

const isLive = (f: Field): f is LiveField => HOW_FIELDS[f] === 'live';

export type LiveChange = LiveField | 'tls.secrets';

export interface ReloadPlan {
  /** The config to run with from now on: the running one with the live changes applied. */
  readonly config: Config;
  /** What changed and applies live. */
  readonly live: readonly LiveChange[];
  /** Fields that changed but need a restart: logged, not applied. */
  readonly restart: readonly Field[];
}

/** An edge with TLS and Kubernetes discovery watches the Secrets of `tls.secrets`: those follow a reload. */
export function tlsSecretsLive(c: Config): boolean {
  return c.tier === 'edge' && c.tls !== undefined && c.kubernetes !== undefined;
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

export function planReload(prev: Config, next: Config): ReloadPlan {
  const live: LiveChange[] = [];
  const restart: Field[] = [];
  for (const field of Object.keys(HOW_FIELDS) as Field[]) {
    if (field === 'tls' || same(prev[field], next[field])) continue;
    if (isLive(field)) live.push(field);
    else restart.push(field);
  }
  // tls: its Secrets live (when watched), everything else needs a restart.
  let tls = prev.tls;
  const rest = (t: Config['tls']) => (t ? { ...t, secrets: undefined } : null);
  if (prev.tls && next.tls && tlsSecretsLive(prev)) {
    if (!same(rest(prev.tls), rest(next.tls))) restart.push('tls');
    if (!same(prev.tls.secrets, next.tls.secrets)) {
      live.push('tls.secrets');
      tls = { ...prev.tls, secrets: next.tls.secrets };
    }
  } else if (!same(prev.tls, next.tls)) restart.push('tls');
  const config: Config = {
    ...prev,
    defaults: next.defaults,
    projects: next.projects,
    ...(tls ? { tls } : {}),
  };
  return { config, live, restart };
}

/** The routing conventions a config sets. */
/**
 * Where Wharf itself listens: the ports its listeners are bound to (0 for one not bound yet: the
 * configured port counts) and this machine's own addresses.
 */
export interface BoundPorts {
  readonly proxy: number;
  readonly admin: number;
  readonly redirect: number;
  readonly localHosts: readonly string[];
}

/** Routing's conventions from the config, with the addresses discovery may not route to. */
export function conventionsOf(c: Config, bound: BoundPorts): Conventions {
  return { tier: c.tier, defaults: c.defaults, forwardTo: c.forwardTo, addresses: addressPolicyOf(c, bound) };
}

/** Wharf's own listeners (bound ports once known) and whether discovery may route to loopback. */
export function addressPolicyOf(c: Config, bound: BoundPorts): AddressPolicy {
  const self = [
    { name: 'proxy', host: c.listen.host, port: bound.proxy || c.listen.port },
    { name: 'admin', host: c.admin.host, port: bound.admin || c.admin.port },
  ];
  const r = c.tls?.redirectHttp;
  if (r) self.push({ name: 'redirect', host: r.host, port: bound.redirect || r.port });
  return { self, localHosts: bound.localHosts, allowLoopback: c.kubernetes?.allowLoopback ?? false };
}
