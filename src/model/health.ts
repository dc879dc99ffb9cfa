// The health overlay as the data plane sees it: read-only. health/ is its only writer.

import type { EndpointId } from './routes.ts';

/**
 * `pending`: not probed yet. `healthy`/`unhealthy`: by active checks and passive outcomes
 * (`ejected` is `unhealthy` with an ejection reason). `draining` comes from the endpoint itself.
 */
export type HealthState = 'pending' | 'healthy' | 'unhealthy';

export interface HealthStatus {
  readonly state: HealthState;
  /** Why it is in that state: `probe: connect refused`, `passive: 3 consecutive 5xx`, ... */
  readonly reason: string;
  /** True while a passive ejection holds it out (until `rise` good probes). */
  readonly ejected: boolean;
  /** Epoch ms of the last transition. */
  readonly since: number;
}

export interface HealthView {
  /**
   * Optional change counter: if present, it changes whenever any `state()` answer may have changed
   * (a transition, a reconcile). Lets the balancer cache eligible sets per route; views without it
   * are simply not cached.
   */
  readonly version?: number;
  /** Hot path: may a new request be sent there? (`healthy`, or `pending` as a fallback decided by the picker.) */
  state(id: EndpointId): HealthState;
  status(id: EndpointId): HealthStatus | undefined;
}
