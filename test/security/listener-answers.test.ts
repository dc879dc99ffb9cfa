// Found by the fuzz test (fuzz.test.ts, invariant 4): answers the listener gives by itself, before
// any exchange, had no access record, so a client could probe with malformed requests and leave no
// trace. Every one is now logged like any other answer.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AccessRecord } from '../../src/model/access.ts';
import { rawExchange } from '../support/raw.ts';
import { type Started, startWharf } from '../support/wharf.ts';

describe("the listener's own answers are logged", () => {
  let w: Started;
  const access: AccessRecord[] = [];
  before(async () => {
    w = await startWharf({ limits: { 'max-header-bytes': 1024 } }, { onAccess: (r) => access.push(r) });
  });
  after(() => w.stop());

  const cases: [string, string, number, RegExp][] = [
    [
      'a malformed request line',
      'GET / HTTP/9.9\r\nHost: a.test.local\r\n\r\n',
      400,
      /^malformed-request:HPE_/,
    ],
    ['a bad header name', 'GET / HTTP/1.1\r\nBad Name: x\r\n\r\n', 400, /^malformed-request:HPE_/],
    [
      'a header section over the limit',
      `GET / HTTP/1.1\r\nx-big: ${'a'.repeat(2000)}\r\n\r\n`,
      431,
      /^header-overflow$/,
    ],
    [
      'CONNECT',
      'CONNECT a.test.local:443 HTTP/1.1\r\nHost: a.test.local:443\r\n\r\n',
      405,
      /^connect-not-supported$/,
    ],
    [
      'an Expect other than 100-continue',
      'GET /x HTTP/1.1\r\nHost: a.test.local\r\nExpect: teapot\r\n\r\n',
      417,
      /^expectation-failed$/,
    ],
  ];
  for (const [name, raw, status, error] of cases) {
    it(`${name}: ${status}, with an access record`, async () => {
      const before = access.length;
      const answer = await rawExchange(w.port, raw, 1000);
      assert.match(answer, new RegExp(`^HTTP/1.1 ${status} `));
      const records = access.slice(before);
      assert.equal(records.length, 1);
      assert.equal(records[0].status, status);
      assert.match(records[0].error ?? '', error);
      assert.equal(records[0].client, '127.0.0.1');
      assert.match(records[0].requestId, /^[0-9a-f]{32}$/);
    });
  }
});
