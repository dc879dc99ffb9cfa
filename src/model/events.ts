// Typed events for observe/ (logs, metrics, SSE). Producers emit; nobody on the hot path waits.

import type { HealthState } from './health.ts';
import type { Problem } from './problem.ts';
import type { SourceState } from './source.ts';

export interface HealthTransitionEvent {
  readonly type: 'health';
  readonly time: number;
  readonly project: string;
  readonly port: string;
  readonly instance: string;
  readonly address: string;
  readonly from: HealthState;
  readonly to: HealthState;
  readonly ejected: boolean;
  readonly reason: string;
  readonly probeLatencyMs?: number;
}

export interface RoutesChangedEvent {
  readonly type: 'routes';
  readonly time: number;
  readonly version: number;
  readonly projects: number;
  readonly endpoints: number;
  readonly added: readonly string[];
  readonly removed: readonly string[];
}

export interface ProblemsEvent {
  readonly type: 'problems';
  readonly time: number;
  readonly problems: readonly Problem[];
}

export interface SourceStateEvent {
  readonly type: 'source';
  readonly time: number;
  readonly source: string;
  readonly state: SourceState;
  readonly reason?: string;
}

/**
 * Discovery could not use something the apiserver sent (a line, a list item, an object) or had to
 * list again. Rare by design (a rejected line ends its stream), so one event each; metrics count them.
 */
export interface DiscoveryIncidentEvent {
  readonly type: 'discovery';
  readonly time: number;
  readonly source: string;
  readonly kind: 'rejected' | 'relist';
  /** The resource: `services`, `endpointslices`, `secrets`. */
  readonly resource: string;
  /** A short code from a fixed set (`unparsable`, `too-long`, `expired`, `cannot-resume`, ...). */
  readonly reason: string;
}

export type WharfEvent =
  | HealthTransitionEvent
  | RoutesChangedEvent
  | ProblemsEvent
  | SourceStateEvent
  | ProbeFailedEvent
  | DiscoveryIncidentEvent;

/** One failed active probe (high volume: logged only when probe-failure logging is on). */
export interface ProbeFailedEvent {
  readonly type: 'probe';
  readonly time: number;
  readonly project: string;
  readonly port: string;
  readonly instance: string;
  readonly address: string;
  readonly reason: string;
  readonly latencyMs: number;
}
