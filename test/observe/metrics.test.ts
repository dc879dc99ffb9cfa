import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Metrics } from '../../src/observe/metrics.ts';
import { parseExposition, value } from './prom-text.ts';

describe('metrics', () => {
  test('exposition parses and changes with traffic', async () => {
    let dropped = 0;
    const m = new Metrics({ droppedLogLines: () => dropped, defaultMetrics: true });
    const before = parseExposition(await m.render());
    assert.equal(before.types.get('wharf_requests_total'), 'counter');
    assert.equal(before.types.get('wharf_request_duration_seconds'), 'histogram');
    assert.equal(value(before, 'wharf_requests_total', { project: 'shop' }), undefined);

    m.request('shop', 'web', 200, 0.004);
    m.request('shop', 'web', 201, 0.02);
    m.request('shop', 'web', 502, 0.3);
    m.request(undefined, undefined, 404, 0.0001);
    m.request('shop', 'web', 200, 0.003, 'h2');
    m.attempt('shop', 'web', 200);
    m.attempt('shop', 'web', 'connect-refused');
    m.attempt('shop', 'web', 'something odd');
    m.retry('shop', 'web');
    m.probe('shop', 'web', 0.002, true);
    m.probe('shop', 'web', 1, false);
    dropped = 5;
    const after = parseExposition(await m.render());
    assert.equal(m.contentType.startsWith('text/plain'), true);
    const ok = { project: 'shop', port: 'web', class: '2xx' };
    // The client's protocol is a label: HTTP/1.1 unless said otherwise.
    assert.equal(value(after, 'wharf_requests_total', { ...ok, protocol: 'http/1.1' }), 2);
    assert.equal(value(after, 'wharf_requests_total', { ...ok, protocol: 'h2' }), 1);
    assert.equal(value(after, 'wharf_requests_total', { project: 'shop', port: 'web', class: '5xx' }), 1);
    assert.equal(
      value(after, 'wharf_requests_total', { project: '_unknown', port: '_unknown', class: '4xx' }),
      1,
    );
    assert.equal(value(after, 'wharf_request_duration_seconds_count', { project: 'shop', port: 'web' }), 4);
    assert.equal(
      value(after, 'wharf_request_duration_seconds_bucket', { project: 'shop', port: 'web', le: '0.005' }),
      2,
    );
    assert.equal(value(after, 'wharf_upstream_attempts_total', { outcome: 'connect-refused' }), 1);
    assert.equal(value(after, 'wharf_upstream_attempts_total', { outcome: '2xx' }), 1);
    assert.equal(value(after, 'wharf_upstream_attempts_total', { outcome: 'other' }), 1);
    assert.equal(value(after, 'wharf_retries_total', { project: 'shop' }), 1);
    assert.equal(value(after, 'wharf_probes_total', { result: 'failed' }), 1);
    assert.equal(value(after, 'wharf_probe_duration_seconds_count', { project: 'shop' }), 2);
    assert.equal(value(after, 'wharf_log_dropped_lines_total'), 5);
    assert.ok(value(after, 'wharf_process_cpu_user_seconds_total') !== undefined);
    // Counters only grow.
    dropped = 7;
    assert.equal(value(parseExposition(await m.render()), 'wharf_log_dropped_lines_total'), 7);
  });

  test('attempt durations per instance, rescues per port; a cap on instance histograms', async () => {
    const m = new Metrics({ maxInstanceHistograms: 3 });
    const a = { project: 'blog', port: 'http', retry: false };
    m.upstreamAttempt({ ...a, instance: 'blog-1', outcome: 'rescued', durationMs: 1500 });
    m.upstreamAttempt({ ...a, instance: 'blog-0', outcome: 200, durationMs: 2, retry: true });
    m.upstreamAttempt({ ...a, instance: 'blog-0', outcome: 200, durationMs: 3 });
    m.upstreamAttempt({ ...a, instance: 'blog-1', outcome: 'cancelled', durationMs: 700 });
    const e = parseExposition(await m.render());
    assert.equal(e.types.get('wharf_upstream_attempt_duration_seconds'), 'histogram');
    const h = (inst: string, le: string) =>
      value(e, 'wharf_upstream_attempt_duration_seconds_bucket', { instance: inst, le });
    assert.equal(h('blog-0', '0.005'), 2, 'blog-0 answered within 5 ms');
    assert.equal(h('blog-1', '0.5'), 0);
    assert.equal(h('blog-1', '2.5'), 2, 'the time spent waiting counts on blog-1');
    assert.equal(value(e, 'wharf_upstream_attempt_duration_seconds_count', { instance: 'blog-0' }), 2);
    assert.equal(value(e, 'wharf_rescues_total', { project: 'blog', port: 'http' }), 1);
    assert.equal(value(e, 'wharf_retries_total', { project: 'blog', port: 'http' }), 1);
    assert.equal(value(e, 'wharf_upstream_attempts_total', { outcome: 'rescued' }), 1);
    assert.equal(value(e, 'wharf_upstream_attempts_total', { outcome: 'cancelled' }), 1);
    // Past the cap, new instances fold into their port's `_overflow` histogram, exported once.
    for (let i = 0; i < 5; i++) m.upstreamAttempt({ ...a, instance: `x-${i}`, outcome: 200, durationMs: 1 });
    const f = parseExposition(await m.render());
    const instances = new Set(
      f.samples
        .filter((s) => s.name === 'wharf_upstream_attempt_duration_seconds_count')
        .map((s) => s.labels.instance),
    );
    assert.deepEqual([...instances].sort(), ['_overflow', 'blog-0', 'blog-1', 'x-0']);
    assert.equal(value(f, 'wharf_upstream_attempt_duration_seconds_count', { instance: '_overflow' }), 4);
    // An instance that leaves the route table stops being exported.
    m.observe({
      type: 'routes',
      time: 1,
      version: 2,
      projects: 1,
      endpoints: 1,
      added: [],
      removed: ['blog/http/blog-1@127.0.0.1:1'],
    });
    const g = parseExposition(await m.render());
    assert.equal(
      value(g, 'wharf_upstream_attempt_duration_seconds_count', { instance: 'blog-1' }),
      undefined,
    );
  });

  test('health, routes, problems and source events drive gauges', async () => {
    let now = 1_000_000;
    const m = new Metrics({ now: () => now });
    const ev = {
      type: 'health',
      time: now,
      project: 'shop',
      port: 'web',
      instance: 'shop-0',
      address: '127.0.0.1:1',
      ejected: false,
      reason: 'probe ok',
    } as const;
    m.observe({ ...ev, from: 'pending', to: 'healthy' });
    m.observe({ ...ev, from: 'healthy', to: 'unhealthy', reason: 'probe: refused' });
    m.observe({ type: 'routes', time: now, version: 12, projects: 3, endpoints: 8, added: [], removed: [] });
    m.observe({
      type: 'problems',
      time: now,
      problems: [{ object: 'x', severity: 'error', code: 'c', message: 'm' }],
    });
    m.observe({ type: 'source', time: now, source: 'kubernetes', state: 'synced' });
    now += 4000;
    m.observe({ type: 'source', time: now, source: 'kubernetes', state: 'degraded', reason: 'down' });
    now += 6000;
    let exp = parseExposition(await m.render());
    assert.equal(value(exp, 'wharf_instance_health', { instance: 'shop-0', state: 'unhealthy' }), 1);
    assert.equal(value(exp, 'wharf_instance_health', { instance: 'shop-0', state: 'healthy' }), 0);
    assert.equal(value(exp, 'wharf_ejections_total', { project: 'shop', port: 'web' }), 1);
    assert.equal(value(exp, 'wharf_route_table_version'), 12);
    assert.equal(value(exp, 'wharf_route_endpoints'), 8);
    assert.equal(value(exp, 'wharf_problems', { severity: 'error' }), 1);
    assert.equal(value(exp, 'wharf_source_state', { source: 'kubernetes', state: 'degraded' }), 1);
    assert.equal(value(exp, 'wharf_source_last_sync_age_seconds', { source: 'kubernetes' }), 6);

    // An endpoint leaving the table stops being exported.
    m.observe({
      type: 'routes',
      time: now,
      version: 13,
      projects: 3,
      endpoints: 7,
      added: [],
      removed: ['shop/web/shop-0@127.0.0.1:1'],
    });
    exp = parseExposition(await m.render());
    assert.equal(value(exp, 'wharf_instance_health', { instance: 'shop-0' }), undefined);

    m.syncInstances([{ project: 'shop', port: 'web', instance: 'shop-1', state: 'pending' }]);
    exp = parseExposition(await m.render());
    assert.equal(value(exp, 'wharf_instance_health', { instance: 'shop-1', state: 'pending' }), 1);
  });

  test('label values stay bounded', async () => {
    const m = new Metrics({ maxProjectPorts: 3 });
    for (let i = 0; i < 50; i++) m.request(`p${i}`, 'http', 200, 0.001);
    const exp = parseExposition(await m.render());
    const projects = new Set(
      exp.samples.filter((s) => s.name === 'wharf_requests_total').map((s) => s.labels.project),
    );
    assert.deepEqual([...projects].sort(), ['_overflow', 'p0', 'p1', 'p2']);
    assert.equal(value(exp, 'wharf_requests_total', { project: '_overflow' }), 47);
  });
});

