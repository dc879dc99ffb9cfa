// The per-request metrics (requests by status class, request duration, upstream attempts, retries)
// counted in plain numbers per (project, port) and turned into Prometheus series only when /metrics is
// scraped. prom-client's own inc()/observe() validate and hash the label set and find the histogram
// bucket through a number-keyed property on every call; on the data plane that was several thousand
// instructions per request for four numbers (callgrind, bench/README.md). Here a request costs two
// Map lookups and a few additions.

/** Status classes as label values, in index order (see classIndex). */
export const CLASSES = ['2xx', '3xx', '4xx', '5xx', 'other'] as const;

/** `2xx`..`5xx` -> 0..3; anything else (1xx upgrades, 0 for no response) -> 4 (`other`). */
export function classIndex(status: number): number {
  const c = (status / 100) | 0;
  return c >= 2 && c <= 5 ? c - 2 : 4;
}

/** One (project, port) pair's counters. Series appear in the exposition once they are non-zero. */
export class PortMeters {
  readonly requests = new Float64Array(CLASSES.length);
  /** Duration observations per bucket, not cumulative; the last slot is +Inf. */
  readonly buckets: Float64Array;
  durationSum = 0;
  durationCount = 0;
  /** Attempts by outcome label: a status class or an attempt error. */
  readonly attempts = new Map<string, number>();
  retries = 0;

  constructor(
    readonly project: string,
    readonly port: string,
    private readonly bounds: readonly number[],
  ) {
    this.buckets = new Float64Array(bounds.length + 1);
  }

  request(status: number, seconds: number): void {
    this.requests[classIndex(status)]++;
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

/** The four per-request metrics over every PortMeters, as registry entries. */
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
      'Requests answered, by project, port and status class.',
      'counter',
      (m, out) => {
        for (let c = 0; c < CLASSES.length; c++)
          if (m.requests[c] > 0)
            out.push({
              labels: { project: m.project, port: m.port, class: CLASSES[c] },
              value: m.requests[c],
            });
      },
    ),
    view(duration, 'Time from request to the last response byte.', 'histogram', (m, out) => {
      if (m.durationCount === 0) return;
      const labels = { project: m.project, port: m.port };
      let acc = 0;
      for (let i = 0; i < bounds.length; i++) {
        acc += m.buckets[i];
        out.push({ metricName: `${duration}_bucket`, labels: { le: bounds[i], ...labels }, value: acc });
      }
      out.push({
        metricName: `${duration}_bucket`,
        labels: { le: '+Inf', ...labels },
        value: m.durationCount,
      });
      out.push({ metricName: `${duration}_sum`, labels, value: m.durationSum });
      out.push({ metricName: `${duration}_count`, labels, value: m.durationCount });
    }),
    view(
      'wharf_upstream_attempts_total',
      'Upstream attempts, by outcome: a status class or an attempt error (connect-refused, reset, ...).',
      'counter',
      (m, out) => {
        for (const [outcome, n] of m.attempts)
          out.push({ labels: { project: m.project, port: m.port, outcome }, value: n });
      },
    ),
    view('wharf_retries_total', 'Attempts beyond the first for one request.', 'counter', (m, out) => {
      if (m.retries > 0) out.push({ labels: { project: m.project, port: m.port }, value: m.retries });
    }),
  ];
}
