import assert from 'node:assert/strict';
import { after, afterEach, describe, test } from 'node:test';
import fc from 'fast-check';
import { ApiClient } from '../../src/discovery/apiclient.ts';
import { Backoff } from '../../src/discovery/clock.ts';
import { type ApiServerTarget, NO_CREDENTIALS } from '../../src/discovery/credentials.ts';
import { LineSplitter, LineTooLong } from '../../src/discovery/ndjson.ts';
import { type ObjectChange, Reflector } from '../../src/discovery/reflector.ts';
import { FakeApiServer, service } from '../../src/fake-apiserver/index.ts';
import { until } from './helpers.ts';

const target = (url: string): ApiServerTarget => ({ url, credentials: NO_CREDENTIALS });

describe('LineSplitter and Backoff', () => {
  test('splits NDJSON across chunk boundaries, including inside a UTF-8 character', () => {
    const s = new LineSplitter();
    const text = Buffer.from('{"a":"é"}\n{"b":1}\n{"c":"日本"}\n{"d":');
    const out: string[] = [];
    const onLine = (l: string) => out.push(l);
    for (let i = 0; i < text.length; i += 3) s.push(text.subarray(i, i + 3), onLine);
    s.push(Buffer.from('2}'), onLine);
    s.end(onLine);
    assert.deepEqual(
      out.map((l) => JSON.parse(l)),
      [{ a: 'é' }, { b: 1 }, { c: '日本' }, { d: 2 }],
    );
  });
  test('any chunking of any lines gives the same lines; a line past the limit throws after the ones before', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.string({ unit: 'binary', maxLength: 40 }).map((x) => x.replace(/\n/g, '')),
          { maxLength: 20 },
        ),
        fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 10 }),
        (lines, cuts) => {
          const bytes = Buffer.from(lines.map((l) => `${l}\n`).join(''));
          const s = new LineSplitter(1000);
          const out: string[] = [];
          for (let i = 0, k = 0; i < bytes.length; k++) {
            const n = cuts[k % cuts.length];
            s.push(bytes.subarray(i, i + n), (l) => out.push(l));
            i += n;
          }
          s.end((l) => out.push(l));
          // Blank lines (spaces, tabs and CRs only, what JSON itself skips) are dropped.
          assert.deepEqual(
            out,
            lines.filter((l) => !/^[ \t\r]*$/.test(l)),
          );
        },
      ),
      { seed: 25, numRuns: 200 },
    );
    const s = new LineSplitter(10);
    const out: string[] = [];
    assert.throws(() => s.push('short\nmuch too long\nnever', (l) => out.push(l)), LineTooLong);
    assert.deepEqual(out, ['short']);
    const t = new LineSplitter(10);
    t.push('12345', () => {});
    assert.throws(() => t.push('678901', () => {}), LineTooLong, 'no newline at all: bounded too');
  });
  test('backoff doubles from 0.5 s to 30 s with jitter and never stops', () => {
    let r = 0;
    const b = new Backoff(500, 30_000, () => r);
    const lows = Array.from({ length: 12 }, () => b.next());
    assert.deepEqual(lows.slice(0, 4), [250, 500, 1000, 2000]);
    assert.equal(lows[11], 15_000);
    r = 0.999;
    assert.ok(b.next() <= 30_000 && b.next() > 29_000);
    b.reset();
    assert.equal(b.next(), 500);
  });
});

