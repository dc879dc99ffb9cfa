// HTTP/1.1 pipelining (issue 20, item 8): a request sent behind another runs when its turn comes, so
// nothing goes upstream for a request behind an answer that closes the connection.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { rawExchange } from '../support/raw.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';
import { type Started, startWharf } from '../support/wharf.ts';

const H = 'Host: shop.test.local\r\n';

describe('pipelined requests', () => {
  let up: TestUpstream;
  let w: Started;
  before(async () => {
    up = await startUpstream('shop-0', (req, res) => {
      // Slow enough that the request behind has been parsed while this one is upstream.
      setTimeout(() => res.end(`answer ${req.url}`), 100);
    });
    w = await startWharf({
      projects: { shop: { instances: { 'shop-0': { http: up.address } } } },
      limits: { 'max-headers': 8 },
    });
    const until = Date.now() + 3000;
    while (w.wharf.health.list()[0]?.status.state !== 'healthy') {
      if (Date.now() > until) assert.fail('instance not healthy');
      await new Promise((r) => setTimeout(r, 20));
    }
  });
  after(async () => {
    await w.stop();
    await up.close();
  });

  const behind = (raw: string) => `${raw}GET /behind HTTP/1.1\r\n${H}\r\n`;
  const cases: [string, string][] = [
    ['the client asked to close', `GET /first HTTP/1.1\r\n${H}Connection: close\r\n\r\n`],
    [
      'Wharf refused the first with a closing answer (431)',
      `GET /first HTTP/1.1\r\n${H}${Array.from({ length: 12 }, (_, i) => `x-h${i}: v\r\n`).join('')}\r\n`,
    ],
    [
      'Wharf refused an upload it did not read (404 for an unknown host)',
      'POST /first HTTP/1.1\r\nHost: nope.test.local\r\nContent-Length: 5\r\n\r\nhello',
    ],
  ];
  for (const [name, first] of cases) {
    it(`nothing behind a closing answer runs upstream: ${name}`, async () => {
      const raw = await rawExchange(w.port, behind(first), 1500);
      assert.equal(raw.match(/HTTP\/1.1 \d{3}/g)?.length, 1, 'one answer, then the connection closed');
      assert.match(raw, /\r\nconnection: close\r\n/i);
      await new Promise((r) => setTimeout(r, 150));
      assert.equal(
        up.seen.filter((s) => s.url === '/behind').length,
        0,
        'the request behind never reached the upstream',
      );
    });
  }

  it('pipelined requests on a kept-alive connection are all answered, in order', async () => {
    const raw = await rawExchange(
      w.port,
      `GET /p1 HTTP/1.1\r\n${H}\r\nGET /p2 HTTP/1.1\r\n${H}\r\nGET /p3 HTTP/1.1\r\n${H}Connection: close\r\n\r\n`,
      3000,
    );
    assert.deepEqual(raw.match(/answer \/p\d/g), ['answer /p1', 'answer /p2', 'answer /p3']);
  });
});
