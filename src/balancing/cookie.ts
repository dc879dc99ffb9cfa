// The affinity cookie. Its value is the endpoint's stable token (see routing), so any replica of any
// age honours it without shared state. One name per tier: an edge Wharf in front of an internal
// Wharf must not overwrite the internal tier's cookie with its own choice.

import type { Tier } from '../model/routes.ts';

export type { Tier };

const NAMES: Readonly<Record<Tier, string>> = { internal: 'wharf_i', edge: 'wharf_e' };

export function affinityCookieName(tier: Tier): string {
  return NAMES[tier];
}

/**
 * The value of cookie `name` in a `Cookie` request header, or undefined. Scans with indexOf and
 * slices once: no split, no map, since it runs on every request of a cookie-affinity project.
 * A name must start the header or follow `;` (optionally with spaces), so `xwharf_i=` is not a match.
 */
export function readCookie(cookieHeader: string | undefined, name: string): string | undefined {
  if (!cookieHeader) return undefined;
  let from = 0;
  while (from <= cookieHeader.length) {
    const at = cookieHeader.indexOf(name, from);
    if (at < 0) return undefined;
    const after = at + name.length;
    if (cookieHeader.charCodeAt(after) === 61 /* = */ && startsPair(cookieHeader, at)) {
      let end = cookieHeader.indexOf(';', after + 1);
      if (end < 0) end = cookieHeader.length;
      let start = after + 1;
      while (start < end && cookieHeader.charCodeAt(start) === 32) start++;
      while (end > start && cookieHeader.charCodeAt(end - 1) === 32) end--;
      // RFC 6265 allows a quoted value.
      if (
        end - start >= 2 &&
        cookieHeader.charCodeAt(start) === 34 &&
        cookieHeader.charCodeAt(end - 1) === 34
      ) {
        start++;
        end--;
      }
      return cookieHeader.slice(start, end);
    }
    from = at + 1;
  }
  return undefined;
}

function startsPair(s: string, at: number): boolean {
  let i = at - 1;
  while (i >= 0 && (s.charCodeAt(i) === 32 || s.charCodeAt(i) === 9)) i--;
  return i < 0 || s.charCodeAt(i) === 59; /* ; */
}

/**
 * `Set-Cookie` value. A session cookie (no Max-Age): affinity should not outlive the browser session,
 * and the token stays valid anyway for as long as the instance lives. Lax, not Strict, so a link
 * from elsewhere keeps the session.
 */
export function affinityCookieHeader(name: string, token: string, secure: boolean): string {
  return secure
    ? `${name}=${token}; Path=/; HttpOnly; SameSite=Lax; Secure`
    : `${name}=${token}; Path=/; HttpOnly; SameSite=Lax`;
}
