// The monitoring component against real Prometheus: Debian's `prometheus` (started here on
// loopback, no service manager) scrapes a real Wharf that discovers a project from the fake
// apiserver and serves a little traffic, while one instance and then the last one freeze. Checked:
// `promtool check rules` on the PrometheusRule, `promtool check metrics` on /metrics, every
// recording rule and every dashboard panel query returning data through Prometheus's HTTP API,
// every alert expression being valid there, and WharfNoHealthyInstance firing when (and only when)
// the last instance of the port is frozen.
//
// The rules are loaded as written except `for:`, set to 0s so the test need not wait a minute;
// a separate check reads the real durations.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { parse, stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.ts';
import { endpointSlice, FakeApiServer, service } from '../../src/fake-apiserver/index.ts';
import type { Observe } from '../../src/observe/observe.ts';
import { startObserved } from '../../src/observed.ts';
import { until } from '../discovery/helpers.ts';
import { DEPLOY, type Obj } from './load.ts';

const MONITORING = join(DEPLOY, 'components', 'monitoring');
const rule = parse(readFileSync(join(MONITORING, 'rules.yaml'), 'utf8')) as Obj;
const dashboard = JSON.parse(readFileSync(join(MONITORING, 'grafana-dashboard.json'), 'utf8')) as Obj;

const missing = ['prometheus', 'promtool'].filter((t) => spawnSync(t, ['--version']).error);
const reason = `${missing.join(' and ')} not installed (Debian package prometheus; .ci/run installs it)`;
// CI installs Prometheus, so there a missing binary is a failure, not a skip.
const skip = missing.length > 0 && process.env.CI !== 'true' ? reason : false;
if (skip) console.log(`skipping the Prometheus tests: ${reason}`);

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/**
 * An instance that can freeze: while frozen, requests (and probes) get no answer at all. A `flaky`
 * one answers 503 to requests but passes its probes (/healthz), so it is ejected by its 5xx and
 * readmitted by its probes over and over: retries, refused retries, ejections and 5xx.
 */
