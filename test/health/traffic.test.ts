// Traffic-aware probing and node-correlated urgency (issue 24), with an injected clock and prober:
// idle instances probed once per idle interval, answering instances judged by their answers,
// suspects probed at once and fast, and one connect timeout making a whole node urgent.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HealthService } from '../../src/health/service.ts';
import type { AttemptOutcome } from '../../src/model/outcome.ts';
import {
  collect,
  FakeProber,
  FakeTime,
  type InstanceSpec,
  OK,
  portRoute,
  REFUSED,
  settingsWith,
  T0,
  table,
} from './fakes.ts';

const A = '10.0.0.1:8080';
const IDLE = 10_000;
const id = (name: string, address: string) => `shop/http/${name}@${address}`;

function setup(instances: InstanceSpec[] = [{ name: 'a', address: A }], idleIntervalMs = IDLE) {
  const time = new FakeTime();
  const prober = new FakeProber(time);
  const { events, emit } = collect();
  const svc = new HealthService({
    domain: 'apps.example.com',
    emit,
    clock: time,
    timers: time,
    prober,
    random: () => 0.5,
    idleIntervalMs,
  });
  svc.reconcile(table(portRoute('shop', 'http', instances, settingsWith())));
  return { time, prober, events, svc };
}

const answer = (endpoint: string, status = 200): AttemptOutcome => ({ endpoint, status, durationMs: 3 });

/** Reports a request to `endpoint` every `every` ms for `ms` ms. */
async function traffic(
  time: FakeTime,
  svc: HealthService,
  ms: number,
  every: number,
  outcome: () => AttemptOutcome,
): Promise<void> {
  for (let t = 0; t < ms; t += every) {
    svc.report(outcome());
    await time.advance(every);
  }
}

const gaps = (at: number[]) => at.slice(1).map((t, i) => t - at[i]);

describe('traffic-aware probing', () => {
  test('an idle instance is probed once per idle interval (jitter taken downwards), not every interval', async () => {
    const { time, prober, svc } = setup();
    await time.advance(60_000);
    const at = prober.callsTo(A).map((t) => t - T0);
    assert.equal(at[0], 0, 'a new instance is probed at once');
    // random() = 0.5: the first idle gap at a random point of the idle interval (so a batch started
    // together spreads out), then 10 s x (1 - 0.1 x 0.5).
    assert.deepEqual(gaps(at), [5000, 9500, 9500, 9500, 9500, 9500]);
    svc.close();
  });

  test('without an idle interval every instance is probed every interval, as before', async () => {
    const { time, prober, svc } = setup(undefined, 0);
    await time.advance(10_000);
    assert.equal(prober.callsTo(A).length, 11);
    svc.close();
  });

  test('an instance answering requests is not probed at the interval, but still once per idle interval', async () => {
    const { time, prober, svc } = setup();
    await time.advance(0);
    await traffic(time, svc, 60_000, 100, () => answer(id('a', A)));
    const at = prober.callsTo(A).map((t) => t - T0);
    assert.ok(at.length >= 6 && at.length <= 7, `probes at ${at.join(', ')}`);
    for (const g of gaps(at)) assert.ok(g >= 10_000 && g <= 11_100, `gap ${g}`);
    assert.equal(svc.state(id('a', A)), 'healthy');
    svc.close();
  });

  test('requests that end without a good answer (5xx) bring the probes back to the interval', async () => {
    const { time, prober, svc } = setup();
    await time.advance(3000); // idle: the next probe is 9.5 s after the first
    assert.equal(prober.callsTo(A).length, 1);
    await traffic(time, svc, 10_000, 500, () => answer(id('a', A), 500));
    const at = prober.callsTo(A).filter((t) => t >= T0 + 3000);
    // Probed at once on the first 5xx, then at the interval (never per error): about 10, not 20.
    assert.equal(at[0], T0 + 3000);
    assert.ok(at.length >= 9 && at.length <= 11, `${at.length} probes in 10 s`);
    for (const g of gaps(at)) assert.ok(g >= 900 && g <= 1100, `gap ${g}`);
    svc.close();
  });

  test('a suspect is probed at once and fast until it settles; a real answer settles it', async () => {
    const { time, prober, svc } = setup();
    await time.advance(2000);
    prober.set(A, { ok: false, reason: 'status 503', status: 503 });
    svc.suspect(id('a', A));
    assert.equal(prober.callsTo(A).at(-1), T0 + 2000, 'at once');
    await time.advance(0);
    assert.equal(svc.state(id('a', A)), 'healthy', 'one failure: still in service, re-checked fast');
    // A real answer arrives before the fast re-check: it counts as a passing probe.
    svc.report(answer(id('a', A)));
    prober.set(A, OK);
    await time.advance(240);
    await time.advance(5000);
    const after = prober.callsTo(A).filter((t) => t > T0 + 2000);
    assert.ok(after.length <= 1, `settled: ${after.map((t) => t - T0).join(', ')}`);
    assert.equal(svc.state(id('a', A)), 'healthy');
    svc.close();
  });

  test('a suspect that keeps failing is out after fall fast re-checks', async () => {
    const { time, prober, svc } = setup();
    await time.advance(2000);
    prober.set(A, { ok: false, reason: 'status 503', status: 503 });
    svc.suspect(id('a', A));
    const took = await time.until(() => svc.state(id('a', A)) === 'unhealthy', 2000);
    assert.equal(took, 250);
    svc.close();
  });

  test('a killed idle instance is out within the idle interval plus one fast re-check', async () => {
    const worst: number[] = [];
    for (let offset = 0; offset < IDLE; offset += 700) {
      const { time, prober, svc } = setup();
      await time.advance(offset);
      prober.set(A, REFUSED);
      worst.push(await time.until(() => svc.state(id('a', A)) === 'unhealthy', 30_000));
      svc.close();
    }
    assert.ok(Math.max(...worst) <= IDLE + 250, `worst ${Math.max(...worst)} ms`);
  });

  test('a refused request ejects at once and probes it; an answer never readmits an unhealthy one', async () => {
    const { time, prober, svc, events } = setup();
    await time.advance(3000);
    prober.set(A, REFUSED);
    svc.report({ endpoint: id('a', A), error: 'connect-refused', durationMs: 1 });
    assert.equal(svc.state(id('a', A)), 'unhealthy');
    assert.equal(prober.callsTo(A).at(-1), T0 + 3000, 'the suspect is probed at once');
    svc.report(answer(id('a', A))); // a request sent before the ejection answers late
    assert.equal(svc.state(id('a', A)), 'unhealthy');
    await time.advance(3000);
    // While out it is probed at the interval (to readmit it), not the idle interval.
    assert.ok(prober.callsTo(A).filter((t) => t > T0 + 3000).length >= 2);
    assert.deepEqual(
      events.map((e) => e.to),
      ['healthy', 'unhealthy'],
    );
    svc.close();
  });

  test('a pending instance that answers a request is healthy', async () => {
    const time = new FakeTime();
    const prober = new FakeProber(time, 'hang');
    const { events, emit } = collect();
    const svc = new HealthService({ emit, clock: time, timers: time, prober, idleIntervalMs: IDLE });
    svc.reconcile(table(portRoute('shop', 'http', [{ name: 'a', address: A }], settingsWith())));
    assert.equal(svc.state(id('a', A)), 'pending');
    svc.report(answer(id('a', A)));
    assert.equal(svc.state(id('a', A)), 'healthy');
    assert.equal(events[0].reason, 'answered a request');
    svc.close();
  });
});

