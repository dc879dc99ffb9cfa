// One list/watch loop for one collection URL: paged LIST, WATCH from the list's resourceVersion
// with bookmarks and a jittered timeout, resume from the last RV seen, relist applying only the
// difference, backoff with jitter that never gives up, failover through ApiClient.
// (client-node's informer stops for good after one failed list and hangs on a stalled watch.)
//
// What the apiserver sends is never trusted to be well formed, and the cache never says more than
// was handed on:
// - Every event that was applied to the cache is handed on (onChanges), even when a later line of
//   the same read is bad; the resourceVersion moves only with what was applied.
// - A line that is not a usable event (not JSON, no object, longer than maxLineBytes) ends the
//   stream: what it carried may have been a change, so only a relist can be sure of the state.
// - A watch that cannot resume (410, or any error that retrying the same version will not fix, or a
//   transient one several times over) relists, with backoff as client-go does (0.8 s doubling to 30 s,
//   jittered, reset after 2 quiet minutes) and any `Retry-After` honoured.
// - A list item that cannot be keyed is skipped (and reported); the rest of the page is kept.
// - While a relist is due or running, or the server is failing, onHealth says why (degraded), and
//   onIncident reports each rejected line and each relist (metrics).

import { clip } from '../util/strings.ts';
import { type ApiClient, ApiError } from './apiclient.ts';
import { Backoff, type Clock, sleep, systemClock } from './clock.ts';
import type { KubeObject } from './k8s-types.ts';
import { objectKey } from './k8s-types.ts';
import { LineSplitter, LineTooLong } from './ndjson.ts';

export type ObjectChange =
  | { readonly type: 'upsert'; readonly key: string; readonly obj: KubeObject }
  | { readonly type: 'delete'; readonly key: string; readonly obj: KubeObject };

export type LogFn = (
  level: 'debug' | 'info' | 'warn' | 'error',
  msg: string,
  fields?: Record<string, unknown>,
) => void;

/** Why a line or an item was not used. A bounded set: metrics label by it. */
export type RejectReason = 'unparsable' | 'too-long' | 'bad-event' | 'bad-item' | 'bad-object';
/** Why a relist was needed. A bounded set: metrics label by it. */
export type RelistReason = 'expired' | 'cannot-resume' | 'broken-stream' | 'watch-failing';

/** Something the apiserver sent that Wharf could not use, or a relist it forced (rare; not per event). */
export type ReflectorIncident =
  | { readonly kind: 'rejected'; readonly resource: string; readonly reason: RejectReason }
  | { readonly kind: 'relist'; readonly resource: string; readonly reason: RelistReason };

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
  /**
   * Applied to every object before it is cached (keep only what is read: real objects carry
   * managedFields). Must not throw on any JSON object; if it does, the object is dropped (a delete
   * of its key) and reported as rejected.
   */
  transform?: (o: KubeObject) => KubeObject;
  /** Called after every complete list (the first one means: synced). */
  onListed?: () => void;
  /**
   * `null` when the view is current, else why it may be stale (a failing server, a relist due or
   * running), with the error when there is one (its `code` tells a 403 from an outage).
   */
  onHealth?: (problem: string | null, error?: ApiError) => void;
  /** Each rejected line or item and each relist (metrics). */
  onIncident?: (incident: ReflectorIncident) => void;
  log?: LogFn;
  clock?: Clock;
  random?: () => number;
  pageSize?: number;
  /** Watch timeoutSeconds is drawn uniformly from this range (client-go uses 5-10 min). */
  watchTimeoutSeconds?: readonly [number, number];
  /** Backoff after a failed request: from this, doubling, to backoffMaxMs (jittered). */
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** Wait before a relist: from this (default 800 ms), doubling, to relistBackoffMaxMs (default 30 s). */
  relistBackoffInitialMs?: number;
  relistBackoffMaxMs?: number;
  /** A watch line longer than this breaks the stream (default 16 MiB). */
  maxLineBytes?: number;
  /** Transient watch failures in a row (5xx, 429, transport) after which it relists (default 5). */
  maxWatchRetries?: number;
}

/** Errors a retry of the same watch may get past; anything else means that version cannot resume. */
function resumable(code: number): boolean {
  return code === 0 || code === 429 || code === 500 || code === 502 || code === 503;
}

