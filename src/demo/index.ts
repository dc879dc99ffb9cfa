// `wharf demo` / `npm start`: three demo projects as real processes, Wharf in front of them with
// logs, metrics, the event stream and the dashboard, a control API (and dashboard buttons) to
// kill, freeze, revive and scale instances, and light background traffic so the charts move.
// Ctrl-C stops everything it started.

import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseConfig } from '../config/load.ts';
import { FakeApiServer } from '../fake-apiserver/index.ts';
import { startObserved, type Wharf } from '../main.ts';
import type { Observe } from '../observe/observe.ts';
import { demoControl, demoView } from './control.ts';
import { DemoError, Fleet } from './fleet.ts';
import { DEMO_DOMAIN, DEMO_PROJECTS } from './scenario.ts';
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
        wharf.setSource('demo', recs, []);
      }
    }
    observe?.sse.publish('demo', demoView(fleet, apiserverState()));
  };
  let apiserverDown = false;
  const apiserverState = () => (apiserver ? { url: apiserver.url, up: !apiserverDown } : undefined);
  const fleet = new Fleet({ onChange: publish, drainMs: o.drainMs });
  mkdirSync(o.logDir, { recursive: true });
  try {
    if ((o.source ?? 'apiserver') === 'apiserver') {
      apiserver = await new FakeApiServer({ bookmarkIntervalMs: 5000 }).start();
      kube = new KubeSync(apiserver);
    }
    await fleet.start(DEMO_PROJECTS);
    const file = apiserver
      ? {
          domain: DEMO_DOMAIN,
          // The demo's pods are processes on this machine: loopback endpoints are its whole point.
          kubernetes: { apiservers: [apiserver.url], namespaces: ['demo'], 'allow-loopback': true },
        }
      : { domain: DEMO_DOMAIN };
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
    while (w.table().projects.size < DEMO_PROJECTS.length && Date.now() < until) {
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
          hosts: DEMO_PROJECTS.flatMap((p) => [
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
    `  curl -X POST ${d.adminUrl}/api/demo/api/scale-up            # or scale-down (drains first)`,
    ...(d.apiserver
      ? [
          `  curl -X POST ${d.adminUrl}/api/demo/apiserver/down         # apiserver outage: Wharf keeps serving (then /up)`,
        ]
      : []),
    `  curl -H 'Host: shop-1.web.shop.${DEMO_DOMAIN}' ${proxy}         # pinned to a frozen instance: 503 saying why`,
    '',
    'Ctrl-C stops everything.',
    '',
  );
  return lines.join('\n');
}

export async function runDemo(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      listen: { type: 'string', default: '127.0.0.1:8080' },
      admin: { type: 'string', default: '127.0.0.1:9901' },
      logs: { type: 'string' },
      rps: { type: 'string', default: '20' },
      source: { type: 'string', default: 'apiserver' },
      'no-traffic': { type: 'boolean', default: false },
    },
    strict: true,
  });
  const rps = values['no-traffic'] ? 0 : Number(values.rps);
  if (!Number.isFinite(rps) || rps < 0 || rps > 500) throw new Error('--rps must be a number from 0 to 500');
  const logDir = values.logs ?? join(tmpdir(), 'wharf-demo');
  if (values.source !== 'apiserver' && values.source !== 'static')
    throw new Error('--source is apiserver or static');
  let demo: RunningDemo;
  try {
    demo = await startDemo({
      listen: values.listen,
      admin: values.admin,
      logDir,
      rps,
      source: values.source,
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
    if (e.code === 'EADDRINUSE') {
      process.stderr.write(
        `wharf demo: ${e.address}:${e.port} is already in use; pick free ports with --listen HOST:PORT --admin HOST:PORT\n`,
      );
      process.exit(1);
    }
    throw err;
  }
  process.stdout.write(banner(demo, logDir));
  process.on('SIGUSR1', () => demo.observe.logs.reopen());
  let signalled = false;
  const stop = (): void => {
    if (signalled) return;
    signalled = true;
    process.stdout.write('\nStopping the demo…\n');
    demo.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
