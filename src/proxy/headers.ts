// Header rewriting for both directions (RFC 9110 §7.6.1). Works on node's flat rawHeaders array and
// produces undici's flat [name, value, ...] form, so a request costs one array, not a header object.

import type { IncomingHttpHeaders } from 'node:http';

/** Hop-by-hop headers, plus `expect` (answered by the proxy itself) and `host` (re-added explicitly). */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'proxy-authenticate',
  'proxy-authorization',
  'expect',
]);

export interface ForwardInfo {
  readonly clientIp: string;
  readonly proto: 'http' | 'https';
  readonly host: string;
  readonly requestId: string;
  /** Edge tier from an untrusted client: drop inbound x-forwarded-* and x-wharf-* instead of extending them. */
  readonly untrusted: boolean;
  /** Keep `Upgrade`/`Connection: upgrade` (WebSocket handshakes). */
  readonly upgrade?: string;
  /** Edge forwarding a pinned request to the internal tier: pass the pin on as `x-wharf-instance`. */
  readonly pin?: string;
  /** `x-wharf-via` to send: the tiers passed so far, this one last. */
  readonly via?: string;
}

function connectionTokens(raw: string[]): Set<string> | undefined {
  let tokens: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].length === 10 && raw[i].toLowerCase() === 'connection') {
      for (const t of raw[i + 1].split(',')) {
        const v = t.trim().toLowerCase();
        if (!v) continue;
        tokens ??= new Set();
        tokens.add(v);
      }
    }
  }
  return tokens;
}

/**
 * Request headers for the upstream. x-forwarded-for is extended with the client address;
 * x-forwarded-proto and -host are kept when a trusted hop set them (so the internal tier sees what the
 * edge saw), else set; x-request-id is kept or set; x-wharf-* directives are consumed here.
 */
export function upstreamRequestHeaders(raw: string[], info: ForwardInfo): string[] {
  const extra = connectionTokens(raw);
  const out: string[] = [];
  let xff: string | undefined;
  let xfp: string | undefined;
  let xfh: string | undefined;
  let host: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    const value = raw[i + 1];
    if (HOP_BY_HOP.has(name) || extra?.has(name)) continue;
    if (name.charCodeAt(0) === 120 /* x */) {
      if (name === 'x-forwarded-for') {
        if (!info.untrusted) xff = xff === undefined ? value : `${xff}, ${value}`;
        continue;
      }
      if (name === 'x-forwarded-proto') {
        if (!info.untrusted) xfp ??= value;
        continue;
      }
      if (name === 'x-forwarded-host') {
        if (!info.untrusted) xfh ??= value;
        continue;
      }
      if (name === 'x-request-id') continue;
      if (name.startsWith('x-wharf-')) continue;
    }
    if (name === 'host') {
      host ??= value;
      continue;
    }
    out.push(name, value);
  }
  out.push('host', host ?? info.host);
  out.push('x-forwarded-for', xff === undefined ? info.clientIp : `${xff}, ${info.clientIp}`);
  out.push('x-forwarded-proto', xfp ?? info.proto);
  out.push('x-forwarded-host', xfh ?? host ?? info.host);
  out.push('x-request-id', info.requestId);
  if (info.upgrade) out.push('connection', 'upgrade', 'upgrade', info.upgrade);
  if (info.pin) out.push('x-wharf-instance', info.pin);
  if (info.via) out.push('x-wharf-via', info.via);
  return out;
}

/**
 * Response headers for the client, hop-by-hop removed. `hideInternal` (edge tier) also drops every
 * `x-wharf-*` header an inner tier added, so instance names never leave the cluster.
 */
export function downstreamResponseHeaders(
  headers: IncomingHttpHeaders,
  hideInternal = false,
): Record<string, string | string[]> {
  const conn = headers.connection;
  const extra =
    typeof conn === 'string' && conn !== 'keep-alive' && conn !== 'close'
      ? new Set(conn.split(',').map((s) => s.trim().toLowerCase()))
      : undefined;
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || extra?.has(name)) continue;
    if (hideInternal && name.startsWith('x-wharf-')) continue;
    const v = headers[name];
    if (v !== undefined) out[name] = v;
  }
  return out;
}

/** Finds one request header in rawHeaders without building req.headers. `name` must be lowercase. */
export function rawHeader(raw: string[], name: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i];
    if (k.length === name.length && k.toLowerCase() === name) return raw[i + 1];
  }
  return undefined;
}