/** A `Retry-After` is honoured up to this; a server cannot park Wharf for longer. */
const MAX_RETRY_AFTER_MS = 60_000;
/** The relist backoff starts over after this long without a relist (client-go: 2 min). */
const RELIST_BACKOFF_RESET_MS = 120_000;

/** The watch cannot go on from this version; the state must be listed again. */
class Relist extends Error {
  constructor(
    readonly reason: RelistReason,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/** A line that is not a usable event: the stream cannot be trusted past it. */
class BrokenStream extends Error {
  constructor(
    readonly reject: RejectReason,
    message: string,
  ) {
    super(message);
  }
}

export class Reflector {
  private readonly cache = new Map<string, KubeObject>();
  private rv: string | null = null;
  private readonly stopper = new AbortController();
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly backoff: Backoff;
  private readonly relistBackoff: Backoff;
  private running: Promise<void> | null = null;
  private current: { close(): void } | null = null;
  private healthy: boolean | null = null;
  private lastRelistAt = Number.NEGATIVE_INFINITY;
  /** A relist is due (and waits out the relist backoff first). */
  private relistDue: { reason: RelistReason; message: string; retryAfterMs?: number } | null = null;
  private watchFailures = 0;
  /** `services`, `endpointslices`, `secrets`: what incidents are about. */
  readonly resource: string;
  /** Number of complete lists (relists included). */
  lists = 0;
  watches = 0;
  /** Relists started (after the first list). */
  relists = 0;
  /** Lines and list items that could not be used. */
  rejected = 0;

  constructor(private readonly o: ReflectorOptions) {
    this.clock = o.clock ?? systemClock;
    this.random = o.random ?? Math.random;
    this.backoff = new Backoff(o.backoffInitialMs ?? 500, o.backoffMaxMs ?? 30_000, this.random);
    this.relistBackoff = new Backoff(
      o.relistBackoffInitialMs ?? 800,
      o.relistBackoffMaxMs ?? 30_000,
      this.random,
      'up',
    );
    this.resource = o.path.slice(o.path.lastIndexOf('/') + 1);
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

  private reject(reason: RejectReason, detail: string): void {
    this.rejected++;
    this.log('warn', 'apiserver sent something unusable; skipped', { reason, detail });
    this.o.onIncident?.({ kind: 'rejected', resource: this.resource, reason });
  }

  /** From here the cached state may be stale until a list completes. */
  private scheduleRelist(reason: RelistReason, message: string, retryAfterMs?: number): void {
    this.rv = null;
    this.watchFailures = 0;
    this.relistDue = { reason, message, retryAfterMs };
    this.relists++;
    this.o.onIncident?.({ kind: 'relist', resource: this.resource, reason });
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      let watching = false;
      try {
        if (this.rv === null) {
          if (this.relistDue) await this.relistWait();
          if (this.stopped) break;
          await this.list();
        }
        watching = true;
        const started = this.clock.now();
        const events = await this.watch();
        this.watchFailures = 0;
        // A watch that the server ends at once, again and again, must not become a hot loop.
        if (events === 0 && this.clock.now() - started < 1000)
          await sleep(this.clock, this.backoff.next(), this.stopper.signal);
      } catch (err) {
        if (this.stopped) break;
        if (err instanceof Relist) {
          this.scheduleRelist(err.reason, err.message, err.retryAfterMs);
          continue;
        }
        if (err instanceof BrokenStream) {
          this.reject(err.reject, err.message);
          this.scheduleRelist('broken-stream', err.message);
          continue;
        }
        const e = err instanceof ApiError ? err : new ApiError(String((err as Error)?.message ?? err), 0, '');
        if (watching) {
          // The watch from this version failed. Retrying it makes sense only for errors that are
          // about the server (down, overloaded), and only a few times: a version the server will not
          // take again (400, 504 "Too large resource version", 403...) needs a fresh list.
          this.watchFailures++;
          const max = this.o.maxWatchRetries ?? 5;
          if (!resumable(e.code) || this.watchFailures >= max) {
            this.scheduleRelist(
              resumable(e.code) ? 'watch-failing' : 'cannot-resume',
              `watch cannot resume from ${this.rv}: ${e.message}`,
              e.retryAfterMs,
            );
            continue;
          }
        }
        let retryNow = false;
        if (e.serverFault) {
          const t = this.o.client.targets.find((x) => x.url === e.server);
          if (t) retryNow = this.o.client.fail(t);
        }
        let delay = retryNow ? 0 : this.backoff.next();
        if (e.retryAfterMs !== undefined)
          delay = Math.max(delay, Math.min(e.retryAfterMs, MAX_RETRY_AFTER_MS));
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

  /** Waits out the relist backoff (and any Retry-After), saying meanwhile that the view may be stale. */
  private async relistWait(): Promise<void> {
    const due = this.relistDue!;
    this.relistDue = null;
    const now = this.clock.now();
    if (now - this.lastRelistAt > RELIST_BACKOFF_RESET_MS) this.relistBackoff.reset();
    this.lastRelistAt = now;
    let delay = this.relistBackoff.next();
    if (due.retryAfterMs !== undefined)
      delay = Math.max(delay, Math.min(due.retryAfterMs, MAX_RETRY_AFTER_MS));
    this.health(`${this.resource}: relisting in ${delay} ms (${clip(due.message, 300)})`);
    this.log('info', 'relisting', { reason: due.reason, detail: clip(due.message, 300), inMs: delay });
    await sleep(this.clock, delay, this.stopper.signal);
  }

  private query(extra: Record<string, string>): string {
    const q = new URLSearchParams();
    if (this.o.labelSelector) q.set('labelSelector', this.o.labelSelector);
    if (this.o.fieldSelector) q.set('fieldSelector', this.o.fieldSelector);
    for (const [k, v] of Object.entries(extra)) q.set(k, v);
    return `${this.o.path}?${q}`;
  }

  /**
   * The object as cached (transformed), or undefined when the transform threw: the caller then
   * drops the key, so a bad version never keeps routing what an earlier good version said.
   */
  private prepare(item: KubeObject): KubeObject | undefined {
    const tf = this.o.transform;
    if (!tf) return item;
    try {
      return tf(item);
    } catch (err) {
      this.reject('bad-object', `${objectKey(item)}: ${(err as Error)?.message ?? err}`);
      return undefined;
    }
  }

  /** Paged LIST; then the cache becomes exactly the list, and only differences are emitted. */
  private async list(): Promise<void> {
    const seen = new Map<string, KubeObject>();
    let cont: string | undefined;
    let listRv = '';
    for (;;) {
      const params: Record<string, string> = { limit: String(this.o.pageSize ?? 500) };
      if (cont) params.continue = cont;
      let page: { metadata?: { resourceVersion?: unknown; continue?: unknown }; items?: unknown };
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
      const items = page && typeof page === 'object' ? (page.items ?? []) : undefined;
      const pageRv = page?.metadata?.resourceVersion;
      if (!Array.isArray(items) || typeof pageRv !== 'string' || pageRv === '')
        throw new ApiError(
          'the list answer is not a list (no items, or no resourceVersion)',
          0,
          this.o.client.current.url,
          'BadList',
        );
      const early: ObjectChange[] = [];
      try {
        for (const item of items as unknown[]) {
          if (!keyable(item)) {
            this.reject('bad-item', `list item without metadata.name: ${clip(safeJson(item), 200)}`);
            continue;
          }
          const key = objectKey(item);
          const obj = this.prepare(item);
          if (!obj) continue;
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
      } finally {
        // What went into the cache is handed on, whatever happens next.
        if (early.length > 0) this.o.onChanges(early);
      }
      cont =
        typeof page.metadata?.continue === 'string' && page.metadata.continue
          ? page.metadata.continue
          : undefined;
      listRv = pageRv;
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
    this.lists++;
    this.backoff.reset();
    this.watchFailures = 0;
    this.log('debug', 'listed', { items: seen.size, changes: changes.length, rv: listRv });
    try {
      if (changes.length) this.o.onChanges(changes);
    } finally {
      this.health(null);
      this.o.onListed?.();
    }
  }

  /** One WATCH from `rv`. Returns the number of events on a clean end; throws Relist when it cannot go on. */
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
        { events: true },
      );
    } catch (err) {
      if (err instanceof ApiError && err.code === 410)
        throw new Relist('expired', `resourceVersion ${this.rv} expired (HTTP 410)`, err.retryAfterMs);
      throw err;
    }
    this.current = res;
    this.watches++;
    this.o.client.succeed(res.target);
    this.health(null);
    this.backoff.reset();
    const lines = new LineSplitter(this.o.maxLineBytes);
    let count = 0;
    let batch: ObjectChange[] = [];
    const onLine = (line: string) => {
      this.event(line, batch);
      res.kick();
      if (count++ === 0) this.watchFailures = 0;
    };
    try {
      for await (const chunk of res.body) {
        try {
          lines.push(chunk, onLine);
        } finally {
          // Every event applied to the cache is handed on, even when a later line of this read is bad.
          if (batch.length) {
            const b = batch;
            batch = [];
            this.o.onChanges(b);
          }
        }
      }
      try {
        lines.end(onLine);
      } finally {
        if (batch.length) this.o.onChanges(batch);
      }
    } catch (err) {
      if (err instanceof LineTooLong) throw new BrokenStream('too-long', err.message);
      throw err;
    } finally {
      this.current = null;
      res.close();
    }
    return count;
  }

  /** Applies one watch event line to the cache; throws when the line is not a usable event. */
  private event(line: string, batch: ObjectChange[]): void {
    let ev: { type?: unknown; object?: unknown };
    try {
      ev = JSON.parse(line);
    } catch {
      throw new BrokenStream('unparsable', `unparsable watch line: ${clip(line, 200)}`);
    }
    if (!ev || typeof ev !== 'object')
      throw new BrokenStream('bad-event', `watch line is not an event: ${clip(line, 200)}`);
    const type = ev.type;
    if (type === 'ERROR') {
      const st = (ev.object && typeof ev.object === 'object' ? ev.object : {}) as {
        code?: unknown;
        message?: unknown;
        reason?: unknown;
        details?: { retryAfterSeconds?: unknown };
      };
      const code = typeof st.code === 'number' ? st.code : 500;
      const message = clip(typeof st.message === 'string' ? st.message : safeJson(st), 300);
      const after = st.details?.retryAfterSeconds;
      const retryAfterMs = typeof after === 'number' && after >= 0 ? after * 1000 : undefined;
      if (code === 410) throw new Relist('expired', `watch: ${message}`, retryAfterMs);
      throw new ApiError(
        `watch error: ${message}`,
        code,
        this.o.client.current.url,
        typeof st.reason === 'string' ? clip(st.reason) : undefined,
        retryAfterMs,
      );
    }
    const raw = ev.object as KubeObject | undefined;
    const rv = raw && typeof raw === 'object' ? raw.metadata?.resourceVersion : undefined;
    if (typeof rv !== 'string' || rv === '')
      throw new BrokenStream(
        'bad-event',
        `watch event without an object and resourceVersion: ${clip(line, 200)}`,
      );
    if (type === 'BOOKMARK') {
      this.rv = rv;
      return;
    }
    if ((type !== 'ADDED' && type !== 'MODIFIED' && type !== 'DELETED') || !keyable(raw))
      throw new BrokenStream(
        'bad-event',
        `watch event of unknown type or without a name: ${clip(line, 200)}`,
      );
    const key = objectKey(raw);
    const prev = this.cache.get(key);
    if (type === 'DELETED') {
      if (prev) {
        this.cache.delete(key);
        batch.push({ type: 'delete', key, obj: prev });
      }
    } else if (!prev || prev.metadata.resourceVersion !== rv) {
      const obj = this.prepare(raw);
      if (obj) {
        this.cache.set(key, obj);
        batch.push({ type: 'upsert', key, obj });
      } else if (prev) {
        this.cache.delete(key);
        batch.push({ type: 'delete', key, obj: prev });
      }
    }
    this.rv = rv;
  }
}

/** An object the cache can key: a JSON object with `metadata.name` a non-empty string. */
function keyable(o: unknown): o is KubeObject {
  if (!o || typeof o !== 'object') return false;
  const m = (o as KubeObject).metadata;
  if (!m || typeof m !== 'object') return false;
  const ns = m.namespace;
  return (
    typeof m.name === 'string' && m.name !== '' && (ns === undefined || ns === null || typeof ns === 'string')
  );
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}
