// One list/watch loop for one collection URL: paged LIST, WATCH from the list's resourceVersion
// with bookmarks and a jittered timeout, resume from the last RV seen, relist on 410 applying only
// the difference, backoff with jitter that never gives up, failover through ApiClient.
// (client-node's informer stops for good after one failed list and hangs on a stalled watch.)

import { type ApiClient, ApiError } from './apiclient.ts';
import { Backoff, type Clock, sleep, systemClock } from './clock.ts';
import type { KubeObject, WatchEvent } from './k8s-types.ts';
import { objectKey } from './k8s-types.ts';
import { LineSplitter } from './ndjson.ts';

export type ObjectChange =
  | { readonly type: 'upsert'; readonly key: string; readonly obj: KubeObject }
  | { readonly type: 'delete'; readonly key: string; readonly obj: KubeObject };

export type LogFn = (
  level: 'debug' | 'info' | 'warn' | 'error',
  msg: string,
  fields?: Record<string, unknown>,
) => void;

export interface ReflectorOptions {
  client: ApiClient;
  /** Collection path, e.g. `/api/v1/services` or `/apis/discovery.k8s.io/v1/namespaces/x/endpointslices`. */
  path: string;
  labelSelector?: string;
  /**
   * Field selector, e.g. `metadata.name=<name>` to list/watch one named object: the apiserver treats
   * that as a request for the object itself, so an RBAC rule with `resourceNames` authorizes it.
   */
  fieldSelector?: string;
  /** Called with each batch of real changes (an object whose resourceVersion did not change is not a change). */
  onChanges: (changes: ObjectChange[]) => void;
  /** Applied to every object before it is cached (keep only what is read: real objects carry managedFields). */
  transform?: (o: KubeObject) => KubeObject;
  /** Called after every complete list (the first one means: synced). */
  onListed?: () => void;
  /** `null` when healthy, else why not (and the error, whose `code` tells a 403 from an outage). */
  onHealth?: (problem: string | null, error?: ApiError) => void;
  log?: LogFn;
  clock?: Clock;
  random?: () => number;
  pageSize?: number;
  /** Watch timeoutSeconds is drawn uniformly from this range (client-go uses 5-10 min). */
  watchTimeoutSeconds?: readonly [number, number];
  backoffInitialMs?: number;
  backoffMaxMs?: number;
}

class Gone extends Error {}

export class Reflector {
  private readonly cache = new Map<string, KubeObject>();
  private rv: string | null = null;
  private readonly stopper = new AbortController();
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly backoff: Backoff;
  private running: Promise<void> | null = null;
  private current: { close(): void } | null = null;
  private healthy: boolean | null = null;
  private listedAt = Number.NEGATIVE_INFINITY;
  private readonly goneBackoff: Backoff;
  /** Number of complete lists (relists included). */
  lists = 0;
  watches = 0;

  constructor(private readonly o: ReflectorOptions) {
    this.clock = o.clock ?? systemClock;
    this.random = o.random ?? Math.random;
    this.backoff = new Backoff(o.backoffInitialMs ?? 500, o.backoffMaxMs ?? 30_000, this.random);
    this.goneBackoff = new Backoff(o.backoffInitialMs ?? 500, o.backoffMaxMs ?? 30_000, this.random);
  }

  get resourceVersion(): string | null {
    return this.rv;
  }

  get objects(): ReadonlyMap<string, KubeObject> {
    return this.cache;
  }

  start(): void {
    this.running ??= this.loop();
  }

  async stop(): Promise<void> {
    this.stopper.abort();
    this.current?.close();
    await this.running;
  }

  private get stopped(): boolean {
    return this.stopper.signal.aborted;
  }

  private health(problem: string | null, error?: ApiError): void {
    const ok = problem === null;
    if (ok && this.healthy === true) return;
    this.healthy = ok;
    this.o.onHealth?.(problem, error);
  }

