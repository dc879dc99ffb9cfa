// Every config error reads the same way: `<field path>: <value given>: expected <what>` with an
// example, and nothing of the validation library's own wording. Wrong types and wrong values across
// the whole schema, each with the exact line a user sees.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, parseConfig } from '../../src/config/load.ts';

function issues(text: string): string[] {
  try {
    parseConfig(text, 'c.yaml');
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return [...err.issues];
  }
  assert.fail(`expected a ConfigError for:\n${text}`);
}

/** What zod says on its own (its default messages), which must never reach a user. */
const LIBRARY =
  /Invalid (input|option|key|string|element)|Too (small|big)|Unrecognized key|received (number|string|boolean|array|object|undefined|null)|expected (string|number|boolean|array|object|int|record)\b(?! of)/;
/** An example or the full list of choices. */
const EXAMPLE = /such as|e\.g\.|expected (one of|[\w.:]+( [\w.:]+)?(, [\w.:<>]+)* or [\w.:]+)/;

// [YAML, the exact message]
const CASES: [string, string][] = [
  ['listen: 8080', 'listen: 8080: expected host:port such as 127.0.0.1:8080, 0.0.0.0:8080 or [::]:8080'],
  ['admin: [127.0.0.1:1]', 'admin: a list (["127.0.0.1:1"]): expected host:port such as 127.0.0.1:9901'],
  [
    'admin-token: short',
    'admin-token: "short": expected a secret of at least 16 characters, e.g. the output of `openssl rand -hex 16`',
  ],
  ['domain: "not a name"', 'domain: "not a name": expected a DNS name such as apps.example.com'],
  ['tier: middle', 'tier: "middle": expected internal or edge'],
  ['instance-header: yes please', 'instance-header: "yes please": expected true or false'],
  ['timeouts: { connect: 2 }', 'timeouts.connect: 2: expected a duration such as 500ms, 1s or 2m'],
  ['timeouts: { drain: "10" }', 'timeouts.drain: "10": expected a duration such as 500ms, 1s or 2m'],
  ['timeouts: 5s', 'timeouts: "5s": expected a mapping such as { connect: 2s, drain: 10s }'],
  [
    'limits: { max-headers: lots }',
    'limits.max-headers: "lots": expected a whole number from 8 to 1000, e.g. 100',
  ],
  ['limits: { max-headers: 4 }', 'limits.max-headers: 4: expected a whole number from 8 to 1000, e.g. 100'],
  [
    'limits: { max-header-bytes: 1.5 }',
    'limits.max-header-bytes: 1.5: expected a whole number from 1024 to 1048576, e.g. 16384',
  ],
  [
    'limits: { max-body-bytes: -1 }',
    'limits.max-body-bytes: -1: expected a whole number of bytes (0: no limit), e.g. 10485760',
  ],
  [
    'limits: { client-rate: fast }',
    'limits.client-rate: "fast": expected requests per second (0: no limit), e.g. 100',
  ],
  ['upstream: { retry-budget: 2 }', 'upstream.retry-budget: 2: expected a fraction from 0 to 1, e.g. 0.2'],
  [
    'upstream: { connections: 0 }',
    'upstream.connections: 0: expected a whole number from 1 to 10000, e.g. 128',
  ],
  [
    'health: { concurrency: true }',
    'health.concurrency: true: expected a whole number from 1 to 10000, e.g. 256',
  ],
  [
    'trusted-proxies: 10.0.0.0/8',
    'trusted-proxies: "10.0.0.0/8": expected a list of CIDRs such as [10.0.0.0/8, 192.168.0.0/16]',
  ],
  ['trusted-proxies: [10.0.0.0/99]', 'trusted-proxies.0: "10.0.0.0/99": expected a CIDR such as 10.0.0.0/8'],
  ['logs: { level: loud }', 'logs.level: "loud": expected debug, info, warn or error'],
  [
    'logs: { buffer-bytes: 10 }',
    'logs.buffer-bytes: 10: expected a whole number of at least 65536, e.g. 1048576',
  ],
  [
    'tls: { min-version: TLSv1.1, certificates: [{ cert: /c, key: /k }] }',
    'tls.min-version: "TLSv1.1": expected TLSv1.2 or TLSv1.3',
  ],
  [
    'tls: { certificates: [{ cert: /c }] }',
    'tls.certificates.0.key: missing: expected a file path such as /etc/wharf/tls/tls.key',
  ],
  ['edge: { forward-to: 7 }', 'edge.forward-to: 7: expected a project name such as wharf-internal'],
  ['kubernetes: { in-cluster: "yes" }', 'kubernetes.in-cluster: "yes": expected true or false'],
  [
    'kubernetes: { namespaces: shop }',
    'kubernetes.namespaces: "shop": expected a list of namespace names such as [shop, payments]',
  ],
  [
    'kubernetes: { namespaces: [Shop] }',
    'kubernetes.namespaces.0: "Shop": expected a namespace name (a DNS label) such as shop',
  ],
  [
    'kubernetes: { apiservers: [ftp://x] }',
    'kubernetes.apiservers.0: "ftp://x": expected http(s)://host:port such as https://10.0.0.11:6443',
  ],
  [
    'defaults: { health-interval: "1" }',
    'defaults.health-interval: "1": expected a duration such as 500ms, 1s or 2m',
  ],
  [
    'defaults: { retries: many }',
    'defaults.retries: "many": expected a whole number from 0 to 10, e.g. retries: 2',
  ],
  [
    'defaults: { retries: [1] }',
    'defaults.retries: a list ([1]): expected a string, number or boolean such as retries: 2',
  ],
  [
    'defaults: { affinity: sometimes }',
    'defaults.affinity: "sometimes": expected none, cookie, header:<name> or ip, e.g. affinity: cookie',
  ],
  [
    'defaults: { balancer: fastest }',
    'defaults.balancer: "fastest": expected p2c or round-robin, e.g. balancer: p2c',
  ],
  [
    'defaults: { health-expect: ok }',
    'defaults.health-expect: "ok": expected status codes such as 200-399, 2xx or 200,204',
  ],
  [
    'projects: { shop: { health-fall: 0 } }',
    'projects.shop.health-fall: "0": expected a whole number from 1 to 100, e.g. health-fall: 2',
  ],
  [
    'projects: { shop: { instances: [a] } }',
    'projects.shop.instances: a list (["a"]): expected a mapping of instance names to ports, e.g. { shop-0: { http: 127.0.0.1:8000 } }',
  ],
  [
    'projects: { shop: { instances: { s-0: { http: 8000 } } } }',
    'projects.shop.instances.s-0.http: 8000: expected host:port such as 127.0.0.1:8000',
  ],
  [
    'projects: { shop: { instances: { s-0: { HTTP: 127.0.0.1:1 } } } }',
    'projects.shop.instances.s-0: key "HTTP": expected a port name (a DNS label: lowercase letters, digits, \'-\') such as http',
  ],
  [
    'projects: { shop: { ports: http } }',
    'projects.shop.ports: "http": expected a list of port names such as [http, admin]',
  ],
  [
    'projects: shop',
    'projects: "shop": expected a mapping of project names to projects, e.g. { shop: { instances: { shop-0: { http: 127.0.0.1:8000 } } } }',
  ],
  ['- a\n- b', '(top level): a list (["a","b"]): expected a YAML mapping such as `listen: 127.0.0.1:8080`'],
];

