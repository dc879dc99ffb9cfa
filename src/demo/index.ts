// `wharf demo` / `npm start`: three demo projects as real processes, Wharf in front of them with
// logs, metrics, the event stream and the dashboard, a control API (and dashboard buttons) to
// kill, freeze, revive and scale instances, and light background traffic so the charts move.
// Ctrl-C stops everything it started.

import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../config/load.ts';
import { type DemoArgs, DemoUsageError } from '../demo-options.ts';
import { FakeApiServer } from '../fake-apiserver/index.ts';
import type { Wharf } from '../main.ts';
import type { Observe } from '../observe/observe.ts';
import { startObserved } from '../observed.ts';
import { demoControl, demoView } from './control.ts';
import { DemoError, Fleet } from './fleet.ts';
import { watchLifeline } from './lifeline.ts';
import { DEMO_DOMAIN, DEMO_PROJECTS, generatedProjects } from './scenario.ts';
import { KubeSync, records } from './source.ts';
import { DemoTraffic } from './traffic.ts';

export interface DemoOptions {
  readonly listen: string;
  readonly admin: string;
  readonly logDir: string;
  /** Background requests per second; 0 for none. */
  readonly rps: number;
  /** How long a scaled-down instance drains before it goes. Default 5 s. */
  readonly drainMs?: number;
  /**
   * `apiserver` (default): a fake Kubernetes apiserver holds the demo's Services and EndpointSlices
   * and Wharf discovers them as in a cluster. `static`: the projects are handed to Wharf directly.
   */
  readonly source?: 'apiserver' | 'static';
  /** Generated projects added to the three of the scenario (`--projects N`), instances in-process. */
  readonly extraProjects?: number;
}

export interface RunningDemo {
  readonly wharf: Wharf;
  /** The fake apiserver, in `apiserver` mode. */
  readonly apiserver?: FakeApiServer;
  readonly fleet: Fleet;
  readonly observe: Observe;
  readonly proxyUrl: string;
  readonly adminUrl: string;
  stop(): Promise<void>;
}

