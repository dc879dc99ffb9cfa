// Certificates from Secrets, without a network: which Secrets are wanted, how a Secret becomes a PEM
// pair or a Problem, and how the CertificateStore serves them (scope, fallback, keep-the-old-one).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, describe, it } from 'node:test';
import {
  readTlsSecret,
  SecretCertificates,
  secretAccessProblems,
  secretCertSources,
  tlsSecretRefs,
} from '../../src/control/tls-secrets.ts';
import type { SecretView } from '../../src/discovery/secrets.ts';
import type { ProjectRecord } from '../../src/model/snapshot.ts';
import { CertificateStore, type CertSource, scopeHosts } from '../../src/proxy/certificates.ts';
import { buildRouteTable, type Conventions } from '../../src/routing/build.ts';
import { DEFAULT_SETTINGS } from '../../src/routing/settings.ts';
import { systemClock } from '../../src/util/clock.ts';
import { makeCa, type TestCa } from '../support/certs.ts';
import { projectRecord } from '../support/records.ts';

const b64 = (s: string) => Buffer.from(s).toString('base64');

function project(name: string, origin: string, settings: Record<string, string>): ProjectRecord {
  return projectRecord(name, origin, {
    settings,
    instances: [{ name: `${name}-0`, addresses: { http: { host: '127.0.0.1', port: 1 } }, draining: false }],
  });
}

const EDGE: Conventions = { tier: 'edge', defaults: DEFAULT_SETTINGS };

describe('scopeHosts', () => {
  it('keeps names at or below the scope, and the scope itself when a wildcard covers it', () => {
    const scope = 'shop.apps.example.com';
    assert.deepEqual(
      scopeHosts(['shop.apps.example.com', '*.shop.apps.example.com', '*.http.shop.apps.example.com'], scope),
      ['shop.apps.example.com', '*.shop.apps.example.com', '*.http.shop.apps.example.com'],
    );
    assert.deepEqual(scopeHosts(['*.apps.example.com'], scope), ['shop.apps.example.com']);
    assert.deepEqual(
      scopeHosts(['bank.apps.example.com', '*.example.com', 'xshop.apps.example.com'], scope),
      [],
    );
    assert.deepEqual(scopeHosts(['SHOP.Apps.Example.com'], `${scope}.`), ['shop.apps.example.com']);
  });
});

describe('tlsSecretRefs', () => {
  it('config Secrets first, then public projects by name; the Service namespace is the default', () => {
    const { table } = buildRouteTable(
      [
        project('web', 'team-a/web', { public: 'true', 'tls-secret': 'web-tls' }),
        project('api', 'team-b/api', { public: 'true', 'tls-secret': 'certs/api-tls' }),
        project('hidden', 'team-a/hidden', { 'tls-secret': 'hidden-tls' }),
        project('conf', 'config', { public: 'true', 'tls-secret': 'certs/conf-tls' }),
        project('plain', 'team-a/plain', { public: 'true' }),
      ],
      EDGE,
      1,
    );
    const refs = tlsSecretRefs(
      [{ namespace: 'edge', name: 'wild', hosts: ['*.apps.example.com'] }],
      table,
      'apps.example.com',
    );
    assert.deepEqual(refs, [
      {
        key: 'edge/wild',
        by: 'tls.secrets.0',
        field: 'tls.secrets.0',
        hosts: ['*.apps.example.com'],
        fallback: true,
      },
      {
        key: 'certs/api-tls',
        by: 'service team-b/api',
        field: 'wharf.io/tls-secret',
        scope: 'api.apps.example.com',
        fallback: false,
      },
      {
        key: 'certs/conf-tls',
        by: 'project conf',
        field: 'projects.conf.tls-secret',
        scope: 'conf.apps.example.com',
        fallback: false,
      },
      {
        key: 'team-a/web-tls',
        by: 'service team-a/web',
        field: 'wharf.io/tls-secret',
        scope: 'web.apps.example.com',
        fallback: false,
      },
    ]);
  });
});

describe('readTlsSecret', () => {
  const present = (o: Partial<SecretView>): SecretView => ({
    state: 'present',
    type: 'kubernetes.io/tls',
    crt: b64('CERT'),
    key: b64('KEY'),
    ...o,
  });
  const code = (v: SecretView | undefined) => {
    try {
      readTlsSecret(v);
    } catch (err) {
      return `${(err as { code: string }).code}: ${(err as Error).message}`;
    }
    return 'ok';
  };
  it('decodes tls.crt and tls.key of a kubernetes.io/tls Secret', () => {
    assert.deepEqual(readTlsSecret(present({})), { cert: 'CERT', key: 'KEY' });
  });
  it('names what is wrong otherwise', () => {
    assert.equal(code(undefined), 'secret-pending: the Secret has not been read yet');
    assert.equal(code({ state: 'absent' }), 'secret-not-found: there is no such Secret');
    assert.equal(code({ state: 'absent', deleted: true }), 'secret-not-found: the Secret was deleted');
    assert.equal(
      code(present({ type: 'Opaque' })),
      'secret-wrong-type: the Secret is of type "Opaque", not kubernetes.io/tls',
    );
    assert.equal(code(present({ key: undefined })), 'secret-incomplete: the Secret has no tls.key');
    assert.equal(code(present({ crt: '' })), 'secret-incomplete: the Secret has no tls.crt');
    assert.equal(code(present({ crt: 'not base64!' })), 'bad-certificate: tls.crt is not base64');
  });
});

