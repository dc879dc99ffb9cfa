// The connections to each upstream address, kept across table swaps: a swap reconciles by address, so
// unchanged endpoints keep their warm keep-alive connections. Removed pools close after in-flight
// requests finish. HTTP/1.1 goes through one undici Pool per address, h2c through one H2Origin.
//
// For HTTP/1.1, Wharf, not undici, queues requests for an address's connections (Upstream): undici's
// pool queue cannot be left, so a request waiting there could neither be given a deadline nor be
// forgotten when its client left. Here a waiting attempt leaves the queue at its deadline (a 503 with Retry-After)
// or when its client goes, and undici only ever sees as many requests as there are connections.

import { Pool } from 'undici';
import type { TableSwapped } from '../model/routes.ts';
import { H2Origin } from './h2-upstream.ts';

export interface PoolOptions {
  readonly connections: number;
  readonly connectTimeoutMs: number;
  readonly idleTimeoutMs: number;
}

/** An attempt waiting for one of an upstream's connections (an intrusive list: no allocation). */
export interface Waiter {
  prevWaiter?: Waiter;
  nextWaiter?: Waiter;
  /** A connection is now this waiter's: dispatch. */
  admitted(): void;
  /** The upstream left the table while this waited: it will never get a connection here. */
  evicted(): void;
}

/** One upstream address: its undici Pool and Wharf's admission to its connections. */
export class Upstream {
  /** Attempts holding (or about to hold) one of the connections. */
  active = 0;
  /** Attempts waiting for a connection. */
  waiting = 0;
  private head?: Waiter;
  private tail?: Waiter;
  /** Streaming uploads per client address (only counted where a per-client cap applies). */
  private uploads?: Map<string, number>;

  constructor(
    readonly pool: Pool,
    readonly connections: number,
  ) {}

  /** Takes a connection now (true), or queues `w` (false) until release() admits it. */
  acquire(w: Waiter): boolean {
    if (this.active < this.connections && this.waiting === 0) {
      this.active++;
      return true;
    }
    w.prevWaiter = this.tail;
    w.nextWaiter = undefined;
    if (this.tail) this.tail.nextWaiter = w;
    else this.head = w;
    this.tail = w;
    this.waiting++;
    return false;
  }

  /** A connection came free: the first waiter gets it. */
  release(): void {
    this.active--;
    const w = this.head;
    if (w === undefined) return;
    this.unlink(w);
    this.active++;
    w.admitted();
  }

  /** `w` stops waiting (its deadline passed, or its client left). */
  leave(w: Waiter): void {
    this.unlink(w);
  }

  /** How many streaming uploads `client` has here. */
  uploadsFrom(client: string): number {
    return this.uploads?.get(client) ?? 0;
  }

  /** Counts one streaming upload of `client` (+1) or its end (-1). */
  countUpload(client: string, delta: 1 | -1): void {
    this.uploads ??= new Map();
    const n = (this.uploads.get(client) ?? 0) + delta;
    if (n > 0) this.uploads.set(client, n);
    else this.uploads.delete(client);
  }

  /** The address left the table: nobody waiting here will be admitted. */
  evictAll(): void {
    for (let w = this.head; w !== undefined; w = this.head) {
      this.unlink(w);
      w.evicted();
    }
  }

  private unlink(w: Waiter): void {
    const { prevWaiter: prev, nextWaiter: next } = w;
    if (prev === undefined && next === undefined && this.head !== w) return; // not queued
    if (prev) prev.nextWaiter = next;
    else this.head = next;
    if (next) next.prevWaiter = prev;
    else this.tail = prev;
    w.prevWaiter = undefined;
    w.nextWaiter = undefined;
    this.waiting--;
  }
}

/** HTTP/2 sessions per address: each carries ~100 concurrent streams, so a few are plenty. */
const H2_SESSIONS = 4;

export class UpstreamPools {
  private readonly pools = new Map<string, Upstream>();
  private readonly h2Origins = new Map<string, H2Origin>();
  /** Endpoints of the current table per address. */
  private readonly refs = new Map<string, number>();

  constructor(private readonly opts: PoolOptions) {}

  get(address: string): Upstream {
    let up = this.pools.get(address);
    if (!up) {
      const pool = new Pool(`http://${address}`, {
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
      up = new Upstream(pool, this.opts.connections);
      this.pools.set(address, up);
    }
    return up;
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
      const up = this.pools.get(e.address);
      if (up) {
        this.pools.delete(e.address);
        up.evictAll();
        up.pool.close().catch(() => {});
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
    const pools = [...this.pools.values()];
    const origins = [...this.h2Origins.values()];
    this.pools.clear();
    this.h2Origins.clear();
    this.refs.clear();
    for (const up of pools) up.evictAll();
    await Promise.all([
      ...pools.map((up) => up.pool.destroy().catch(() => {})),
      ...origins.map((o) => o.destroy().catch(() => {})),
    ]);
  }
}
