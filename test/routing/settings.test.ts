import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '../../src/config/load.ts';
import type { ProjectRecord } from '../../src/model/snapshot.ts';
import { buildRouteTable, DEFAULT_CONVENTIONS } from '../../src/routing/build.ts';
import {
  DEFAULT_SETTINGS,
  DURATION_BOUNDS,
  parseDuration,
  parseExpose,
  parseSecretRef,
  parseSettings,
  parseStatusRanges,
} from '../../src/routing/settings.ts';

describe('settings parser', () => {
  it('parses durations with units and refuses bare numbers', () => {
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('1.5s'), 1500);
    assert.equal(parseDuration('2m'), 120_000);
    assert.throws(() => parseDuration('5'), /duration/);
    assert.throws(() => parseDuration('0s'), /greater than zero/);
  });

  it('parses status ranges', () => {
    assert.deepEqual(parseStatusRanges('200-399'), [{ from: 200, to: 399 }]);
    assert.deepEqual(parseStatusRanges('2xx, 404'), [
      { from: 200, to: 299 },
      { from: 404, to: 404 },
    ]);
    assert.throws(() => parseStatusRanges('399-200'));
    assert.throws(() => parseStatusRanges('ok'));
  });

  it('applies every key of DESIGN.md §3', () => {
    const { settings, errors } = parseSettings({
      'health-path': '/healthz',
      'health-port': 'admin',
      'health-interval': '2s',
      'health-timeout': '500ms',
      'health-fall': '3',
      'health-rise': '1',
      'health-expect': '200',
      affinity: 'header:X-User',
      public: 'http,ws',
      timeout: '10s',
      retries: '0',
      balancer: 'round-robin',
    });
    assert.deepEqual(errors, []);
    assert.equal(settings.health.path, '/healthz');
    assert.equal(settings.health.port, 'admin');
    assert.equal(settings.health.intervalMs, 2000);
    assert.equal(settings.health.timeoutMs, 500);
    assert.equal(settings.health.fall, 3);
    assert.equal(settings.health.rise, 1);
    assert.deepEqual(settings.affinity, { kind: 'header', header: 'x-user' });
    assert.deepEqual(settings.public, ['http', 'ws']);
    assert.equal(settings.timeoutMs, 10_000);
    assert.equal(settings.retries, 0);
    assert.equal(settings.balancer, 'round-robin');
    assert.equal(parseSettings({ 'health-path': 'tcp' }).settings.health.path, null);
  });

  it('health-path: an HTTP path, tcp, grpc or grpc:<service>, each an explicit check kind', () => {
    const health = (value: string) => {
      const { settings, errors } = parseSettings({ 'health-path': value });
      assert.deepEqual(errors, []);
      const { check, path, grpcService } = settings.health;
      return { check, path, grpcService };
    };
    assert.deepEqual(health('/healthz'), { check: 'http', path: '/healthz', grpcService: '' });
    assert.deepEqual(health('tcp'), { check: 'tcp', path: null, grpcService: '' });
    assert.deepEqual(health('grpc'), { check: 'grpc', path: null, grpcService: '' });
    assert.deepEqual(health('grpc:echo.Echo'), { check: 'grpc', path: null, grpcService: 'echo.Echo' });
    assert.equal(DEFAULT_SETTINGS.health.check, 'http');
    for (const bad of ['grpc:', 'grpc:echo Echo', 'grpc:.Echo', 'grpc:echo..Echo', 'grpcs', 'healthz']) {
      const { settings, errors } = parseSettings({ 'health-path': bad });
      assert.equal(errors[0]?.key, 'health-path', bad);
      assert.match(errors[0].reason, /expected tcp, grpc|grpc:<service>/);
      assert.equal(settings.health.check, 'http', `${bad} falls back to the default`);
    }
    // The config file reads the same key with the same parser: a bad value is a validation error.
    assert.throws(
      () =>
        parseConfig(
          'projects: { api: { health-path: "grpc:no way", instances: { a: { grpc: 127.0.0.1:1 } } } }',
        ),
      /health-path.*grpc:<service>/s,
    );
    const c = parseConfig(
      'projects: { api: { health-path: grpc:echo.Echo, instances: { a: { grpc: 127.0.0.1:1 } } } }',
    );
    assert.equal(c.projects[0].settings['health-path'], 'grpc:echo.Echo');
  });

  it('a bad value disables only itself and falls back to the default', () => {
    const { settings, errors } = parseSettings({
      'health-interval': 'soon',
      retries: '3',
      wat: 'x',
      affinity: 'magic',
    });
    assert.equal(settings.health.intervalMs, DEFAULT_SETTINGS.health.intervalMs);
    assert.equal(settings.retries, 3);
    assert.deepEqual(settings.affinity, { kind: 'none' });
    assert.deepEqual(
      errors.map((e) => e.key),
      ['health-interval', 'wat', 'affinity'],
    );
    assert.match(errors[1].reason, /unknown setting/);
  });

  it('tls-secret: a Secret name, or namespace/name; anything else falls back to none', () => {
    assert.deepEqual(parseSecretRef('shop-tls'), { namespace: null, name: 'shop-tls' });
    assert.deepEqual(parseSecretRef(' certs/shop.example.com '), {
      namespace: 'certs',
      name: 'shop.example.com',
    });
    assert.throws(() => parseSecretRef('a/b/c'), /<namespace>\/<name>/);
    assert.throws(() => parseSecretRef('Shop_TLS'), /not a Secret name/);
    assert.throws(() => parseSecretRef('ns.with.dots/x'), /not a namespace name/);
    assert.throws(() => parseSecretRef('/x'), /not a namespace name/);
    assert.throws(() => parseSecretRef('ns/'), /not a Secret name/);
    assert.throws(() => parseSecretRef(`${'a'.repeat(254)}`), /not a Secret name/);
    assert.equal(DEFAULT_SETTINGS.tlsSecret, null);
    const good = parseSettings({ 'tls-secret': 'shop/shop-tls' });
    assert.deepEqual(good.errors, []);
    assert.deepEqual(good.settings.tlsSecret, { namespace: 'shop', name: 'shop-tls' });
    const bad = parseSettings({ 'tls-secret': 'no way' });
    assert.equal(bad.settings.tlsSecret, null);
    assert.equal(bad.errors[0].key, 'tls-secret');
  });
});

