import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ProjectRecord } from '../../src/model/snapshot.ts';
import { buildRouteTable, DEFAULT_CONVENTIONS } from '../../src/routing/build.ts';
import { normalizeHost, resolve } from '../../src/routing/match.ts';
import { projectRecord } from '../support/records.ts';

function project(name: string, extra: Partial<ProjectRecord> = {}): ProjectRecord {
  return projectRecord(name, `default/${name}`, {
    ports: ['grpc', 'http'],
    instances: [
      {
        name: 'b-1',
        addresses: { http: { host: '10.0.0.2', port: 80 }, grpc: { host: '10.0.0.2', port: 90 } },
        draining: false,
      },
      { name: 'a-0', uid: 'u-0', addresses: { http: { host: 'fd00::1', port: 80 } }, draining: true },
    ],
    ...extra,
  });
}

const build = (records: ProjectRecord[], conv = DEFAULT_CONVENTIONS) => buildRouteTable(records, conv, 1);

// Name conflicts and bad names are the aggregator's (test/control/aggregator.test.ts): routing gets
// one record per name.
describe('buildRouteTable', () => {
  it('builds ports, endpoints sorted by instance, stable ids and tokens', () => {
    const t = buildRouteTable([project('shop')], DEFAULT_CONVENTIONS, 7).table;
    assert.equal(t.version, 7);
    const shop = t.projects.get('shop')!;
    assert.equal(shop.defaultPort, 'http', 'http wins over the first port');
    const http = shop.ports.get('http')!;
    assert.deepEqual(
      http.endpoints.map((e) => e.id),
      ['shop/http/a-0@[fd00::1]:80', 'shop/http/b-1@10.0.0.2:80'],
    );
    assert.equal(http.byInstance.get('a-0')!.draining, true);
    assert.equal(shop.ports.get('grpc')!.endpoints.length, 1, 'instances lacking a port are skipped');
    const again = build([project('shop', { instances: [...project('shop').instances] })]).table;
    assert.equal(again.projects.get('shop')!.ports.get('http')!.endpoints[0].token, http.endpoints[0].token);
    assert.notEqual(http.endpoints[0].token, http.endpoints[1].token);
    assert.ok(!http.endpoints[0].token.includes('a-0'), 'tokens do not reveal instance names');
  });

  it('bad settings become Problems naming the Service and the annotation', () => {
    const { table, problems } = build([project('shop', { settings: { 'health-interval': 'often' } })]);
    assert.ok(table.projects.get('shop'), 'the project still routes');
    assert.equal(problems.length, 1);
    assert.equal(problems[0].object, 'service default/shop');
    assert.equal(problems[0].field, 'wharf.io/health-interval');
    assert.match(problems[0].message, /expected a duration/);
  });

  it("a config project's bad setting is named by its path in the file", () => {
    const rec = projectRecord('shop', 'config', { settings: { retries: 'many' } });
    const { problems } = build([rec]);
    assert.deepEqual(
      problems.map((p) => [p.object, p.field, p.code]),
      [['project shop', 'projects.shop.retries', 'bad-setting']],
    );
  });

  it('the edge tier keeps only public projects and ports', () => {
    const edge = { tier: 'edge' as const, defaults: DEFAULT_CONVENTIONS.defaults };
    const t = build(
      [
        project('priv'),
        project('pub', { settings: { public: 'true' } }),
        project('half', { settings: { public: 'grpc' } }),
      ],
      edge,
    ).table;
    assert.deepEqual([...t.projects.keys()].sort(), ['half', 'pub']);
    assert.deepEqual([...t.projects.get('half')!.ports.keys()], ['grpc']);
    assert.equal(t.projects.get('half')!.defaultPort, 'grpc');
  });

  it('reuses the result for an unchanged ProjectRecord object', () => {
    const p = project('shop');
    const a = build([p]).table;
    const b = build([p, project('other')]).table;
    assert.equal(a.projects.get('shop'), b.projects.get('shop'));
  });
});

describe('resolve', () => {
  const t = build([project('shop')]).table;
  const D = 'apps.example.com';

  it('normalizes hosts', () => {
    assert.equal(normalizeHost('Shop.Apps.Example.COM.:8443'), 'shop.apps.example.com');
    assert.equal(normalizeHost('[::1]:80'), undefined);
    assert.equal(normalizeHost('a b'), undefined);
    assert.equal(normalizeHost(''), undefined);
    assert.equal(normalizeHost('x:8o'), undefined);
  });

  it('resolves the three forms and the pin header', () => {
    let r = resolve(t, D, 'shop.apps.example.com');
    assert.ok(r.ok && r.route.port === 'http' && r.instance === undefined);
    r = resolve(t, D, 'grpc.shop.apps.example.com');
    assert.ok(r.ok && r.route.port === 'grpc');
    r = resolve(t, D, 'b-1.grpc.shop.apps.example.com');
    assert.ok(r.ok && r.instance === 'b-1');
    r = resolve(t, D, 'shop.apps.example.com', 'a-0');
    assert.ok(r.ok && r.instance === 'a-0');
    r = resolve(t, D, 'b-1.http.shop.apps.example.com', 'a-0');
    assert.ok(r.ok && r.instance === 'b-1', 'the host wins over the header');
  });

  it('explains what was not found', () => {
    const cases: Array<[string, number, RegExp]> = [
      ['nope.apps.example.com', 404, /no project "nope"/],
      ['smtp.shop.apps.example.com', 404, /no port "smtp"/],
      ['x.y.http.shop.apps.example.com', 404, /too many labels/],
      ['apps.example.com', 404, /not under the domain/],
      ['shop.example.com', 404, /not under the domain/],
      ['shopapps.example.com', 404, /not under the domain/],
      ['', 400, /invalid Host/],
    ];
    for (const [host, status, reason] of cases) {
      const r = resolve(t, D, host);
      assert.ok(!r.ok, host);
      assert.equal(r.status, status, host);
      assert.match(r.reason, reason, host);
    }
  });
});