describe('retry budget and naming', () => {
  test('retries refused by the budget are a counter per project port', async () => {
    const { RetryBudget } = await import('../../src/proxy/retry-budget.ts');
    let now = 1_000_000;
    const budget = new RetryBudget(0.2, 1, { now: () => now });
    const m = new Metrics({ retryBudgetDenials: () => budget.denials() });
    const empty = parseExposition(await m.render());
    assert.equal(empty.types.get('wharf_retry_budget_exhausted_total'), 'counter');
    assert.equal(value(empty, 'wharf_retry_budget_exhausted_total', { project: 'shop' }), undefined);
    // Budget: max(1, 0.2 x 3 requests) = 1 retry in this second; the next two are refused.
    for (let i = 0; i < 3; i++) budget.request('shop', 'web');
    assert.deepEqual(
      [budget.tryRetry('shop', 'web'), budget.tryRetry('shop', 'web'), budget.tryRetry('shop', 'web')],
      [true, false, false],
    );
    now += 1000;
    budget.request('shop', 'web');
    assert.equal(budget.tryRetry('shop', 'web'), true, 'a new second has a new budget');
    const after = parseExposition(await m.render());
    assert.equal(value(after, 'wharf_retry_budget_exhausted_total', { project: 'shop', port: 'web' }), 2);
  });

  test('no gauge is named like a counter (promtool check metrics)', async () => {
    const m = new Metrics({ defaultMetrics: true });
    const text = parseExposition(await m.render());
    for (const [name, type] of text.types)
      if (name.endsWith('_total')) assert.equal(type, 'counter', `${name} is a ${type}`);
    assert.equal(text.types.get('wharf_nodejs_active_handles'), 'gauge', 'the per-type twin stays');
  });
});
