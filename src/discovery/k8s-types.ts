// The few Kubernetes object shapes discovery reads, as they arrive in JSON (kubernetes/api
// core/v1 and discovery/v1). Only the fields Wharf uses; everything is optional or nullable because
// the wire allows it (`endpoints: null`, `ports: null`, missing conditions).

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

/** `<namespace>/<name>`, or `<name>` for cluster-scoped objects. */
export function objectKey(o: { metadata: ObjectMeta }): string {
  const ns = o.metadata.namespace;
  return ns ? `${ns}/${o.metadata.name ?? ''}` : (o.metadata.name ?? '');
}

function trimMeta(m: ObjectMeta, annotations: boolean): ObjectMeta {
  const out: ObjectMeta = { name: m.name, namespace: m.namespace, resourceVersion: m.resourceVersion };
  if (m.uid) out.uid = m.uid;
  if (m.creationTimestamp) out.creationTimestamp = m.creationTimestamp;
  if (m.labels) {
    const l: Record<string, string> = {};
    if (m.labels[PROJECT_LABEL] !== undefined) l[PROJECT_LABEL] = m.labels[PROJECT_LABEL];
    if (m.labels[SERVICE_NAME_LABEL] !== undefined) l[SERVICE_NAME_LABEL] = m.labels[SERVICE_NAME_LABEL];
    out.labels = l;
  }
  if (annotations && m.annotations) {
    const a: Record<string, string> = {};
    for (const [k, v] of Object.entries(m.annotations)) if (k.startsWith(ANNOTATION_PREFIX)) a[k] = v;
    out.annotations = a;
  }
  return out;
}

/** What discovery keeps of a Service: real objects carry managedFields and last-applied copies. */
export function trimService(o: KubeObject): KubeObject {
  const s = o as Service;
  return { metadata: trimMeta(s.metadata ?? {}, true), spec: { ports: s.spec?.ports ?? null } };
}

/** What discovery keeps of an EndpointSlice. */
export function trimSlice(o: KubeObject): KubeObject {
  const s = o as EndpointSlice;
  const out: EndpointSlice = {
    metadata: trimMeta(s.metadata ?? {}, false),
    endpoints: s.endpoints ?? null,
    ports: s.ports ?? null,
  };
  if (s.addressType) out.addressType = s.addressType;
  return out;
}
