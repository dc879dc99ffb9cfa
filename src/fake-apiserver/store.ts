// The fake apiserver's object store: per-resource maps, one global resourceVersion counter (like
// etcd's revision), and a bounded history of changes that watches replay from.

import type { KubeObject } from '../discovery/k8s-types.ts';
import { objectKey } from '../discovery/k8s-types.ts';

export interface ResourceDef {
  readonly plural: string;
  readonly singular: string;
  readonly kind: string;
  readonly group: string;
  readonly version: string;
  readonly namespaced: boolean;
  readonly shortNames: readonly string[];
  /** Field labels beyond `metadata.name`/`metadata.namespace` that selectors may use (top-level fields). */
  readonly fields?: readonly string[];
}

export const RESOURCES: readonly ResourceDef[] = [
  {
    plural: 'services',
    singular: 'service',
    kind: 'Service',
    group: '',
    version: 'v1',
    namespaced: true,
    shortNames: ['svc'],
  },
  {
    plural: 'pods',
    singular: 'pod',
    kind: 'Pod',
    group: '',
    version: 'v1',
    namespaced: true,
    shortNames: ['po'],
  },
  {
    plural: 'namespaces',
    singular: 'namespace',
    kind: 'Namespace',
    group: '',
    version: 'v1',
    namespaced: false,
    shortNames: ['ns'],
  },
  {
    // Only the edge tier reads Secrets, and only named ones (src/discovery/secrets.ts).
    plural: 'secrets',
    singular: 'secret',
    kind: 'Secret',
    group: '',
    version: 'v1',
    namespaced: true,
    shortNames: [],
    fields: ['type'],
  },
  {
    plural: 'endpointslices',
    singular: 'endpointslice',
    kind: 'EndpointSlice',
    group: 'discovery.k8s.io',
    version: 'v1',
    namespaced: true,
    shortNames: [],
  },
];

export const BY_KIND = new Map(RESOURCES.map((r) => [r.kind, r]));
export const BY_PLURAL = new Map(RESOURCES.map((r) => [r.plural, r]));

export function apiVersionOf(r: ResourceDef): string {
  return r.group ? `${r.group}/${r.version}` : r.version;
}

export interface Change {
  readonly rv: number;
  readonly resource: ResourceDef;
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED';
  /** The new state (for DELETED: the last state, stamped with the deletion RV). */
  readonly obj: KubeObject;
  /** The state before a MODIFIED, so selector-filtered watches can turn it into ADDED/DELETED. */
  readonly prev?: KubeObject;
}

export class StoreError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

/** Infers the resource of an object from `kind`, or from its shape for kind-less test objects. */
export function resourceOf(obj: KubeObject): ResourceDef {
  if (obj.kind) {
    const r = BY_KIND.get(obj.kind);
    if (!r) throw new StoreError(400, 'BadRequest', `fake apiserver does not serve kind ${obj.kind}`);
    return r;
  }
  if ('addressType' in obj || 'endpoints' in obj) return BY_PLURAL.get('endpointslices')!;
  if ('data' in obj || 'stringData' in obj) return BY_PLURAL.get('secrets')!;
  const spec = obj.spec as Record<string, unknown> | undefined;
  if (spec && 'ports' in spec) return BY_PLURAL.get('services')!;
  if (spec && 'containers' in spec) return BY_PLURAL.get('pods')!;
  throw new StoreError(400, 'BadRequest', 'cannot tell the kind of this object; set kind');
}

/**
 * What the real apiserver does on a Secret write: `stringData` is merged into `data` (base64) and
 * never stored; `type` defaults to Opaque.
 */
function normalizeSecret(obj: KubeObject): void {
  const data = { ...((obj.data as Record<string, string> | undefined) ?? {}) };
  for (const [k, v] of Object.entries((obj.stringData as Record<string, string> | undefined) ?? {}))
    data[k] = Buffer.from(v, 'utf8').toString('base64');
  delete obj.stringData;
  obj.data = data;
  obj.type ??= 'Opaque';
}

/** The values of a resource's extra field labels on one object (`{type: 'kubernetes.io/tls'}`). */
export function fieldsOf(r: ResourceDef, obj: KubeObject): Record<string, string> | undefined {
  if (!r.fields) return undefined;
  const out: Record<string, string> = {};
  for (const f of r.fields) out[f] = String(obj[f] ?? '');
  return out;
}

