// The connections to each upstream address, kept across table swaps: a swap reconciles by address, so
// unchanged endpoints keep their warm keep-alive connections. Removed pools close after in-flight
// requests finish. HTTP/1.1 goes through one undici Pool per address, h2c through one H2Origin.

import { Pool } from 'undici';
import type { TableSwapped } from '../model/routes.ts';
import { H2Origin } from './h2-upstream.ts';

export interface PoolOptions {
  readonly connections: number;
  readonly connectTimeoutMs: number;
  readonly idleTimeoutMs: number;
}

/** HTTP/2 sessions per address: each carries ~100 concurrent streams, so a few are plenty. */
const H2_SESSIONS = 4;

export class UpstreamPools {
  private readonly pools = new Map<string, Pool>();
  private readonly h2Origins = new Map<string, H2Origin>();
  /** Endpoints of the current table per address. */
  private readonly refs = new Map<string, number>();

  constructor(private readonly opts: PoolOptions) {}

  get(address: string): Pool {
    let pool = this.pools.get(address);
    if (!pool) {
      pool = new Pool(`http://${address}`, {
        connections: this.opts.connections,
        pipelining: 1,
        connect: { timeout: this.opts.connectTimeoutMs },
        keepAliveTimeout: this.opts.idleTimeoutMs,
        keepAliveMaxTimeout: this.opts.idleTimeoutMs,
        // No undici timeouts: the forwarder's sweep keeps the route's timeout and body-idle (see
        // Forwarder.sweep; undici's per-request timers were a GC cost).
        headersTimeout: 0,
        bodyTimeout: 0,
      });
      this.pools.set(address, pool);
    }
    return pool;
  }

  /** The h2c sessions to `address`. */
  h2(address: string): H2Origin {
    let origin = this.h2Origins.get(address);
    if (!origin) {
      origin = new H2Origin(address, {
        connectTimeoutMs: this.opts.connectTimeoutMs,
        idleTimeoutMs: this.opts.idleTimeoutMs,
        maxSessions: H2_SESSIONS,
      });
      this.h2Origins.set(address, origin);
    }
    return origin;
  }

  /**
   * After a table swap: closes the pools of addresses no endpoint uses any more (gracefully:
   * in-flight requests finish). Endpoints are counted per address (two projects may name one
   * host:port), from the swap's added and removed endpoints: a swap costs O(changed),
   * not O(table); with 50,000 endpoints and 100 changes a second that is most of the CPU.
   */
  reconcile(swap: Pick<TableSwapped, 'added' | 'removed'>): void {
    for (const e of swap.added) this.refs.set(e.address, (this.refs.get(e.address) ?? 0) + 1);
    for (const e of swap.removed) {
      const n = (this.refs.get(e.address) ?? 1) - 1;
      if (n > 0) {
        this.refs.set(e.address, n);
        continue;
      }
      this.refs.delete(e.address);
      // Gracefully: in-flight requests on the pool or the h2 sessions finish.
      const pool = this.pools.get(e.address);
      if (pool) {
        this.pools.delete(e.address);
        pool.close().catch(() => {});
      }
      const origin = this.h2Origins.get(e.address);
      if (origin) {
        this.h2Origins.delete(e.address);
        origin.close().catch(() => {});
      }
    }
  }

  /** At stop, after the drain: every pool, in-flight requests or not. */
  async destroy(): Promise<void> {
    const all = [...this.pools.values(), ...this.h2Origins.values()];
    this.pools.clear();
    this.h2Origins.clear();
    this.refs.clear();
    await Promise.all(all.map((p) => p.destroy().catch(() => {})));
  }
}
