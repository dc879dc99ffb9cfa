// One object that wires the observe/ parts together, so main.ts makes one call: the bus feeds the
// logs, the metrics, the traffic history and the SSE hub; the proxy calls `access()` once per request
// and `attempt()` once per upstream attempt.

import type { AttemptRecord } from '../model/attempt.ts';
import type { WharfEvent } from '../model/events.ts';
import type { AccessRecord } from './access-log.ts';
import { EventBus } from './event-bus.ts';
import { createLogs, type LogOptions, type Logs } from './log.ts';
import { Metrics, type MetricsOptions } from './metrics.ts';
import { SseHub, type SseOptions } from './sse.ts';
import { TrafficAggregator, type TrafficOptions } from './traffic.ts';

export interface ObserveOptions {
  readonly logs: LogOptions;
  readonly metrics?: Omit<MetricsOptions, 'droppedLogLines'>;
  readonly traffic?: TrafficOptions;
  readonly sse: Omit<SseOptions, 'bus' | 'traffic'>;
}

export interface Observe {
  readonly bus: EventBus<WharfEvent>;
  readonly logs: Logs;
  readonly metrics: Metrics;
  readonly traffic: TrafficAggregator;
  readonly sse: SseHub;
  /** Hot path, once per answered request: access log line, request metrics, traffic summary. */
  access(rec: AccessRecord): void;
  /** Hot path, once per upstream attempt: attempt metrics and the per-instance traffic summary. */
  attempt(a: AttemptRecord): void;
  /** Stop timers, end SSE streams, flush and close the logs. */
  close(): Promise<void>;
}

export function createObserve(opts: ObserveOptions): Observe {
  const logs = createLogs(opts.logs);
  const bus = new EventBus<WharfEvent>((err) =>
    logs.app('error', 'event listener failed', { err: String(err) }),
  );
  const metrics = new Metrics({ ...opts.metrics, droppedLogLines: () => logs.dropped() });
  const traffic = new TrafficAggregator(opts.traffic);
  bus.on((e) => logs.event(e));
  bus.on((e) => metrics.observe(e));
  bus.on((e) => traffic.observe(e));
  const sse = new SseHub({ ...opts.sse, bus, traffic });
  traffic.start();
  return {
    bus,
    logs,
    metrics,
    traffic,
    sse,
    access(rec) {
      logs.access(rec);
      metrics.request(rec.project, rec.port, rec.status, rec.durationMs / 1000, rec.protocol);
      traffic.record(rec);
    },
    attempt(a) {
      metrics.upstreamAttempt(a);
      traffic.attempt(a);
    },
    async close() {
      traffic.stop();
      sse.close();
      await logs.close();
    },
  };
}