/** Start the whole demo; resolves when everything listens. */
export async function startDemo(o: DemoOptions): Promise<RunningDemo> {
  let wharf: Wharf | undefined;
  let observe: Observe | undefined;
  let published = '';
  let apiserver: FakeApiServer | undefined;
  let kube: KubeSync | undefined;
  // Coalesced: starting or scaling many instances at once publishes the world once, not per instance.
  let publishQueued = false;
  const schedulePublish = (): void => {
    if (publishQueued) return;
    publishQueued = true;
    setImmediate(() => {
      publishQueued = false;
      publish();
    });
  };
  const publish = (): void => {
    if (kube) {
      // The apiserver mode: objects change, watches carry them to Wharf's discovery.
      kube.sync(fleet.projectList(), fleet.list());
    } else if (wharf) {
      // Freeze and kill change no record (the instance stays listed): no new route table for them.
      const recs = records(fleet.projectList(), fleet.list());
      const json = JSON.stringify(recs);
      if (json !== published) {
        published = json;
        wharf.control.set('demo', recs);
      }
    }
    observe?.sse.publish('demo', demoView(fleet, apiserverState()));
  };
  let apiserverDown = false;
  const apiserverState = () => (apiserver ? { url: apiserver.url, up: !apiserverDown } : undefined);
  const projects = [...DEMO_PROJECTS, ...generatedProjects(o.extraProjects ?? 0)];
  const fleet = new Fleet({ onChange: schedulePublish, drainMs: o.drainMs });
  mkdirSync(o.logDir, { recursive: true });
  try {
    if ((o.source ?? 'apiserver') === 'apiserver') {
      apiserver = await new FakeApiServer({ bookmarkIntervalMs: 5000 }).start();
      kube = new KubeSync(apiserver);
    }
    await fleet.start(projects);
    // Its instances see a request only every few seconds at the demo's rate, so they are idle in the
    // sense of traffic-aware probing: probed every second anyway, a frozen one is out within about
    // two seconds whether a request notices it first or not (the default idle interval is 20 s).
    const health = { 'idle-interval': '1s' };
    const file = apiserver
      ? {
          domain: DEMO_DOMAIN,
          health,
          // The demo's pods are processes on this machine: loopback endpoints are its whole point.
          kubernetes: { apiservers: [apiserver.url], namespaces: ['demo'], 'allow-loopback': true },
        }
      : { domain: DEMO_DOMAIN, health };
    const config = parseConfig(JSON.stringify(file), 'demo', {
      listen: o.listen,
      admin: o.admin,
    });
    const started = await startObserved({
      config,
      logs: { dir: o.logDir, access: true, health: true },
      adminRoutes: [
        demoControl(fleet, {
          state: apiserverState,
          async outage(down) {
            if (!apiserver) throw new DemoError(404, 'the demo runs without an apiserver (--source static)');
            apiserverDown = down;
            if (down) await apiserver.down();
            else await apiserver.up();
            publish();
          },
        }),
      ],
    });
    const obs = started.obs;
    observe = obs;
    wharf = started.wharf;
    if (!apiserver) obs.bus.emit({ type: 'source', time: Date.now(), source: 'demo', state: 'synced' });
    publish();
    // In apiserver mode the routes arrive through discovery: hand over a demo that routes already.
    const until = Date.now() + 15_000;
    const w = started.wharf;
    while (w.table().projects.size < projects.length && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 50));
    }
  } catch (err) {
    await wharf?.stop(0);
    await observe?.close();
    await fleet.stopAll();
    await apiserver?.close();
    throw err;
  }
  const w = wharf!;
  const obs = observe!;
  const proxyUrl = `http://${w.frontAddress.host}:${w.frontAddress.port}`;
  const adminUrl = `http://${w.adminAddress.host}:${w.adminAddress.port}`;
  const traffic =
    o.rps > 0
      ? new DemoTraffic({
          proxyPort: w.frontAddress.port,
          // Mostly the default ports, some to the other named ports.
          hosts: projects.flatMap((p) => [
            `${p.name}.${DEMO_DOMAIN}`,
            `${p.name}.${DEMO_DOMAIN}`,
            `${p.name}.${DEMO_DOMAIN}`,
            ...p.ports.slice(1).map((port) => `${port}.${p.name}.${DEMO_DOMAIN}`),
          ]),
          rps: o.rps,
          // Let the first health probes run: requests before them would only meet `pending`.
          startDelayMs: 1500,
        })
      : undefined;
  let stopping: Promise<void> | undefined;
  return {
    wharf: w,
    apiserver,
    fleet,
    observe: obs,
    proxyUrl,
    adminUrl,
    stop() {
      stopping ??= (async () => {
        traffic?.stop();
        await w.stop(500);
        await obs.close();
        await fleet.stopAll();
        await apiserver?.close();
      })();
      return stopping;
    },
  };
}