describe('Reflector against the fake apiserver', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  after(() => {});

  async function setup(
    opts: {
      silenceMs?: number;
      pageSize?: number;
      urls?: string[];
      api?: FakeApiServer;
      backoff?: [number, number];
    } = {},
  ) {
    const api = opts.api ?? (await new FakeApiServer({ bookmarkIntervalMs: 50 }).start());
    cleanups.push(() => api.close());
    const client = new ApiClient((opts.urls ?? [api.url]).map(target), { silenceMs: opts.silenceMs ?? 5000 });
    cleanups.push(() => client.close());
    const changes: ObjectChange[] = [];
    const health: (string | null)[] = [];
    const r = new Reflector({
      client,
      path: '/api/v1/services',
      labelSelector: 'wharf.io/project',
      pageSize: opts.pageSize ?? 500,
      onChanges: (c) => changes.push(...c),
      onHealth: (h) => health.push(h),
      backoffInitialMs: opts.backoff?.[0] ?? 20,
      backoffMaxMs: opts.backoff?.[1] ?? 100,
      relistBackoffInitialMs: opts.backoff?.[0] ?? 20,
      relistBackoffMaxMs: opts.backoff?.[1] ?? 100,
      watchTimeoutSeconds: [300, 600],
    });
    cleanups.push(() => r.stop());
    return { api, client, changes, health, r };
  }

  test('paged list, then watch from the list RV with bookmarks and a jittered timeout', async () => {
    const api = await new FakeApiServer({ bookmarkIntervalMs: 50 }).start();
    for (let i = 0; i < 5; i++) api.apply(service(`s${i}`));
    api.apply(service('plain', { project: null }));
    const { changes, r } = await setup({ api, pageSize: 2 });
    r.start();
    await until(() => r.lists === 1 && r.watches === 1, 3000, 'list and watch');
    assert.equal(changes.length, 5, 'only labelled Services');
    const listReqs = api.requests.filter(
      (q) => q.path.startsWith('/api/v1/services?') && !q.path.includes('watch'),
    );
    assert.equal(listReqs.length, 3, '5 items in pages of 2');
    assert.ok(listReqs.every((q) => q.path.includes('limit=2')));
    const w = api.requests.find((q) => q.path.includes('watch=true'))!;
    const q = new URL(w.path, 'http://x').searchParams;
    assert.equal(q.get('allowWatchBookmarks'), 'true');
    assert.equal(q.get('labelSelector'), 'wharf.io/project');
    const t = Number(q.get('timeoutSeconds'));
    assert.ok(t >= 300 && t <= 600);
    api.apply(service('s9'));
    api.delete('Service', 'default', 's0');
    await until(() => changes.length === 7, 2000, 'watch events');
    assert.deepEqual(
      changes.slice(5).map((c) => `${c.type} ${c.key}`),
      ['upsert default/s9', 'delete default/s0'],
    );
    const rvBefore = r.resourceVersion;
    await until(() => r.resourceVersion !== rvBefore || api.store.rv === Number(rvBefore), 2000);
  });

  test('the first list hands over each page as it arrives; a relist applies the difference at once', async () => {
    const api = await new FakeApiServer({ bookmarkIntervalMs: 50 }).start();
    cleanups.push(() => api.close());
    for (let i = 0; i < 5; i++) api.apply(service(`p${i}`));
    const client = new ApiClient([target(api.url)], { silenceMs: 5000 });
    cleanups.push(() => client.close());
    const batches: string[][] = [];
    const listed: number[] = [];
    const r = new Reflector({
      client,
      path: '/api/v1/services',
      labelSelector: 'wharf.io/project',
      pageSize: 2,
      onChanges: (c) => batches.push(c.map((x) => `${x.type} ${x.key}`)),
      onListed: () => listed.push(batches.length),
      backoffInitialMs: 20,
      backoffMaxMs: 100,
      relistBackoffInitialMs: 20,
      relistBackoffMaxMs: 100,
    });
    cleanups.push(() => r.stop());
    r.start();
    await until(() => r.watches === 1, 3000);
    assert.deepEqual(
      batches.map((b) => b.length),
      [2, 2, 1],
      'one batch per page of the first list',
    );
    assert.deepEqual(listed, [3], 'onListed after the last page');
    api.stall();
    api.delete('Service', 'default', 'p1');
    api.apply(service('p9'));
    api.apply(service('p8'));
    api.compact();
    api.unstall();
    api.endAllWatches();
    await until(() => r.lists === 2, 3000, 'relist');
    assert.deepEqual(batches.slice(3), [['upsert default/p8', 'upsert default/p9', 'delete default/p1']]);
  });

  test('a clean watch end resumes from the last RV without relisting', async () => {
    const { api, changes, r } = await setup();
    api.apply(service('a'));
    r.start();
    await until(() => r.watches === 1, 3000);
    api.endAllWatches();
    api.apply(service('b'));
    await until(() => r.watches === 2 && changes.some((c) => c.key === 'default/b'), 3000);
    assert.equal(r.lists, 1, 'no relist');
    const last = api.requests.filter((q) => q.path.includes('watch=true')).at(-1)!;
    assert.notEqual(new URL(last.path, 'http://x').searchParams.get('resourceVersion'), '0');
  });

  test('410 while away -> relist that emits only the difference', async () => {
    const { api, changes, r } = await setup();
    api.apply(service('keep'));
    api.apply(service('gone'));
    r.start();
    await until(() => r.watches === 1, 3000);
    api.stall(); // the watch stops hearing about changes
    api.delete('Service', 'default', 'gone');
    api.apply(service('new'));
    api.compact();
    api.unstall();
    api.endAllWatches();
    await until(() => r.lists === 2 && r.watches >= 2, 3000, 'relist');
    assert.deepEqual(
      changes
        .slice(2)
        .map((c) => `${c.type} ${c.key}`)
        .sort(),
      ['delete default/gone', 'upsert default/new'],
      '"keep" is not re-emitted',
    );
  });

  test('HTTP 410 on watch and an expired continue token both relist', async () => {
    const api = await new FakeApiServer({ goneAsHttp: true }).start();
    for (let i = 0; i < 4; i++) api.apply(service(`c${i}`));
    let expireOnce = true;
    api.onRequest = (q) => {
      if (expireOnce && q.path.includes('continue=')) {
        expireOnce = false;
        api.expireContinueTokens();
      }
    };
    const { changes, r } = await setup({ api, pageSize: 2 });
    r.start();
    await until(() => r.watches === 1, 3000);
    assert.equal(changes.length, 4, 'the list restarted from scratch after the 410 and applied once');
    api.restart({ freshHistory: true });
    await until(() => r.lists === 2 && r.watches >= 2, 3000, 'relist after HTTP 410');
    assert.equal(changes.length, 4, 'nothing changed, nothing emitted');
  });

  test('a history shorter than list+watch does not make it spin', async () => {
    const api = await new FakeApiServer({ maxHistory: 1 }).start();
    const { r } = await setup({ api, backoff: [100, 400] });
    // Every watch finds its RV already compacted away: the server churns faster than history lasts.
    api.onRequest = (q) => {
      if (q.path.includes('watch=true')) {
        api.apply(service(`churn-${Math.random().toString(36).slice(2, 8)}`));
        api.apply(service(`churn-${Math.random().toString(36).slice(2, 8)}`));
      }
    };
    r.start();
    await new Promise((res) => setTimeout(res, 600));
    api.onRequest = null;
    assert.ok(r.lists >= 2, 'it relisted');
    // Backoff 50-100, 100-200, 200-400 ms: at most about 5 lists; without it, dozens.
    assert.ok(r.lists <= 10, `relisted ${r.lists} times in 600 ms: backoff applies`);
  });

  test('watchdog restarts a silent stream', async () => {
    const { api, changes, r } = await setup({ silenceMs: 300 });
    r.start();
    await until(() => r.watches === 1, 3000);
    api.stall();
    await new Promise((res) => setTimeout(res, 500));
    api.unstall();
    api.crash(); // drop held requests so only fresh ones are answered
    api.apply(service('late'));
    await until(() => changes.some((c) => c.key === 'default/late'), 5000, 'recovered after silence');
    assert.ok(r.watches >= 2);
  });

  test('backoff keeps retrying through an outage, health goes bad then good', async () => {
    const { api, changes, health, r } = await setup();
    await api.down();
    r.start();
    await new Promise((res) => setTimeout(res, 300));
    assert.ok(health.length >= 1 && health[0] !== null, 'reported unhealthy');
    assert.match(String(health[0]), /ECONNREFUSED/);
    await api.up();
    api.apply(service('back'));
    await until(() => changes.some((c) => c.key === 'default/back'), 3000);
    assert.equal(health.at(-1), null);
  });

  test('fails over from a dead first URL to the second', async () => {
    const dead = await new FakeApiServer().start();
    const deadUrl = dead.url;
    await dead.close();
    const live = await new FakeApiServer().start();
    live.apply(service('x'));
    const { changes, client, r } = await setup({ api: live, urls: [deadUrl, live.url] });
    const t0 = Date.now();
    r.start();
    await until(() => changes.length === 1, 3000);
    assert.ok(Date.now() - t0 < 1000, 'no backoff before trying an untried server');
    assert.equal(client.current.url, live.url);
  });
});
