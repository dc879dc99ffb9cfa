// Issue 25's convergence invariant, as a model-based property: whatever sequence of valid and
// invalid objects, garbage lines, ERROR events, disconnects, 410s, failed requests and bogus
// bookmarks the apiserver sends, once it serves a consistent state again, Wharf's route table (and
// its Problems) equal the translation of that state. The model is the fake apiserver's own store:
// the expected table is translateAll + buildRouteTable over exactly what it holds.
//
// CI runs a fixed seed and a few runs; a longer run is one command:
//   npm run test:convergence            (200 runs from a random seed, printed in the test name)
//   WHARF_CONVERGENCE_SEED=123 WHARF_CONVERGENCE_RUNS=50 npm test -- discovery/convergence

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { ControlPlane } from '../../src/control/plane.ts';
import { NO_CREDENTIALS } from '../../src/discovery/credentials.ts';
import type { KubeObject } from '../../src/discovery/k8s-types.ts';
import { KubernetesSource } from '../../src/discovery/source.ts';
import { translateAll } from '../../src/discovery/translate.ts';
import { endpointSlice, FakeApiServer, service } from '../../src/fake-apiserver/index.ts';
import type { Problem } from '../../src/model/problem.ts';
import type { RouteTable } from '../../src/model/routes.ts';
import { DEFAULT_CONVENTIONS } from '../../src/routing/build.ts';
import { systemClock } from '../../src/util/clock.ts';

const RUNS = Number(process.env.WHARF_CONVERGENCE_RUNS ?? 20);
const SEED =
  process.env.WHARF_CONVERGENCE_SEED === 'random'
    ? Math.floor(Math.random() * 2 ** 31)
    : Number(process.env.WHARF_CONVERGENCE_SEED ?? 25);
/** How long the apiserver serves a consistent state before the tables must agree. */
const SETTLE_MS = 5000;
const MAX_LINE = 4096;

// ---------------------------------------------------------------- actions

const SERVICES = ['s0', 's1', 's2', 's3'];
const PORT_NAMES = ['http', 'admin', 'constructor', 'Bad_Port', 'grpc'];
const IPS = ['10.0.0.1', '10.0.0.2', '10.0.1.1', 'fd00::1', '127.0.0.1', '169.254.169.254', 'not-an-ip'];
const PODS = ['p-0', 'p-1', 'p-2', 'Pod.Dotted'];
const SETTINGS: Record<string, string>[] = [
  {},
  { affinity: 'cookie' },
  { 'health-interval': '1ms' },
  { expose: 'admin=false' },
  { 'health-port': 'admin', 'health-path': '/ready' },
  { wat: 'x' },
];

type Line =
  | 'garbage'
  | 'no-object'
  | 'error-410'
  | 'error-500'
  | 'error-400'
  | 'huge'
  | 'bookmark-future'
  | 'bookmark-nan'
  | 'partial';

type Action =
  | { k: 'svc'; i: number; ports: string[]; settings: number }
  | { k: 'del-svc'; i: number }
  | {
      k: 'slice';
      i: number;
      j: number;
      ports: [string, number][];
      eps: { ip: string; pod: string; ready: boolean; serving: boolean; terminating: boolean }[];
    }
  | { k: 'del-slice'; i: number; j: number }
  | { k: 'bad-svc'; i: number; ports: unknown }
  | { k: 'bad-slice'; i: number; j: number }
  | { k: 'line'; line: Line; plural: 'services' | 'endpointslices' }
  | { k: 'change-then-line'; i: number; ip: string; line: Line }
  | { k: 'end' }
  | { k: 'crash' }
  | { k: 'compact' }
  | { k: 'fail'; n: number; code: number; watch: boolean }
  | { k: 'junk-item' }
  | { k: 'wait'; ms: number };

const idx = (n: number) => fc.integer({ min: 0, max: n - 1 });

