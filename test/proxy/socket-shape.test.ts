// The data plane's and the admin port's sockets must have the same own properties, in the same
// order, at the same point in their lives: V8 gives objects built the same way the same hidden
// class, and node's HTTP internals, optimised for the data plane's sockets, are then not
// deoptimised by the first /metrics scrape (src/util/socket-shape.ts).

import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';
import { type Started, startWharf } from '../support/wharf.ts';

/** The own keys of a server-side socket when its first and second requests arrive. */
function recordSocketKeys(server: http.Server): string[][] {
  const seen: string[][] = [];
  server.prependListener('request', (req: IncomingMessage) => {
    seen.push(Reflect.ownKeys(req.socket).map(String));
  });
  return seen;
}

/** Two requests on one keep-alive connection. */
async function twoRequests(url: string, host?: string): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    for (let i = 0; i < 2; i++) {
      await new Promise<void>((resolve, reject) => {
        http
          .get(url, { agent, headers: host ? { host } : {} }, (res) => {
            res.resume();
            res.on('end', resolve);
          })
          .on('error', reject);
      });
    }
  } finally {
    agent.destroy();
  }
}

describe('socket shape: data plane and admin port', () => {
  let up: TestUpstream;
  let w: Started;
  before(async () => {
    up = await startUpstream('up');
    w = await startWharf({ projects: { p: { instances: { a: { http: up.address } } } } });
  });
  after(async () => {
    await w.stop();
    await up.close();
  });

  it('gives sockets the same properties in the same order on both listeners', async () => {
    const front = recordSocketKeys(w.wharf.front.h1);
    const admin = recordSocketKeys(w.wharf.admin.server);
    await twoRequests(`${w.url}/`, 'p.test.local');
    await twoRequests(`${w.admin}/healthz`);
    assert.equal(front.length, 2);
    assert.equal(admin.length, 2);
    assert.deepEqual(admin[0], front[0], 'first request');
    assert.deepEqual(admin[1], front[1], 'second request on the same connection');
    // What made them differ: the data plane reads the client address (access log, x-forwarded-for),
    // which caches it on the socket.
    assert.ok(front[1]!.includes('_peername'), 'the data plane caches the peer address');
  });
});
