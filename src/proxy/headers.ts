// Header rewriting for both directions (RFC 9110 §7.6.1). Works on node's flat rawHeaders array and
// produces undici's flat [name, value, ...] form, so a request costs one array, not a header object.

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

/** The hop-by-hop names and `x-request-id`, by length: the names the response side looks for. */
const CHECKED_BY_LENGTH: (string[] | undefined)[] = [];
for (const n of [...HOP_BY_HOP, 'x-request-id']) {
  const same = CHECKED_BY_LENGTH[n.length];
  if (same) same.push(n);
  else CHECKED_BY_LENGTH[n.length] = [n];
}

/**
 * Whether header name `name` is `lower` (lowercase letters and '-') in any case, without allocating a
 * lowercased copy. Exact for names made of token characters, which is all llhttp lets through: OR-ing
 * 0x20 maps only 'A'-'Z' onto 'a'-'z', and only '-' itself onto '-'.
 */
export function sameName(name: string, lower: string): boolean {
  return name.length === lower.length && namePrefix(name, lower);
}

/** Whether header name `name` starts with `lower` in any case (see sameName), without a copy. */
function namePrefix(name: string, lower: string): boolean {
  const len = lower.length;
  if (name.length < len) return false;
  for (let i = 0; i < len; i++) if ((name.charCodeAt(i) | 0x20) !== lower.charCodeAt(i)) return false;
  return true;
}

/** The CHECKED name `name` is (lowercase), if any. */
function checkedName(name: string): string | undefined {
  const candidates = CHECKED_BY_LENGTH[name.length];
  if (candidates === undefined) return undefined;
  for (const c of candidates) if (sameName(name, c)) return c;
  return undefined;
}

export interface ForwardInfo {
  readonly clientIp: string;
  readonly proto: 'http' | 'https';
  /** The Host to send when the request had none. */
  readonly host: string;
  /** The Host to send whatever the request's said: an absolute-form target's authority wins (RFC 9112 §3.2.2). */
  readonly hostOverride?: string;
  readonly requestId: string;
  /** Edge tier from an untrusted client: drop inbound x-forwarded-* and x-wharf-* instead of extending them. */
  readonly untrusted: boolean;
  /** Edge forwarding a pinned request to the internal tier: pass the pin on as `x-wharf-instance`. */
  readonly pin?: string;
  /** `x-wharf-via` to send: the tiers passed so far, this one last. */
  readonly via?: string;
}

/**
 * `TE: trailers` says the client takes trailers; gRPC requires it end to end (and it is the one TE
 * value HTTP/2 allows), so it is passed on although TE is hop-by-hop. Other TE values are not.
 */
function onlyTrailers(value: string): boolean {
  return value.trim().toLowerCase() === 'trailers';
}

/** Names the request's `Connection` headers list as hop-by-hop (keep-alive and close name none). */
function connectionTokens(raw: string[]): Set<string> | undefined {
  let tokens: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if (sameName(raw[i], 'connection')) tokens = connectionOptions(raw[i + 1], tokens);
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
    const name = raw[i];
    const value = raw[i + 1];
    const first = name.charCodeAt(0) | 0x20;
    // Most names are passed on untouched, in the client's spelling; only x-*, host and hop-by-hop
    // names are looked at (and only x-* are lowercased).
    if (first !== 120 /* x */ && extra === undefined) {
      if (sameName(name, 'host')) host ??= value;
      else {
        // Not x-*, so a CHECKED name here is a hop-by-hop one: dropped, but `TE: trailers`.
        const checked = checkedName(name);
        if (checked === undefined || (checked === 'te' && onlyTrailers(value))) out.push(name, value);
      }
      continue;
    }
    const lower = name.toLowerCase();
    if ((HOP_BY_HOP.has(lower) && !(lower === 'te' && onlyTrailers(value))) || extra?.has(lower)) continue;
    if (first === 120) {
      if (lower === 'x-forwarded-for') {
        if (!info.untrusted) xff = xff === undefined ? value : `${xff}, ${value}`;
        continue;
      }
      if (lower === 'x-forwarded-proto') {
        if (!info.untrusted) xfp ??= value;
        continue;
      }
      if (lower === 'x-forwarded-host') {
        if (!info.untrusted) xfh ??= value;
        continue;
      }
      if (lower === 'x-request-id') continue;
      if (lower.startsWith('x-wharf-')) continue;
    }
    if (lower === 'host') {
      host ??= value;
      continue;
    }
    out.push(name, value);
  }
  if (info.hostOverride !== undefined) host = info.hostOverride;
  out.push('host', host ?? info.host);
  out.push('x-forwarded-for', xff === undefined ? info.clientIp : `${xff}, ${info.clientIp}`);
  out.push('x-forwarded-proto', xfp ?? info.proto);
  out.push('x-forwarded-host', xfh ?? host ?? info.host);
  out.push('x-request-id', info.requestId);
  if (info.pin) out.push('x-wharf-instance', info.pin);
  if (info.via) out.push('x-wharf-via', info.via);
  return out;
}

/**
 * The client's response headers, straight from undici's raw `[name, value, ...]` buffers into the flat
 * array node's writeHead accepts: hop-by-hop headers (and those named in `Connection`) removed, names
 * kept as the upstream spelled them. `hideInternal` (edge tier) drops every `x-wharf-*` an inner tier
 * added. `x-request-id` is appended when the upstream did not send one, and `x-wharf-instance:
 * <instance>` when given and no inner tier named the instance already (the innermost name wins: behind
 * an edge that shows instance names, the client sees the pod's, not the internal replica's).
 */
export function downstreamRawHeaders(
  raw: readonly (Buffer | string)[],
  hideInternal: boolean,
  requestId: string,
  instance?: string,
): string[] {
  const out: string[] = [];
  let extra: Set<string> | undefined;
  let hasRequestId = false;
  let hasInstance = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = latin1(raw[i]);
    const checked = checkedName(name);
    if (checked !== undefined) {
      if (HOP_BY_HOP.has(checked)) {
        if (checked === 'connection') extra = connectionOptions(latin1(raw[i + 1]), extra);
        continue;
      }
      hasRequestId = true; // the only CHECKED name that is not hop-by-hop
    }
    if (hideInternal && namePrefix(name, 'x-wharf-')) continue;
    if (instance !== undefined && sameName(name, 'x-wharf-instance')) hasInstance = true;
    out.push(name, latin1(raw[i + 1]));
  }
  if (!hasRequestId) out.push('x-request-id', requestId);
  if (instance !== undefined && !hasInstance) out.push('x-wharf-instance', instance);
  return extra ? withoutNames(out, extra) : out;
}

/** undici hands HTTP/1.1 headers over as buffers; HTTP/2 upstreams (h2-upstream.ts) as strings. */
function latin1(x: Buffer | string): string {
  return typeof x === 'string' ? x : x.toString('latin1');
}

/** Adds the header names a `Connection` value lists (other than keep-alive and close) to `set`. */
function connectionOptions(value: string, set: Set<string> | undefined): Set<string> | undefined {
  // The common values name no header: skip the split (node upstreams send `keep-alive` on every response).
  if (sameName(value, 'keep-alive') || sameName(value, 'close')) return set;
  for (const t of value.split(',')) {
    const v = t.trim().toLowerCase();
    if (!v || v === 'keep-alive' || v === 'close') continue;
    set ??= new Set();
    set.add(v);
  }
  return set;
}

function withoutNames(flat: string[], names: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (let i = 0; i < flat.length; i += 2) {
    if (!names.has(flat[i].toLowerCase())) out.push(flat[i], flat[i + 1]);
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
