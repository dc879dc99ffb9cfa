// HealthService with an injected clock, timers and prober: exact timing of ejection and
// readmission, jitter bounds, shared loops, the overlay across table swaps, events.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HealthService } from '../../src/health/service.ts';
import type { RouteTable } from '../../src/model/routes.ts';
import {
  collect,
  FakeProber,
  FakeTime,
  OK,
  portRoute,
  REFUSED,
  S503,
  settingsWith,
  T0,
  table,
} from './fakes.ts';

const A = '10.0.0.1:8080';
const B = '10.0.0.2:8080';
const C = '10.0.0.3:8080';

function setup(opts: { random?: () => number } = {}) {
  const time = new FakeTime();
  const prober = new FakeProber(time);
  const { events, emit } = collect();
  const svc = new HealthService({
    domain: 'apps.example.com',
    emit,
    clock: time,
    timers: time,
    prober,
    random: opts.random ?? (() => 0.5),
  });
  return { time, prober, events, svc };
}

function shop(
  settings = settingsWith(),
  instances = [
    { name: 'a', address: A },
    { name: 'b', address: B },
  ],
): RouteTable {
  return table(portRoute('shop', 'http', instances, settings));
}

const id = (name: string, address: string, port = 'http') => `shop/${port}/${name}@${address}`;

