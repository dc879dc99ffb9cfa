// One probe on its own connection: HTTP GET (status in the expected ranges) or a TCP connect. Never
// the proxy's pools: a pool full of slow requests must not delay a probe, and a probe must not
// take a pooled connection that a request could use.
//
// The prober does not time itself out: the caller owns time (so tests can use a fake clock) and
// aborts the signal at the deadline; the prober then destroys its socket at once.

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

/**
 * What a prober needs to be told to stop: an AbortSignal is one. The health checker passes a
 * lighter object of its own (an AbortController per probe, 800 probes a second, was a good part of
 * the probes' garbage).
 */
export interface ProbeSignal {
  readonly aborted: boolean;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

export interface Prober {
  probe(target: ProbeTarget, signal: ProbeSignal): Promise<ProbeResult>;
}

/** A one-shot ProbeSignal: `abort()` calls the listeners once. */
export class ProbeCancel implements ProbeSignal {
  aborted = false;
  private first: (() => void) | undefined;
  private more: (() => void)[] | undefined;

  addEventListener(_type: 'abort', listener: () => void): void {
    if (this.aborted) return;
    if (!this.first) this.first = listener;
    else if (this.more) this.more.push(listener);
    else this.more = [listener];
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    if (this.first === listener) this.first = undefined;
    else if (this.more) {
      const i = this.more.indexOf(listener);
      if (i >= 0) this.more.splice(i, 1);
    }
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    const first = this.first;
    const more = this.more;
    this.first = undefined;
    this.more = undefined;
    first?.();
    if (more) for (const fn of more) fn();
  }
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

function tcpProbe(target: ProbeTarget, signal: ProbeSignal): Promise<ProbeResult> {
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

const INVALID: ProbeResult = Object.freeze({ ok: false, reason: 'invalid response' });
const HANG_UP: ProbeResult = Object.freeze({ ok: false, reason: 'reset' });
/** A status line (after any 1xx interim responses) must come within this many bytes. */
const MAX_HEAD = 8192;
const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})(?:[ \t\r]|$)/;

/**
 * HTTP GET on a raw socket: the request is one write, and the verdict is the status line, so neither
 * the body nor the headers are parsed. Probing 50,000 endpoints a minute, node:http's client
 * machinery (a request object, an agent, a parser) per probe was most of the probe's cost in CPU
 * and garbage; a refused connection now costs one socket.
 */
function httpProbe(target: ProbeTarget, signal: ProbeSignal): Promise<ProbeResult> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(ABORTED);
    const { host, port } = splitAddress(target.address);
    const sock = net.connect({ host, port });
    let head = '';
    let settled = false;
    const done = (r: ProbeResult) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      sock.destroy();
      resolve(r);
    };
    const onAbort = () => done(ABORTED);
    signal.addEventListener('abort', onAbort, { once: true });
    sock.setEncoding('latin1');
    sock.once('connect', () => {
      sock.write(
        `GET ${target.path ?? '/'} HTTP/1.1\r\nHost: ${target.host}\r\nUser-Agent: wharf-health\r\nAccept: */*\r\nConnection: close\r\n\r\n`,
      );
    });
    sock.on('data', (chunk: string) => {
      head += chunk;
      for (;;) {
        const eol = head.indexOf('\n');
        if (eol === -1) {
          if (head.length > MAX_HEAD) done(INVALID);
          return;
        }
        const m = STATUS_LINE.exec(head);
        if (!m) return done(INVALID);
        const status = Number(m[1]);
        if (status < 100) return done(INVALID);
        if (status >= 200 || status === 101) {
          return done(
            statusExpected(status, target.expect)
              ? { ok: true, reason: `ok (${status})`, status }
              : { ok: false, reason: `status ${status}`, status },
          );
        }
        // An interim 1xx (103 Early Hints): skip its header block and read the final status line.
        const end = head.indexOf('\r\n\r\n');
        if (end === -1) {
          if (head.length > MAX_HEAD) done(INVALID);
          return;
        }
        head = head.slice(end + 4);
      }
    });
    // Closed before a status line: what node:http calls "socket hang up".
    sock.once('end', () => done(HANG_UP));
    sock.once('close', () => done(HANG_UP));
    sock.once('error', (err) => done({ ok: false, reason: describeError(err) }));
  });
}

/** The real prober: HTTP when the target has a path, TCP connect when it does not. */
export const netProber: Prober = {
  probe(target, signal) {
    return target.path === null ? tcpProbe(target, signal) : httpProbe(target, signal);
  },
};