  private log(level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) {
    this.o.log?.(level, msg, { path: this.o.path, ...fields });
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      try {
        if (this.rv === null) await this.list();
        const started = this.clock.now();
        const events = await this.watch();
        this.goneBackoff.reset();
        // A watch that the server ends at once, again and again, must not become a hot loop.
        if (events === 0 && this.clock.now() - started < 1000)
          await sleep(this.clock, this.backoff.next(), this.stopper.signal);
      } catch (err) {
        if (this.stopped) break;
        if (err instanceof Gone) {
          this.log('info', 'resourceVersion expired; relisting', { rv: this.rv });
          this.rv = null;
          // Expired again right after a list (history shorter than list+watch): back off, do not spin.
          if (this.clock.now() - this.listedAt < 1000)
            await sleep(this.clock, this.backoff.next(), this.stopper.signal);
          continue;
        }
        const e = err instanceof ApiError ? err : new ApiError(String((err as Error)?.message ?? err), 0, '');
        let retryNow = false;
        if (e.serverFault) {
          const t = this.o.client.targets.find((x) => x.url === e.server);
          if (t) retryNow = this.o.client.fail(t);
        }
        const delay = retryNow ? 0 : this.backoff.next();
        this.health(e.message, e);
        this.log(e.serverFault ? 'warn' : 'error', 'apiserver request failed', {
          error: e.message,
          code: e.code,
          retryInMs: delay,
          next: this.o.client.current.url,
        });
        await sleep(this.clock, delay, this.stopper.signal);
      }
    }
  }

  private query(extra: Record<string, string>): string {
    const q = new URLSearchParams();
    if (this.o.labelSelector) q.set('labelSelector', this.o.labelSelector);
    if (this.o.fieldSelector) q.set('fieldSelector', this.o.fieldSelector);
    for (const [k, v] of Object.entries(extra)) q.set(k, v);
    return `${this.o.path}?${q}`;
  }

  /** Paged LIST; then the cache becomes exactly the list, and only differences are emitted. */
  private async list(): Promise<void> {
    const seen = new Map<string, KubeObject>();
    let cont: string | undefined;
    let listRv = '';
    for (;;) {
      const params: Record<string, string> = { limit: String(this.o.pageSize ?? 500) };
      if (cont) params.continue = cont;
      let page: { metadata?: { resourceVersion?: string; continue?: string }; items?: KubeObject[] | null };
      try {
        const r = await this.o.client.getJson<typeof page>(this.query(params), this.stopper.signal);
        page = r.value;
        this.o.client.succeed(r.target);
      } catch (err) {
        if (err instanceof ApiError && err.code === 410 && cont) {
          // The continue token expired mid-list: start over (nothing was applied yet).
          this.log('info', 'continue token expired; restarting the list');
          seen.clear();
          cont = undefined;
          continue;
        }
        throw err;
      }
      const tf = this.o.transform;
      const early: ObjectChange[] = [];
      for (const item of page.items ?? []) {
        const key = objectKey(item);
        const obj = tf ? tf(item) : item;
        seen.set(key, obj);
        // The first list hands over each page as it arrives (there is nothing to replace yet), so
        // the consumer works while the next page is on its way. A relist applies the difference
        // in one batch at the end.
        if (
          this.lists === 0 &&
          this.cache.get(key)?.metadata.resourceVersion !== obj.metadata.resourceVersion
        ) {
          this.cache.set(key, obj);
          early.push({ type: 'upsert', key, obj });
        }
      }
      if (early.length > 0 && !this.stopped) this.o.onChanges(early);
      cont = page.metadata?.continue || undefined;
      listRv = page.metadata?.resourceVersion ?? listRv;
      if (!cont || this.stopped) break;
    }
    if (this.stopped) return;
    const changes: ObjectChange[] = [];
    for (const [key, obj] of seen) {
      const prev = this.cache.get(key);
      if (prev && prev.metadata.resourceVersion === obj.metadata.resourceVersion) continue;
      this.cache.set(key, obj);
      changes.push({ type: 'upsert', key, obj });
    }
    for (const [key, obj] of this.cache) {
      if (seen.has(key)) continue;
      this.cache.delete(key);
      changes.push({ type: 'delete', key, obj });
    }
    this.rv = listRv;
    this.listedAt = this.clock.now();
    this.lists++;
    this.backoff.reset();
    this.health(null);
    this.log('debug', 'listed', { items: seen.size, changes: changes.length, rv: listRv });
    if (changes.length) this.o.onChanges(changes);
    this.o.onListed?.();
  }

  /** One WATCH from `rv`. Returns the number of events on a clean end; throws Gone on 410. */
  private async watch(): Promise<number> {
    const [lo, hi] = this.o.watchTimeoutSeconds ?? [300, 600];
    const timeout = Math.round(lo + this.random() * (hi - lo));
    let res: Awaited<ReturnType<ApiClient['open']>>;
    try {
      res = await this.o.client.open(
        this.query({
          watch: 'true',
          resourceVersion: this.rv!,
          allowWatchBookmarks: 'true',
          timeoutSeconds: String(timeout),
        }),
        this.stopper.signal,
      );
    } catch (err) {
      if (err instanceof ApiError && err.code === 410) throw new Gone();
      throw err;
    }
    this.current = res;
    this.watches++;
    this.o.client.succeed(res.target);
    this.health(null);
    this.backoff.reset();
    const lines = new LineSplitter();
    let count = 0;
    try {
      for await (const chunk of res.body) {
        const batch: ObjectChange[] = [];
        for (const line of lines.push(chunk)) count += this.event(line, batch);
        if (batch.length) this.o.onChanges(batch);
      }
      const batch: ObjectChange[] = [];
      for (const line of lines.end()) count += this.event(line, batch);
      if (batch.length) this.o.onChanges(batch);
    } finally {
      this.current = null;
      res.close();
    }
    return count;
  }

  /** Applies one watch event line to the cache; returns 1 when it was an event. */
  private event(line: string, batch: ObjectChange[]): number {
    let ev: WatchEvent;
    try {
      ev = JSON.parse(line);
    } catch {
      this.log('warn', 'unparsable watch line', { line: line.slice(0, 200) });
      return 0;
    }
    let obj = ev.object;
    if (ev.type === 'ERROR') {
      const st = obj as unknown as { code?: number; message?: string; reason?: string };
      if (st.code === 410) throw new Gone();
      throw new ApiError(
        `watch error: ${st.message ?? JSON.stringify(st)}`,
        st.code ?? 500,
        this.o.client.current.url,
        st.reason,
      );
    }
    const rv = obj?.metadata?.resourceVersion;
    if (rv) this.rv = rv;
    if (ev.type === 'BOOKMARK') return 1;
    if (this.o.transform) obj = this.o.transform(obj);
    const key = objectKey(obj);
    if (ev.type === 'DELETED') {
      const prev = this.cache.get(key);
      if (prev) {
        this.cache.delete(key);
        batch.push({ type: 'delete', key, obj });
      }
    } else if (ev.type === 'ADDED' || ev.type === 'MODIFIED') {
      const prev = this.cache.get(key);
      if (!prev || prev.metadata.resourceVersion !== rv) {
        this.cache.set(key, obj);
        batch.push({ type: 'upsert', key, obj });
      }
    }
    return 1;
  }
}
