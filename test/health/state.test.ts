// The per-endpoint state machine: fall/rise, passive ejection, hold-out backoff, the 5xx rule.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EndpointHealth, HOLD_RESET_AFTER_MS, holdOutMs } from '../../src/health/state.ts';

const ok = (h: EndpointHealth, now: number, fall = 2, rise = 2) => h.probe(true, 'ok (200)', now, fall, rise);
const bad = (h: EndpointHealth, now: number, fall = 2, rise = 2) =>
  h.probe(false, 'status 503', now, fall, rise);
const yes = () => true;

describe('active checks', () => {
  test('the first probe decides for a pending endpoint', () => {
    const a = new EndpointHealth(0);
    assert.deepEqual(ok(a, 5), { from: 'pending', to: 'healthy', reason: 'probe: ok', ejected: false });
    const b = new EndpointHealth(0);
    assert.deepEqual(bad(b, 5), {
      from: 'pending',
      to: 'unhealthy',
      reason: 'probe: status 503',
      ejected: false,
    });
    assert.equal(b.status().since, 5);
  });

  test('a new endpoint that failed its first probe is admitted by one good probe, not rise', () => {
    const h = new EndpointHealth(0);
    bad(h, 0, 2, 3);
    bad(h, 1000, 2, 3);
    assert.deepEqual(ok(h, 2000, 2, 3), {
      from: 'unhealthy',
      to: 'healthy',
      reason: 'probe: ok',
      ejected: false,
    });
    // Once it has been good, rise applies.
    bad(h, 3000, 1, 3);
    assert.equal(h.state, 'unhealthy');
    assert.equal(ok(h, 4000, 1, 3), undefined);
  });

  test('fall consecutive failures take a healthy endpoint out; a success in between resets', () => {
    const h = new EndpointHealth(0);
    ok(h, 0);
    assert.equal(bad(h, 1, 3), undefined);
    assert.equal(bad(h, 2, 3), undefined);
    assert.equal(ok(h, 3, 3), undefined);
    assert.equal(bad(h, 4, 3), undefined);
    assert.equal(bad(h, 5, 3), undefined);
    assert.equal(h.falling(), true);
    assert.equal(bad(h, 6, 3)?.to, 'unhealthy');
    assert.equal(h.falling(), false);
  });

  test('rise consecutive successes bring it back', () => {
    const h = new EndpointHealth(0);
    ok(h, 0);
    bad(h, 0, 1);
    assert.equal(ok(h, 1, 2, 3), undefined);
    assert.equal(ok(h, 2, 2, 3), undefined);
    assert.equal(bad(h, 3, 2, 3), undefined);
    assert.equal(ok(h, 4, 2, 3), undefined);
    assert.equal(ok(h, 5, 2, 3), undefined);
    assert.deepEqual(ok(h, 6, 2, 3), {
      from: 'unhealthy',
      to: 'healthy',
      reason: 'probe: ok 3 times',
      ejected: false,
    });
  });

  test('status() is a stable frozen object until something changes', () => {
    const h = new EndpointHealth(0);
    const s1 = h.status();
    assert.equal(h.status(), s1);
    assert.ok(Object.isFrozen(s1));
    ok(h, 1);
    assert.notEqual(h.status(), s1);
    assert.equal(h.status().state, 'healthy');
  });
});

