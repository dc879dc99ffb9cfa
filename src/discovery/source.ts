// KubernetesSource: Services labelled `wharf.io/project` + their EndpointSlices, kept live by
// list/watch loops, published as ProjectRecords. What main.ts wires.
//
// - Nothing is published before the first complete list of both resources.
// - Bursts are coalesced (only the latest state matters), and work per event is proportional to
//   what changed: only Services touched since the last publish are translated again, and a record
//   equal to the previous one is reused by identity (routing memoizes on it).
// - Errors never empty the table: the caches keep the last state, a relist applies only the
//   difference, and the state goes `degraded` with the reason until an apiserver answers again.

import type { Problem } from '../model/problem.ts';
import type { ProjectChange, ProjectRecord } from '../model/snapshot.ts';
import { ApiClient } from './apiclient.ts';
import { type Clock, systemClock, type Timer } from './clock.ts';
import type { ApiServerTarget } from './credentials.ts';
import type { Service } from './k8s-types.ts';
import { type KubeObject, objectKey, PROJECT_LABEL, SERVICE_NAME_LABEL, trimService } from './k8s-types.ts';
import { type LogFn, type ObjectChange, Reflector, type ReflectorIncident } from './reflector.ts';
import {
  resolveConflicts,
  type ServiceTranslation,
  type TrimmedSlice,
  translateService,
  trimSlice,
} from './translate.ts';

export type SourceStateName = 'syncing' | 'synced' | 'degraded';

export interface SourceState {
  readonly state: SourceStateName;
  /** Why it is not `synced` (the last apiserver error), if known. */
  readonly reason?: string;
  /** Epoch ms of the last complete list (any resource), once synced. */
  readonly lastSyncAt?: number;
}

export interface KubernetesSourceOptions {
  servers: readonly ApiServerTarget[];
  /** Watch only these namespaces (one loop per namespace and resource); default: all. */
  namespaces?: readonly string[];
  clock?: Clock;
  random?: () => number;
  log?: LogFn;
  /**
   * Window in which bursts of events are merged into one publish. Default 5 ms. Under sustained
   * churn the window also stretches to the cost of the last publish, so rebuilding never takes more
   * than about half of the event loop and latency stays bounded instead of queueing up.
   */
  coalesceMs?: number;
  /** Watchdog: a request silent for this long is restarted. Default 90 s. */
  silenceMs?: number;
  watchTimeoutSeconds?: readonly [number, number];
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** Wait before a relist (410, a watch that cannot resume): from this, doubling (default 0.8-30 s). */
  relistBackoffInitialMs?: number;
  relistBackoffMaxMs?: number;
  /** A watch line longer than this breaks the stream and relists (default 16 MiB). */
  maxLineBytes?: number;
  /** Each rejected line and each relist (metrics). */
  onIncident?: (incident: ReflectorIncident) => void;
  pageSize?: number;
}

/** One publish. */
export interface SourceUpdate {
  /** Every published project (built on first read, so a publish costs nothing per project). */
  readonly projects: readonly ProjectRecord[];
  readonly problems: readonly Problem[];
  /** What changed since the previous publish; the first one adds everything. */
  readonly change: ProjectChange;
}

export type SnapshotListener = (update: SourceUpdate) => void;

function sameRecord(a: ProjectRecord | null, b: ProjectRecord | null): boolean {
  if (a === b) return true;
  if (!a || !b) return false;
  // Translation builds keys in a fixed order, so equal records serialize equally.
  return JSON.stringify(a) === JSON.stringify(b);
}

function sameProblems(a: readonly Problem[], b: readonly Problem[]): boolean {
  return a.length === b.length && (a.length === 0 || JSON.stringify(a) === JSON.stringify(b));
}

