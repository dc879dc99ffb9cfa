// Per-client limits for the edge: concurrent connections and a request rate (token bucket). State is
// bounded: buckets of quiet clients are swept, so a scan from many addresses cannot grow it forever.

import type { Clock } from '../util/clock.ts';

interface Bucket {
  tokens: number;
  updated: number;
}

export class ClientLimits {
  private readonly connections = new Map<string, number>();
  private readonly buckets = new Map<string, Bucket>();
  private sweep?: NodeJS.Timeout;

  constructor(
    private readonly maxConnections: number,
    private readonly ratePerSecond: number,
    private readonly clock: Clock,
  ) {
    if (ratePerSecond > 0) {
      this.sweep = setInterval(() => this.sweepIdle(), 10_000);
      this.sweep.unref();
    }
  }

  get active(): boolean {
    return this.maxConnections > 0 || this.ratePerSecond > 0;
  }

  /** Counts a new connection; returns the function to call when it closes. */
  connectionOpened(ip: string): () => void {
    if (this.maxConnections <= 0) return () => {};
    this.connections.set(ip, (this.connections.get(ip) ?? 0) + 1);
    return () => {
      const n = (this.connections.get(ip) ?? 1) - 1;
      if (n <= 0) this.connections.delete(ip);
      else this.connections.set(ip, n);
    };
  }

  tooManyConnections(ip: string): boolean {
    return this.maxConnections > 0 && (this.connections.get(ip) ?? 0) > this.maxConnections;
  }

  /** Takes one request token; false when the client is over its rate. */
  allowRequest(ip: string): boolean {
    if (this.ratePerSecond <= 0) return true;
    const now = this.clock.now();
    const burst = this.ratePerSecond * 2;
    let b = this.buckets.get(ip);
    if (!b) {
      b = { tokens: burst, updated: now };
      this.buckets.set(ip, b);
    } else {
      b.tokens = Math.min(burst, b.tokens + ((now - b.updated) / 1000) * this.ratePerSecond);
      b.updated = now;
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  private sweepIdle(): void {
    const now = this.clock.now();
    const full = (this.ratePerSecond * 2 * 1000) / this.ratePerSecond;
    for (const [ip, b] of this.buckets) if (now - b.updated > full) this.buckets.delete(ip);
  }

  close(): void {
    clearInterval(this.sweep);
  }
}
