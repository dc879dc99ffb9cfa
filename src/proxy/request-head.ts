// What the pipeline needs from a request's head, read once: the headers it acts on (one pass over
// rawHeaders, no header object) and the form of the request target (RFC 9112 §3.2).

import { grpcTimeoutMs, isGrpc } from './grpc.ts';
import { sameName } from './headers.ts';

/** Request headers the pipeline needs, collected in one pass over rawHeaders. */
export interface Inspected {
  host?: string;
  contentLength?: string;
  chunked: boolean;
  pin?: string;
  cookie?: string;
  requestId?: string;
  /** `x-wharf-via`: the Wharf tiers this request already passed (loop detection). */
  via?: string;
  /** A trusted hop in front (the edge) received this request over https. */
  httpsBefore?: boolean;
  /** `content-type: application/grpc...`: errors of ours must be gRPC statuses. */
  grpc: boolean;
  /** `grpc-timeout`, in milliseconds. */
  grpcTimeoutMs?: number;
  /** `TE: trailers`: the client takes trailers. */
  teTrailers?: boolean;
}

/**
 * `trusted`: whether headers that only a hop of ours may set (x-wharf-via, x-request-id,
 * x-forwarded-proto) are believed from this client.
 */
export function inspect(raw: string[], trusted: boolean): Inspected {
  const out: Inspected = { chunked: false, grpc: false };
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i];
    switch (k.length) {
      case 2:
        if (sameName(k, 'te')) out.teTrailers = raw[i + 1].trim().toLowerCase() === 'trailers';
        break;
      case 4:
        if (out.host === undefined && sameName(k, 'host')) out.host = raw[i + 1];
        break;
      case 6:
        if (sameName(k, 'cookie')) out.cookie = out.cookie ? `${out.cookie}; ${raw[i + 1]}` : raw[i + 1];
        break;
      case 11:
        if (trusted && sameName(k, 'x-wharf-via')) out.via = raw[i + 1];
        break;
      case 12:
        if (sameName(k, 'content-type')) out.grpc = isGrpc(raw[i + 1]);
        else if (sameName(k, 'grpc-timeout')) out.grpcTimeoutMs = grpcTimeoutMs(raw[i + 1]);
        else if (trusted && sameName(k, 'x-request-id')) out.requestId = raw[i + 1];
        break;
      case 14:
        if (sameName(k, 'content-length')) out.contentLength = raw[i + 1];
        break;
      case 16:
        if (sameName(k, 'x-wharf-instance')) out.pin = raw[i + 1].trim().toLowerCase();
        break;
      case 17:
        if (sameName(k, 'transfer-encoding')) out.chunked = true;
        else if (trusted && sameName(k, 'x-forwarded-proto'))
          out.httpsBefore = raw[i + 1].trim().toLowerCase() === 'https';
        break;
    }
  }
  return out;
}

/**
 * The request target, as RFC 9112 §3.2 names its forms:
 * - `origin`: `/path?query`, forwarded as it came.
 * - `absolute`: `http://authority/path`: routed by its authority (which wins over Host, §3.2.2) and
 *   forwarded in origin form, as every origin server expects.
 * - `asterisk`: `*`, only meaningful for `OPTIONS` (about the server, not a resource).
 * - `invalid`: anything else; no upstream can be asked about it.
 */
export type RequestTarget =
  | { readonly form: 'origin' }
  | { readonly form: 'absolute'; readonly authority: string; readonly path: string }
  | { readonly form: 'asterisk' }
  | { readonly form: 'invalid'; readonly reason: string };

const ORIGIN: RequestTarget = Object.freeze({ form: 'origin' });
const ASTERISK: RequestTarget = Object.freeze({ form: 'asterisk' });

export function requestTarget(url: string): RequestTarget {
  if (url.charCodeAt(0) === 47 /* / */) return ORIGIN;
  if (url === '*') return ASTERISK;
  const scheme = url.startsWith('http://') ? 7 : url.startsWith('https://') ? 8 : 0;
  if (scheme === 0 && /^https?:\/\//i.test(url)) return absolute(url, url.indexOf('//') + 2);
  if (scheme > 0) return absolute(url, scheme);
  return { form: 'invalid', reason: 'the request target must be a path (origin form) or an absolute URL' };
}

function absolute(url: string, from: number): RequestTarget {
  let end = url.length;
  for (let i = from; i < url.length; i++) {
    const c = url.charCodeAt(i);
    if (c === 47 /* / */ || c === 63 /* ? */ || c === 35 /* # */) {
      end = i;
      break;
    }
  }
  const authority = url.slice(from, end);
  // userinfo is deprecated for http(s) (RFC 9110 §4.2.4) and a classic way to confuse parsers.
  if (authority.length === 0 || authority.includes('@'))
    return { form: 'invalid', reason: 'the absolute request target has no usable authority' };
  const rest = url.slice(end);
  const path = rest.length === 0 || rest.charCodeAt(0) !== 47 ? `/${rest}` : rest;
  return { form: 'absolute', authority, path };
}