test('a probe that could not be made from this host (no descriptor) counts for nothing, and is logged', async () => {
  const time = new FakeTime();
  const prober = new FakeProber(time);
  const { events, emit } = collect();
  const logged: string[] = [];
  const svc = new HealthService({
    emit,
    clock: time,
    timers: time,
    prober,
    random: () => 0.5,
    log: (_level, msg, fields) => logged.push(`${msg} ${JSON.stringify(fields)}`),
  });
  svc.reconcile(table(portRoute('shop', 'http', [{ name: 'a', address: A }], settingsWith())));
  await time.advance(0);
  prober.set(A, { ok: false, reason: 'local error EMFILE', local: true });
  await time.advance(10_000);
  assert.ok(prober.callsTo(A).length >= 10, 'still probed on schedule');
  assert.equal(svc.state(id('a', A)), 'healthy');
  assert.deepEqual(
    events.map((e) => e.to),
    ['healthy'],
  );
  assert.equal(logged.length, 1, 'one log line per 10 s');
  assert.match(logged[0], /EMFILE/);
  svc.close();
});

describe('failures that come together: nodes', () => {
  const onNode = (n: number, node: string, from = 1): InstanceSpec[] =>
    Array.from({ length: n }, (_, i) => ({ name: `${node}-${i}`, address: `10.1.${from}.${i}:8080`, node }));

  test('one connect timeout makes every pod on its node urgent: all out within 3 s, other nodes untouched', async () => {
    const dead = onNode(20, 'n1', 1);
    const alive = onNode(20, 'n2', 2);
    const { time, prober, svc } = setup([...dead, ...alive]);
    await time.advance(6000); // all probed at 0 and 5 s; the next probes are at 14.5 s
    for (const p of dead) prober.set(p.address, 'blackhole');
    const before = prober.calls.length;
    // The node dies now; a request to one of its pods finds it first.
    svc.report({ endpoint: id('n1-0', dead[0].address), error: 'connect-timeout', durationMs: 2000 });
    const took = await time.until(
      () => dead.every((p) => svc.state(id(p.name, p.address)) === 'unhealthy'),
      10_000,
    );
    assert.ok(took <= 3000, `all 20 pods of the dead node out after ${took} ms`);
    assert.ok(
      alive.every((p) => svc.state(id(p.name, p.address)) === 'healthy'),
      'no pod of another node ejected',
    );
    const probedAlive = prober.calls.slice(before).filter((c) => c.target.address.startsWith('10.1.2.'));
    assert.equal(probedAlive.length, 0, 'no extra probe to another node');
    const status = svc.status(id('n1-5', dead[5].address));
    assert.match(status?.reason ?? '', /connect timeout after 1000ms/);
    svc.close();
  });

  test('an idle dead node is found from its first probe: every pod within 3 s of it', async () => {
    const dead = onNode(30, 'n1', 1);
    let x = 0;
    const time = new FakeTime();
    const prober = new FakeProber(time);
    const svc = new HealthService({
      clock: time,
      timers: time,
      prober,
      random: () => (x++ * 0.618) % 1,
      idleIntervalMs: IDLE,
    });
    svc.reconcile(table(portRoute('shop', 'http', dead, settingsWith())));
    await time.advance(3000);
    for (const p of dead) prober.set(p.address, 'blackhole');
    const died = time.now();
    await time.until(() => prober.calls.some((c) => c.at > died), IDLE);
    const first = prober.calls.find((c) => c.at > died)!.at;
    await time.until(() => dead.every((p) => svc.state(id(p.name, p.address)) === 'unhealthy'), 20_000);
    assert.ok(time.now() - first <= 3000, `all out ${time.now() - first} ms after the first probe`);
    svc.close();
  });
});