describe('active checks', () => {
  test('a new endpoint is pending, probed at once with the project Host header, then healthy', async () => {
    const { time, prober, svc, events } = setup();
    svc.reconcile(shop());
    assert.equal(svc.state(id('a', A)), 'pending');
    assert.deepEqual(prober.callsTo(A), [T0], 'first probe at once, synchronously');
    assert.equal(prober.calls[0].target.host, 'shop.apps.example.com');
    assert.equal(prober.calls[0].target.path, '/');
    await time.advance(0);
    assert.equal(svc.state(id('a', A)), 'healthy');
    assert.equal(events.length, 2);
    svc.close();
  });

  test('TCP checks when the path is null; HTTP path and expect ranges are passed through', async () => {
    const { prober, svc } = setup();
    svc.reconcile(shop(settingsWith({ path: null })));
    assert.equal(prober.calls[0].target.path, null);
    svc.close();
    const s2 = setup();
    s2.svc.reconcile(shop(settingsWith({ path: '/healthz', expect: [{ from: 200, to: 204 }] })));
    assert.equal(s2.prober.calls[0].target.path, '/healthz');
    assert.deepEqual(s2.prober.calls[0].target.expect, [{ from: 200, to: 204 }]);
    s2.svc.close();
  });

  test('gRPC checks: the kind and service reach the prober, and a new service restarts the loop', async () => {
    const { prober, svc } = setup();
    const grpc = (grpcService: string) => settingsWith({ check: 'grpc', path: null, grpcService });
    svc.reconcile(shop(grpc(''), [{ name: 'a', address: A }]));
    assert.equal(prober.calls[0].target.check, 'grpc');
    assert.equal(prober.calls[0].target.grpcService, '');
    svc.reconcile(shop(grpc('echo.Echo'), [{ name: 'a', address: A }]));
    assert.equal(prober.calls.length, 2, 'probed at once with the new service');
    assert.equal(prober.calls[1].target.grpcService, 'echo.Echo');
    svc.reconcile(shop(settingsWith({ path: null }), [{ name: 'a', address: A }]));
    assert.equal(prober.calls.length, 3, 'grpc -> tcp is another probe');
    assert.equal(prober.calls[2].target.check, 'tcp');
    svc.close();
  });

  test('probes repeat every interval with at most 10% jitter, start to start', async () => {
    let x = 0;
    // A spread of values over [0, 1), extremes included.
    const values = [0, 0.999999, 0.5, 0.25, 0.75, 0.1, 0.9];
    const { time, prober, svc } = setup({ random: () => values[x++ % values.length] });
    svc.reconcile(shop(settingsWith({ intervalMs: 2000 }), [{ name: 'a', address: A }]));
    await time.advance(60_000);
    const at = prober.callsTo(A);
    const gaps = at.slice(1).map((t, i) => t - at[i]);
    assert.ok(gaps.length >= 27, `${gaps.length} probes`);
    for (const g of gaps) assert.ok(g >= 1800 && g <= 2200, `gap ${g}`);
    assert.equal(Math.min(...gaps), 1800);
    assert.ok(Math.max(...gaps) > 2199);
    svc.close();
  });

  test('fall failures eject, with fast re-checks; rise successes readmit at the normal interval', async () => {
    const { time, prober, svc, events } = setup();
    svc.reconcile(shop(settingsWith({ fall: 3, rise: 2 }), [{ name: 'a', address: A }]));
    await time.advance(0);
    const start = time.now();
    prober.set(A, S503);
    await time.until(() => svc.state(id('a', A)) === 'unhealthy', 5000);
    const at = prober.callsTo(A).filter((t) => t > start);
    // Regular probe at +1000, then fast re-checks 250 ms apart.
    assert.deepEqual(
      at.map((t) => t - start),
      [1000, 1250, 1500],
    );
    assert.equal(svc.status(id('a', A))?.reason, 'probe: status 503');
    prober.set(A, OK);
    const down = time.now();
    await time.until(() => svc.state(id('a', A)) === 'healthy', 5000);
    assert.equal(time.now() - down, 2000, 'two good probes one interval apart');
    assert.deepEqual(
      events.map((e) => `${e.from}>${e.to}`),
      ['pending>healthy', 'healthy>unhealthy', 'unhealthy>healthy'],
    );
    svc.close();
  });

  test('a hung instance (accepts, never answers) is out within about 2 s wherever the hang falls', async () => {
    const worst: number[] = [];
    for (let offset = 0; offset < 1100; offset += 50) {
      const { time, prober, svc, events } = setup({ random: () => 0.999999 });
      svc.reconcile(shop(settingsWith(), [{ name: 'a', address: A }]));
      await time.advance(offset);
      prober.set(A, 'hang');
      const t = await time.until(() => svc.state(id('a', A)) === 'unhealthy', 10_000);
      worst.push(t);
      const last = events.at(-1)!;
      assert.equal(last.reason, 'probe: timeout after 1000ms');
      assert.equal(last.probeLatencyMs, 1000);
      svc.close();
    }
    // Worst case: the hang begins just after a probe answered; the next probe starts at most 1.1 s
    // later, times out 1 s after that, and the early second probe 250 ms after that.
    assert.ok(Math.max(...worst) <= 2350, `worst ${Math.max(...worst)}`);
    assert.ok(Math.min(...worst) >= 1250);
  });

  test('suspect(): a hint from live traffic starts the probes at once, rate-limited', async () => {
    const worst: number[] = [];
    for (let offset = 0; offset < 1100; offset += 100) {
      const { time, prober, svc } = setup({ random: () => 0.999999 });
      svc.reconcile(shop(settingsWith(), [{ name: 'a', address: A }]));
      await time.advance(offset);
      prober.set(A, 'hang');
      const hangAt = time.now();
      await time.advance(250); // the proxy notices a request waiting 250 ms
      const before = prober.calls.length;
      for (let i = 0; i < 100; i++) svc.suspect(id('a', A));
      assert.ok(prober.calls.length - before <= 1, 'a flood of hints starts at most one probe');
      await time.until(() => svc.state(id('a', A)) === 'unhealthy', 10_000);
      worst.push(time.now() - hangAt);
      svc.suspect(id('a', A)); // ignored once out
      svc.close();
    }
    assert.ok(Math.max(...worst) <= 1500, `worst ${Math.max(...worst)}`);
  });

  test('a refused probe is confirmed 250 ms later', async () => {
    const { time, prober, svc } = setup();
    svc.reconcile(shop(settingsWith(), [{ name: 'a', address: A }]));
    await time.advance(0);
    prober.set(A, REFUSED);
    const elapsed = await time.until(() => svc.state(id('a', A)) === 'unhealthy', 5000);
    assert.equal(elapsed, 1250);
    svc.close();
  });

  test('a slow but healthy target gets at most fall probes at a time and stays healthy', async () => {
    const { time, prober, svc, events } = setup();
    prober.setAll({ after: 400, result: OK });
    svc.reconcile(shop(settingsWith({ fall: 2 }), [{ name: 'a', address: A }]));
    let maxOutstanding = 0;
    for (let i = 0; i < 100; i++) {
      await time.advance(50);
      const open = prober.calls.filter((c) => !c.aborted()).length;
      maxOutstanding = Math.max(maxOutstanding, open);
    }
    assert.equal(svc.state(id('a', A)), 'healthy');
    assert.deepEqual(
      events.map((e) => e.to),
      ['healthy'],
    );
    // Once its usual latency is known, a slow target gets no extra early probes.
    assert.ok(prober.calls.length <= 7, `${prober.calls.length} probes in 5 s`);
    svc.close();
  });

  test('an answer to a newer probe makes an older outstanding one stale', async () => {
    const { time, prober, svc } = setup();
    svc.reconcile(shop(settingsWith(), [{ name: 'a', address: A }]));
    await time.advance(0);
    prober.set(A, 'hang');
    await time.advance(1000); // regular probe starts and hangs
    prober.set(A, OK);
    await time.advance(250); // early probe answers at once
    assert.equal(prober.calls.length, 3);
    assert.equal(prober.calls[1].aborted(), true, 'the hung probe was aborted');
    await time.advance(1000);
    assert.equal(svc.state(id('a', A)), 'healthy');
    assert.equal(svc.status(id('a', A))?.reason, 'probe: ok');
    svc.close();
  });

  test('an endpoint joining an existing loop gets a probe at once', async () => {
    const { time, prober, svc } = setup();
    const s = settingsWith();
    const http = portRoute('shop', 'http', [{ name: 'a', address: A, probeAddress: '10.0.0.1:9000' }], s);
    svc.reconcile(table(http));
    await time.advance(400);
    assert.equal(prober.calls.length, 1);
    const grpc = portRoute(
      'shop',
      'grpc',
      [{ name: 'a', address: '10.0.0.1:7000', probeAddress: '10.0.0.1:9000' }],
      s,
    );
    svc.reconcile(table(http, grpc));
    assert.equal(prober.calls.length, 2, 'probed at once, not at the next tick');
    await time.advance(0);
    assert.equal(svc.state(id('a', '10.0.0.1:7000', 'grpc')), 'healthy');
    svc.close();
  });

  test('endpoints sharing one probe target share one loop', async () => {
    const { time, prober, svc } = setup();
    const s = settingsWith();
    svc.reconcile(
      table(
        portRoute('shop', 'http', [{ name: 'a', address: A, probeAddress: '10.0.0.1:9000' }], s),
        portRoute(
          'shop',
          'grpc',
          [{ name: 'a', address: '10.0.0.1:7000', probeAddress: '10.0.0.1:9000' }],
          s,
        ),
      ),
    );
    await time.advance(5000);
    assert.equal(prober.calls.length, 6, 'one probe per tick, not two');
    assert.equal(svc.state(id('a', A)), 'healthy');
    assert.equal(svc.state(id('a', '10.0.0.1:7000', 'grpc')), 'healthy');
    svc.close();
  });
});

