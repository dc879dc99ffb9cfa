// The few Kubernetes object shapes discovery reads, as they arrive in JSON (kubernetes/api
// core/v1 and discovery/v1). Only the fields Wharf uses; everything is optional or nullable because
// the wire allows it (`endpoints: null`, `ports: null`, missing conditions).

import { flat } from '../util/strings.ts';

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

/** The metadata discovery reads: keys, the resourceVersion, the two labels, `wharf.io/` annotations. */
export function trimMeta(m: ObjectMeta, service: boolean): ObjectMeta {
  let labels: Record<string, string> | undefined;
  if (m.labels) {
    labels = {};
    if (m.labels[PROJECT_LABEL] !== undefined) labels[PROJECT_LABEL] = m.labels[PROJECT_LABEL];
    if (m.labels[SERVICE_NAME_LABEL] !== undefined) labels[SERVICE_NAME_LABEL] = m.labels[SERVICE_NAME_LABEL];
  }
  let kept: Record<string, string> | undefined;
  if (service && m.annotations) {
    kept = {};
    for (const [k, v] of Object.entries(m.annotations)) if (k.startsWith(ANNOTATION_PREFIX)) kept[k] = v;
  }
  // One literal with every field (unset ones undefined): an object grown field by field past its
  // literal's size gets a second allocation for the extra fields.
  return {
    name: m.name,
    namespace: m.namespace,
    resourceVersion: m.resourceVersion,
    // The creation time decides name conflicts between Services; a slice's is never read.
    creationTimestamp: (service && m.creationTimestamp) || undefined,
    labels,
    annotations: kept,
  };
}

/** What discovery keeps of a Service: real objects carry managedFields and last-applied copies. */
export function trimService(o: KubeObject): KubeObject {
  const s = o as Service;
  return { metadata: trimMeta(s.metadata ?? {}, true), spec: { ports: s.spec?.ports ?? null } };
}
