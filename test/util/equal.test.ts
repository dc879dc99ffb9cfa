// sameData: equality of plain data as JSON sees it, without building the JSON.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { sameData } from '../../src/util/equal.ts';

/** JSON with object keys sorted: what "the same JSON, key order aside" means. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(
          Object.keys(x)
            .sort()
            .map((k) => [k, x[k]]),
        )
      : x,
  );
}

describe('sameData', () => {
  test('agrees with comparing sorted-key JSON, on any pair of JSON values', () => {
    const small = fc.jsonValue({ maxDepth: 3 });
    fc.assert(
      fc.property(small, small, (a, b) => {
        assert.equal(sameData(a, b), canonical(a) === canonical(b));
        assert.equal(sameData(a, structuredClone(a)), true);
      }),
      { numRuns: 2000 },
    );
  });

  test('keys whose value is undefined count as missing, as in JSON; arrays are not objects', () => {
    assert.equal(sameData({ a: 1, b: undefined }, { a: 1 }), true);
    assert.equal(sameData({ a: 1 }, { a: 1, b: undefined }), true);
    assert.equal(sameData({ a: 1 }, { a: 1, b: null }), false);
    assert.equal(sameData([], {}), false);
    assert.equal(sameData({ 0: 'x' }, ['x']), false);
    assert.equal(sameData(null, {}), false);
    assert.equal(sameData({ host: '10.0.0.1', port: 80 }, { port: 80, host: '10.0.0.1' }), true);
    assert.equal(sameData({ host: '10.0.0.1', port: 80 }, { host: '10.0.0.1', port: 81 }), false);
  });
});
