// Issue 25: what a broken or hostile apiserver (or a proxy in front of it) can send, case by case.
// Each case reproduces a bug found at filing; each failed on the code at the start of the branch.
// The convergence property (convergence.test.ts) covers random sequences of the same faults.

import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { NO_CREDENTIALS } from '../../src/discovery/credentials.ts';
import type { KubeObject } from '../../src/discovery/k8s-types.ts';
import type { ReflectorIncident } from '../../src/discovery/reflector.ts';
import { KubernetesSource, type KubernetesSourceOptions } from '../../src/discovery/source.ts';
import { endpointSlice, FakeApiServer, service } from '../../src/fake-apiserver/index.ts';
import type { ProjectRecord } from '../../src/model/snapshot.ts';
import type { SourceStatus as SourceState } from '../../src/model/source.ts';
import { until } from './helpers.ts';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Harness {
  api: FakeApiServer;
  src: KubernetesSource;
  states: SourceState[];
  incidents: ReflectorIncident[];
  project(name: string): ProjectRecord | undefined;
  pods(name: string): string;
}

async function harness(o: Partial<KubernetesSourceOptions> & { api?: FakeApiServer } = {}): Promise<Harness> {
  const api = o.api ?? (await new FakeApiServer({ bookmarkIntervalMs: 60_000 }).start());
  cleanups.push(() => api.close());
  const incidents: ReflectorIncident[] = [];
  const states: SourceState[] = [];
  const src = new KubernetesSource({
    servers: [{ url: api.url, credentials: NO_CREDENTIALS }],
    backoffInitialMs: 20,
    backoffMaxMs: 200,
    relistBackoffInitialMs: 20,
    relistBackoffMaxMs: 200,
    silenceMs: 3000,
    coalesceMs: 2,
    onIncident: (i) => incidents.push(i),
    ...o,
  });
  cleanups.push(() => src.stop());
  src.onStatus((s) => states.push(s));
  src.start();
  return {
    api,
    src,
    states,
    incidents,
    project: (name) => src.projects.find((p) => p.name === name),
    pods: (name) =>
      src.projects
        .find((p) => p.name === name)
        ?.instances.map((i) => i.name)
        .join(',') ?? '(no project)',
  };
}

/** A watch event line for `obj` as the store holds it, the way the real server writes it. */
function eventLine(type: string, kind: string, obj: KubeObject): string {
  const apiVersion = kind === 'EndpointSlice' ? 'discovery.k8s.io/v1' : 'v1';
  return `${JSON.stringify({ type, object: { kind, apiVersion, ...obj } })}\n`;
}

const status = (code: number, message: string) =>
  `${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', code, message } })}\n`;

async function shopWithOnePod(o: Partial<KubernetesSourceOptions> = {}): Promise<Harness> {
  const h = await harness(o);
  h.api.apply(service('shop'));
  h.api.apply(
    endpointSlice('shop', {
      name: 'shop-a',
      ports: { http: 80 },
      endpoints: [{ ip: '10.0.0.1', pod: 'shop-0' }],
    }),
  );
  await until(() => h.pods('shop') === 'shop-0' && h.api.watchCount === 2, 5000, 'synced and watching');
  return h;
}

/**
 * The pod of `shop` is replaced while the watch is held back, then the change and `bad` arrive in
 * one read: the change must count, whatever `bad` is.
 */
async function changeThen(h: Harness, bad: string | ((h: Harness) => string)): Promise<void> {
  h.api.stall();
  const obj = h.api.modify('EndpointSlice', 'default', 'shop-a', (o) => {
    o.endpoints = [
      { addresses: ['10.0.0.9'], conditions: { ready: true }, targetRef: { kind: 'Pod', name: 'shop-9' } },
    ];
  });
  const tail = typeof bad === 'string' ? bad : bad(h);
  assert.equal(h.api.injectLine(eventLine('MODIFIED', 'EndpointSlice', obj) + tail, 'endpointslices'), 1);
  h.api.unstall();
}