describe('duration bounds', () => {
  it('each named range, all below the timer limit', () => {
    assert.throws(() => parseDuration('1ms', DURATION_BOUNDS['health-interval']), /at least 100ms/);
    assert.equal(parseDuration('100ms', DURATION_BOUNDS['health-interval']), 100);
    assert.throws(() => parseDuration('2h', DURATION_BOUNDS.watchdog), /at most 1h/);
    for (const b of Object.values(DURATION_BOUNDS)) assert.ok(b.maxMs < 2 ** 31 - 1, 'below the timer limit');
  });
});

describe('expose (issue 20 item 5)', () => {
  it('parses false, true and port=false pairs', () => {
    assert.equal(parseExpose('false'), true);
    assert.equal(parseExpose('true'), false);
    assert.deepEqual(parseExpose('admin=false, metrics=false,http=true'), ['admin', 'metrics']);
    assert.equal(parseExpose('http=true'), false);
    assert.throws(() => parseExpose('admin'), /port=false pairs/);
    assert.throws(() => parseExpose('Admin=false'), /port=false pairs/);
    assert.equal(parseSettings({ expose: 'nope' }).errors[0].key, 'expose');
  });

  const record = (settings: Record<string, string>): ProjectRecord => ({
    name: 'internal',
    origin: 'wharf/internal',
    object: 'service wharf/internal',
    settingPrefix: 'wharf.io/',
    created: '',
    ports: ['http', 'admin', 'metrics'],
    settings,
    instances: [
      {
        name: 'i-0',
        draining: false,
        addresses: {
          http: { host: '10.0.0.1', port: 8080 },
          admin: { host: '10.0.0.1', port: 9901 },
          metrics: { host: '10.0.0.1', port: 9100 },
        },
      },
    ],
  });
  const ports = (settings: Record<string, string>, tier: 'internal' | 'edge' = 'internal') => {
    const { table: t } = buildRouteTable([record(settings)], { ...DEFAULT_CONVENTIONS, tier }, 1);
    return [...(t.projects.get('internal')?.ports.keys() ?? [])];
  };

  it('hidden ports are never routed, on either tier; a hidden health port is still probed', () => {
    assert.deepEqual(ports({}), ['http', 'admin', 'metrics']);
    assert.deepEqual(ports({ expose: 'admin=false,metrics=false' }), ['http']);
    assert.deepEqual(ports({ expose: 'false' }), []);
    assert.deepEqual(ports({ expose: 'admin=false', public: 'true' }, 'edge'), ['http', 'metrics']);
    const { table: t } = buildRouteTable(
      [record({ expose: 'admin=false', 'health-port': 'admin' })],
      DEFAULT_CONVENTIONS,
      1,
    );
    assert.equal(t.projects.get('internal')!.ports.get('http')!.endpoints[0].probeAddress, '10.0.0.1:9901');
  });

  it('the config file takes expose: as well', () => {
    const c = parseConfig(
      'projects: { internal: { expose: "admin=false", instances: { i-0: { http: 10.0.0.1:8080, admin: 10.0.0.1:9901 } } } }',
    );
    const { table: t } = buildRouteTable(c.projects, { ...DEFAULT_CONVENTIONS, defaults: c.defaults }, 1);
    assert.deepEqual([...t.projects.get('internal')!.ports.keys()], ['http']);
  });
});
