import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDurationMs, parseWrk, wrkArgs } from '../../bench/lib/wrk.ts';

const SAMPLE = `Running 10s test @ http://127.0.0.1:18201/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.61ms    2.05ms   1.02s    92.11%
    Req/Sec    17.11k     1.20k   19.40k    80.00%
  Latency Distribution
     50%    3.44ms
     75%    4.01ms
     90%  812.00us
     99%   12.76ms
  170110 requests in 10.00s, 30.12MB read
  Socket errors: connect 0, read 3, write 1, timeout 2
  Non-2xx or 3xx responses: 5
Requests/sec:  17011.00
Transfer/sec:      3.01MB
`;

test('parses rps, percentiles in mixed units, errors and non-2xx from wrk --latency output', () => {
  const r = parseWrk(SAMPLE);
  assert.equal(r.rps, 17011);
  assert.equal(r.requests, 170110);
  assert.equal(r.seconds, 10);
  assert.equal(r.p50ms, 3.44);
  assert.equal(r.p90ms, 0.812);
  assert.equal(r.p99ms, 12.76);
  assert.equal(r.maxMs, 1020);
  assert.deepEqual(r.socketErrors, { connect: 0, read: 3, write: 1, timeout: 2 });
  assert.equal(r.non2xx, 5);
});

test('output without --latency parses with NaN percentiles; garbage is rejected', () => {
  const noLat = SAMPLE.replace(/ {2}Latency Distribution[\s\S]*?99%.*\n/, '');
  const r = parseWrk(noLat);
  assert.equal(r.rps, 17011);
  assert.ok(Number.isNaN(r.p99ms));
  assert.throws(() => parseWrk('unable to connect to 127.0.0.1:1 Connection refused'));
  assert.throws(() => parseDurationMs('3 parsecs'));
  assert.equal(parseDurationMs('2.00m'), 120_000);
});

test('wrk command line pins to the load CPU and sends the Host header', () => {
  assert.deepEqual(
    wrkArgs({ url: 'http://127.0.0.1:1/', durationS: 10, host: 'bench.bench.local', cpus: '1' }),
    [
      'taskset',
      '-c',
      '1',
      'wrk',
      '-t1',
      '-c64',
      '-d10s',
      '--latency',
      '-H',
      'Host: bench.bench.local',
      'http://127.0.0.1:1/',
    ],
  );
});
