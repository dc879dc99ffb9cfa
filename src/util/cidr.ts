// CIDR matching for trusted proxies. IPv4 and IPv6; IPv4-mapped IPv6 addresses match IPv4 ranges.

import { BlockList, isIPv4, isIPv6 } from 'node:net';

export function parseCidr(cidr: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } {
  const [address, bits] = cidr.trim().split('/');
  const family = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined;
  if (!family) throw new Error(`"${cidr}" is not an IP address or CIDR`);
  const max = family === 'ipv4' ? 32 : 128;
  const prefix = bits === undefined ? max : Number(bits);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max)
    throw new Error(`bad prefix length in "${cidr}"`);
  return { address, prefix, family };
}

/** Returns a predicate; an empty list trusts nobody. */
export function cidrMatcher(cidrs: readonly string[]): (ip: string) => boolean {
  if (cidrs.length === 0) return () => false;
  const list = new BlockList();
  for (const c of cidrs) {
    const { address, prefix, family } = parseCidr(c);
    list.addSubnet(address, prefix, family);
  }
  return (ip: string) => {
    const v4 = ip.startsWith('::ffff:') ? ip.slice(7) : ip;
    if (isIPv4(v4)) return list.check(v4, 'ipv4');
    return isIPv6(ip) && list.check(ip, 'ipv6');
  };
}
