// The event bus between producers (health, routing, discovery) and consumers (logs, metrics, SSE),
// and the traffic aggregator that turns access records and upstream attempts into per-second
// summaries and a bounded history for the dashboard. Each lives in its own module; this one keeps
// the import path the rest of the code and the tests use.

export { EventBus, type Unsubscribe } from './event-bus.ts';
export {
  type InstanceSeries,
  type PortSeries,
  type PortTrafficPoint,
  TrafficAggregator,
  type TrafficHistory,
  type TrafficOptions,
  type TrafficPoint,
  type TrafficSummaryEvent,
} from './traffic.ts';
