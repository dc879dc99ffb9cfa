// What can be known before anything listens: two listeners on one address, an address that is not
// an IP, a health port no instance has, an edge forwarding to a project that does not exist, and
// certificate files that are missing or do not match their keys. `check-config` and `serve` refuse
// these with exit 2 (test/cli/first-hour.test.ts); here, the checks themselves.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { checkConfigFiles } from '../../src/config/files.ts';
import { ConfigError, parseConfig, parseHostPort } from '../../src/config/load.ts';
import { makeCa } from '../support/certs.ts';

function issues(text: string, over = {}): string[] {
  try {
    parseConfig(text, 'c.yaml', over);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return [...err.issues];
  }
  return [];
}

describe('static checks', () => {
  it('two listeners on one address', () => {
    assert.deepEqual(issues('listen: 127.0.0.1:8080\nadmin: 127.0.0.1:8080'), [
      'admin: "127.0.0.1:8080": the same address as listen: expected an address of its own, e.g. admin 127.0.0.1:9901',
    ]);
    // A wildcard overlaps every address of the same port; localhost is 127.0.0.1.
    assert.equal(issues('listen: 0.0.0.0:9901').length, 1, 'listen on every interface takes the admin port');
    assert.equal(issues('listen: "localhost:9901"').length, 1);
    assert.equal(issues('listen: "[::]:9901"').length, 1);
    assert.match(
      issues('listen: 127.0.0.1:8443', { admin: '127.0.0.1:8443' })[0],
      /^--admin: "127\.0\.0\.1:8443": the same address as listen/,
    );
    assert.match(
      issues(
        'tier: edge\nlisten: 0.0.0.0:8443\ntls: { certificates: [{ cert: /c, key: /k }], redirect-http: 127.0.0.1:8443 }',
      )[0],
      /^tls\.redirect-http: "127\.0\.0\.1:8443": the same address as listen/,
    );
    // Port 0 is a fresh port each time; different hosts on one port are two sockets.
    assert.deepEqual(issues('listen: 127.0.0.1:0\nadmin: 127.0.0.1:0'), []);
    assert.deepEqual(issues('listen: 127.0.0.1:8080\nadmin: 127.0.0.2:8080'), []);
  });

  it('addresses that are not IP addresses or host names', () => {
    assert.deepEqual(issues('listen: 300.1.1.1:8080'), [
      'listen: "300.1.1.1:8080": 300.1.1.1 is not an IPv4 address: expected four numbers from 0 to 255, e.g. 10.0.0.1:8080',
    ]);
    assert.match(issues('admin: 10.0.0:9901')[0], /^admin: "10\.0\.0:9901": 10\.0\.0 is not an IPv4 address/);
    assert.match(issues('admin: "[fe80::zz]:9901"')[0], /\[fe80::zz\] is not an IPv6 address/);
    assert.match(
      issues('projects: { a: { instances: { a-0: { http: "my_host:80" } } } }')[0],
      /^projects\.a\.instances\.a-0\.http: "my_host:80": "my_host" is neither an IP address nor a host name/,
    );
    assert.deepEqual(parseHostPort('wharf-internal.wharf-system.svc:8080'), {
      host: 'wharf-internal.wharf-system.svc',
      port: 8080,
    });
    assert.deepEqual(parseHostPort('[::1]:9901'), { host: '::1', port: 9901 });
  });

  it('a health-port no instance has', () => {
    const shop = 'instances: { s-0: { web: 127.0.0.1:1 } }';
    assert.deepEqual(issues(`projects: { shop: { health-port: admin, ${shop} } }`), [
      'projects.shop.health-port: "admin": no instance has a port "admin": expected one of web',
    ]);
    assert.deepEqual(issues(`defaults: { health-port: admin }\nprojects: { shop: { ${shop} } }`), [
      'defaults.health-port: "admin": no instance of project shop has a port "admin": expected one of web (or set health-port under projects.shop)',
    ]);
    assert.deepEqual(
      issues(
        'projects: { shop: { health-port: admin, instances: { s-0: { web: 127.0.0.1:1, admin: 127.0.0.1:2 } } } }',
      ),
      [],
    );
  });

  it('edge.forward-to must name a project (unless discovery may bring it)', () => {
    const edge = 'tier: edge\ntls: { certificates: [{ cert: /c, key: /k }] }\n';
    const internal = 'projects: { wharf-internal: { instances: { i-0: { http: 10.0.1.10:8080 } } } }';
    assert.deepEqual(issues(`${edge}edge: { forward-to: wharf-internl }\n${internal}`), [
      'edge.forward-to: "wharf-internl": not a project of this config: expected one of wharf-internal (did you mean "wharf-internal"?)',
    ]);
    assert.match(
      issues(`${edge}edge: { forward-to: internal }`)[0],
      /not a project of this config: declare it/,
    );
    assert.deepEqual(issues(`${edge}edge: { forward-to: wharf-internal }\n${internal}`), []);
    assert.deepEqual(
      issues(
        `${edge}kubernetes: { apiservers: [http://127.0.0.1:1] }\nedge: { forward-to: from-the-cluster }`,
      ),
      [],
    );
  });

  it('certificate files that are missing, not PEM, or do not match their key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'wharf-files-'));
    const ca = makeCa();
    const a = ca.leaf('a', ['a.example.com'], { into: dir });
    const b = ca.leaf('b', ['b.example.com'], { into: dir });
    const aCert = a.cert;
    const aKey = a.key;
    const bKey = b.key;
    const junk = join(dir, 'junk.pem');
    writeFileSync(junk, 'hello\n');
    const config = (certs: { cert: string; key: string }[]) =>
      parseConfig(JSON.stringify({ tier: 'edge', tls: { certificates: certs } }));
    assert.deepEqual(checkConfigFiles(config([{ cert: aCert, key: aKey }])), []);
    const got = checkConfigFiles(
      config([
        { cert: aCert, key: bKey },
        { cert: join(dir, 'missing.crt'), key: aKey },
        { cert: junk, key: junk },
      ]),
    );
    assert.equal(got.length, 4, got.join('\n'));
    assert.match(
      got[0],
      /^tls\.certificates\.0\.key: ".*b\.key": does not match the certificate .*a\.crt \(CN=a\.example\.com\): expected that certificate's private key$/,
    );
    assert.match(
      got[1],
      /^tls\.certificates\.1\.cert: ".*missing\.crt": no such file: expected a PEM certificate file$/,
    );
    assert.match(got[2], /^tls\.certificates\.2\.cert: ".*junk\.pem": not a certificate/);
    assert.match(got[3], /^tls\.certificates\.2\.key: ".*junk\.pem": not a private key/);
    const k8s = parseConfig('kubernetes: { kubeconfig: /nonexistent/kubeconfig }');
    assert.deepEqual(checkConfigFiles(k8s), [
      'kubernetes.kubeconfig: "/nonexistent/kubeconfig": no such file: expected a kubeconfig file such as ~/.kube/config',
    ]);
  });
});
