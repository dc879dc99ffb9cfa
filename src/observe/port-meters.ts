// The per-request metrics (requests by status class, request duration, upstream attempts, retries,
// rescues) counted in plain numbers per (project, port), and the attempt duration per instance,
// turned into Prometheus series only when /metrics is scraped. prom-client's own inc()/observe() validate and hash the label set and find the histogram
// bucket through a number-keyed property on every call; on the data plane that was several thousand
// instructions per request for four numbers (callgrind, bench/README.md). Here a request costs two
// Map lookups and a few additions.

/** Status classes as label values, in index order (see classIndex). */
export const CLASSES = ['2xx', '3xx', '4xx', '5xx', 'other'] as const;

/** The client's protocol as a label value, in index order (see protocolIndex). */
export const PROTOCOLS = ['http/1.1', 'h2'] as const;

/** `h2` -> 1; HTTP/1.1 (and anything unknown) -> 0. */
export function protocolIndex(protocol: string | undefined): number {
  return protocol === 'h2' ? 1 : 0;
}

/** `2xx`..`5xx` -> 0..3; anything else (1xx upgrades, 0 for no response) -> 4 (`other`). */
export function classIndex(status: number): number {
  const c = (status / 100) | 0;
  return c >= 2 && c <= 5 ? c - 2 : 4;
}

/** One (project, port) pair's counters. Series appear in the exposition once they are non-zero. */
export class PortMeters {
  /** By client protocol, then status class: index protocolIndex * CLASSES.length + classIndex. */
  readonly requests = new Float64Array(PROTOCOLS.length * CLASSES.length);
  /** Duration observations per bucket, not cumulative; the last slot is +Inf. */
  readonly buckets: Float64Array;
  durationSum = 0;
  durationCount = 0;
  /** Attempts by outcome label: a status class or an attempt error. */
  readonly attempts = new Map<string, number>();
  retries = 0;
  /** Attempts moved off an instance that was ejected while they waited. */
  rescues = 0;

  constructor(
    readonly project: string,
    readonly port: string,
    private readonly bounds: readonly number[],
  ) {
    this.buckets = new Float64Array(bounds.length + 1);
  }

  request(status: number, seconds: number, protocol = 0): void {
    this.requests[protocol * CLASSES.length + classIndex(status)]++;
    const b = this.bounds;
    let i = 0;
    while (i < b.length && seconds > b[i]) i++;
    this.buckets[i]++;
    this.durationSum += seconds;
    this.durationCount++;
  }

  attempt(outcome: string): void {
    this.attempts.set(outcome, (this.attempts.get(outcome) ?? 0) + 1);
  }
}

/** One instance port's attempt durations (a histogram in plain numbers, like PortMeters'). */
export class InstanceMeters {
  /** Observations per bucket, not cumulative; the last slot is +Inf. */
  readonly buckets: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    readonly project: string,
    readonly port: string,
    readonly instance: string,
    private readonly bounds: readonly number[],
  ) {
    this.buckets = new Float64Array(bounds.length + 1);
  }

  observe(seconds: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && seconds > b[i]) i++;
    this.buckets[i]++;
    this.sum += seconds;
    this.count++;
  }
}

/** A sample as prom-client's Registry formats it (`get().values`). */
interface Sample {
  readonly labels: Record<string, string | number>;
  readonly value: number;
  readonly metricName?: string;
}

/**
 * A metric registered in a prom-client Registry whose samples are computed at scrape time. The
 * Registry only calls `get()` (and `reset()`), so it formats these exactly like its own metrics.
 */
export class ScrapedMetric {
  readonly aggregator = 'sum';

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'histogram',
    private readonly samples: () => Sample[],
  ) {}

  get(): { name: string; help: string; type: string; values: Sample[]; aggregator: string } {
    return { name: this.name, help: this.help, type: this.type, values: this.samples(), aggregator: 'sum' };
  }

  reset(): void {}
}

