// KubernetesSource: Services labelled `wharf.io/project` + their EndpointSlices, kept live by
// list/watch loops, published as ProjectRecords through the Source contract (model/source.ts).
//
// - Nothing is published before the first complete list of both resources.
// - Bursts are coalesced (only the latest state matters), and work per event is proportional to
//   what changed: only Services touched since the last publish are translated again, and a record
//   equal to the previous one is reused by identity (the identity rule of SourceUpdate: routing
//   memoizes on the record object, so an unchanged Service costs nothing downstream).
// - Every project Service is published, two claiming one name included: the control plane's
//   aggregator resolves name conflicts across all sources.
// - Errors never empty the table: the caches keep the last state, a relist applies only the
//   difference, and the state goes `degraded` with the reason until an apiserver answers again.

import type { Problem } from '../model/problem.ts';
import type { ProjectRecord } from '../model/snapshot.ts';
import type { Source, SourceStatus, SourceUpdate } from '../model/source.ts';
import { sameData } from '../util/equal.ts';
import { ApiClient } from './apiclient.ts';
import { type Clock, systemClock, type Timer } from './clock.ts';
import type { ApiServerTarget } from './credentials.ts';
import type { Service } from './k8s-types.ts';
import { type KubeObject, objectKey, PROJECT_LABEL, SERVICE_NAME_LABEL, trimService } from './k8s-types.ts';
import { type LogFn, type ObjectChange, Reflector, type ReflectorIncident } from './reflector.ts';
import { type ServiceTranslation, type TrimmedSlice, translateService, trimSlice } from './translate.ts';

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

/** KubernetesSource tuning as Wharf takes it (tests): `servers` replaces what the config resolves to. */
export type KubernetesTuning = Partial<Omit<KubernetesSourceOptions, 'servers'>> & {
  readonly servers?: readonly ApiServerTarget[];
};

type UpdateListener = (update: SourceUpdate) => void;

function sameRecord(a: ProjectRecord | null, b: ProjectRecord | null): boolean {
  return sameData(a, b);
}

function sameProblems(a: readonly Problem[], b: readonly Problem[]): boolean {
  return a.length === b.length && (a.length === 0 || JSON.stringify(a) === JSON.stringify(b));
}

export class KubernetesSource implements Source {
  readonly name = 'kubernetes';
  private readonly client: ApiClient;
  private readonly clock: Clock;
  private readonly reflectors: Reflector[] = [];
  private readonly listed = new Set<Reflector>();
  private readonly health = new Map<Reflector, string | null>();
  private readonly services = new Map<string, Service>();
  /** Service key -> its EndpointSlices (usually one; a list is smaller than a Map per Service). */
  private readonly slices = new Map<string, TrimmedSlice[]>();
  private readonly sliceOwner = new Map<string, string>();
  /** Service key -> its translation; those with a record are what is published. */
  private readonly translations = new Map<string, ServiceTranslation>();
  private readonly withProblems = new Set<string>();
  /** Problems already logged, so each is logged once while it lasts (and again if it comes back). */
  private logged = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly updateListeners = new Set<UpdateListener>();
  private readonly statusListeners = new Set<(s: SourceStatus) => void>();
  private flushTimer: Timer | null = null;
  /** Problems changed in a flush before the first sync (published with it). */
  private problemsDirty = false;
  private synced = false;
  private current: SourceStatus = { state: 'syncing' };
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

  get status(): SourceStatus {
    return this.current;
  }

  /** The last published projects (empty before the first sync); built when read. */
  get projects(): readonly ProjectRecord[] {
    if (!this.lastProjects) {
      const all: ProjectRecord[] = [];
      if (this.published) for (const t of this.translations.values()) if (t.record) all.push(t.record);
      this.lastProjects = Object.freeze(all);
    }
    return this.lastProjects;
  }

  get problems(): readonly Problem[] {
    return this.lastProblems;
  }

  /** `cb` gets every publish; if one already happened it is called at once with a reset. */
  onUpdate(cb: UpdateListener): () => void {
    this.updateListeners.add(cb);
    if (this.published) cb({ reset: true, removed: [], added: this.projects, problems: this.lastProblems });
    return () => this.updateListeners.delete(cb);
  }

  onStatus(cb: (s: SourceStatus) => void): () => void {
    this.statusListeners.add(cb);
    return () => this.statusListeners.delete(cb);
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
    const state: SourceStatus['state'] = !this.synced ? 'syncing' : reason ? 'degraded' : 'synced';
    const lastSyncAt = this.synced && !reason ? this.clock.now() : this.current.lastSyncAt;
    if (state === this.current.state && reason === this.current.reason) {
      if (state === 'synced') this.current = { ...this.current, lastSyncAt };
      return;
    }
    this.current = { state, ...(reason ? { reason } : {}), ...(lastSyncAt ? { lastSyncAt } : {}) };
    this.log(state === 'degraded' ? 'warn' : 'info', `kubernetes: ${state}`, reason ? { reason } : {});
    for (const cb of this.statusListeners) cb(this.current);
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
    const removed: ProjectRecord[] = [];
    const added: ProjectRecord[] = [];
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
      if (prev?.record && prev.record !== next?.record) removed.push(prev.record);
      if (next?.record && next.record !== prev?.record) added.push(next.record);
      if (next) {
        this.translations.set(key, next);
        if (next.problems.length) this.withProblems.add(key);
        else this.withProblems.delete(key);
      } else {
        this.translations.delete(key);
        this.withProblems.delete(key);
      }
    }
    this.dirty.clear();
    if (!this.synced) {
      // Translated ahead of the first sync; the first publish is a reset with every record.
      this.problemsDirty ||= problemsChanged;
      return;
    }
    if (!first && !problemsChanged && removed.length === 0 && added.length === 0) return;
    if (problemsChanged) {
      const problems: Problem[] = [];
      for (const key of this.withProblems)
        for (const p of this.translations.get(key)!.problems) problems.push(p);
      this.logProblems(problems);
      this.lastProblems = Object.freeze(problems);
    }
    if (first || removed.length > 0 || added.length > 0) this.lastProjects = undefined;
    this.published = true;
    this.publishes++;
    const update: SourceUpdate = first
      ? { reset: true, removed: [], added: this.projects, problems: this.lastProblems }
      : { reset: false, removed, added, problems: this.lastProblems };
    const t0 = this.clock.now();
    for (const cb of this.updateListeners) {
      try {
        cb(update);
      } catch (err) {
        this.log('error', 'kubernetes: update listener threw', { error: (err as Error).message });
      }
    }
    this.lastPublishEnd = this.clock.now();
    this.lastPublishCost = this.lastPublishEnd - t0;
  }
}