export function banner(d: RunningDemo, logDir: string): string {
  const port = new URL(d.proxyUrl).port;
  const proxy = `http://127.0.0.1:${port}/`;
  const lines = [
    '',
    'Wharf demo is running.',
    '',
    `  Dashboard   ${d.adminUrl}/`,
    `  Proxy       ${d.proxyUrl}`,
    `  Logs        ${logDir}/access.log, health.log, wharf.log (JSON lines)`,
    `  Metrics     ${d.adminUrl}/metrics     Events: curl -N ${d.adminUrl}/events`,
    ...(d.apiserver
      ? [
          `  Apiserver   ${d.apiserver.url} (fake; Wharf watches namespace demo)`,
          `              kubectl --server ${d.apiserver.url} -n demo get services,endpointslices`,
        ]
      : []),
    '',
    'Projects (hosts follow <instance>.<port>.<project>.demo.local):',
  ];
  for (const p of DEMO_PROJECTS)
    lines.push(`  ${p.name.padEnd(6)} ports ${p.ports.join(', ').padEnd(14)} ${p.blurb}`);
  const extra = d.fleet.projectList().length - DEMO_PROJECTS.length;
  if (extra > 0) lines.push(`  and ${extra} generated projects (svc-...), two in-process instances each`);
  lines.push(
    '',
    'Try:',
    `  curl -H 'Host: web.shop.${DEMO_DOMAIN}' ${proxy}                # a healthy shop instance, port "web"`,
    `  curl -H 'Host: shop.${DEMO_DOMAIN}' ${proxy}                    # the project's default port`,
    `  curl -H 'Host: shop-1.web.shop.${DEMO_DOMAIN}' ${proxy}         # pinned to shop-1`,
    `  curl -H 'Host: api.${DEMO_DOMAIN}' -H 'x-wharf-instance: api-2' ${proxy}   # pinned by header`,
    `  curl -c /tmp/wharf-jar -b /tmp/wharf-jar -H 'Host: shop.${DEMO_DOMAIN}' ${proxy}   # run twice: same instance (affinity)`,
    `  curl -H 'Host: metrics.api.${DEMO_DOMAIN}' ${proxy}             # another named port`,
    `  curl -H 'Host: nope.${DEMO_DOMAIN}' ${proxy}                    # 404 naming what was not found`,
    '',
    'Break things (or use the buttons on the dashboard) and watch the dashboard:',
    `  curl -X POST ${d.adminUrl}/api/demo/shop/shop-1/freeze      # SIGSTOP: hangs, probes time out`,
    `  curl -X POST ${d.adminUrl}/api/demo/shop/shop-1/revive      # SIGCONT`,
    `  curl -X POST ${d.adminUrl}/api/demo/blog/blog-0/kill        # SIGKILL: connections refused`,
    `  curl -X POST ${d.adminUrl}/api/demo/blog/blog-0/revive      # restart on the same port`,
    `  curl -X POST ${d.adminUrl}/api/demo/api/scale-up            # one more api instance (scale-down drains and removes one)`,
    ...(d.apiserver
      ? [
          `  curl -X POST ${d.adminUrl}/api/demo/apiserver/down         # apiserver outage: Wharf keeps serving (then /up)`,
        ]
      : []),
    `  curl -H 'Host: shop-1.web.shop.${DEMO_DOMAIN}' ${proxy}         # pinned to a frozen instance: 503 saying why`,
    '',
    'Ctrl-C stops everything (so does stopping npm any other way, even kill -9).',
    '',
  );
  return lines.join('\n');
}

/** `wharf demo`, with its arguments parsed by the CLI (DEMO_OPTIONS). */
export async function runDemo(values: DemoArgs): Promise<void> {
  const rps = values['no-traffic'] ? 0 : Number(values.rps ?? 20);
  if (!Number.isFinite(rps) || rps < 0 || rps > 500)
    throw new DemoUsageError(`--rps "${values.rps}": expected a number from 0 to 500, e.g. --rps 20`);
  const projects = Number(values.projects ?? 0);
  if (!Number.isInteger(projects) || projects < 0 || projects > 1000)
    throw new DemoUsageError(
      `--projects "${values.projects}": expected a whole number from 0 to 1000, e.g. --projects 200`,
    );
  const source = (values.source ?? 'apiserver') as string;
  if (source !== 'apiserver' && source !== 'static')
    throw new DemoUsageError(`--source "${source}": expected apiserver or static`);
  const logDir = (values.logs as string | undefined) ?? join(tmpdir(), 'wharf-demo');
  const demo = await startDemo({
    listen: (values.listen as string | undefined) ?? '127.0.0.1:8080',
    admin: (values.admin as string | undefined) ?? '127.0.0.1:9901',
    logDir,
    rps,
    source,
    extraProjects: projects,
  });
  process.stdout.write(banner(demo, logDir));
  process.on('SIGUSR1', () => demo.observe.logs.reopen());
  let signalled = false;
  const stop = (why: string): void => {
    if (signalled) return;
    signalled = true;
    process.stdout.write(`\nStopping the demo (${why})…\n`);
    demo.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGHUP', () => stop('SIGHUP'));
  // `kill <npm pid>` signals npm alone: without this the demo and its instances would outlive it.
  watchLifeline((why) => stop(why));
}