export class KubernetesSource {
  private readonly client: ApiClient;
  private readonly clock: Clock;
  private readonly reflectors: Reflector[] = [];
  private readonly listed = new Set<Reflector>();
  private readonly health = new Map<Reflector, string | null>();
  private readonly services = new Map<string, Service>();
  /** Service key -> its EndpointSlices (usually one; a list is smaller than a Map per Service). */
  private readonly slices = new Map<string, TrimmedSlice[]>();
  private readonly sliceOwner = new Map<string, string>();
  private readonly translations = new Map<string, ServiceTranslation>();
  /** Project name -> Services claiming it; conflicts are re-resolved only for names that changed. */
  private readonly claims = new Map<string, string[]>();
  private readonly conflicts = new Map<string, { winner: ProjectRecord; problems: Problem[] }>();
  /** Project name -> the record published for it (the winner of any conflict). */
  private readonly winners = new Map<string, ProjectRecord>();
  private readonly withProblems = new Set<string>();
  /** Problems already logged, so each is logged once while it lasts (and again if it comes back). */
  private logged = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly snapshotListeners = new Set<SnapshotListener>();
  private readonly stateListeners = new Set<(s: SourceState) => void>();
  private flushTimer: Timer | null = null;
  /** Problems changed in a flush before the first sync (published with it). */
  private problemsDirty = false;
  private synced = false;
  private current: SourceState = { state: 'syncing' };
  private lastProjects: readonly ProjectRecord[] | undefined = Object.freeze([]);
  private lastProblems: readonly Problem[] = Object.freeze([]);
  private published = false;
  private readonly coalesceMs: number;
  private readonly log: LogFn;
  /** Publishes so far (for tests and metrics). */
  publishes = 0;
  /** When the last publish ended and how long its listeners took (the route-table rebuild). */
  private lastPublishEnd = 0;
  private lastPublishCost = 0;

  constructor(o: KubernetesSourceOptions) {
    this.clock = o.clock ?? systemClock;
    this.log = o.log ?? (() => {});
    this.coalesceMs = o.coalesceMs ?? 5;
    this.client = new ApiClient(o.servers, { clock: this.clock, silenceMs: o.silenceMs });
    const scopes = o.namespaces?.length
      ? o.namespaces.map((ns) => `/namespaces/${encodeURIComponent(ns)}`)
      : [''];
    for (const scope of scopes) {
      this.reflectors.push(
        this.reflector(o, `/api/v1${scope}/services`, PROJECT_LABEL, trimService, (c) => this.onServices(c)),
        this.reflector(
          o,
          `/apis/discovery.k8s.io/v1${scope}/endpointslices`,
          SERVICE_NAME_LABEL,
          trimSlice,
          (c) => this.onSlices(c),
        ),
      );
    }
  }

  private reflector(
    o: KubernetesSourceOptions,
    path: string,
    labelSelector: string,
    transform: (o: KubeObject) => KubeObject,
    onChanges: (c: ObjectChange[]) => void,
  ): Reflector {
    const r: Reflector = new Reflector({
      client: this.client,
      path,
      labelSelector,
      transform,
      onChanges,
      onListed: () => this.onListed(r),
      onHealth: (problem) => this.onHealth(r, problem),
      log: this.log,
      clock: this.clock,
      random: o.random,
      pageSize: o.pageSize,
      watchTimeoutSeconds: o.watchTimeoutSeconds,
      backoffInitialMs: o.backoffInitialMs,
      backoffMaxMs: o.backoffMaxMs,
      relistBackoffInitialMs: o.relistBackoffInitialMs,
      relistBackoffMaxMs: o.relistBackoffMaxMs,
      maxLineBytes: o.maxLineBytes,
      onIncident: o.onIncident,
    });
    return r;
  }

  start(): this {
    for (const r of this.reflectors) r.start();
    return this;
  }

  async stop(): Promise<void> {
    this.flushTimer?.cancel();
    this.flushTimer = null;
    await Promise.all(this.reflectors.map((r) => r.stop()));
    await this.client.close();
  }

  get state(): SourceState {
    return this.current;
  }

  /** The last published projects (empty before the first sync). */
  get projects(): readonly ProjectRecord[] {
    this.lastProjects ??= Object.freeze([...this.winners.values()]);
    return this.lastProjects;
  }

  get problems(): readonly Problem[] {
    return this.lastProblems;
  }

  /** `cb` gets every publish; if one already happened it is called at once with the latest. */
  onSnapshot(cb: SnapshotListener): () => void {
    this.snapshotListeners.add(cb);
    // A late subscriber gets everything as added.
    if (this.published) cb(this.update({ removed: [], added: this.projects }));
    return () => this.snapshotListeners.delete(cb);
  }