describe('issue 25 item 1: a good event is never lost to a bad one in the same read', () => {
  const cases: [string, string | ((h: Harness) => string)][] = [
    ['an ERROR 410 (Expired)', status(410, 'too old resource version')],
    ['an ERROR 500', status(500, 'etcdserver: leader changed')],
    ['an event with no object', '{"type":"MODIFIED"}\n'],
    ['a line that is not JSON', '{"type":"MODIFIED","object":{"kind":"End\n'],
    [
      'an endpoint whose targetRef.name is not a string',
      (h) => {
        const weird = h.api.apply({
          ...endpointSlice('shop', {
            name: 'shop-b',
            ports: { http: 80 },
            endpoints: [{ ip: '10.0.0.7', pod: 'x' }],
          }),
        });
        (weird.endpoints as { targetRef: { name: unknown } }[])[0].targetRef.name = { first: 'x' };
        return eventLine('ADDED', 'EndpointSlice', weird);
      },
    ],
  ];
  for (const [name, bad] of cases) {
    test(`the change before ${name} is routed, and stays routed`, async () => {
      const h = await shopWithOnePod();
      await changeThen(h, bad);
      await until(() => h.pods('shop').includes('shop-9'), 3000, `shop-9 routed (now: ${h.pods('shop')})`);
      assert.ok(!h.pods('shop').includes('shop-0'), 'the old pod is gone');
      // Whatever relist or resume follows must not bring the old state back.
      await new Promise((r) => setTimeout(r, 300));
      assert.ok(h.pods('shop').includes('shop-9') && !h.pods('shop').includes('shop-0'), h.pods('shop'));
    });
  }

  test('a line that is not an event ends the stream, is counted, and relists', async () => {
    const h = await shopWithOnePod();
    const lists = h.api.requests.filter(
      (r) => r.path.includes('endpointslices?') && r.path.includes('limit='),
    ).length;
    h.api.injectLine('this is not json\n', 'endpointslices');
    await until(
      () =>
        h.api.requests.filter((r) => r.path.includes('endpointslices?') && r.path.includes('limit=')).length >
        lists,
      3000,
      'relist',
    );
    assert.deepEqual(
      h.incidents.map((i) => `${i.kind} ${i.resource} ${i.reason}`),
      ['rejected endpointslices unparsable', 'relist endpointslices broken-stream'],
    );
  });
});

describe('issue 25 item 2: the first LIST never reports success with items missing', () => {
  for (const junk of [null, 5, {}, { metadata: 'x' }, { metadata: { name: 7 } }]) {
    test(`a malformed item (${JSON.stringify(junk)}) on the first page costs only itself`, async () => {
      const api = await new FakeApiServer().start();
      for (let i = 0; i < 6; i++) api.apply(service(`s${i}`));
      let once = true;
      api.listHook = (plural, items) => {
        if (plural !== 'services' || !once) return items;
        once = false;
        return [...items.slice(0, 3), junk, ...items.slice(3)];
      };
      const h = await harness({ api, pageSize: 4 });
      await until(() => h.src.status.state === 'synced', 5000, 'first sync');
      assert.deepEqual(
        h.src.projects.map((p) => p.name).sort(),
        ['s0', 's1', 's2', 's3', 's4', 's5'],
        'every Service of the list',
      );
      assert.deepEqual(h.incidents, [{ kind: 'rejected', resource: 'services', reason: 'bad-item' }]);
    });
  }
});

describe('issue 25 item 3: a malformed Service is a Problem, not a crash', () => {
  for (const ports of [{}, 'http', 5, [5, null, { name: 7 }]]) {
    test(`spec.ports ${JSON.stringify(ports)}`, async () => {
      const h = await harness();
      h.api.apply(service('good'));
      const bad = service('bad');
      (bad.spec as { ports: unknown }).ports = ports;
      h.api.apply(bad);
      await until(() => h.src.status.state === 'synced' && h.project('good'), 5000, 'synced');
      // Also as a change after the first sync (the crash came from the next event's rebuild).
      h.api.modify('Service', 'default', 'bad', (o) => {
        o.metadata.annotations = { 'wharf.io/affinity': 'cookie' };
      });
      h.api.apply(service('later'));
      await until(() => h.project('later'), 3000, 'a later Service is still published');
      assert.ok(
        h.src.problems.some((p) => p.object === 'service default/bad'),
        JSON.stringify(h.src.problems),
      );
    });
  }
});

describe('issue 25 item 4: one huge watch line cannot take the proxy down', () => {
  /** Garbage without a newline, then a real change: the change must be routed. */
  async function hugeThenChange(h: Harness, bytes: number): Promise<void> {
    h.api.injectLine(Buffer.alloc(bytes, 0x61), 'endpointslices');
    await new Promise((r) => setTimeout(r, 50));
    h.api.apply(
      endpointSlice('shop', {
        name: 'shop-a',
        ports: { http: 80 },
        endpoints: [{ ip: '10.0.0.2', pod: 'shop-2' }],
      }),
    );
    await until(
      () => h.pods('shop') === 'shop-2',
      10_000,
      `the change after the line (now ${h.pods('shop')})`,
    );
    assert.deepEqual(
      h.incidents.map((i) => `${i.kind} ${i.resource} ${i.reason}`),
      ['rejected endpointslices too-long', 'relist endpointslices broken-stream'],
    );
  }

  test('a line past the limit breaks the stream (counted) and relists; the next change is routed', async () => {
    // 3 MiB without a newline, in one write: the reader gives up at 1 MiB instead of buffering it all
    // and gluing the next event onto it.
    await hugeThenChange(await shopWithOnePod({ maxLineBytes: 1 << 20 }), 3 << 20);
  });

  test('the default limit is 16 MiB', async () => {
    await hugeThenChange(await shopWithOnePod(), 17 << 20);
  });
});