describe('secretCertSources and secretAccessProblems', () => {
  const refs = [
    { key: 'a/x', by: 'tls.secrets.0', field: 'tls.secrets.0', fallback: true },
    { key: 'a/y', by: 'service a/web', field: 'wharf.io/tls-secret', scope: 'web.d', fallback: false },
    { key: 'a/x', by: 'service a/api', field: 'wharf.io/tls-secret', scope: 'api.d', fallback: false },
  ];
  it('no source for a Secret not read yet; one per use otherwise, versioned by resourceVersion', () => {
    const views: Record<string, SecretView> = {
      'a/x': {
        state: 'present',
        resourceVersion: '5',
        type: 'kubernetes.io/tls',
        crt: 'Q0VSVA==',
        key: 'S0VZ',
      },
      'a/y': { state: 'pending' },
    };
    const sources = secretCertSources(refs, (k) => views[k]);
    assert.deepEqual(
      sources.map((s) => [s.name, s.object, s.field, s.scope, s.fallback]),
      [
        ['secret a/x (tls.secrets.0)', 'secret a/x', 'tls.secrets.0', undefined, true],
        ['secret a/x (service a/api)', 'secret a/x', 'wharf.io/tls-secret', 'api.d', false],
      ],
    );
    const v1 = sources[0].version;
    views['a/x'] = { ...views['a/x'], resourceVersion: '6' };
    assert.notEqual(secretCertSources(refs, (k) => views[k])[0].version, v1);
  });
  it('a refused Secret is one Problem naming every use', () => {
    const problems = secretAccessProblems(refs, (k) =>
      k === 'a/x' ? { state: 'pending', error: { code: 403, message: 'HTTP 403: forbidden' } } : undefined,
    );
    assert.equal(problems.length, 1);
    assert.equal(problems[0].object, 'secret a/x');
    assert.equal(problems[0].code, 'secret-forbidden');
    assert.match(problems[0].message, /named by tls\.secrets\.0, service a\/api\): HTTP 403/);
  });
});

describe('CertificateStore with Secret sources', () => {
  let ca: TestCa;
  let wild: { cert: string; key: string };
  let shop: { cert: string; key: string };
  let bank: { cert: string; key: string };
  before(() => {
    ca = makeCa();
    const pem = (p: { cert: string; key: string }) => ({
      cert: readFileSync(p.cert, 'utf8'),
      key: readFileSync(p.key, 'utf8'),
    });
    wild = pem(ca.leaf('wild', ['*.apps.example.com']));
    shop = pem(
      ca.leaf('shop', ['shop.apps.example.com', '*.shop.apps.example.com', 'bank.apps.example.com']),
    );
    bank = pem(ca.leaf('bank', ['bank.apps.example.com']));
  });
  const src = (name: string, pair: () => { cert: string; key: string }, o: Partial<CertSource> = {}) =>
    ({ name, read: pair, ...o }) as CertSource;

  it('a project certificate serves only its own names and is never the fallback', () => {
    const store = new CertificateStore([], { minVersion: 'TLSv1.2', clock: systemClock });
    store.setDynamicSources([
      src('shop', () => shop, { scope: 'shop.apps.example.com', fallback: false }),
      src('bank', () => bank, { scope: 'bank.apps.example.com', fallback: false }),
    ]);
    assert.deepEqual(
      store.summary().map((s) => s.hosts),
      [['shop.apps.example.com', '*.shop.apps.example.com'], ['bank.apps.example.com']],
      "shop's certificate also names bank, but may not take it over",
    );
    assert.equal(store.contextFor('unknown.example.org'), undefined, 'no project certificate for strangers');
    assert.ok(store.contextFor('http.shop.apps.example.com'));
  });

  it('keeps the previous certificate when a new version fails, and reads only on a new version', () => {
    const store = new CertificateStore([], { minVersion: 'TLSv1.2', clock: systemClock });
    let reads = 0;
    let pair = wild;
    const mk = (version: string) =>
      src(
        'w',
        () => {
          reads++;
          return pair;
        },
        { version, object: 'secret e/w', field: 'tls.secrets.0' },
      );
    assert.deepEqual(store.setDynamicSources([mk('1')]), []);
    assert.deepEqual(store.setDynamicSources([mk('1')]), []);
    assert.equal(reads, 1, 'same version: not read again');
    pair = { cert: wild.cert, key: bank.key };
    const problems = store.setDynamicSources([mk('2')]);
    assert.equal(problems.length, 1);
    assert.deepEqual(
      [problems[0].object, problems[0].field, problems[0].code],
      ['secret e/w', 'tls.secrets.0', 'bad-certificate'],
    );
    assert.match(problems[0].message, /does not match.*the previous certificate keeps serving/);
    assert.equal(store.size, 1);
    assert.ok(store.contextFor('x.apps.example.com'));
    assert.equal(store.summary()[0].hosts[0], '*.apps.example.com');
    assert.deepEqual(store.setDynamicSources([]), []);
    assert.equal(store.size, 0, 'no longer named: gone');
  });
});

