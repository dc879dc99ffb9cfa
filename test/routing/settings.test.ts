import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DEFAULT_SETTINGS,
  parseDuration,
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