export class Store {
  rv = 1;
  /** Watches may resume from any RV >= this; older ones get 410 Expired. */
  historyStart = 1;
  readonly history: Change[] = [];
  readonly objects = new Map<string, Map<string, KubeObject>>(RESOURCES.map((r) => [r.plural, new Map()]));
  private uidSeq = 0;
  private readonly listeners = new Set<(c: Change) => void>();

  constructor(
    private readonly maxHistory = 100_000,
    private readonly now: () => number = Date.now,
  ) {}

  onChange(fn: (c: Change) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private record(c: Change): void {
    this.history.push(c);
    if (this.history.length > this.maxHistory) {
      const drop = this.history.length - this.maxHistory;
      this.historyStart = this.history[drop - 1].rv;
      this.history.splice(0, drop);
    }
    for (const l of this.listeners) l(c);
  }

  get(resource: ResourceDef, key: string): KubeObject | undefined {
    return this.objects.get(resource.plural)!.get(key);
  }

  /** Creates or updates; returns the stored object. */
  write(input: KubeObject, mode: 'create' | 'update' | 'apply'): KubeObject {
    const resource = resourceOf(input);
    const obj = structuredClone(input);
    delete obj.kind;
    delete obj.apiVersion;
    const meta = obj.metadata;
    if (!meta?.name) throw new StoreError(422, 'Invalid', 'metadata.name: Required value');
    if (resource.namespaced) meta.namespace ??= 'default';
    else delete meta.namespace;
    if (resource.namespaced) this.ensureNamespace(meta.namespace!);
    if (resource.plural === 'secrets') normalizeSecret(obj);
    const key = objectKey(obj);
    const map = this.objects.get(resource.plural)!;
    const prev = map.get(key);
    if (prev && mode === 'create')
      throw new StoreError(409, 'AlreadyExists', `${resource.plural} "${meta.name}" already exists`);
    if (!prev && mode === 'update')
      throw new StoreError(404, 'NotFound', `${resource.plural} "${meta.name}" not found`);
    const rv = ++this.rv;
    meta.resourceVersion = String(rv);
    meta.uid = prev?.metadata.uid ?? meta.uid ?? this.newUid();
    meta.creationTimestamp =
      prev?.metadata.creationTimestamp ??
      meta.creationTimestamp ??
      new Date(Math.floor(this.now() / 1000) * 1000).toISOString().replace('.000Z', 'Z');
    map.set(key, obj);
    this.record({ rv, resource, type: prev ? 'MODIFIED' : 'ADDED', obj, prev });
    return obj;
  }

  delete(resource: ResourceDef, key: string): KubeObject {
    const map = this.objects.get(resource.plural)!;
    const prev = map.get(key);
    if (!prev) throw new StoreError(404, 'NotFound', `${resource.plural} "${key}" not found`);
    map.delete(key);
    const rv = ++this.rv;
    const obj = { ...prev, metadata: { ...prev.metadata, resourceVersion: String(rv) } };
    this.record({ rv, resource, type: 'DELETED', obj });
    return obj;
  }

  private ensureNamespace(ns: string): void {
    const nsRes = BY_PLURAL.get('namespaces')!;
    if (this.objects.get('namespaces')!.has(ns)) return;
    this.write({ kind: nsRes.kind, metadata: { name: ns }, spec: {}, status: { phase: 'Active' } }, 'create');
  }

  private newUid(): string {
    const n = (++this.uidSeq).toString(16).padStart(12, '0');
    return `00000000-0000-4000-8000-${n}`;
  }

  /** Changes with rv > from, in order. The caller checks `from >= historyStart` first. */
  since(from: number): Change[] {
    // Binary search: history is sorted by rv.
    let lo = 0;
    let hi = this.history.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.history[mid].rv <= from) lo = mid + 1;
      else hi = mid;
    }
    return this.history.slice(lo);
  }

  /** Forgets all history: every RV seen so far becomes too old (410). */
  compact(): void {
    this.history.length = 0;
    this.historyStart = this.rv;
  }

  /** The version goes back by `by` (an etcd restore from a backup); history is forgotten. */
  rewind(by: number): void {
    this.rv = Math.max(1, this.rv - by);
    this.compact();
  }

  /** A new history, as after an apiserver/etcd restore: RVs jump and old ones are too old. */
  freshHistory(): void {
    this.rv += 1000;
    this.compact();
  }
}
