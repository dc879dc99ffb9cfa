// One probe on its own connection: HTTP GET (status in the expected ranges) or a TCP connect. Never
// the proxy's pools: a pool full of slow requests must not delay a probe, and a probe must not
// take a pooled connection that a request could use.
//
// The prober does not time itself out: the caller owns time (so tests can use a fake clock) and
// aborts the signal at the deadline; the prober then destroys its socket at once.

import http from 'node:http';
import net from 'node:net';
import type { StatusRange } from '../model/settings.ts';

export interface ProbeTarget {
  /** `host:port`, IPv6 hosts bracketed. */
  readonly address: string;
  /** HTTP path, or null for a TCP connect check. */
  readonly path: string | null;
  /** Host header of an HTTP probe: `<project>.<domain>`. */
  readonly host: string;
  readonly expect: readonly StatusRange[];
}

export interface ProbeResult {
  readonly ok: boolean;
  /** `ok (200)`, `status 503`, `connect refused`, `reset`, ... */
  readonly reason: string;
  readonly status?: number;
}

export interface Prober {
  probe(target: ProbeTarget, signal: AbortSignal): Promise<ProbeResult>;
}

export function splitAddress(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  let host = address.slice(0, colon);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return { host, port: Number(address.slice(colon + 1)) };
}

export function statusExpected(status: number, expect: readonly StatusRange[]): boolean {
  for (const r of expect) if (status >= r.from && status <= r.to) return true;
  return false;
}

function describeError(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ECONNREFUSED':
      return 'connect refused';
    case 'ECONNRESET':
    case 'EPIPE':
      return 'reset';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'host unreachable';
    case 'ETIMEDOUT':
      return 'connect timeout';
    case 'HPE_INVALID_CONSTANT':
    case 'HPE_INVALID_STATUS':
    case 'HPE_INVALID_HEADER_TOKEN':
      return 'invalid response';
    default:
      return err.code ? `error ${err.code}` : `error: ${err.message}`;
  }
}

const ABORTED: ProbeResult = Object.freeze({ ok: false, reason: 'aborted' });

function tcpProbe(target: ProbeTarget, signal: AbortSignal): Promise<ProbeResult> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(ABORTED);
    const { host, port } = splitAddress(target.address);
    const sock = net.connect({ host, port });
    const done = (r: ProbeResult) => {
      signal.removeEventListener('abort', onAbort);
      sock.destroy();
      resolve(r);
    };
    const onAbort = () => done(ABORTED);
    signal.addEventListener('abort', onAbort, { once: true });
    sock.once('connect', () => done({ ok: true, reason: 'ok (tcp)' }));
    sock.once('error', (err) => done({ ok: false, reason: describeError(err) }));
  });
}

function httpProbe(target: ProbeTarget, signal: AbortSignal): Promise<ProbeResult> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(ABORTED);
    const { host, port } = splitAddress(target.address);
    let settled = false;
    const req = http.request({
      host,
      port,
      method: 'GET',
      path: target.path ?? '/',
      // agent:false: a fresh connection per probe, closed after it.
      agent: false,
      headers: { host: target.host, 'user-agent': 'wharf-health', accept: '*/*', connection: 'close' },
    });
    const done = (r: ProbeResult) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      // The verdict is in the status line; the body is not read. Destroying the socket keeps a
      // probe bounded even when a body never ends.
      req.destroy();
      resolve(r);
    };
    const onAbort = () => done(ABORTED);
    signal.addEventListener('abort', onAbort, { once: true });
    req.once('response', (res) => {
      const status = res.statusCode ?? 0;
      res.on('error', () => {});
      done(
        statusExpected(status, target.expect)
          ? { ok: true, reason: `ok (${status})`, status }
          : { ok: false, reason: `status ${status}`, status },
      );
    });
    req.on('error', (err) => done({ ok: false, reason: describeError(err) }));
    req.end();
  });
}

/** The real prober: HTTP when the target has a path, TCP connect when it does not. */
export const netProber: Prober = {
  probe(target, signal) {
    return target.path === null ? tcpProbe(target, signal) : httpProbe(target, signal);
  },
};
