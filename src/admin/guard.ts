// What the admin port checks before it answers anything but liveness: that the request names the
// admin listener, and that a call that changes state was made on purpose.
//
// Without a token (the default) the admin port's only protection is where it listens. A web page
// can still reach a loopback or cluster address from a browser: by DNS rebinding (a name of the
// attacker's that resolves to the admin address, so the browser sends `Host: evil.example`), or by
// a cross-origin form POST (allowed without preflight when it carries no custom header and a form
// content type). Hence:
// - Host must be the address the connection arrived on, `localhost`, or a configured name;
// - a call that changes state (any method but GET, HEAD, OPTIONS) must carry a JSON content type or
//   the `x-wharf-admin` header, neither of which a cross-origin page can send without a CORS
//   preflight, which the admin port never grants.

import type { IncomingMessage } from 'node:http';
import { unmapped } from '../util/client-address.ts';

/** The host part of a Host header value, lowercased, without port, brackets or a trailing dot. */
export function hostName(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return end < 0 ? '' : h.slice(1, end);
  }
  const colon = h.indexOf(':');
  if (colon >= 0) {
    // More than one colon: an IPv6 address without brackets, which Host does not allow.
    if (h.indexOf(':', colon + 1) >= 0) return '';
    h = h.slice(0, colon);
  }
  return h.endsWith('.') ? h.slice(0, -1) : h;
}

/**
 * Whether `host` (the Host header) names the admin listener: the local address the connection
 * arrived on (IPv4, or IPv6 in brackets), `localhost`, or one of `names`.
 */
export function namesAdmin(
  host: string | undefined,
  localAddress: string,
  names: readonly string[],
): boolean {
  if (host === undefined) return false;
  const h = hostName(host);
  if (h === '') return false;
  if (h === 'localhost' || names.includes(h)) return true;
  return h === localAddress.toLowerCase();
}

const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Whether a request that may change state was made on purpose: it carries `x-wharf-admin` or a JSON
 * content type. Requests that only read (GET, HEAD, OPTIONS) need neither.
 */
export function deliberate(req: IncomingMessage): boolean {
  if (SAFE_METHODS.has(req.method ?? 'GET')) return true;
  if (req.headers['x-wharf-admin'] !== undefined) return true;
  const type = req.headers['content-type'];
  if (type === undefined) return false;
  const media = type.split(';')[0].trim().toLowerCase();
  return media === 'application/json';
}

/** Why the admin port refuses `req`, or undefined when it may be answered. */
export function adminRefusal(
  req: IncomingMessage,
  names: readonly string[],
): { status: number; reason: string } | undefined {
  // The address the client connected to, as the listener sees it (IPv4 without ::ffff:).
  const local = unmapped(req.socket.localAddress ?? '');
  if (!namesAdmin(req.headers.host, local, names)) {
    return {
      status: 421,
      reason: 'the admin port answers only to its own address, localhost and the names in admin-hosts',
    };
  }
  if (!deliberate(req)) {
    return {
      status: 403,
      reason: 'a call that changes state needs Content-Type: application/json or an x-wharf-admin header',
    };
  }
  return undefined;
}
