// The few Kubernetes object shapes discovery reads, as they arrive in JSON (kubernetes/api
// core/v1 and discovery/v1). Only the fields Wharf uses; everything is optional or nullable because
// the wire allows it (`endpoints: null`, `ports: null`, missing conditions).

import { bareRecord } from '../util/records.ts';
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
  // Whatever the JSON holds: only strings are kept, so nothing downstream meets a number or an
  // object where Kubernetes promises a string. Maps keyed by user data have no prototype.
  const rawLabels = isRecord(m.labels) ? m.labels : undefined;
  let labels: Record<string, string> | undefined;
  if (rawLabels) {
    labels = bareRecord<string>();
    const project = rawLabels[PROJECT_LABEL];
    const owner = rawLabels[SERVICE_NAME_LABEL];
    if (typeof project === 'string') labels[PROJECT_LABEL] = project;
    if (typeof owner === 'string') labels[SERVICE_NAME_LABEL] = owner;
  }
  let kept: Record<string, string> | undefined;
  if (service && isRecord(m.annotations)) {
    kept = bareRecord<string>();
    for (const [k, v] of Object.entries(m.annotations))
      if (k.startsWith(ANNOTATION_PREFIX) && typeof v === 'string') kept[k] = v;
  }
  // One literal with every field (unset ones undefined): an object grown field by field past its
  // literal's size gets a second allocation for the extra fields.
  return {
    name: str(m.name),
    namespace: str(m.namespace),
    resourceVersion: str(m.resourceVersion),
    // The creation time decides name conflicts between Services; a slice's is never read.
    creationTimestamp: (service && str(m.creationTimestamp)) || undefined,
    labels,
    annotations: kept,
  };
}

/** What discovery keeps of a Service: real objects carry managedFields and last-applied copies. */
export function trimService(o: KubeObject): KubeObject {
  const s = o as Service;
  const spec = isRecord(s.spec) ? s.spec : undefined;
  return {
    metadata: trimMeta(isRecord(s.metadata) ? s.metadata : {}, true),
    spec: { ports: spec?.ports ?? null },
  };
}

/** A JSON object (not null, not an array). */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}