describe('passive outlier detection', () => {
  for (const error of [
    'connect-refused',
    'connect-timeout',
    'connect-error',
    'reset',
    'response-timeout',
  ] as const) {
    test(`${error} ejects at once`, () => {
      const h = new EndpointHealth(0);
      ok(h, 0);
      const t = h.passive({ endpoint: 'x', error, durationMs: 3 }, 10, yes);
      assert.equal(t?.to, 'unhealthy');
      assert.equal(t?.ejected, true);
      assert.equal(t?.reason, `passive: ${error.replace(/-/g, ' ')}`);
      assert.equal(h.status().ejected, true);
    });
  }

  test('cancelled and 4xx say nothing; a 2xx resets the 5xx count', () => {
    const h = new EndpointHealth(0);
    ok(h, 0);
    assert.equal(h.passive({ endpoint: 'x', error: 'cancelled', durationMs: 1 }, 1, yes), undefined);
    for (const status of [500, 502, 200, 503, 404, 503]) {
      assert.equal(
        h.passive({ endpoint: 'x', status, durationMs: 1 }, 1, yes),
        undefined,
        `status ${status}`,
      );
    }
    assert.equal(h.passive({ endpoint: 'x', status: 500, durationMs: 1 }, 2, yes), undefined);
    assert.equal(
      h.passive({ endpoint: 'x', status: 500, durationMs: 1 }, 2, yes)?.reason,
      'passive: 3 consecutive 5xx',
    );
  });

  test('invalid responses count like 5xx', () => {
    const h = new EndpointHealth(0);
    ok(h, 0);
    h.passive({ endpoint: 'x', error: 'invalid-response', durationMs: 1 }, 1, yes);
    h.passive({ endpoint: 'x', status: 502, durationMs: 1 }, 1, yes);
    assert.equal(
      h.passive({ endpoint: 'x', error: 'invalid-response', durationMs: 1 }, 1, yes)?.to,
      'unhealthy',
    );
  });

  test('the 5xx guard can refuse; the count stays armed for the next 5xx', () => {
    const h = new EndpointHealth(0);
    ok(h, 0);
    let allow = false;
    for (let i = 0; i < 4; i++)
      assert.equal(
        h.passive({ endpoint: 'x', status: 500, durationMs: 1 }, 1, () => allow),
        undefined,
      );
    allow = true;
    assert.equal(h.passive({ endpoint: 'x', status: 500, durationMs: 1 }, 1, () => allow)?.to, 'unhealthy');
  });

  test('readmission needs the hold-out to pass and then rise good probes', () => {
    const h = new EndpointHealth(0);
    ok(h, 0);
    h.passive({ endpoint: 'x', error: 'connect-refused', durationMs: 1 }, 1000, yes);
    assert.equal(h.holdUntil, 2000);
    assert.equal(ok(h, 1200), undefined);
    assert.equal(ok(h, 1900), undefined, 'two good probes, but still held out');
    assert.deepEqual(ok(h, 2000), {
      from: 'unhealthy',
      to: 'healthy',
      reason: 'probe: ok 3 times',
      ejected: false,
    });
    assert.equal(h.status().ejected, false);
  });

  test('failures of requests already in flight do not stack hold-outs', () => {
    const h = new EndpointHealth(0);
    ok(h, 0);
    h.passive({ endpoint: 'x', error: 'reset', durationMs: 1 }, 100, yes);
    for (let i = 0; i < 10; i++)
      assert.equal(h.passive({ endpoint: 'x', error: 'reset', durationMs: 1 }, 100, yes), undefined);
    assert.equal(h.ejections, 1);
    assert.equal(h.holdUntil, 1100);
  });

  test('repeated ejections back off 1 s, 2 s, 4 s ... 30 s, and reset after a quiet minute', () => {
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6, 7, 10].map(holdOutMs),
      [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000],
    );
    const h = new EndpointHealth(0);
    ok(h, 0);
    let now = 0;
    const holds: number[] = [];
    for (let i = 0; i < 7; i++) {
      h.passive({ endpoint: 'x', error: 'connect-refused', durationMs: 1 }, now, yes);
      holds.push(h.holdUntil - now);
      now = h.holdUntil;
      ok(h, now);
      ok(h, now);
      assert.equal(h.state, 'healthy');
    }
    assert.deepEqual(holds, [1000, 2000, 4000, 8000, 16000, 30000, 30000]);
    now += HOLD_RESET_AFTER_MS + 1;
    h.passive({ endpoint: 'x', error: 'connect-refused', durationMs: 1 }, now, yes);
    assert.equal(h.holdUntil - now, 1000);
  });

  test('a probe failure while ejected keeps the passive reason', () => {
    const h = new EndpointHealth(0);
    ok(h, 0);
    h.passive({ endpoint: 'x', error: 'connect-refused', durationMs: 1 }, 10, yes);
    bad(h, 20);
    assert.equal(h.status().reason, 'passive: connect refused');
  });
});
