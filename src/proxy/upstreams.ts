// The connections to each upstream address, kept across table swaps: a swap reconciles by address, so
// unchanged endpoints keep their warm keep-alive connections. Removed pools close after in-flight
// requests finish. HTTP/1.1 goes through one undici Pool per address, h2c through one H2Origin.

import { Pool } from 'undici';
import type { RouteTable } from '../model/routes.ts';
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
   * Closes the pools of addresses that left the table. The caller knows which (main.ts counts them
   * per swap), so a swap costs O(changed) instead of reconcile's O(table): with 50,000 endpoints
   * and 100 changes a second that difference is most of the CPU.
   */
  release(addresses: Iterable<string>): void {
    for (const address of addresses) {
      const pool = this.pools.get(address);
      if (pool) {
        this.pools.delete(address);
        pool.close().catch(() => {});
      }
      const origin = this.h2Origins.get(address);
      if (origin) {
        this.h2Origins.delete(address);
        origin.close().catch(() => {});
      }
    }
  }

  /** Closes pools whose address no longer appears in the table (gracefully: in-flight requests finish). */
  reconcile(table: RouteTable): void {
    const live = new Set<string>();
    for (const project of table.projects.values()) {
      for (const route of project.ports.values()) for (const ep of route.endpoints) live.add(ep.address);
    }
    for (const [address, pool] of this.pools) {
      if (!live.has(address)) {
        this.pools.delete(address);
        pool.close().catch(() => {});
      }
    }
  }

  async close(): Promise<void> {
    const all = [...this.pools.values(), ...this.h2Origins.values()];
    this.pools.clear();
    this.h2Origins.clear();
    await Promise.all(all.map((p) => p.close().catch(() => {})));
  }

  async destroy(): Promise<void> {
    const all = [...this.pools.values(), ...this.h2Origins.values()];
    this.pools.clear();
    this.h2Origins.clear();
    await Promise.all(all.map((p) => p.destroy().catch(() => {})));
  }
}