describe('the overlay across table swaps', () => {
  test('unchanged ids keep state, counters and loops across a new table object', async () => {
    const { time, prober, svc, events } = setup();
    svc.reconcile(shop());
    prober.set(B, REFUSED);
    await time.advance(3000);
    assert.equal(svc.state(id('b', B)), 'unhealthy');
    const calls = prober.calls.length;
    const statusA = svc.status(id('a', A));
    const before = events.length;
    svc.reconcile(shop()); // a relist: equal content, new objects
    assert.equal(prober.calls.length, calls, 'no probe restarted');
    assert.equal(svc.status(id('a', A)), statusA);
    assert.equal(svc.state(id('b', B)), 'unhealthy', 'a dead instance is not readmitted by a swap');
    assert.equal(events.length, before);
    await time.advance(5000);
    assert.equal(svc.state(id('b', B)), 'unhealthy');
    svc.close();
  });

  test('changed probe settings restart the loop at once and keep the state', async () => {
    const { time, prober, svc } = setup();
    svc.reconcile(shop());
    await time.advance(500);
    const n = prober.callsTo(A).length;
    svc.reconcile(shop(settingsWith({ path: '/ready', intervalMs: 3000 })));
    assert.equal(prober.callsTo(A).length, n + 1, 'probed at once with the new settings');
    assert.equal(prober.calls.at(-1)?.target.path, '/ready');
    assert.equal(svc.state(id('a', A)), 'healthy');
    await time.advance(10_000);
    const at = prober.callsTo(A).slice(n);
    assert.ok(
      at.slice(1).every((t, i) => t - at[i] >= 2700),
      'new interval in force',
    );
    svc.close();
  });

  test('removed endpoints are pruned with their timers; new ones start pending', async () => {
    const { time, prober, svc } = setup();
    svc.reconcile(shop());
    await time.advance(100);
    svc.reconcile(
      shop(settingsWith(), [
        { name: 'a', address: A },
        { name: 'c', address: C },
      ]),
    );
    assert.equal(svc.status(id('b', B)), undefined);
    assert.equal(svc.state(id('c', C)), 'pending');
    assert.deepEqual(
      svc.list().map((x) => [x.id, x.status.state]),
      [
        [id('a', A), 'healthy'],
        [id('c', C), 'pending'],
      ],
    );
    const bCalls = prober.callsTo(B).length;
    await time.advance(5000);
    assert.equal(prober.callsTo(B).length, bCalls, 'no probe of a removed endpoint');
    svc.reconcile(table());
    assert.equal(svc.list().length, 0);
    assert.equal(time.pendingTimers, 0, 'every timer cleared');
    svc.close();
  });

  test('a pod recreated at a new address is a new endpoint (its id changes)', async () => {
    const { time, svc } = setup();
    svc.reconcile(shop(settingsWith(), [{ name: 'a', address: A }]));
    await time.advance(0);
    svc.reconcile(shop(settingsWith(), [{ name: 'a', address: C }]));
    assert.equal(svc.state(id('a', C)), 'pending');
    assert.equal(svc.status(id('a', A)), undefined);
    svc.close();
  });

  test('close() stops every loop and timer', async () => {
    const { time, prober, svc } = setup();
    prober.setAll('hang');
    svc.reconcile(shop());
    await time.advance(300);
    svc.close();
    assert.equal(time.pendingTimers, 0);
    assert.ok(prober.calls.every((c) => c.aborted()));
    const n = prober.calls.length;
    await time.advance(10_000);
    assert.equal(prober.calls.length, n);
  });
});

