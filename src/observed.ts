// Wharf with its observability attached (the composition `serve` and `demo` start): logs, metrics,
// the event stream and the dashboard, fed by the typed events and per-request records that flow out
// of Wharf (main.ts). Wiring only, like main.ts.

import { serveDashboard } from './admin/dashboard/serve.ts';
import { dashboardState, SourceStates } from './admin/dashboard/state.ts';
import { observeRoutes } from './admin/observe-routes.ts';
import { Wharf, type WharfOptions } from './main.ts';
import type { LogOptions } from './observe/log.ts';
import { createObserve, type Observe } from './observe/observe.ts';
import { systemClock } from './util/clock.ts';

export interface ObservedOptions
  extends Omit<WharfOptions, 'log' | 'onAccess' | 'onEvent' | 'onAttempt' | 'onProbe'> {
  /** Overrides of the config's `logs:` section (the demo writes to its own directory). */
  readonly logs?: Partial<LogOptions>;
}

/**
 * Wharf with its observability attached: logs, metrics, the event stream and the dashboard, all fed
 * by the typed events and per-request records that flow out of the data plane. `serve` and `demo`
 * both start through here.
 */
export async function startObserved(opts: ObservedOptions): Promise<{ wharf: Wharf; obs: Observe }> {
  const c = opts.config;
  const clock = opts.clock ?? systemClock;
  const sources = new SourceStates();
  let wharf: Wharf | undefined;
  const replay = () =>
    wharf
      ? dashboardState({
          table: wharf.table(),
          problems: wharf.problems(),
          health: wharf.health,
          domain: c.domain,
          sources: sources.values(),
        })
      : { projects: [], problems: [] };
  const obs = createObserve({
    logs: { ...c.logs, ...opts.logs },
    metrics: { defaultMetrics: true, retryBudgetDenials: () => wharf?.forwarder.opts.budget.denials() ?? [] },
    sse: { token: c.adminToken, replay },
  });
  obs.bus.on((e) => sources.observe(e));
  try {
    wharf = await Wharf.start({
      ...opts,
      log: obs.logs.app,
      onAccess: obs.access,
      onEvent: (e) => obs.bus.emit(e),
      onAttempt: obs.attempt,
      onProbe: (e, ok, reason, latencyMs) => {
        obs.metrics.probe(e.project, e.port, latencyMs / 1000, ok);
        const { project, port, instance, address } = e;
        if (!ok)
          obs.bus.emit({
            type: 'probe',
            time: clock.now(),
            project,
            port,
            instance,
            address,
            reason,
            latencyMs,
          });
      },
      adminRoutes: [
        (req, res) => serveDashboard(req, res),
        ...observeRoutes(obs),
        ...(opts.adminRoutes ?? []),
      ],
    });
  } catch (err) {
    await obs.close();
    throw err;
  }
  // A log directory Wharf cannot write is a Problem while it lasts (logs go to stdout meanwhile).
  const w = wharf;
  obs.logs.onProblems((problems) => w.control.problems.set('logs', problems));
  return { wharf, obs };
}
