// The framing reader of kept-alive probe connections: where a response ends, and when a connection
// must not carry another probe.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DONE, INVALID, MAX_BODY, ResponseReader, STATUS } from '../../src/health/http-response.ts';

/** Feeds `text` in pieces of `size` bytes; returns every flag seen and the reader. */
function read(text: string, size = text.length) {
  const r = new ResponseReader();
  let seen = 0;
  for (let i = 0; i < text.length; i += size) seen |= r.feed(text.slice(i, i + size));
  return { seen, r };
}

const SIZES = [1, 2, 3, 7, 1000];

test('Content-Length, chunked and empty responses end where they end, in any packet split', () => {
  const cases = [
    'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n3;x=y\r\nabc\r\n0\r\nTrailer: 1\r\n\r\n',
    'HTTP/1.1 204 No Content\r\n\r\n',
    'HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n',
    'HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n',
    'HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx',
    'HTTP/1.1 200 OK\nContent-Length: 1\n\nx',
  ];
  for (const text of cases) {
    for (const size of SIZES) {
      const { seen, r } = read(text, size);
      assert.equal(seen, STATUS | DONE, `${JSON.stringify(text)} in pieces of ${size}`);
      assert.equal(r.reusable, true, JSON.stringify(text));
      assert.equal(r.done, true);
    }
  }
  assert.equal(read(cases[5]).r.status, 200, 'the interim 103 is not the verdict');
});

test('the verdict comes with the status line, before the body', () => {
  const r = new ResponseReader();
  assert.equal(r.feed('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n\r\nd'), STATUS);
  assert.equal(r.status, 503);
  assert.equal(r.feed('own'), 0);
  assert.equal(r.feed('n'), DONE);
  assert.equal(r.reusable, true);
});

test('what is not followed exactly makes the connection single-use', () => {
  const single = [
    'HTTP/1.1 200 OK\r\n\r\nbody until close',
    'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n',
    'HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n',
    'HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n',
    'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx',
    'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
    `HTTP/1.1 200 OK\r\nContent-Length: ${MAX_BODY + 1}\r\n\r\n`,
    'HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 200 OK\r\n',
    'HTTP/1.1 101 Switching Protocols\r\n\r\n',
  ];
  for (const text of single) {
    const { seen, r } = read(text);
    assert.ok(seen & STATUS, JSON.stringify(text));
    assert.equal(r.reusable, false, JSON.stringify(text));
  }
});

test('a large chunked body past MAX_BODY is not read to the end', () => {
  const r = new ResponseReader();
  r.feed('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
  const chunk = `${(16_384).toString(16)}\r\n${'x'.repeat(16_384)}\r\n`;
  for (let i = 0; i < 5; i++) r.feed(chunk);
  assert.equal(r.reusable, false);
  assert.equal(r.done, false);
});

test('not HTTP at all is INVALID', () => {
  assert.ok(read('NOT HTTP\r\n\r\n').seen & INVALID);
  assert.ok(read('HTTP/1.1 99 Odd\r\n').seen & INVALID);
  assert.ok(read('x'.repeat(9000)).seen & INVALID, 'no line end within the head limit');
});