describe('issue 25 item 5: a watch that cannot resume relists', () => {
  test('a bookmark with a version from the future (504 Too large resource version)', async () => {
    const h = await shopWithOnePod();
    h.api.injectLine(
      `${JSON.stringify({ type: 'BOOKMARK', object: { kind: 'Service', apiVersion: 'v1', metadata: { resourceVersion: '999999999' } } })}\n`,
      'services',
    );
    await new Promise((r) => setTimeout(r, 50));
    h.api.endAllWatches();
    h.api.apply(service('after'));
    await until(() => h.project('after'), 5000, 'a Service created after the bogus bookmark');
    assert.ok(
      h.incidents.some((i) => i.kind === 'relist' && i.reason === 'cannot-resume'),
      JSON.stringify(h.incidents),
    );
  });

  test('a bookmark with a version that is not a number (400)', async () => {
    const h = await shopWithOnePod();
    h.api.injectLine(
      `${JSON.stringify({ type: 'BOOKMARK', object: { kind: 'Service', apiVersion: 'v1', metadata: { resourceVersion: 'abc' } } })}\n`,
      'services',
    );
    await new Promise((r) => setTimeout(r, 50));
    h.api.endAllWatches();
    h.api.apply(service('after'));
    await until(() => h.project('after'), 5000, 'a Service created after the bogus bookmark');
  });

  test('an etcd restore moves the version backwards', async () => {
    const h = await shopWithOnePod();
    for (let i = 0; i < 5; i++) h.api.apply(service(`churn-${i}`));
    await until(() => h.project('churn-4'), 3000);
    h.api.rewind(4);
    h.api.apply(service('after-restore'));
    await until(() => h.project('after-restore'), 5000, 'a Service created after the restore');
  });
});

describe('issue 25 item 6: a 410 storm backs off and says so', () => {
  test('every watch answered 410: relists back off from 0.8 s, and the source is degraded meanwhile', async () => {
    const api = await new FakeApiServer({ goneAsHttp: true }).start();
    api.apply(service('a'));
    api.failNext(1000, 410, 'too old resource version', { match: (p) => p.includes('watch=true') });
    const h = await harness({ api, relistBackoffInitialMs: undefined, relistBackoffMaxMs: undefined });
    const lists = () => api.requests.filter((r) => r.path.includes('limit=')).length;
    await until(() => h.src.status.state !== 'syncing', 3000, 'first sync');
    await new Promise((r) => setTimeout(r, 3500));
    // Two reflectors. Waits of 0.8-1.6 s then 1.6-3.2 s: at most 3 lists each in 3.5 s (the first
    // included); without backoff it was about 2.5 a second each.
    assert.ok(lists() <= 6, `${lists()} lists in 3.5 s`);
    assert.ok(lists() >= 4, `${lists()} lists: it does relist`);
    assert.equal(h.src.status.state, 'degraded');
    assert.match(h.src.status.reason ?? '', /relisting in \d+ ms/);
  });

  test('Retry-After on a failed watch is honoured', async () => {
    const h = await shopWithOnePod();
    const t0 = Date.now();
    h.api.failNext(1, 429, 'slow down', {
      retryAfterSeconds: 1,
      match: (p) => p.includes('services?') && p.includes('watch=true'),
    });
    h.api.endAllWatches();
    await until(
      () =>
        h.api.requests.filter((r) => r.path.includes('services?') && r.path.includes('watch=true')).length >=
        3,
      5000,
    );
    const watches = h.api.requests.filter(
      (r) => r.path.includes('services?') && r.path.includes('watch=true'),
    );
    assert.ok(
      watches[2].time - watches[1].time >= 950,
      `retried after ${watches[2].time - watches[1].time} ms`,
    );
    assert.ok(Date.now() - t0 < 5000);
  });
});

describe('issue 25 item 10: the watchdog counts events, not bytes', () => {
  test('a newline now and then does not keep a silent watch alive', async () => {
    const h = await shopWithOnePod({ silenceMs: 400 });
    h.api.stall();
    const trickle = setInterval(() => h.api.injectLine('\n'), 100);
    cleanups.push(() => clearInterval(trickle));
    // The change is never delivered on the stalled watch: only a new watch (or list) brings it.
    h.api.modify('EndpointSlice', 'default', 'shop-a', (o) => {
      o.endpoints = [{ addresses: ['10.0.0.3'], targetRef: { name: 'shop-3' } }];
    });
    await new Promise((r) => setTimeout(r, 100));
    h.api.unstall();
    await until(() => h.pods('shop') === 'shop-3', 3000, 'the watch was restarted');
    clearInterval(trickle);
  });
});
