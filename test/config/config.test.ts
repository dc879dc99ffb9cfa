import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, parseConfig, parseHostPort } from '../../src/config/load.ts';

function issues(text: string): string[] {
  try {
    parseConfig(text, 'c.yaml');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return [...err.issues];
  }
  assert.fail('expected a ConfigError');
}

describe('config', () => {
  it('has safe defaults', () => {
    const c = parseConfig('{}');
    assert.deepEqual(c.listen, { host: '127.0.0.1', port: 8080 });
    assert.deepEqual(c.admin, { host: '127.0.0.1', port: 9901 }, 'admin on loopback by default');
    assert.equal(c.tier, 'internal');
    assert.equal(c.instanceHeader, true);
    assert.equal(parseConfig('tier: edge').instanceHeader, false, 'edge hides instance names by default');
    assert.equal(c.timeouts.connectMs, 2000);
    assert.equal(c.defaults.timeoutMs, 30_000);
  });

  it('reads static projects in the shape of DESIGN.md §1', () => {
    const c = parseConfig(`
domain: Apps.Example.com.
defaults: { retries: 1 }
projects:
  shop:
    health-path: /healthz
    affinity: cookie
    instances:
      shop-0: { http: 127.0.0.1:18101, admin: 127.0.0.1:19101 }
      shop-1: { http: "[::1]:18102" }
`);
    assert.equal(c.domain, 'apps.example.com');
    const shop = c.projects[0];
    assert.equal(shop.name, 'shop');
    assert.deepEqual(shop.ports, ['http', 'admin']);
    assert.deepEqual({ ...shop.settings }, { 'health-path': '/healthz', affinity: 'cookie' });
    assert.deepEqual(shop.instances[1].addresses.http, { host: '::1', port: 18102 });
    assert.equal(c.defaults.retries, 1);
  });

  it('overrides from the command line win', () => {
    const c = parseConfig('listen: 0.0.0.0:80', 'c', { listen: '127.0.0.1:0', domain: 'x.test' });
    assert.deepEqual(c.listen, { host: '127.0.0.1', port: 0 });
    assert.equal(c.domain, 'x.test');
  });

  it('reports every error with its field path', () => {
    assert.deepEqual(issues('listen: nowhere\nadmin: "a:b"'), [
      'listen: "nowhere": expected host:port such as 127.0.0.1:8080',
      'admin: "a:b": expected host:port such as 127.0.0.1:8080',
    ]);
    assert.equal(
      issues('listen: 8080')[0],
      'listen: 8080: expected host:port such as 127.0.0.1:8080, 0.0.0.0:8080 or [::]:8080',
    );
    assert.match(issues('timeouts: { connect: 2 }')[0], /timeouts\.connect/);
    assert.match(
      issues('timeouts: { conect: 2s }')[0],
      /timeouts: unknown key\(s\) "conect": expected one of connect, .* \(did you mean "connect"\?\)/,
    );
    assert.match(
      issues('projects: { shop: { instances: { s0: { http: 1.2.3.4 } } } }')[0],
      /projects\.shop\.instances\.s0\.http/,
    );
    assert.match(
      issues('projects: { Shop: {} }')[0],
      /projects\.Shop: project name "Shop": expected a DNS label .* such as shop/,
    );
    assert.match(issues('projects: { shop: { retries: many } }')[0], /projects\.shop\.retries: "many"/);
    assert.match(
      issues('projects: { shop: { helth-path: / } }')[0],
      /projects\.shop: unknown key\(s\) "helth-path": .*\(did you mean "health-path"\?\)/,
    );
    assert.match(issues('defaults: { timeout: forever }')[0], /defaults\.timeout/);
    assert.match(issues('tier: middle')[0], /tier/);
    assert.match(issues('a: [1\n')[0], /YAML/);
    assert.match(issues('listen: a\nlisten: b')[0], /YAML/);
  });

  it('parses host:port forms', () => {
    assert.deepEqual(parseHostPort(':80'), { host: '0.0.0.0', port: 80 });
    assert.deepEqual(parseHostPort('[fd00::1]:443'), { host: 'fd00::1', port: 443 });
    assert.throws(() => parseHostPort('h:70000'), /out of range/);
  });

  describe('tls.secrets and tls-secret', () => {
    const k8s = 'kubernetes: { apiservers: [http://127.0.0.1:1] }';
    it('reads Secrets on the edge tier with discovery; one watched namespace is the default', () => {
      const c = parseConfig(`
tier: edge
kubernetes: { apiservers: [http://127.0.0.1:1], namespaces: [certs] }
tls:
  secrets:
    - { name: wild }
    - { namespace: other, name: api.example.org, hosts: [api.example.org] }
projects:
  shop: { tls-secret: certs/shop-tls, public: true }
`);
      assert.deepEqual(c.tls?.certificates, []);
      assert.deepEqual(c.tls?.secrets, [
        { namespace: 'certs', name: 'wild' },
        { namespace: 'other', name: 'api.example.org', hosts: ['api.example.org'] },
      ]);
      assert.equal(c.projects[0].settings['tls-secret'], 'certs/shop-tls');
    });

    it('an edge with discovery may start with no certificate: annotations can bring them', () => {
      assert.deepEqual(parseConfig(`tier: edge\n${k8s}\ntls: {}`).tls?.secrets, []);
    });

    it('refuses what would read Secrets where it must not, or guess a namespace', () => {
      assert.deepEqual(issues(`${k8s}\ntls: { secrets: [{ namespace: a, name: b }] }`), [
        'tls.secrets: only the edge tier reads Secrets (tier: edge)',
      ]);
      assert.match(
        issues('tier: edge\ntls: { secrets: [{ namespace: a, name: b }] }').join(),
        /tls\.secrets: needs Kubernetes discovery/,
      );
      assert.match(
        issues(`tier: edge\n${k8s}\ntls: { secrets: [{ name: b }] }`).join(),
        /^tls\.secrets\.0\.namespace: required/,
      );
      assert.match(issues('tier: edge\ntls: {}').join(), /^tls: at least one certificate/);
      assert.match(
        issues(`tier: edge\n${k8s}\ntls: { secrets: [{ namespace: a, name: Bad_Name }] }`).join(),
        /^tls\.secrets\.0\.name: "Bad_Name": expected a Secret name/,
      );
      assert.match(
        issues(`tier: edge\n${k8s}\ntls: { secrets: [{ namespace: a, name: b, extra: 1 }] }`).join(),
        /^tls\.secrets\.0: unknown key\(s\) "extra"/,
      );
    });

    it('tls-secret in the config file: per project, with a namespace, on the edge tier', () => {
      assert.deepEqual(issues('projects: { shop: { tls-secret: a/b } }'), [
        'projects.shop.tls-secret: only the edge tier reads Secrets (tier: edge)',
      ]);
      assert.deepEqual(issues(`tier: edge\n${k8s}\nprojects: { shop: { tls-secret: b } }`), [
        'projects.shop.tls-secret: a project of the config file names its Secret as <namespace>/<name>',
      ]);
      assert.deepEqual(issues(`tier: edge\n${k8s}\ndefaults: { tls-secret: a/b }`), [
        'defaults.tls-secret: name a Secret per project, or list it under tls.secrets',
      ]);
      assert.match(
        issues(`tier: edge\n${k8s}\nprojects: { shop: { tls-secret: "a/b/c" } }`).join(),
        /projects\.shop\.tls-secret: "a\/b\/c": expected <name> or <namespace>\/<name>/,
      );
    });
  });
});