  onState(cb: (s: SourceState) => void): () => void {
    this.stateListeners.add(cb);
    return () => this.stateListeners.delete(cb);
  }

  // ---------------------------------------------------------------- events

  private onServices(changes: ObjectChange[]): void {
    for (const c of changes) {
      if (c.type === 'delete') this.services.delete(c.key);
      else this.services.set(c.key, c.obj as Service);
      this.dirty.add(c.key);
    }
    this.schedule();
  }

  private onSlices(changes: ObjectChange[]): void {
    for (const c of changes) {
      const prevOwner = this.sliceOwner.get(c.key);
      if (prevOwner !== undefined) {
        const list = this.slices.get(prevOwner);
        const i = list ? list.findIndex((x) => objectKey(x) === c.key) : -1;
        if (i >= 0) list!.splice(i, 1);
        if (list?.length === 0) this.slices.delete(prevOwner);
        this.sliceOwner.delete(c.key);
        this.dirty.add(prevOwner);
      }
      if (c.type === 'upsert') {
        const svc = c.obj.metadata.labels?.[SERVICE_NAME_LABEL];
        if (!svc) continue;
        const owner = objectKey({
          metadata: { namespace: c.obj.metadata.namespace ?? 'default', name: svc },
        });
        const list = this.slices.get(owner);
        if (list) list.push(c.obj as TrimmedSlice);
        else this.slices.set(owner, [c.obj as TrimmedSlice]);
        this.sliceOwner.set(c.key, owner);
        this.dirty.add(owner);
      }
    }
    this.schedule();
  }

  private onListed(r: Reflector): void {
    this.listed.add(r);
    if (!this.synced && this.listed.size === this.reflectors.length) {
      this.synced = true;
      this.log('info', 'kubernetes: first sync complete', {
        services: this.services.size,
        slices: this.sliceOwner.size,
      });
      this.flushTimer?.cancel();
      this.flushTimer = null;
      this.flush();
    }
    this.updateState();
  }

  private onHealth(r: Reflector, problem: string | null): void {
    this.health.set(r, problem);
    this.updateState();
  }

  private updateState(): void {
    let reason: string | undefined;
    for (const p of this.health.values()) if (p) reason ??= p;
    const state: SourceStateName = !this.synced ? 'syncing' : reason ? 'degraded' : 'synced';
    const lastSyncAt = this.synced && !reason ? this.clock.now() : this.current.lastSyncAt;
    if (state === this.current.state && reason === this.current.reason) {
      if (state === 'synced') this.current = { ...this.current, lastSyncAt };
      return;
    }
    this.current = { state, ...(reason ? { reason } : {}), ...(lastSyncAt ? { lastSyncAt } : {}) };
    this.log(state === 'degraded' ? 'warn' : 'info', `kubernetes: ${state}`, reason ? { reason } : {});
    for (const cb of this.stateListeners) cb(this.current);
  }

  private schedule(): void {
    if (this.flushTimer || this.dirty.size === 0) return;
    const now = this.clock.now();
    // Before the first sync a flush only translates (nothing is published): the pages of the first
    // list are translated as they arrive, while the next ones are on their way.
    const delay = this.synced
      ? Math.max(this.coalesceMs, this.lastPublishEnd + this.lastPublishCost - now)
      : this.coalesceMs;
    this.flushTimer = this.clock.setTimeout(() => {
      this.flushTimer = null;
      this.flush();
    }, delay);
  }

  private claim(name: string | undefined, key: string, add: boolean, touched: Set<string>): void {
    if (name === undefined) return;
    touched.add(name);
    const keys = this.claims.get(name);
    if (add) {
      if (!keys) this.claims.set(name, [key]);
      else if (!keys.includes(key)) keys.push(key);
    } else if (keys) {
      const i = keys.indexOf(key);
      if (i >= 0) keys.splice(i, 1);
      if (keys.length === 0) this.claims.delete(name);
    }
  }

