// The few Kubernetes object shapes discovery reads, as they arrive in JSON (kubernetes/api
// core/v1 and discovery/v1). Only the fields Wharf uses; everything is optional or nullable because
// the wire allows it (`endpoints: null`, `ports: null`, missing conditions).

import { exact, flat } from '../util/strings.ts';

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  generation?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [k: string]: unknown;
}

export interface KubeObject {
  kind?: string;
  apiVersion?: string;
  metadata: ObjectMeta;
  [k: string]: unknown;
}

export interface ServicePort {
  name?: string;
  port?: number;
  targetPort?: number | string;
  protocol?: string;
  appProtocol?: string;
  nodePort?: number;
}

export interface Service extends KubeObject {
  spec?: {
    ports?: ServicePort[] | null;
    selector?: Record<string, string> | null;
    type?: string;
    clusterIP?: string;
    [k: string]: unknown;
  };
}

export interface EndpointConditions {
  ready?: boolean | null;
  serving?: boolean | null;
  terminating?: boolean | null;
}

export interface ObjectReference {
  kind?: string;
  namespace?: string;
  name?: string;
  uid?: string;
}

export interface Endpoint {
  addresses?: string[] | null;
  conditions?: EndpointConditions | null;
  hostname?: string;
  targetRef?: ObjectReference | null;
  nodeName?: string | null;
  zone?: string | null;
  [k: string]: unknown;
}

export interface EndpointPort {
  name?: string | null;
  port?: number | null;
  protocol?: string | null;
  appProtocol?: string | null;
}

export interface EndpointSlice extends KubeObject {
  addressType?: string;
  endpoints?: Endpoint[] | null;
  ports?: EndpointPort[] | null;
}

export interface Status {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, unknown>;
  status: 'Failure' | 'Success';
  message?: string;
  reason?: string;
  code?: number;
  details?: Record<string, unknown>;
}

export interface WatchEvent<T extends KubeObject = KubeObject> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

export const PROJECT_LABEL = 'wharf.io/project';
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
export const ANNOTATION_PREFIX = 'wharf.io/';

/** `<namespace>/<name>`, or `<name>` for cluster-scoped objects. Flat: caches keep it as a key. */
export function objectKey(o: { metadata: ObjectMeta }): string {
  const ns = o.metadata.namespace;
  return ns ? flat(`${ns}/${o.metadata.name ?? ''}`) : (o.metadata.name ?? '');
}

function trimMeta(m: ObjectMeta, annotations: boolean): ObjectMeta {
  let labels: Record<string, string> | undefined;
  if (m.labels) {
    labels = {};
    if (m.labels[PROJECT_LABEL] !== undefined) labels[PROJECT_LABEL] = m.labels[PROJECT_LABEL];
    if (m.labels[SERVICE_NAME_LABEL] !== undefined) labels[SERVICE_NAME_LABEL] = m.labels[SERVICE_NAME_LABEL];
  }
  let kept: Record<string, string> | undefined;
  if (annotations && m.annotations) {
    kept = {};
    for (const [k, v] of Object.entries(m.annotations)) if (k.startsWith(ANNOTATION_PREFIX)) kept[k] = v;
  }
  // One literal with every field (unset ones undefined): see trimSlice.
  return {
    name: m.name,
    namespace: m.namespace,
    resourceVersion: m.resourceVersion,
    uid: m.uid || undefined,
    creationTimestamp: m.creationTimestamp || undefined,
    labels,
    annotations: kept,
  };
}

/** What discovery keeps of a Service: real objects carry managedFields and last-applied copies. */
export function trimService(o: KubeObject): KubeObject {
  const s = o as Service;
  return { metadata: trimMeta(s.metadata ?? {}, true), spec: { ports: s.spec?.ports ?? null } };
}

// The combinations of endpoint conditions, one shared object each (50,000 endpoints, a handful of
// distinct values). null and absent mean the same to translation (the defaults apply).
const conditionSets = new Map<string, EndpointConditions>();

function sharedConditions(c: EndpointConditions | null | undefined): EndpointConditions {
  const r = c?.ready ?? undefined;
  const sv = c?.serving ?? undefined;
  const t = c?.terminating ?? undefined;
  const key = `${r}/${sv}/${t}`;
  let shared = conditionSets.get(key);
  if (!shared) {
    const o: EndpointConditions = {};
    if (r !== undefined) o.ready = r;
    if (sv !== undefined) o.serving = sv;
    if (t !== undefined) o.terminating = t;
    shared = Object.freeze(o);
    conditionSets.set(key, shared);
  }
  return shared;
}

/**
 * What discovery keeps of an EndpointSlice: per endpoint only what translation reads (the first
 * address, conditions, the Pod's name and UID, node and zone), the port names and numbers.
 */
export function trimSlice(o: KubeObject): KubeObject {
  const s = o as EndpointSlice;
  let endpoints: Endpoint[] | null = null;
  if (Array.isArray(s.endpoints)) {
    endpoints = [];
    for (const ep of s.endpoints) {
      if (!ep) continue;
      const a = ep.addresses;
      const ref = ep.targetRef;
      // One literal with every field: objects grown field by field get a second allocation.
      endpoints.push({
        addresses: Array.isArray(a) ? (a.length <= 1 ? a : [a[0]]) : [],
        conditions: sharedConditions(ep.conditions),
        targetRef: ref ? { name: ref.name, uid: ref.uid } : undefined,
        nodeName: ep.nodeName || undefined,
        zone: ep.zone || undefined,
      });
    }
  }
  let ports: EndpointPort[] | null = null;
  if (Array.isArray(s.ports)) {
    ports = [];
    for (const p of s.ports) if (p) ports.push({ name: p.name ?? null, port: p.port ?? null });
  }
  const out: EndpointSlice = {
    metadata: trimMeta(s.metadata ?? {}, false),
    endpoints: endpoints && exact(endpoints),
    ports: ports && exact(ports),
  };
  if (s.addressType) out.addressType = s.addressType;
  return out;
}
