import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { affinityCookieHeader, affinityCookieName, readCookie } from '../../src/balancing/cookie.ts';

test('one cookie name per tier', () => {
  assert.equal(affinityCookieName('internal'), 'wharf_i');
  assert.equal(affinityCookieName('edge'), 'wharf_e');
});

test('Set-Cookie attributes', () => {
  assert.equal(affinityCookieHeader('wharf_i', 'abc', false), 'wharf_i=abc; Path=/; HttpOnly; SameSite=Lax');
  assert.equal(
    affinityCookieHeader('wharf_e', 'abc', true),
    'wharf_e=abc; Path=/; HttpOnly; SameSite=Lax; Secure',
  );
});

test('readCookie finds the pair, not a name that merely ends or contains it', () => {
  assert.equal(readCookie(undefined, 'wharf_i'), undefined);
  assert.equal(readCookie('', 'wharf_i'), undefined);
  assert.equal(readCookie('wharf_i=t1', 'wharf_i'), 't1');
  assert.equal(readCookie('a=1; wharf_i=t2; b=2', 'wharf_i'), 't2');
  assert.equal(readCookie('a=1;wharf_i=t3', 'wharf_i'), 't3');
  assert.equal(readCookie('xwharf_i=no; wharf_i=yes', 'wharf_i'), 'yes');
  assert.equal(readCookie('a=wharf_i=no', 'wharf_i'), undefined);
  assert.equal(readCookie('wharf_ix=no', 'wharf_i'), undefined);
  assert.equal(readCookie('wharf_e=edge; wharf_i=internal', 'wharf_e'), 'edge');
  assert.equal(readCookie('wharf_i="quoted"', 'wharf_i'), 'quoted');
  assert.equal(readCookie('wharf_i= padded ; z=1', 'wharf_i'), 'padded');
  assert.equal(readCookie('wharf_i=', 'wharf_i'), '');
});

test('readCookie agrees with a naive parser on generated headers', () => {
  const name = fc.constantFrom('wharf_i', 'wharf_e', 'a', 'xwharf_i', 'wharf_ix', 'sid');
  const value = fc.stringMatching(/^[A-Za-z0-9_-]{0,12}$/);
  fc.assert(
    fc.property(
      fc.array(fc.tuple(name, value), { maxLength: 6 }),
      fc.constantFrom('; ', ';'),
      (pairs, sep) => {
        const header = pairs.map(([n, v]) => `${n}=${v}`).join(sep);
        const first = pairs.find(([n]) => n === 'wharf_i');
        assert.equal(readCookie(header, 'wharf_i'), first?.[1]);
      },
    ),
  );
});
