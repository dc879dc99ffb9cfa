// planReload: the running config and a new file's -> what applies live, what needs a restart.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Config, parseConfig } from '../../src/config/load.ts';
import { planReload, tlsSecretsLive } from '../../src/control/reload.ts';
import { makeCa } from '../support/certs.ts';

const base = { listen: '127.0.0.1:8080', admin: '127.0.0.1:9901', domain: 'apps.example.com' };
const config = (over: Record<string, unknown> = {}): Config =>
  parseConfig(JSON.stringify({ ...base, ...over }), 'test');

describe('planReload', () => {
  test('the same file: nothing to do, and the running config is kept as it is', () => {
    const prev = config({ projects: { shop: { instances: { 's-0': { http: '127.0.0.1:1' } } } } });
    const plan = planReload(
      prev,
      config({ projects: { shop: { instances: { 's-0': { http: '127.0.0.1:1' } } } } }),
    );
    assert.deepEqual(plan.live, []);
    assert.deepEqual(plan.restart, []);
    assert.deepEqual(plan.config, prev);
  });

  test('projects and defaults apply live; the running config takes them and nothing else', () => {
    const prev = config();
    const next = config({
      listen: '127.0.0.1:9090',
      defaults: { 'health-interval': '5s' },
      projects: { shop: { instances: { 's-0': { http: '127.0.0.1:1' } } } },
    });
    const plan = planReload(prev, next);
    assert.deepEqual(plan.live, ['defaults', 'projects']);
    assert.deepEqual(plan.restart, ['listen']);
    assert.equal(plan.config.projects, next.projects);
    assert.equal(plan.config.defaults, next.defaults);
    assert.equal(plan.config.listen, prev.listen, 'a restart field is not applied');
  });

  test('every other field needs a restart, by its name', () => {
    // forward-to must name a project of the file: both files have it.
    const internal = { projects: { internal: { instances: { 'i-0': { http: '127.0.0.1:1' } } } } };
    const prev = config(internal);
    const cases: [Record<string, unknown>, string][] = [
      [{ admin: '127.0.0.1:9902' }, 'admin'],
      [{ 'admin-token': 'a-long-enough-secret' }, 'adminToken'],
      [{ domain: 'other.example.com' }, 'domain'],
      [{ tier: 'edge' }, 'tier'],
      [{ 'instance-header': false }, 'instanceHeader'],
      [{ timeouts: { connect: '5s' } }, 'timeouts'],
      [{ limits: { 'max-headers': 50 } }, 'limits'],
      [{ upstream: { connections: 8 } }, 'upstream'],
      [{ health: { concurrency: 8 } }, 'health'],
      [{ kubernetes: { apiservers: ['https://10.0.0.1:6443'] } }, 'kubernetes'],
      // These three were ignored without a word before the pure planner.
      [{ 'trusted-proxies': ['10.0.0.0/8'] }, 'trustedProxies'],
      [{ logs: { access: false } }, 'logs'],
      [{ tier: 'edge', edge: { 'forward-to': 'internal' } }, 'forwardTo'],
      [{ 'proxy-protocol': true, 'trusted-proxies': ['10.0.0.0/8'] }, 'proxyProtocol'],
    ];
    for (const [over, field] of cases) {
      const plan = planReload(prev, config({ ...internal, ...over }));
      assert.ok(plan.restart.includes(field as keyof Config), `${field}: ${JSON.stringify(plan.restart)}`);
      assert.deepEqual(plan.live, [], field);
      assert.deepEqual(plan.config, {
        ...prev,
        defaults: plan.config.defaults,
        projects: plan.config.projects,
      });
    }
  });

  test('tls.secrets apply live where Secrets are watched (edge, TLS, Kubernetes); other tls fields do not', () => {
    const edge = (secrets: string[], extra: Record<string, unknown> = {}) =>
      config({
        tier: 'edge',
        kubernetes: { apiservers: ['https://10.0.0.1:6443'] },
        tls: { secrets: secrets.map((name) => ({ namespace: 'certs', name })), ...extra },
      });
    const prev = edge(['a']);
    assert.equal(tlsSecretsLive(prev), true);
    const plan = planReload(prev, edge(['a', 'b']));
    assert.deepEqual(plan.live, ['tls.secrets']);
    assert.deepEqual(plan.restart, []);
    assert.deepEqual(
      plan.config.tls?.secrets.map((s) => s.name),
      ['a', 'b'],
    );
    const other = planReload(prev, edge(['a'], { 'min-version': 'TLSv1.3' }));
    assert.deepEqual(other.live, []);
    assert.deepEqual(other.restart, ['tls']);
    assert.equal(other.config.tls, prev.tls, 'not applied');
    const both = planReload(prev, edge(['b'], { 'min-version': 'TLSv1.3' }));
    assert.deepEqual([both.live, both.restart], [['tls.secrets'], ['tls']]);
  });

  test('without Secret watching, any tls change needs a restart', () => {
    const ca = makeCa();
    const a = ca.leaf('a', ['a.example.com']);
    const b = ca.leaf('b', ['b.example.com']);
    const prev = config({ tls: { certificates: [a] } });
    assert.equal(tlsSecretsLive(prev), false);
    const plan = planReload(prev, config({ tls: { certificates: [a, b] } }));
    assert.deepEqual([plan.live, plan.restart], [[], ['tls']]);
    assert.equal(plan.config.tls, prev.tls);
  });
});
