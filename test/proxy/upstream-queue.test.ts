// Upstream: Wharf's admission to an address's pooled connections (a FIFO that waiters can leave).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Pool } from 'undici';
import { Upstream, type Waiter } from '../../src/proxy/upstreams.ts';

function waiter(name: string, log: string[]): Waiter {
  return {
    admitted: () => log.push(`${name} admitted`),
    evicted: () => log.push(`${name} evicted`),
  };
}

describe('Upstream admission', () => {
  it('admits up to its connections at once, then queues in order', () => {
    const log: string[] = [];
    const up = new Upstream({} as Pool, 2);
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((n) => waiter(n, log));
    assert.equal(up.acquire(a), true);
    assert.equal(up.acquire(b), true);
    assert.equal(up.acquire(c), false);
    assert.equal(up.acquire(d), false);
    assert.deepEqual([up.active, up.waiting], [2, 2]);
    up.release();
    assert.deepEqual(log, ['c admitted']);
    up.release();
    assert.deepEqual(log, ['c admitted', 'd admitted']);
    assert.deepEqual([up.active, up.waiting], [2, 0]);
    up.release();
    up.release();
    assert.deepEqual([up.active, up.waiting], [0, 0]);
  });

  it('a waiter that leaves (deadline, client gone) is never admitted; leaving twice is harmless', () => {
    const log: string[] = [];
    const up = new Upstream({} as Pool, 1);
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((n) => waiter(n, log));
    up.acquire(a);
    up.acquire(b);
    up.acquire(c);
    up.acquire(d);
    up.leave(c); // from the middle
    up.leave(c);
    up.leave(a); // not queued: nothing happens
    assert.equal(up.waiting, 2);
    up.release();
    up.leave(d); // the last
    up.release();
    assert.deepEqual(log, ['b admitted']);
    assert.deepEqual([up.active, up.waiting], [0, 0]);
    // Nobody jumps the queue while someone waits; a free slot goes to the next arrival when none does.
    assert.equal(up.acquire(a), true);
  });

  it('a newcomer waits behind the queue even when a slot is free for a moment', () => {
    const log: string[] = [];
    const up = new Upstream({} as Pool, 1);
    const [a, b, c] = ['a', 'b', 'c'].map((n) => waiter(n, log));
    up.acquire(a);
    up.acquire(b);
    // a's slot goes to b in release(): c, arriving after, queues.
    up.release();
    assert.equal(up.acquire(c), false);
    assert.deepEqual(log, ['b admitted']);
  });

  it('evictAll tells every waiter, in order, and empties the queue', () => {
    const log: string[] = [];
    const up = new Upstream({} as Pool, 1);
    const ws = ['a', 'b', 'c'].map((n) => waiter(n, log));
    for (const w of ws) up.acquire(w);
    up.evictAll();
    assert.deepEqual(log, ['b evicted', 'c evicted']);
    assert.equal(up.waiting, 0);
  });

  it('counts streaming uploads per client', () => {
    const up = new Upstream({} as Pool, 1);
    up.countUpload('10.0.0.1', 1);
    up.countUpload('10.0.0.1', 1);
    up.countUpload('10.0.0.2', 1);
    assert.equal(up.uploadsFrom('10.0.0.1'), 2);
    up.countUpload('10.0.0.1', -1);
    up.countUpload('10.0.0.1', -1);
    assert.equal(up.uploadsFrom('10.0.0.1'), 0);
    assert.equal(up.uploadsFrom('10.0.0.2'), 1);
  });
});
