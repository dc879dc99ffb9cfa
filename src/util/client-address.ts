// The client address of a connection, for everything that keys on the client (per-client limits,
// `ip` affinity, x-forwarded-for, the access log). Normally the TCP peer; behind a load balancer that
// speaks the PROXY protocol, the address its header carried (proxy/proxy-accept.ts sets it before
// the connection reaches the HTTP or TLS server).

import type { Socket } from 'node:net';

const fromProxyHeader = new WeakMap<object, string>();
/** Until a PROXY header is seen, the lookups are skipped: one branch per request. */
let used = false;

/** Records the client address a PROXY protocol header gave for this socket. */
export function setClientAddress(socket: Socket, address: string): void {
  used = true;
  fromProxyHeader.set(socket, address);
}

/**
 * The client's address, IPv4-mapped IPv6 written as IPv4. A TLS socket is looked up through the
 * TCP socket it wraps (`_parent`, set by node's TLS server for every connection it wraps).
 */
export function clientAddress(socket: Socket | undefined): string {
  // An HTTP/2 stream whose session is already gone has no socket left.
  if (!socket) return '';
  const a =
    (used &&
      (fromProxyHeader.get(socket) ??
        fromProxyHeader.get((socket as { _parent?: object })._parent ?? socket))) ||
    socket.remoteAddress ||
    '';
  return unmapped(a);
}

/** An address with IPv4-mapped IPv6 (`::ffff:10.0.0.1`) written as IPv4. */
export function unmapped(address: string): string {
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}