/** Cumulative histogram samples (`_bucket`, `_sum`, `_count`) of one labelled histogram. */
function histogramSamples(
  name: string,
  labels: Record<string, string>,
  bounds: readonly number[],
  buckets: Float64Array,
  sum: number,
  count: number,
  out: Sample[],
): void {
  let acc = 0;
  for (let i = 0; i < bounds.length; i++) {
    acc += buckets[i];
    out.push({ metricName: `${name}_bucket`, labels: { le: bounds[i], ...labels }, value: acc });
  }
  out.push({ metricName: `${name}_bucket`, labels: { le: '+Inf', ...labels }, value: count });
  out.push({ metricName: `${name}_sum`, labels, value: sum });
  out.push({ metricName: `${name}_count`, labels, value: count });
}

/** The attempt-duration histogram over every InstanceMeters. */
export function instanceMetricView(
  all: () => Iterable<InstanceMeters>,
  bounds: readonly number[],
): ScrapedMetric {
  const name = 'wharf_upstream_attempt_duration_seconds';
  return new ScrapedMetric(
    name,
    'Time of each upstream attempt on the instance that took it: to the response headers, or to the failure, rescue or cancel.',
    'histogram',
    () => {
      const out: Sample[] = [];
      for (const m of all()) {
        if (m.count === 0) continue;
        const labels = { project: m.project, port: m.port, instance: m.instance };
        histogramSamples(name, labels, bounds, m.buckets, m.sum, m.count, out);
      }
      return out;
    },
  );
}

/** The per-request metrics over every PortMeters, as registry entries. */
export function portMetricViews(all: () => Iterable<PortMeters>, bounds: readonly number[]): ScrapedMetric[] {
  /** A metric whose samples each PortMeters adds (`each` pushes zero or more) at scrape time. */
  const view = (
    name: string,
    help: string,
    type: 'counter' | 'histogram',
    each: (m: PortMeters, out: Sample[]) => void,
  ) =>
    new ScrapedMetric(name, help, type, () => {
      const out: Sample[] = [];
      for (const m of all()) each(m, out);
      return out;
    });
  const duration = 'wharf_request_duration_seconds';
  return [
    view(
      'wharf_requests_total',
      "Requests answered, by project, port, status class and the client's protocol (http/1.1, h2).",
      'counter',
      (m, out) => {
        for (let p = 0; p < PROTOCOLS.length; p++)
          for (let c = 0; c < CLASSES.length; c++) {
            const n = m.requests[p * CLASSES.length + c];
            if (n > 0)
              out.push({
                labels: { project: m.project, port: m.port, class: CLASSES[c], protocol: PROTOCOLS[p] },
                value: n,
              });
          }
      },
    ),
    view(
      duration,
      'Time from request to the last response byte, as the client saw it (every attempt included).',
      'histogram',
      (m, out) => {
        if (m.durationCount === 0) return;
        const labels = { project: m.project, port: m.port };
        histogramSamples(duration, labels, bounds, m.buckets, m.durationSum, m.durationCount, out);
      },
    ),
    view(
      'wharf_upstream_attempts_total',
      'Upstream attempts, by outcome: a status class, an attempt error (connect-refused, reset, ...), rescued or cancelled.',
      'counter',
      (m, out) => {
        for (const [outcome, n] of m.attempts)
          out.push({ labels: { project: m.project, port: m.port, outcome }, value: n });
      },
    ),
    view('wharf_retries_total', 'Attempts beyond the first for one request.', 'counter', (m, out) => {
      if (m.retries > 0) out.push({ labels: { project: m.project, port: m.port }, value: m.retries });
    }),
    view(
      'wharf_rescues_total',
      'Attempts moved to another instance because the one they waited on was ejected meanwhile.',
      'counter',
      (m, out) => {
        if (m.rescues > 0) out.push({ labels: { project: m.project, port: m.port }, value: m.rescues });
      },
    ),
  ];
}