async function instance(name: string, flaky = false) {
  let frozen = false;
  const hung = new Set<http.ServerResponse>();
  const server = http.createServer((req, res) => {
    if (frozen) {
      hung.add(res);
      res.on('close', () => hung.delete(res));
      return;
    }
    if (flaky && req.url !== '/healthz') res.statusCode = 503;
    res.end(name);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    freeze: () => {
      frozen = true;
    },
    close: async () => {
      for (const r of hung) r.destroy();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

/** Dashboard variables as "All", and Grafana's interval macro as a fixed window. */
function concrete(expr: string): string {
  return expr.replace(/\$__rate_interval/g, '1m').replace(/\$(namespace|tier|project|port)\b/g, '.*');
}

describe('Prometheus rules and the Grafana dashboard', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'wharf-prom-'));
  const closers: (() => unknown)[] = [];
  let prom: ChildProcess | undefined;
  let promUrl = '';
  let admin = '';
  let front = '';
  let obs: Observe;
  let traffic = true;
  let loops: Promise<void>[] = [];
  const statuses = new Map<number, number>();
  let shop0: Awaited<ReturnType<typeof instance>>;
  let shop1: Awaited<ReturnType<typeof instance>>;

  async function query(expr: string): Promise<{ status: string; result: Obj[]; error?: string }> {
    const res = await request(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await res.body.json()) as Obj;
    return { status: body.status, result: body.data?.result ?? [], error: body.error };
  }

  before(async () => {
    const api = await new FakeApiServer({ bookmarkIntervalMs: 500 }).start();
    closers.push(() => api.close());
    shop0 = await instance('shop-0');
    shop1 = await instance('shop-1');
    closers.push(shop0.close, shop1.close);
    api.apply(
      service('shop', {
        settings: {
          'health-interval': '200ms',
          'health-timeout': '200ms',
          timeout: '300ms',
          // A bad value: a Problem, so wharf_problems has series to show.
          balancer: 'fastest',
        },
      }),
    );
    for (const [pod, inst] of [
      ['shop-0', shop0],
      ['shop-1', shop1],
    ] as const)
      api.apply(
        endpointSlice('shop', {
          name: pod,
          ports: { http: inst.port },
          endpoints: [{ ip: '127.0.0.1', pod }],
        }),
      );
    const flaky = [await instance('flaky-0', true), await instance('flaky-1', true)];
    closers.push(...flaky.map((f) => f.close));
    api.apply(service('flaky', { settings: { 'health-interval': '200ms', 'health-path': '/healthz' } }));
    for (const [i, f] of flaky.entries())
      api.apply(
        endpointSlice('flaky', {
          name: `flaky-${i}`,
          ports: { http: f.port },
          endpoints: [{ ip: '127.0.0.1', pod: `flaky-${i}` }],
        }),
      );

    const config = parseConfig(
      stringify({
        listen: '127.0.0.1:0',
        admin: '127.0.0.1:0',
        domain: 'test.local',
        // The fake cluster's pods listen on loopback, which discovery refuses unless allowed.
        kubernetes: { apiservers: [api.url], 'allow-loopback': true },
        // A small budget: some timeouts are retried and others refused, so both series move.
        upstream: { 'retry-budget': 0.1, 'retry-budget-min': 0 },
        logs: { dir: join(dir, 'logs') },
      }),
      'prometheus test',
    );
    const started = await startObserved({
      config,
      discovery: { backoffInitialMs: 20, backoffMaxMs: 300, silenceMs: 3000, coalesceMs: 2 },
    });
    obs = started.obs;
    closers.push(async () => {
      await started.wharf.stop(200);
      await started.obs.close();
    });
    admin = `http://127.0.0.1:${started.wharf.adminAddress.port}`;
    front = `http://127.0.0.1:${started.wharf.frontAddress.port}`;
    await until(async () => (await request(`${admin}/readyz`)).statusCode === 200, 10_000, 'Wharf ready');
    await until(
      async () => {
        const r = (await (await request(`${admin}/api/projects`)).body.json()) as Obj;
        const ports = JSON.stringify(r);
        return (ports.match(/"healthy"/g) ?? []).length >= 4;
      },
      10_000,
      'every instance healthy',
    );

    // Prometheus: the rule groups of the PrometheusRule, `for` set to 0s.
    const groups = structuredClone(rule.spec.groups) as Obj[];
    for (const g of groups) for (const r of g.rules) if (r.for) r.for = '0s';
    writeFileSync(join(dir, 'rules.yml'), stringify({ groups }));
    const adminPort = started.wharf.adminAddress.port;
    writeFileSync(
      join(dir, 'prometheus.yml'),
      stringify({
        global: { scrape_interval: '1s', evaluation_interval: '1s' },
        rule_files: [join(dir, 'rules.yml')],
        scrape_configs: [{ job_name: 'wharf', static_configs: [{ targets: [`127.0.0.1:${adminPort}`] }] }],
      }),
    );
    const port = await freePort();
    promUrl = `http://127.0.0.1:${port}`;
    prom = spawn(
      'prometheus',
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let promLog = '';
    prom.stderr?.on('data', (c) => {
      promLog += c;
    });
    await until(
      async () => {
        if (prom?.exitCode !== null) throw new Error(`prometheus exited: ${promLog}`);
        try {
          return (await request(`${promUrl}/-/ready`)).statusCode === 200;
        } catch {
          return false;
        }
      },
      20_000,
      'Prometheus ready',
    );

    // A little traffic, bounded: four clients until the test ends (at most 90 s).
    const deadline = Date.now() + 90_000;
    loops = Array.from({ length: 4 }, async (_, i) => {
      const host = i === 0 ? 'flaky.test.local' : 'shop.test.local';
      while (traffic && Date.now() < deadline) {
        try {
          const r = await request(front, { headers: { host }, headersTimeout: 5000 });
          await r.body.dump();
          statuses.set(r.statusCode, (statuses.get(r.statusCode) ?? 0) + 1);
        } catch {
          statuses.set(0, (statuses.get(0) ?? 0) + 1);
        }
      }
    });
    await until(async () => (await query('wharf_requests_total')).result.length > 0, 10_000, 'first scrape');
    await new Promise((r) => setTimeout(r, 2000));

    // One instance freezes: it is ejected, its requests time out (504, or retried on the other).
    shop1.freeze();
    await until(
      async () => (await query('wharf:port_healthy_instances:max == 1')).result.length > 0,
      15_000,
      'one healthy instance left in Prometheus',
    );
    await new Promise((r) => setTimeout(r, 2000));
  });

  after(async () => {
    traffic = false;
    await Promise.all(loops);
    prom?.kill('SIGKILL');
    for (const c of closers.reverse()) await c();
    rmSync(dir, { recursive: true, force: true });
  });

  it('promtool check rules passes on the PrometheusRule as written', () => {
    const file = join(dir, 'rules-as-written.yml');
    writeFileSync(file, stringify({ groups: rule.spec.groups }));
    const r = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /SUCCESS: \d+ rules found/);
  });

  it('promtool check metrics finds nothing to say about /metrics', async () => {
    const text = await (await request(`${admin}/metrics`)).body.text();
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(`${r.stdout}${r.stderr}`, '', 'no warnings');
    assert.equal(r.status, 0);
  });

  it('every recording rule returns data', async () => {
    const records = rule.spec.groups.flatMap((g: Obj) => g.rules.filter((r: Obj) => r.record));
    assert.ok(records.length >= 8);
    const empty: string[] = [];
    for (const r of records) if ((await query(r.record)).result.length === 0) empty.push(r.record);
    assert.deepEqual(empty, [], `traffic so far: ${JSON.stringify([...statuses])}`);
  });

  it('every alert expression is valid, and its inputs have data', async () => {
    const alerts = rule.spec.groups.flatMap((g: Obj) => g.rules.filter((r: Obj) => r.alert));
    assert.deepEqual(alerts.map((a: Obj) => a.alert).sort(), [
      'WharfInstanceFlapping',
      'WharfKubernetesSyncDegraded',
      'WharfLogLinesDropped',
      'WharfNoHealthyInstance',
      'WharfProblems',
      'WharfProject5xxRatio',
      'WharfRetryBudgetExhausted',
    ]);
    for (const a of alerts) {
      const r = await query(a.expr);
      assert.equal(r.status, 'success', `${a.alert}: ${r.error}`);
      // Each alert compares recorded series with a threshold: those series must exist.
      for (const name of a.expr.match(/wharf:[a-z0-9_:]+/g) ?? [])
        assert.ok((await query(name)).result.length > 0, `${a.alert}: ${name} has no data`);
    }
  });

  it('every dashboard panel query returns data', async () => {
    const targets = (dashboard.panels as Obj[]).flatMap((p) =>
      (p.targets ?? []).map((t: Obj) => ({ title: p.title as string, expr: t.expr as string })),
    );
    assert.ok(targets.length >= 20);
    const empty: string[] = [];
    for (const t of targets) {
      const r = await query(concrete(t.expr));
      assert.equal(r.status, 'success', `${t.title}: ${r.error}`);
      if (r.result.length === 0) empty.push(`${t.title}: ${t.expr}`);
    }
    assert.deepEqual(empty, []);
  });

  it('WharfNoHealthyInstance fires when the last instance of the port freezes, not before', async () => {
    const firing =
      'ALERTS{alertname="WharfNoHealthyInstance", alertstate="firing", project="shop", port="http"}';
    assert.deepEqual((await query(firing)).result, [], 'one healthy instance is left: no alert');
    shop0.freeze();
    const fired = await until(
      async () => (await query(firing)).result.length > 0,
      20_000,
      'the alert to fire',
    );
    assert.ok(fired);
    // Requests now get 503 quickly instead of hanging.
    assert.ok(
      (statuses.get(503) ?? 0) > 0 || (await until(() => (statuses.get(503) ?? 0) > 0, 5000, '503s')),
    );
    assert.ok(obs.metrics);
  });

  it('the alerts keep their real `for` durations', () => {
    const fors = Object.fromEntries(
      rule.spec.groups.flatMap((g: Obj) =>
        g.rules.filter((r: Obj) => r.alert).map((r: Obj) => [r.alert, r.for]),
      ),
    );
    assert.equal(fors.WharfNoHealthyInstance, '1m');
    assert.equal(fors.WharfKubernetesSyncDegraded, '5m');
    assert.equal(fors.WharfProject5xxRatio, '5m');
  });
});

describe('Grafana dashboard JSON', () => {
  it('is a dashboard Grafana can import: unique ids, a datasource variable, every panel placed', () => {
    assert.equal(dashboard.uid, 'wharf');
    assert.ok(dashboard.schemaVersion >= 36);
    const vars = (dashboard.templating.list as Obj[]).map((v) => v.name);
    assert.deepEqual(vars, ['datasource', 'namespace', 'tier', 'project', 'port']);
    const ids = (dashboard.panels as Obj[]).map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length);
    for (const p of dashboard.panels as Obj[]) {
      assert.ok(p.gridPos && p.gridPos.w > 0 && p.gridPos.x + p.gridPos.w <= 24, p.title);
      if (p.type === 'row') continue;
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's own variable syntax
      assert.equal(p.datasource.uid, '${datasource}', p.title);
      assert.ok(p.targets.length > 0 && p.targets.every((t: Obj) => t.expr && t.refId), p.title);
    }
    // What the issue asks per project/port: rate, errors, p50/p99, transitions, ejections, retries.
    const text = JSON.stringify(dashboard.panels);
    for (const m of [
      'wharf_requests_total',
      'class=\\"5xx\\"',
      'histogram_quantile(0.5,',
      'histogram_quantile(0.99,',
      'wharf_health_transitions_total',
      'wharf_ejections_total',
      'wharf_retries_total',
    ])
      assert.ok(text.includes(m), m);
  });
});