  /** A publish as listeners see it; `projects` is built only if someone reads it. */
  private update(change: ProjectChange): SourceUpdate {
    const src = this;
    return {
      get projects() {
        return src.projects;
      },
      problems: this.lastProblems,
      change,
    };
  }

  private logProblems(problems: readonly Problem[]): void {
    const now = new Set<string>();
    for (const p of problems) {
      const key = `${p.object}\0${p.field ?? ''}\0${p.code}\0${p.message}`;
      now.add(key);
      if (!this.logged.has(key))
        this.log(p.severity === 'error' ? 'error' : 'warn', `kubernetes: ${p.object}: ${p.message}`, {
          object: p.object,
          field: p.field,
          code: p.code,
        });
    }
    this.logged = now;
  }

  /** Re-translates the dirty Services and, once synced, publishes what really changed. */
  private flush(): void {
    const first = !this.published;
    let problemsChanged = first || this.problemsDirty;
    this.problemsDirty = false;
    const touched = new Set<string>();
    for (const key of this.dirty) {
      const svc = this.services.get(key);
      const prev = this.translations.get(key);
      let next: ServiceTranslation | undefined;
      if (svc) {
        const t = translateService(svc, this.slices.get(key) ?? []);
        const sameRec = prev !== undefined && sameRecord(prev.record, t.record);
        const sameProbs = prev !== undefined && sameProblems(prev.problems, t.problems);
        if (sameRec && sameProbs) continue;
        // Keep the old record object when only problems changed, so routing's memo still hits.
        next = { record: sameRec ? prev.record : t.record, problems: sameProbs ? prev.problems : t.problems };
        if (!sameProbs) problemsChanged = true;
      } else if (!prev) continue;
      else if (prev.problems.length > 0) problemsChanged = true;
      this.claim(prev?.record?.name, key, false, touched);
      if (next) {
        this.translations.set(key, next);
        this.claim(next.record?.name, key, true, touched);
        if (next.problems.length) this.withProblems.add(key);
        else this.withProblems.delete(key);
      } else {
        this.translations.delete(key);
        this.withProblems.delete(key);
      }
    }
    this.dirty.clear();
    const removed: ProjectRecord[] = [];
    const added: ProjectRecord[] = [];
    for (const name of touched) {
      const keys = this.claims.get(name);
      let winner: ProjectRecord | undefined;
      if (keys && keys.length > 1) {
        const r = resolveConflicts(keys.map((k) => this.translations.get(k)!.record!));
        winner = r.projects[0];
        this.conflicts.set(name, { winner, problems: r.problems });
        problemsChanged = true;
      } else {
        if (this.conflicts.delete(name)) problemsChanged = true;
        if (keys) winner = this.translations.get(keys[0])!.record!;
      }
      const prev = this.winners.get(name);
      if (prev === winner) continue;
      if (prev) removed.push(prev);
      if (winner) {
        added.push(winner);
        this.winners.set(name, winner);
      } else this.winners.delete(name);
    }
    if (!this.synced) {
      // Translated ahead of the first sync; the first publish adds every winner.
      this.problemsDirty ||= problemsChanged;
      return;
    }
    if (first) {
      removed.length = 0;
      added.length = 0;
      for (const r of this.winners.values()) added.push(r);
    }
    if (!first && !problemsChanged && removed.length === 0 && added.length === 0) return;
    if (problemsChanged) {
      const problems: Problem[] = [];
      for (const key of this.withProblems)
        for (const p of this.translations.get(key)!.problems) problems.push(p);
      for (const c of this.conflicts.values()) for (const p of c.problems) problems.push(p);
      this.logProblems(problems);
      this.lastProblems = Object.freeze(problems);
    }
    if (removed.length > 0 || added.length > 0) this.lastProjects = undefined;
    this.published = true;
    this.publishes++;
    const update = this.update({ removed, added });
    const t0 = this.clock.now();
    for (const cb of this.snapshotListeners) {
      try {
        cb(update);
      } catch (err) {
        this.log('error', 'kubernetes: snapshot listener threw', { error: (err as Error).message });
      }
    }
    this.lastPublishEnd = this.clock.now();
    this.lastPublishCost = this.lastPublishEnd - t0;
  }
}
