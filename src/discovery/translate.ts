// Kubernetes objects -> ProjectRecords. Pure: no I/O, no clock, never throws on bad input; what it
// cannot use becomes a Problem naming the Service. Setting values stay raw strings: routing parses
// them (src/routing/settings.ts) and reports bad values, so there is one parser for all sources.

import type { Problem } from '../model/problem.ts';
import type { HostPort, InstanceRecord, ProjectRecord } from '../model/snapshot.ts';
import { DNS_LABEL } from '../util/dns.ts';
import { exact, flat } from '../util/strings.ts';
import {
  ANNOTATION_PREFIX,
  type EndpointSlice,
  type KubeObject,
  objectKey,
  PROJECT_LABEL,
  SERVICE_NAME_LABEL,
  type Service,
  trimMeta,
} from './k8s-types.ts';

/** Where a Service names its project, for Problems about the name (a conflict, say). */
const NAME_FIELD = `metadata.labels.${PROJECT_LABEL}`;

export interface ServiceTranslation {
  /** `null` when the Service is not a (usable) project. */
  readonly record: ProjectRecord | null;
  readonly problems: readonly Problem[];
}

interface Acc {
  name: string;
  ip: string;
  uid?: string;
  draining: boolean;
  addresses: Record<string, HostPort>;
  node?: string;
  zone?: string;
}

function instanceName(targetName: string | undefined, ip: string): string {
  if (targetName && DNS_LABEL.test(targetName)) return targetName;
  // Pod names are DNS subdomains and may hold dots; a hostname label may not.
  if (targetName) return targetName.toLowerCase().replace(/[^a-z0-9-]/g, '-');
  return ip.replace(/[.:]/g, '-');
}

/**
 * An InstanceRecord with only the optional fields that are set, built as one literal: an object
 * grown field by field past its literal's size gets a second allocation for the extra fields, and
 * 50,000 instances pay it.
 */
function instanceRecord(
  name: string,
  addresses: Record<string, HostPort>,
  draining: boolean,
  uid: string | undefined,
  node: string | undefined,
  zone: string | undefined,
): InstanceRecord {
  if (!node && !zone) return uid ? { name, addresses, draining, uid } : { name, addresses, draining };
  if (!zone) return uid ? { name, addresses, draining, uid, node } : { name, addresses, draining, node };
  if (!node) return uid ? { name, addresses, draining, uid, zone } : { name, addresses, draining, zone };
  return uid ? { name, addresses, draining, uid, node, zone } : { name, addresses, draining, node, zone };
}

/** A slice port that can be routed: its name and number. */
type PreparedPort = readonly [string, number];

/** One endpoint of a slice that can take traffic (ready, or serving and terminating: draining). */
export interface PreparedEndpoint {
  readonly name: string;
  readonly ip: string;
  readonly uid: string | undefined;
  readonly node: string | undefined;
  readonly zone: string | undefined;
  readonly draining: boolean;
}

/**
 * What translation needs of one EndpointSlice, whatever its Service says: decoded once, kept
 * instead of the slice (one small object per endpoint instead of four).
 */
export interface PreparedSlice {
  readonly name: string;
  readonly addressType: string | undefined;
  readonly ports: readonly PreparedPort[];
  readonly endpoints: readonly PreparedEndpoint[];
}

/** A slice as discovery keeps it: the metadata it reads, and the slice prepared for translation. */
export interface TrimmedSlice extends KubeObject {
  readonly prepared: PreparedSlice;
}

const supported = (addressType: string | undefined) =>
  !addressType || addressType === 'IPv4' || addressType === 'IPv6';

/**
 * Endpoints: `ready` (nil => true) are routable; `!ready && serving && terminating` are draining;
 * the rest are left out (they never matter, whatever the Service).
 */
export function prepareSlice(slice: EndpointSlice): PreparedSlice {
  const prepared = (slice as Partial<TrimmedSlice>).prepared;
  if (prepared) return prepared;
  const ports: PreparedPort[] = [];
  for (const sp of slice.ports ?? []) {
    if (typeof sp?.port === 'number' && sp.port > 0 && sp.port < 65536) ports.push([sp.name ?? '', sp.port]);
  }
  const endpoints: PreparedEndpoint[] = [];
  if (supported(slice.addressType)) {
    for (const ep of slice.endpoints ?? []) {
      const ip = ep?.addresses?.[0];
      if (!ip) continue;
      const c = ep.conditions ?? {};
      const ready = c.ready ?? true;
      const serving = c.serving ?? true;
      const terminating = c.terminating ?? false;
      let draining: boolean;
      if (ready) draining = false;
      else if (serving && terminating) draining = true;
      else continue;
      endpoints.push({
        name: instanceName(ep.targetRef?.name ?? undefined, ip),
        ip,
        uid: ep.targetRef?.uid ?? undefined,
        node: ep.nodeName || undefined,
        zone: ep.zone || undefined,
        draining,
      });
    }
  }
  return {
    name: slice.metadata?.name ?? '',
    addressType: slice.addressType,
    ports: exact(ports),
    endpoints: exact(endpoints),
  };
}

/** What discovery keeps of an EndpointSlice: keys, resourceVersion, its Service, and the slice prepared. */
export function trimSlice(o: KubeObject): TrimmedSlice {
  return { metadata: trimMeta(o.metadata ?? {}, false), prepared: prepareSlice(o as EndpointSlice) };
}

/**
 * One Service and all of its EndpointSlices (any order, duplicates allowed; raw, trimmed or
 * prepared) -> one ProjectRecord. Slice ports are matched to Service ports by name.
 */
