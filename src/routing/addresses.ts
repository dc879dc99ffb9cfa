// Which endpoint addresses Wharf refuses to route to or probe, whatever a source says. Pure.
//
// - Wharf's own listeners (proxy, admin, redirect), from any source: the admin API must not be
//   reachable through the data plane, and a project listing Wharf itself would loop.
// - Unspecified addresses (0.0.0.0/8, ::), from any source: connecting to one reaches this machine.
// - From Kubernetes only, where addresses come from objects anyone with write access to a namespace
//   can create: loopback (this machine; allowed when `kubernetes.allow-loopback` says the pods are
//   local processes, as in the demo and the tests), link-local (169.254.0.0/16, fe80::/10: cloud
//   metadata services live there), multicast and broadcast, and anything that is not an IP address.
//   The config file is the operator's own word: loopback, link-local and host names are allowed.

import { BlockList, isIP } from 'node:net';

export interface SelfListener {
  /** `proxy`, `admin`, `redirect`: named in Problems. */
  readonly name: string;
  readonly host: string;
  readonly port: number;
}

export interface AddressPolicy {
  /** Wharf's own listeners. One on an unspecified host answers on every address of this machine. */
  readonly self: readonly SelfListener[];
  /** This machine's addresses (os.networkInterfaces), for listeners on an unspecified host. */
  readonly localHosts: readonly string[];
  /** Kubernetes endpoints on loopback addresses are routed (explicit local setups only). */
  readonly allowLoopback: boolean;
}

/** No listener known, loopback refused from Kubernetes: what routing uses when told nothing. */
export const DEFAULT_ADDRESS_POLICY: AddressPolicy = Object.freeze({
  self: Object.freeze([]),
  localHosts: Object.freeze([]),
  allowLoopback: false,
});

export type AddressClass = 'loopback' | 'unspecified' | 'link-local' | 'not-unicast' | 'unicast' | 'name';

const V6 = {
  loopback: new BlockList(),
  unspecified: new BlockList(),
  linkLocal: new BlockList(),
  notUnicast: new BlockList(),
};
V6.loopback.addAddress('::1', 'ipv6');
V6.loopback.addSubnet('127.0.0.0', 8, 'ipv4');
V6.unspecified.addAddress('::', 'ipv6');
V6.unspecified.addSubnet('0.0.0.0', 8, 'ipv4');
V6.linkLocal.addSubnet('fe80::', 10, 'ipv6');
V6.linkLocal.addSubnet('169.254.0.0', 16, 'ipv4');
V6.notUnicast.addSubnet('ff00::', 8, 'ipv6');
V6.notUnicast.addSubnet('224.0.0.0', 3, 'ipv4');

/** The first two numbers of a dotted IPv4 address (checked by isIP first). */
function v4Prefix(host: string): [number, number] {
  let a = 0;
  let i = 0;
  for (; host.charCodeAt(i) !== 46; i++) a = a * 10 + host.charCodeAt(i) - 48;
  let b = 0;
  for (i++; host.charCodeAt(i) !== 46; i++) b = b * 10 + host.charCodeAt(i) - 48;
  return [a, b];
}

/**
 * What kind of address `host` is. IPv4 is decided from its first two numbers (50,000 endpoints are
 * checked at a first sync); IPv6, rarer, by BlockList, which also reads IPv4-mapped forms.
 */
export function classify(host: string): AddressClass {
  const family = isIP(host);
  if (family === 4) {
    const [a, b] = v4Prefix(host);
    if (a === 127) return 'loopback';
    if (a === 0) return 'unspecified';
    if (a === 169 && b === 254) return 'link-local';
    if (a >= 224) return 'not-unicast';
    return 'unicast';
  }
  if (family === 6) {
    if (V6.loopback.check(host, 'ipv6')) return 'loopback';
    if (V6.unspecified.check(host, 'ipv6')) return 'unspecified';
    if (V6.linkLocal.check(host, 'ipv6')) return 'link-local';
    if (V6.notUnicast.check(host, 'ipv6')) return 'not-unicast';
    return 'unicast';
  }
  return host.toLowerCase() === 'localhost' ? 'loopback' : 'name';
}

/** The listener of Wharf's own at (host, port), if there is one. */
function ownListener(
  host: string,
  port: number,
  cls: AddressClass,
  policy: AddressPolicy,
): SelfListener | undefined {
  for (const l of policy.self) {
    if (l.port !== port) continue;
    if (l.host === host) return l;
    const lc = classify(l.host);
    if (lc === 'unspecified') {
      // Listening on every address: loopback, this machine's own addresses, and 0.0.0.0 reach it.
      if (cls === 'loopback' || cls === 'unspecified' || policy.localHosts.includes(host)) return l;
    } else if (lc === 'loopback' && cls === 'loopback' && (host === 'localhost' || l.host === 'localhost'))
      return l;
  }
  return undefined;
}

/**
 * Why an endpoint at `host:port` (`declared`: from the operator's config, not discovered) is refused, or undefined when it may be routed and
 * probed. The reason completes "address <host:port> ...".
 */
export function refusal(
  host: string,
  port: number,
  declared: boolean,
  policy: AddressPolicy = DEFAULT_ADDRESS_POLICY,
): string | undefined {
  const cls = classify(host);
  const own = ownListener(host, port, cls, policy);
  if (own) return `is Wharf's own ${own.name} listener`;
  if (cls === 'unspecified') return 'is an unspecified address (0.0.0.0, ::), which means this machine';
  // An operator's own file may name loopback and host names (local setups, the demo).
  if (declared) return undefined;
  switch (cls) {
    case 'loopback':
      return policy.allowLoopback
        ? undefined
        : 'is a loopback address (this machine); only local setups route those, with kubernetes.allow-loopback';
    case 'link-local':
      return 'is link-local (169.254.0.0/16, fe80::/10: where cloud metadata services answer)';
    case 'not-unicast':
      return 'is a multicast or broadcast address';
    case 'name':
      return 'is not an IP address';
    default:
      return undefined;
  }
}
