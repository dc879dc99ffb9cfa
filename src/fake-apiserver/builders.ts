// Tiny typed builders for test and demo objects. They produce what a real cluster stores: a
// Service labelled `wharf.io/project`, EndpointSlices labelled `kubernetes.io/service-name`, and
// `kubernetes.io/tls` Secrets.

import type {
  Endpoint,
  EndpointConditions,
  EndpointPort,
  EndpointSlice,
  KubeObject,
  Service,
  ServicePort,
} from '../discovery/k8s-types.ts';

export interface ServiceOptions {
  namespace?: string;
  /** Value of the `wharf.io/project` label; `null` leaves the label off. Default: the Service name. */
  project?: string | null;
  /** Port names (number defaults to 80, 81, ...) or full ServicePorts. */
  ports?: readonly (string | ServicePort)[];
  /** Settings without the `wharf.io/` prefix, written as annotations. */
  settings?: Readonly<Record<string, string>>;
  labels?: Readonly<Record<string, string>>;
  annotations?: Readonly<Record<string, string>>;
  creationTimestamp?: string;
}

export function service(name: string, o: ServiceOptions = {}): Service {
  const labels: Record<string, string> = { ...o.labels };
  const project = o.project === undefined ? name : o.project;
  if (project !== null) labels['wharf.io/project'] = project;
  const annotations: Record<string, string> = { ...o.annotations };
  for (const [k, v] of Object.entries(o.settings ?? {})) annotations[`wharf.io/${k}`] = v;
  const ports = (o.ports ?? ['http']).map((p, i) =>
    typeof p === 'string' ? { name: p, port: 80 + i, targetPort: p, protocol: 'TCP' } : p,
  );
  return {
    kind: 'Service',
    apiVersion: 'v1',
    metadata: {
      name,
      namespace: o.namespace ?? 'default',
      labels,
      annotations,
      ...(o.creationTimestamp ? { creationTimestamp: o.creationTimestamp } : {}),
    },
    spec: { type: 'ClusterIP', selector: { app: name }, ports },
  };
}

export interface EndpointSpec {
  /** Pod IP. */
  ip: string;
  /** Pod name (targetRef.name); default `<service>-<n>`. `null` leaves targetRef off. */
  pod?: string | null;
  uid?: string;
  ready?: boolean | null;
  serving?: boolean | null;
  terminating?: boolean | null;
  node?: string;
  zone?: string;
}

export interface SliceOptions {
  namespace?: string;
  /** Slice name; default `<service>-<random5>`. */
  name?: string;
  addressType?: 'IPv4' | 'IPv6' | 'FQDN';
  /** Port name -> number as the slice reports it (the resolved targetPort). */
  ports: Readonly<Record<string, number>>;
  endpoints: readonly (string | EndpointSpec)[];
}

let sliceSeq = 0;

export function endpointSlice(serviceName: string, o: SliceOptions): EndpointSlice {
  const ns = o.namespace ?? 'default';
  const endpoints: Endpoint[] = o.endpoints.map((e, i) => {
    const spec: EndpointSpec = typeof e === 'string' ? { ip: e } : e;
    const conditions: EndpointConditions = {};
    conditions.ready = spec.ready === undefined ? true : spec.ready;
    conditions.serving = spec.serving === undefined ? conditions.ready : spec.serving;
    conditions.terminating = spec.terminating === undefined ? false : spec.terminating;
    const pod = spec.pod === undefined ? `${serviceName}-${i}` : spec.pod;
    const ep: Endpoint = { addresses: [spec.ip], conditions };
    if (pod !== null) ep.targetRef = { kind: 'Pod', namespace: ns, name: pod, uid: spec.uid ?? `uid-${pod}` };
    if (spec.node) ep.nodeName = spec.node;
    if (spec.zone) ep.zone = spec.zone;
    return ep;
  });
  const ports: EndpointPort[] = Object.entries(o.ports).map(([name, port]) => ({
    name,
    port,
    protocol: 'TCP',
  }));
  return {
    kind: 'EndpointSlice',
    apiVersion: 'discovery.k8s.io/v1',
    metadata: {
      name: o.name ?? `${serviceName}-${(sliceSeq++).toString(36).padStart(5, '0')}`,
      namespace: ns,
      labels: {
        'kubernetes.io/service-name': serviceName,
        'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io',
      },
    },
    addressType:
      o.addressType ??
      (o.endpoints.some((e) => (typeof e === 'string' ? e : e.ip).includes(':')) ? 'IPv6' : 'IPv4'),
    endpoints,
    ports,
  };
}

export interface TlsSecretOptions {
  namespace?: string;
  /** PEM certificate chain and key; stored base64-encoded under `tls.crt` / `tls.key`. */
  cert?: string;
  key?: string;
  /** Default `kubernetes.io/tls`. */
  type?: string;
  /** Other keys, already base64 (e.g. `ca.crt`). */
  data?: Readonly<Record<string, string>>;
}

/** A Secret as `kubectl create secret tls` (or cert-manager) writes it. */
export function tlsSecret(name: string, o: TlsSecretOptions = {}): KubeObject {
  const data: Record<string, string> = { ...o.data };
  if (o.cert !== undefined) data['tls.crt'] = Buffer.from(o.cert).toString('base64');
  if (o.key !== undefined) data['tls.key'] = Buffer.from(o.key).toString('base64');
  return {
    kind: 'Secret',
    apiVersion: 'v1',
    metadata: { name, namespace: o.namespace ?? 'default' },
    type: o.type ?? 'kubernetes.io/tls',
    data,
  };
}