const arbAction: fc.Arbitrary<Action> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      k: fc.constant('svc' as const),
      i: idx(SERVICES.length),
      ports: fc.array(fc.constantFrom(...PORT_NAMES), { minLength: 1, maxLength: 3 }),
      settings: idx(SETTINGS.length),
    }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('del-svc' as const), i: idx(SERVICES.length) }) },
  {
    weight: 5,
    arbitrary: fc.record({
      k: fc.constant('slice' as const),
      i: idx(SERVICES.length),
      j: idx(2),
      ports: fc.array(fc.tuple(fc.constantFrom(...PORT_NAMES), fc.constantFrom(80, 8080, 0, 70000)), {
        maxLength: 3,
      }),
      eps: fc.array(
        fc.record({
          ip: fc.constantFrom(...IPS),
          pod: fc.constantFrom(...PODS),
          ready: fc.boolean(),
          serving: fc.boolean(),
          terminating: fc.boolean(),
        }),
        { maxLength: 3 },
      ),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ k: fc.constant('del-slice' as const), i: idx(SERVICES.length), j: idx(2) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant('bad-svc' as const),
      i: idx(SERVICES.length),
      ports: fc.constantFrom({}, 'http', 5, [null, 7]),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ k: fc.constant('bad-slice' as const), i: idx(SERVICES.length), j: idx(2) }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      k: fc.constant('line' as const),
      line: fc.constantFrom<Line>(
        'garbage',
        'no-object',
        'error-410',
        'error-500',
        'error-400',
        'huge',
        'bookmark-future',
        'bookmark-nan',
        'partial',
      ),
      plural: fc.constantFrom('services' as const, 'endpointslices' as const),
    }),
  },
  {
    // A real change and a bad line in one read: the change must count.
    weight: 3,
    arbitrary: fc.record({
      k: fc.constant('change-then-line' as const),
      i: idx(SERVICES.length),
      ip: fc.constantFrom('10.0.3.1', '10.0.3.2', '10.0.3.3'),
      line: fc.constantFrom<Line>(
        'garbage',
        'no-object',
        'error-410',
        'error-500',
        'error-400',
        'huge',
        'partial',
      ),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ k: 'end' as const }) },
  { weight: 1, arbitrary: fc.constant({ k: 'crash' as const }) },
  { weight: 1, arbitrary: fc.constant({ k: 'compact' as const }) },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant('fail' as const),
      n: fc.integer({ min: 1, max: 3 }),
      code: fc.constantFrom(500, 503, 429, 410, 400, 504),
      watch: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ k: 'junk-item' as const }) },
  {
    weight: 3,
    arbitrary: fc.record({ k: fc.constant('wait' as const), ms: fc.integer({ min: 1, max: 60 }) }),
  },
);

const status = (code: number, message: string) =>
  `${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', code, message } })}\n`;

function lineText(line: Line): string | Buffer {
  switch (line) {
    case 'garbage':
      return 'not json at all\n';
    case 'no-object':
      return '{"type":"MODIFIED"}\n';
    case 'error-410':
      return status(410, 'too old resource version');
    case 'error-500':
      return status(500, 'etcdserver: leader changed');
    case 'error-400':
      return status(400, 'bad request');
    case 'huge':
      return Buffer.alloc(MAX_LINE * 3, 0x7b);
    case 'bookmark-future':
      return `${JSON.stringify({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '99999999' } } })}\n`;
    case 'bookmark-nan':
      return `${JSON.stringify({ type: 'BOOKMARK', object: { metadata: { resourceVersion: 'x-1' } } })}\n`;
    case 'partial':
      return '{"type":"ADDED","object":{"metadata":';
  }
}

function exists(api: FakeApiServer, kind: string, name: string): boolean {
  return api.get(kind, 'default', name) !== undefined;
}