export function translateService(
  svc: Service,
  slices: Iterable<EndpointSlice | PreparedSlice>,
): ServiceTranslation {
  const meta = svc.metadata ?? {};
  const origin = flat(`${meta.namespace ?? 'default'}/${meta.name ?? ''}`);
  const object = flat(`service ${origin}`);
  const problems: Problem[] = [];
  const project = meta.labels?.[PROJECT_LABEL];
  if (project === undefined) return { record: null, problems };
  if (!DNS_LABEL.test(project)) {
    problems.push({
      object,
      field: NAME_FIELD,
      severity: 'error',
      code: 'bad-project-name',
      message: `project name "${project}" is not a DNS label (lowercase letters, digits and '-', at most 63); the Service is ignored`,
    });
    return { record: null, problems };
  }

  const ports: string[] = [];
  let appProtocols: Record<string, string> | undefined;
  (svc.spec?.ports ?? []).forEach((p, i) => {
    if (p?.name && typeof p.appProtocol === 'string' && p.appProtocol) {
      appProtocols ??= Object.create(null) as Record<string, string>;
      appProtocols[p.name] = p.appProtocol;
    }
    if (!p?.name) {
      problems.push({
        object,
        field: `spec.ports[${i}]`,
        severity: 'warning',
        code: 'unnamed-port',
        message: `port ${p?.port ?? '?'} has no name; Wharf routes by port name, so it is not routed`,
      });
    } else if (!ports.includes(p.name)) ports.push(p.name);
  });
  if (ports.length === 0 && problems.length === 0) {
    problems.push({
      object,
      field: 'spec.ports',
      severity: 'warning',
      code: 'no-ports',
      message: 'the Service has no ports, so nothing can be routed',
    });
  }

  const settings: Record<string, string> = {};
  for (const [k, v] of Object.entries(meta.annotations ?? {})) {
    if (!k.startsWith(ANNOTATION_PREFIX)) continue;
    const key = k.slice(ANNOTATION_PREFIX.length);
    if (key === 'project') continue;
    settings[key] = String(v);
  }

  const byName = new Map<string, Acc>();
  const prepared: PreparedSlice[] = [];
  for (const s of slices) prepared.push(isPrepared(s) ? s : prepareSlice(s));
  prepared.sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const slice of prepared) {
    if (!supported(slice.addressType)) {
      problems.push({
        object,
        field: `endpointslice ${slice.name}`,
        severity: 'warning',
        code: 'unsupported-address-type',
        message: `addressType ${slice.addressType} is not routed (only IPv4 and IPv6)`,
      });
      continue;
    }
    const portNumbers: PreparedPort[] = [];
    for (const sp of slice.ports) if (ports.includes(sp[0])) portNumbers.push(sp);
    if (portNumbers.length === 0) continue;
    for (const ep of slice.endpoints) {
      const { name, ip, draining } = ep;
      const prev = byName.get(name);
      if (prev && prev.ip !== ip) {
        // The same pod name at two addresses (a StatefulSet pod recreated while the old one drains):
        // keep the routable one; between equals the first slice in name order wins.
        if (!prev.draining || draining) continue;
        byName.delete(name);
      }
      const acc = byName.get(name);
      const addresses: Record<string, HostPort> = {};
      for (const [port, number] of portNumbers) addresses[port] = { host: ip, port: number };
      if (acc) {
        // The same endpoint in two slices (churn between slices): merge ports; routable wins.
        Object.assign(acc.addresses, addresses);
        acc.draining &&= draining;
      } else {
        byName.set(name, { name, ip, uid: ep.uid, draining, addresses, node: ep.node, zone: ep.zone });
      }
    }
  }

  const instances: InstanceRecord[] = [...byName.values()]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((a) => {
      const addresses: Record<string, HostPort> = {};
      for (const p of ports) if (a.addresses[p]) addresses[p] = a.addresses[p];
      return instanceRecord(a.name, addresses, a.draining, a.uid, a.node, a.zone);
    });

  return {
    record: {
      name: project,
      origin,
      object,
      settingPrefix: ANNOTATION_PREFIX,
      nameField: NAME_FIELD,
      created: meta.creationTimestamp ?? '',
      ports: exact(ports),
      ...(appProtocols ? { appProtocols } : {}),
      settings,
      instances,
    },
    problems,
  };
}

function isPrepared(s: EndpointSlice | PreparedSlice): s is PreparedSlice {
  return typeof (s as PreparedSlice).name === 'string' && !('metadata' in s);
}

/**
 * A whole set of objects (Services and EndpointSlices, any other kind ignored) -> one record per
 * project Service, plus problems. Two Services claiming one name both appear: the control plane's
 * aggregator is where such conflicts are resolved, across every source.
 */
export function translateAll(objects: readonly KubeObject[]): {
  projects: ProjectRecord[];
  problems: Problem[];
} {
  const slices = new Map<string, EndpointSlice[]>();
  for (const o of objects) {
    if (o?.kind !== 'EndpointSlice') continue;
    const svc = o.metadata?.labels?.[SERVICE_NAME_LABEL];
    if (!svc) continue;
    const key = `${o.metadata.namespace ?? 'default'}/${svc}`;
    const list = slices.get(key);
    if (list) list.push(o as EndpointSlice);
    else slices.set(key, [o as EndpointSlice]);
  }
  const records: ProjectRecord[] = [];
  const problems: Problem[] = [];
  for (const o of objects) {
    if (o?.kind !== 'Service') continue;
    const key = objectKey({ metadata: { ...o.metadata, namespace: o.metadata.namespace ?? 'default' } });
    const t = translateService(o as Service, slices.get(key) ?? []);
    problems.push(...t.problems);
    if (t.record) records.push(t.record);
  }
  return { projects: records, problems };
}