describe('SecretCertificates', () => {
  it('follows the table and the watcher; applies once per burst, outside the caller', async () => {
    const ca = makeCa();
    const p = ca.leaf('w', ['*.d.example']);
    const pair = { crt: b64(readFileSync(p.cert, 'utf8')), key: b64(readFileSync(p.key, 'utf8')) };
    const views = new Map<string, SecretView>();
    let listener = () => {};
    const wanted: string[][] = [];
    const watcher = {
      setWanted: (keys: Iterable<string>) => wanted.push([...keys]),
      view: (k: string) => views.get(k),
      onChange: (cb: () => void) => {
        listener = cb;
        return () => {};
      },
    };
    const store = new CertificateStore([], { minVersion: 'TLSv1.2', clock: systemClock });
    const problems: unknown[] = [];
    const sc = new SecretCertificates({
      watcher,
      store,
      secrets: [{ namespace: 'e', name: 'w' }],
      domain: 'd.example',
      onProblems: (x) => problems.push(x),
    });
    const empty = buildRouteTable([], EDGE, 1).table;
    sc.tableChanged(empty);
    sc.tableChanged(empty);
    assert.deepEqual(wanted, [['e/w']], 'same refs: the watcher is not touched again');
    assert.deepEqual(sc.pending(), ['e/w']);
    views.set('e/w', { state: 'present', resourceVersion: '1', type: 'kubernetes.io/tls', ...pair });
    listener();
    listener();
    assert.equal(store.size, 0, 'applied in a microtask, not inside the callback');
    await new Promise((r) => setImmediate(r));
    assert.equal(store.size, 1);
    assert.deepEqual(sc.pending(), []);
    // Access revoked after a read: the certificate keeps serving, and a Problem says why.
    views.set('e/w', { ...views.get('e/w')!, error: { code: 403, message: 'no' } });
    listener();
    await new Promise((r) => setImmediate(r));
    assert.equal((problems.at(-1) as { code: string }[])[0].code, 'secret-forbidden');
    assert.equal(store.size, 1);
    // Refused before any read: nothing to serve, but it does not hold readiness forever either.
    sc.tableChanged(
      buildRouteTable([project('p', 'ns/p', { public: 'true', 'tls-secret': 'q' })], EDGE, 2).table,
    );
    assert.deepEqual(wanted.at(-1), ['e/w', 'ns/q']);
    assert.deepEqual(sc.pending(), ['ns/q']);
    views.set('ns/q', { state: 'pending', error: { code: 403, message: 'no' } });
    assert.deepEqual(sc.pending(), []);
  });

  it('after a swap looks only at the changed projects, and agrees with a full scan', () => {
    const wanted: string[][] = [];
    const watcher = {
      setWanted: (keys: Iterable<string>) => wanted.push([...keys]),
      view: () => undefined,
      onChange: () => () => {},
    };
    const store = new CertificateStore([], { minVersion: 'TLSv1.2', clock: systemClock });
    const sc = new SecretCertificates({
      watcher,
      store,
      secrets: [],
      domain: 'd.example',
      onProblems: () => {},
    });
    const pub = (name: string, secret?: string) =>
      project(name, `ns/${name}`, { public: 'true', ...(secret ? { 'tls-secret': secret } : {}) });
    const table = (v: number, ...projects: ProjectRecord[]) => buildRouteTable(projects, EDGE, v).table;
    sc.tableChanged(table(1, pub('a', 'sa'), pub('b')));
    assert.deepEqual(wanted, [['ns/sa']]);
    // "b" changed but still names no Secret: the watcher is not touched.
    sc.tableChanged(table(2, pub('a', 'sa'), pub('b')), ['b']);
    assert.equal(wanted.length, 1);
    // "b" now names one; "a" is listed as changed but names the same Secret.
    const t3 = table(3, pub('a', 'sa'), pub('b', 'sb'));
    sc.tableChanged(t3, ['a', 'b']);
    assert.deepEqual(wanted.at(-1), ['ns/sa', 'ns/sb']);
    assert.deepEqual(
      wanted.at(-1),
      tlsSecretRefs([], t3, 'd.example').map((r) => r.key),
    );
    // "a" removed from the table: its Secret is no longer wanted.
    sc.tableChanged(table(4, pub('b', 'sb')), ['a']);
    assert.deepEqual(wanted.at(-1), ['ns/sb']);
  });
});