describe('passive outlier detection', () => {
  test('connect refused ejects at once, notifies, backs off, and readmits after rise probes', async () => {
    const { time, svc, events } = setup();
    const ejected: Array<[string, string]> = [];
    const off = svc.onEjected((i, r) => ejected.push([i, r]));
    svc.reconcile(
      shop(settingsWith(), [
        { name: 'a', address: A },
        { name: 'b', address: B },
        { name: 'c', address: C },
      ]),
    );
    await time.advance(10);
    svc.report({ endpoint: id('a', A), error: 'connect-refused', durationMs: 1 });
    assert.equal(svc.state(id('a', A)), 'unhealthy');
    assert.deepEqual(ejected, [[id('a', A), 'passive: connect refused']]);
    const ev = events.at(-1)!;
    assert.deepEqual(ev, {
      type: 'health',
      time: T0 + 10,
      project: 'shop',
      port: 'http',
      instance: 'a',
      address: A,
      from: 'healthy',
      to: 'unhealthy',
      ejected: true,
      reason: 'passive: connect refused',
    });
    // Probes pass, but the 1 s hold-out and rise=2 both have to be satisfied.
    const t = await time.until(() => svc.state(id('a', A)) === 'healthy', 10_000);
    assert.ok(t >= 1000 && t <= 2300, `readmitted after ${t} ms`);
    assert.equal(events.at(-1)?.probeLatencyMs, 0);
    // Second ejection soon after: a 2 s hold-out.
    svc.report({ endpoint: id('a', A), error: 'reset', durationMs: 1 });
    const t2 = await time.until(() => svc.state(id('a', A)) === 'healthy', 10_000);
    assert.ok(t2 >= 2000 && t2 <= 3300, `readmitted after ${t2} ms`);
    off();
    svc.report({ endpoint: id('a', A), error: 'reset', durationMs: 1 });
    assert.equal(ejected.length, 2, 'unsubscribed');
    svc.close();
  });

  test('3 consecutive 5xx eject, but never more than half of a route', async () => {
    const { time, svc } = setup();
    svc.reconcile(
      shop(settingsWith(), [
        { name: 'a', address: A },
        { name: 'b', address: B },
      ]),
    );
    await time.advance(10);
    for (const name of ['a', 'b']) {
      const address = name === 'a' ? A : B;
      for (let i = 0; i < 3; i++) svc.report({ endpoint: id(name, address), status: 500, durationMs: 2 });
    }
    assert.equal(svc.state(id('a', A)), 'unhealthy');
    assert.equal(svc.status(id('a', A))?.reason, 'passive: 3 consecutive 5xx');
    assert.equal(svc.state(id('b', B)), 'healthy', 'the last instance answering stays in');
    svc.report({ endpoint: id('b', B), error: 'connect-refused', durationMs: 1 });
    assert.equal(svc.state(id('b', B)), 'unhealthy', 'connect errors are not limited');
    svc.close();
  });

  test('a prober that throws counts as a failed probe and the schedule goes on', async () => {
    const time = new FakeTime();
    let calls = 0;
    const svc = new HealthService({
      domain: 'd',
      clock: time,
      timers: time,
      prober: {
        probe() {
          calls++;
          throw new Error('bad target');
        },
      },
    });
    svc.reconcile(shop(settingsWith(), [{ name: 'a', address: A }]));
    await time.advance(0);
    assert.equal(svc.state(id('a', A)), 'unhealthy');
    assert.equal(svc.status(id('a', A))?.reason, 'probe: error: bad target');
    await time.advance(3000);
    assert.ok(calls >= 3);
    svc.close();
  });

  test('outcomes for unknown endpoints are ignored', () => {
    const { svc } = setup();
    svc.report({ endpoint: 'nope', error: 'reset', durationMs: 1 });
    assert.equal(svc.state('nope'), 'pending');
    assert.equal(svc.status('nope'), undefined);
    svc.close();
  });

  test('an active fall also notifies ejection listeners (in-flight rescue)', async () => {
    const { time, prober, svc } = setup();
    const ejected: string[] = [];
    svc.onEjected((i) => ejected.push(i));
    svc.reconcile(shop(settingsWith(), [{ name: 'a', address: A }]));
    await time.advance(0);
    prober.set(A, 'hang');
    await time.advance(3000);
    assert.deepEqual(ejected, [id('a', A)]);
    svc.close();
  });

  test('a throwing listener does not break the service', async () => {
    const time = new FakeTime();
    const warnings: string[] = [];
    const svc = new HealthService({
      domain: 'd',
      emit: () => {
        throw new Error('boom');
      },
      clock: time,
      timers: time,
      prober: new FakeProber(time),
      log: (_level, msg) => warnings.push(msg),
    });
    svc.onEjected(() => {
      throw new Error('boom');
    });
    svc.reconcile(shop());
    await time.advance(0);
    svc.report({ endpoint: id('a', A), error: 'reset', durationMs: 1 });
    assert.equal(svc.state(id('a', A)), 'unhealthy');
    assert.ok(warnings.includes('ejection listener failed'));
    assert.ok(warnings.includes('health event listener failed'));
    svc.close();
  });
});
