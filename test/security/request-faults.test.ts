// Only evidence from an upstream may count against an instance. Requests that no instance can be
// asked (asterisk-form targets, targets or headers the upstream client refuses to write, uploads the
// client breaks off) get their answer from Wharf and leave every instance's health alone.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { errors as undiciErrors } from 'undici';
import { blameOf } from '../../src/proxy/errors.ts';
import { rawExchange } from '../support/raw.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';
import { get, type Started, startWharf } from '../support/wharf.ts';

function states(w: Started): string[] {
  return w.wharf.health
    .list()
    .map((x) => `${x.endpoint.instance}:${x.status.state}${x.status.ejected ? ':ejected' : ''}`)
    .sort();
}

async function allHealthy(w: Started, n: number): Promise<void> {
  const deadline = Date.now() + 3000;
  while (Date.now() < deadline) {
    const s = states(w);
    if (s.length === n && s.every((x) => x.endsWith(':healthy'))) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`instances not healthy: ${states(w).join(', ')}`);
}

describe('requests of the client making change no instance health', () => {
  let ups: TestUpstream[];
  let w: Started;
  before(async () => {
    ups = await Promise.all(['shop-0', 'shop-1'].map((n) => startUpstream(n)));
    w = await startWharf({
      projects: { shop: { instances: Object.fromEntries(ups.map((u) => [u.name, { http: u.address }])) } },
    });
    await allHealthy(w, 2);
  });
  after(async () => {
    await w.stop();
    for (const u of ups) await u.close();
  });

  it('OPTIONS * is answered by Wharf itself, many times over, and nothing is ejected', async () => {
    const seenBefore = ups.reduce((n, u) => n + u.seen.length, 0);
    for (let i = 0; i < 10; i++) {
      const raw = await rawExchange(
        w.port,
        'OPTIONS * HTTP/1.1\r\nHost: shop.test.local\r\nConnection: close\r\n\r\n',
      );
      assert.match(raw, /^HTTP\/1.1 200 /);
      assert.match(raw, /\r\nallow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n/i);
    }
    assert.equal(
      ups.reduce((n, u) => n + u.seen.length, 0),
      seenBefore,
      'nothing went upstream',
    );
    assert.deepEqual(states(w), ['shop-0:healthy', 'shop-1:healthy']);
    assert.equal((await get(w.url, 'shop.test.local')).status, 200);
  });

  it('other methods with an asterisk target get 400 and eject nothing', async () => {
    for (const method of ['GET', 'POST', 'DELETE']) {
      const raw = await rawExchange(
        w.port,
        `${method} * HTTP/1.1\r\nHost: shop.test.local\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
      );
      assert.match(raw, /^HTTP\/1.1 400 /, method);
      assert.match(raw, /"reason":"\\"\*\\" is a request target only for OPTIONS/);
    }
    assert.deepEqual(states(w), ['shop-0:healthy', 'shop-1:healthy']);
  });

  it('an absolute-form target is routed by its authority and forwarded in origin form', async () => {
    const raw = await rawExchange(
      w.port,
      'GET http://shop.test.local/abs?x=1 HTTP/1.1\r\nHost: elsewhere.test.local\r\nConnection: close\r\n\r\n',
    );
    assert.match(raw, /^HTTP\/1.1 200 /);
    // Whichever instance took it (the other may hold an earlier test's request).
    const seen = ups.flatMap((u) => u.seen).find((s) => s.url.includes('abs'));
    assert.equal(seen?.url, '/abs?x=1');
    assert.equal(seen?.headers.host, 'shop.test.local');
  });

  it('an upload the client breaks off ejects nothing', async () => {
    for (let i = 0; i < 5; i++) {
      await new Promise<void>((resolve) => {
        const s = net.connect(w.port, '127.0.0.1', () => {
          s.write('POST /up HTTP/1.1\r\nHost: shop.test.local\r\nContent-Length: 100000\r\n\r\n');
          s.write('x'.repeat(1000));
          setTimeout(() => {
            s.resetAndDestroy();
            resolve();
          }, 50);
        });
        s.on('error', () => {});
      });
    }
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(states(w), ['shop-0:healthy', 'shop-1:healthy']);
  });
});

describe('blameOf: who an undici error is evidence against', () => {
  it('errors undici raises about the request are the request fault', () => {
    assert.equal(blameOf(new undiciErrors.InvalidArgumentError('invalid request path')), 'request');
    assert.equal(blameOf(new undiciErrors.NotSupportedError('expect header not supported')), 'request');
    assert.equal(blameOf(new undiciErrors.RequestContentLengthMismatchError()), 'request');
  });

  it('connection failures, timeouts and broken answers are the upstream fault', () => {
    const code = (c: string) => Object.assign(new Error(c), { code: c });
    for (const c of [
      'ECONNREFUSED',
      'ECONNRESET',
      'UND_ERR_SOCKET',
      'UND_ERR_CONNECT_TIMEOUT',
      'HPE_INVALID_CHUNK_SIZE',
    ])
      assert.equal(blameOf(code(c)), 'upstream', c);
    assert.equal(blameOf(new undiciErrors.HeadersTimeoutError()), 'upstream');
  });

  it('anything else (a closed pool, an unknown error) is not blamed on the instance', () => {
    assert.equal(blameOf(new undiciErrors.ClientClosedError()), 'local');
    assert.equal(blameOf(new Error('something new')), 'local');
  });
});