describe('config error messages', () => {
  for (const [yaml, want] of CASES) {
    it(want.slice(0, want.indexOf(':', want.indexOf(':') + 1)), () => {
      const got = issues(yaml);
      assert.ok(
        got.includes(want),
        `for ${JSON.stringify(yaml)}:\n  want ${want}\n  got  ${got.join('\n       ')}`,
      );
    });
  }

  it('no message anywhere uses the validation library wording, and each shows an example', () => {
    for (const [yaml] of CASES) {
      for (const line of issues(yaml)) {
        assert.doesNotMatch(line, LIBRARY, line);
        assert.match(line, EXAMPLE, `no example in: ${line}`);
        // Field path first, then the value given (or `missing`), then what is expected.
        assert.match(line, /^[^:]+: (.+: )?(expected|key )/, line);
      }
    }
  });

  it('unknown keys list the known ones and suggest the closest', () => {
    const [top] = issues('colour: blue');
    assert.match(top, /^unknown key\(s\) "colour": expected one of listen, admin, /);
    assert.equal(
      issues('logs: { levle: info }')[0],
      'logs: unknown key(s) "levle": expected one of dir, access, health, probe-failures, buffer-bytes, level (did you mean "level"?)',
    );
    assert.match(issues('projects: { a: { retry: 1 } }')[0], /\(did you mean "retries"\?\)/);
  });

  it('reports every error at once: the schema refusals and the checks after them', () => {
    const all = issues(
      'listen: nowhere\ncolour: blue\nprojects: { a: { retries: many, instances: { a-0: { http: 1.2.3.4 } } } }',
    );
    assert.deepEqual(all, [
      'unknown key(s) "colour": expected one of listen, admin, admin-token, admin-hosts, domain, tier, instance-header, defaults, timeouts, limits, trusted-proxies, proxy-protocol, tls, edge, upstream, health, projects, kubernetes, logs',
      'listen: "nowhere": expected host:port such as 127.0.0.1:8080',
      'projects.a.retries: "many": expected a whole number from 0 to 10, e.g. retries: 2',
      'projects.a.instances.a-0.http: "1.2.3.4": expected host:port such as 127.0.0.1:8080',
    ]);
    // A field refused by the schema is not blamed twice through what its removal leaves behind.
    assert.deepEqual(issues('projects: { a: { instances: { a-0: { HTTP: 127.0.0.1:1 } } } }').length, 1);
  });
});