async function run(api: FakeApiServer, a: Action): Promise<void> {
  switch (a.k) {
    case 'svc':
      api.apply(
        service(SERVICES[a.i], {
          ports: a.ports.map((name, n) => ({ name, port: 80 + n })),
          settings: SETTINGS[a.settings],
        }),
      );
      break;
    case 'del-svc':
      if (exists(api, 'Service', SERVICES[a.i])) api.delete('Service', 'default', SERVICES[a.i]);
      break;
    case 'slice': {
      const s = endpointSlice(SERVICES[a.i], {
        name: `${SERVICES[a.i]}-${a.j}`,
        ports: {},
        endpoints: a.eps.map((e) => ({ ...e, ip: e.ip })),
      });
      s.ports = a.ports.map(([name, port]) => ({ name, port, protocol: 'TCP' }));
      s.addressType = 'IPv4';
      api.apply(s);
      break;
    }
    case 'del-slice':
      if (exists(api, 'EndpointSlice', `${SERVICES[a.i]}-${a.j}`))
        api.delete('EndpointSlice', 'default', `${SERVICES[a.i]}-${a.j}`);
      break;
    case 'bad-svc': {
      const s = service(SERVICES[a.i]);
      (s.spec as { ports: unknown }).ports = a.ports;
      api.apply(s);
      break;
    }
    case 'bad-slice': {
      const s = endpointSlice(SERVICES[a.i], {
        name: `${SERVICES[a.i]}-${a.j}`,
        ports: { http: 80 },
        endpoints: [{ ip: '10.0.2.1', pod: 'x' }],
      });
      (s.endpoints as { targetRef: { name: unknown } }[])[0].targetRef.name = { bad: true };
      api.apply(s);
      break;
    }
    case 'line':
      api.injectLine(lineText(a.line), a.plural);
      break;
    case 'change-then-line': {
      // Held back from the watches (nothing else runs until unstall), then sent with the bad line.
      api.stall();
      const had = exists(api, 'EndpointSlice', `${SERVICES[a.i]}-0`);
      const obj = api.apply(
        endpointSlice(SERVICES[a.i], {
          name: `${SERVICES[a.i]}-0`,
          ports: { http: 80 },
          endpoints: [{ ip: a.ip, pod: 'p-9' }],
        }),
      );
      const event = {
        type: had ? 'MODIFIED' : 'ADDED',
        object: { kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1', ...obj },
      };
      const tail = lineText(a.line);
      api.injectLine(
        Buffer.concat([Buffer.from(`${JSON.stringify(event)}\n`), Buffer.from(tail)]),
        'endpointslices',
      );
      api.unstall();
      break;
    }
    case 'end':
      api.endAllWatches();
      break;
    case 'crash':
      api.crash();
      break;
    case 'compact':
      api.compact();
      break;
    case 'fail':
      api.failNext(a.n, a.code, 'injected', { match: (p) => p.includes('watch=true') === a.watch });
      break;
    case 'junk-item': {
      let once = true;
      api.listHook = (_plural, items) => {
        if (!once) return items;
        once = false;
        return [null, ...items, { metadata: { name: 5 } }];
      };
      break;
    }
    case 'wait':
      await new Promise((r) => setTimeout(r, a.ms));
      break;
  }
}

// ---------------------------------------------------------------- comparison

/** What a route table and its Problems say, in a form two can be compared by. */
function view(cp: ControlPlane): string {
  const t: RouteTable = cp.table();
  const projects = [...t.projects.values()]
    .sort((a, b) => (a.name < b.name ? -1 : 1))
    .map((p) => ({
      name: p.name,
      origin: p.origin,
      defaultPort: p.defaultPort,
      settings: JSON.stringify(p.settings),
      ports: [...p.ports.values()].map((r) => ({
        port: r.port,
        endpoints: r.endpoints.map((e) => `${e.id} ${e.draining} ${e.probeAddress}`),
      })),
    }));
  // Whether the view may be stale is the live source's state, not the apiserver's: not compared.
  const problems = cp.problems
    .list()
    .filter((p: Problem) => p.code !== 'stale-view')
    .map((p) => JSON.stringify(p))
    .sort();
  return JSON.stringify({ projects, problems }, null, 1);
}

/** The table the apiserver's current state translates to. */
function expected(api: FakeApiServer): string {
  const objects: KubeObject[] = [];
  for (const o of api.store.objects.get('services')!.values()) objects.push({ ...o, kind: 'Service' });
  for (const o of api.store.objects.get('endpointslices')!.values())
    objects.push({ ...o, kind: 'EndpointSlice' });
  const { projects, problems } = translateAll(objects);
  // Through a control plane of its own: name conflicts are resolved there, as in production.
  const cp = new ControlPlane({ conventions: DEFAULT_CONVENTIONS, clock: systemClock });
  cp.set('kubernetes', projects, problems);
  return view(cp);
}

async function converges(actions: Action[]): Promise<void> {
  const api = await new FakeApiServer({ bookmarkIntervalMs: 200 }).start();
  const control = new ControlPlane({ conventions: DEFAULT_CONVENTIONS, clock: systemClock });
  const src = new KubernetesSource({
    servers: [{ url: api.url, credentials: NO_CREDENTIALS }],
    backoffInitialMs: 10,
    backoffMaxMs: 150,
    relistBackoffInitialMs: 10,
    relistBackoffMaxMs: 150,
    silenceMs: 1500,
    coalesceMs: 2,
    pageSize: 2,
    maxLineBytes: MAX_LINE,
    watchTimeoutSeconds: [5, 10],
    onIncident: (i) => {
      if (i.kind === 'relist') totals.relists++;
      else totals.rejected++;
    },
  });
  control.add(src);
  try {
    control.start();
    // Faults are meant for live watches: start once both resources are listed and watched.
    const started = Date.now() + SETTLE_MS;
    while ((src.status.state === 'syncing' || api.watchCount < 2) && Date.now() < started)
      await new Promise((r) => setTimeout(r, 5));
    for (const a of actions) {
      await run(api, a);
      // Let the stream carry it (a read may still hold several lines: waits are actions too).
      await new Promise((r) => setImmediate(r));
    }
    // From here the apiserver is consistent: no more faults.
    api.failNext(0, 500);
    api.listHook = null;
    const want = expected(api);
    const deadline = Date.now() + SETTLE_MS;
    while (view(control) !== want && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(view(control), want, 'the route table converges to the translation of the apiserver state');
    // ...and stays there (a late relist or a resumed watch must not bring back an older state).
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(view(control), want, 'the route table stays converged');
    totals.projects += control.table().projects.size;
    totals.runs++;
  } finally {
    await src.stop();
    await api.close();
  }
}

/** Across runs, so the log shows the faults really hit (a property that never relists tests little). */
const totals = { runs: 0, projects: 0, relists: 0, rejected: 0 };

describe('issue 25: convergence under a hostile apiserver (model-based, fast-check)', () => {
  test(`${RUNS} random sequences (seed ${SEED})`, async (t) => {
    await fc.assert(
      fc.asyncProperty(fc.array(arbAction, { minLength: 1, maxLength: 25 }), (actions) => converges(actions)),
      { seed: SEED, numRuns: RUNS, endOnFailure: true },
    );
    t.diagnostic(
      `${totals.runs} runs: ${totals.projects} projects routed at the end, ${totals.relists} relists, ${totals.rejected} rejected lines or items`,
    );
    assert.ok(totals.relists > 0 && totals.rejected > 0, 'the faults reached live watches');
  });
});
