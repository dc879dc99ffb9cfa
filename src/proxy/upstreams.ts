// One undici Pool per upstream address, kept across table swaps: a swap reconciles by address, so
// unchanged endpoints keep their warm keep-alive connections. Removed pools close after in-flight
// requests finish.
//
// Wharf, not undici, queues requests for an address's connections (Upstream): undici's pool queue
// cannot be left, so a request waiting there could neither be given a deadline nor be forgotten when
// its client left. Here a waiting attempt leaves the queue at its deadline (a 503 with Retry-After)
// or when its client goes, and undici only ever sees as many requests as there are connections.

import { Pool } from 'undici';
import type { RouteTable } from '../model/routes.ts';

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

export class UpstreamPools {
  private readonly pools = new Map<string, Upstream>();

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

  /**
   * Closes the pools of addresses that left the table. The caller knows which (main.ts counts them
   * per swap), so a swap costs O(changed) instead of reconcile's O(table): with 50,000 endpoints
   * and 100 changes a second that difference is most of the CPU.
   */
  release(addresses: Iterable<string>): void {
    for (const address of addresses) {
      const up = this.pools.get(address);
      if (!up) continue;
      this.pools.delete(address);
      up.evictAll();
      up.pool.close().catch(() => {});
    }
  }

  /** Closes pools whose address no longer appears in the table (gracefully: in-flight requests finish). */
  reconcile(table: RouteTable): void {
    const live = new Set<string>();
    for (const project of table.projects.values()) {
      for (const route of project.ports.values()) for (const ep of route.endpoints) live.add(ep.address);
    }
    for (const [address, up] of this.pools) {
      if (!live.has(address)) {
        this.pools.delete(address);
        up.evictAll();
        up.pool.close().catch(() => {});
      }
    }
  }

  async close(): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    for (const up of all) up.evictAll();
    await Promise.all(all.map((up) => up.pool.close().catch(() => {})));
  }

  async destroy(): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    for (const up of all) up.evictAll();
    await Promise.all(all.map((up) => up.pool.destroy().catch(() => {})));
  }
}
