// The `state` document the dashboard gets on connect (the SSE hub's replay): /api/projects plus
// what the dashboard shows around it. observed.ts passes `() => dashboardState(...)` as `replay`.

import type { SourceStateEvent } from '../../model/events.ts';
import type { HealthView } from '../../model/health.ts';
import type { Problem } from '../../model/problem.ts';
import type { RouteTable } from '../../model/routes.ts';
import type { HealthCheckSettings } from '../../model/settings.ts';
import { projectsView } from '../server.ts';

export interface DashboardStateInput {
  readonly table: RouteTable;
  /** Every owner's Problems (they are kept beside the table, not in it). */
  readonly problems: readonly Problem[];
  readonly health: HealthView;
  /** The tier's domain, to show each port's conventional host name. */
  readonly domain?: string;
  /** Latest state of each discovery source (kubernetes, config, ...). */
  readonly sources?: Iterable<SourceStateEvent>;
}

export function dashboardState(i: DashboardStateInput) {
  const view = projectsView(i.table, i.health);
  return {
    ...view,
    domain: i.domain,
    projects: view.projects.map((p) => ({
      ...p,
      healthPath: healthCheckLabel(i.table.projects.get(p.name)?.settings.health),
    })),
    problems: i.problems,
    sources: [...(i.sources ?? [])],
  };
}

/** The `health-path` value that gives these settings: `/healthz`, `tcp`, `grpc` or `grpc:<service>`. */
function healthCheckLabel(h: HealthCheckSettings | undefined): string {
  if (!h || h.check === 'tcp') return 'tcp';
  if (h.check === 'grpc') return h.grpcService ? `grpc:${h.grpcService}` : 'grpc';
  return h.path ?? '/';
}

/** Keeps the latest `source` event per source, for dashboardState (subscribe it to the bus). */
export class SourceStates {
  private readonly latest = new Map<string, SourceStateEvent>();

  observe(e: { type: string }): void {
    if (e.type === 'source') {
      const s = e as SourceStateEvent;
      this.latest.set(s.source, s);
    }
  }

  values(): Iterable<SourceStateEvent> {
    return this.latest.values();
  }
}
