import assert from 'node:assert/strict';
import { test } from 'node:test';
import { busyMs, topSelfTime } from '../../bench/lib/cpuprofile.ts';

test('self time is summed per function across call paths and ranked', () => {
  const frame = (functionName: string, lineNumber: number) => ({
    functionName,
    url: 'file:///app/node_modules/undici/lib/x.js',
    lineNumber,
  });
  const profile = {
    nodes: [
      { id: 1, callFrame: { functionName: '(root)', url: '', lineNumber: -1 }, children: [2, 3] },
      { id: 2, callFrame: frame('parse', 9) },
      { id: 3, callFrame: frame('write', 19), children: [4] },
      { id: 4, callFrame: frame('parse', 9) }, // same function on another path
    ],
    startTime: 0,
    endTime: 4000,
    samples: [2, 3, 4, 4],
    timeDeltas: [0, 1000, 1000, 1000],
  };
  const top = topSelfTime(profile, 5);
  assert.equal(top[0]!.fn, 'parse');
  assert.equal(top[0]!.where, 'node_modules/undici/lib/x.js:10');
  // samples 2 (1000 us) + 4 (1000 us) + last sample (mean 1000 us)
  assert.equal(top[0]!.selfMs, 3);
  assert.equal(top[1]!.fn, 'write');
  assert.ok(Math.abs(top[0]!.share - 0.75) < 1e-9);
  assert.equal(busyMs(profile), 4);
  assert.deepEqual(topSelfTime({ nodes: [], startTime: 0, endTime: 1 }), []);
});
