import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  cpuUsPerRequest,
  type PairedWindow,
  summarizePaired,
  throughputCost,
} from '../../bench/lib/paired.ts';

const side = (requests: number, cpuS: number, errors = 0) => ({
  requests,
  cpuS,
  rps: requests / 5,
  errors,
});

test('throughput cost compares CPU per request, not the shared-core request rates', () => {
  // B needs 100 us per request, A 80 us: on a whole core B serves 20% fewer requests, even though
  // while sharing the core (B got more of it) their request counts were equal.
  const w: PairedWindow = { window: 0, a: side(30_000, 2.4), b: side(30_000, 3.0) };
  assert.equal(cpuUsPerRequest(w.a), 80);
  assert.equal(cpuUsPerRequest(w.b), 100);
  assert.ok(Math.abs(throughputCost(w) - 0.2) < 1e-12);
  // The same program on both sides costs nothing; a cheaper B is a negative cost.
  assert.equal(throughputCost({ window: 1, a: side(10_000, 1), b: side(20_000, 2) }), 0);
  assert.ok(throughputCost({ window: 2, a: side(10_000, 1), b: side(10_000, 0.5) }) < 0);
});

test('the summary is the median and middle half over windows, and skips windows without requests', () => {
  const ws: PairedWindow[] = [0.02, 0.1, 0.06, 0.08, 0.04].map((cost, i) => ({
    window: i,
    a: side(10_000, 1 - cost),
    b: side(10_000, 1, i === 0 ? 3 : 0),
  }));
  ws.push({ window: 5, a: side(0, 1), b: side(10_000, 1) });
  const s = summarizePaired(ws);
  assert.equal(s.windows, 5);
  assert.ok(Math.abs(s.cost - 0.06) < 1e-9);
  assert.ok(Math.abs(s.costQ1 - 0.04) < 1e-9);
  assert.ok(Math.abs(s.costQ3 - 0.08) < 1e-9);
  assert.equal(s.errors, 3);
  assert.equal(s.rpsRatio, 1);
});
