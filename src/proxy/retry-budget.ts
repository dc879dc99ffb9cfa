// Retries may add at most `ratio` of the requests of the last second (plus a small floor), per
// project port, so retries never multiply an outage (Envoy's and Finagle's retry budgets).

import type { Clock } from '../util/clock.ts';

interface Window {
  second: number;
  requests: number;
  retries: number;
  prevRequests: number;
  /** Retries refused because the budget was spent, since the start (for metrics). */
  denied: number;
}

export class RetryBudget {
  /** project -> port -> window. Nested rather than keyed by a joined string: no string built per request. */
  private readonly windows = new Map<string, Map<string, Window>>();

  constructor(
    private readonly ratio: number,
    private readonly minPerSecond: number,
    private readonly clock: Clock,
  ) {}

  private window(project: string, port: string): Window {
    const second = Math.floor(this.clock.now() / 1000);
    let byPort = this.windows.get(project);
    if (!byPort) {
      byPort = new Map();
      this.windows.set(project, byPort);
    }
    let w = byPort.get(port);
    if (!w) {
      w = { second, requests: 0, retries: 0, prevRequests: 0, denied: 0 };
      byPort.set(port, w);
    } else if (w.second !== second) {
      w.prevRequests = w.second === second - 1 ? w.requests : 0;
      w.second = second;
      w.requests = 0;
      w.retries = 0;
    }
    return w;
  }

  request(project: string, port: string): void {
    this.window(project, port).requests++;
  }

  /** Takes one retry from the budget if there is one left. */
  tryRetry(project: string, port: string): boolean {
    const w = this.window(project, port);
    const allowed = Math.max(this.minPerSecond, this.ratio * Math.max(w.requests, w.prevRequests));
    if (w.retries >= allowed) {
      w.denied++;
      return false;
    }
    w.retries++;
    return true;
  }

  /** Retries refused for want of budget, per project port that ever had one refused. */
  *denials(): Generator<{ project: string; port: string; denied: number }> {
    for (const [project, byPort] of this.windows)
      for (const [port, w] of byPort) if (w.denied > 0) yield { project, port, denied: w.denied };
  }
}
