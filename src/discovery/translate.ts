// Kubernetes objects -> ProjectRecords. Pure: no I/O, no clock, never throws on bad input; what it
// cannot use becomes a Problem naming the Service. Setting values stay raw strings: routing parses
// them (src/routing/settings.ts) and reports bad values, so there is one parser for all sources.
//
// Objects arrive as whatever JSON the apiserver sent: every field is checked for its type before it
// is read, and maps keyed by user data (settings, addresses) have no Object.prototype behind them.

import { isIP } from 'node:net';
import type { Problem } from '../model/problem.ts';
import type { HostPort, InstanceRecord, ProjectRecord } from '../model/snapshot.ts';
import { DNS_LABEL } from '../util/dns.ts';
import { bareRecord } from '../util/records.ts';
import { clip, exact, flat } from '../util/strings.ts';
import {
  ANNOTATION_PREFIX,
  type EndpointSlice,
  isRecord,
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
  if (targetName) return flat(targetName.toLowerCase().replace(/[^a-z0-9-]/g, '-'));
  return flat(ip.replace(/[.:]/g, '-'));
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
  /** What of the slice could not be used (bad ports, bad endpoints), for a Problem on its Service. */
  readonly issues: readonly string[];
}

/** A slice as discovery keeps it: the metadata it reads, and the slice prepared for translation. */
export interface TrimmedSlice extends KubeObject {
  readonly prepared: PreparedSlice;
}

const supported = (addressType: string | undefined) =>
  !addressType || addressType === 'IPv4' || addressType === 'IPv6';

const NO_ISSUES: readonly string[] = Object.freeze([]);
/** Issues kept per slice; the rest are counted. */
const MAX_ISSUES = 5;

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const list = (v: unknown): readonly unknown[] => (Array.isArray(v) ? v : []);

/**
 * Endpoints: `ready` (nil => true) are routable; `!ready && serving && terminating` are draining;
 * the rest are left out (they never matter, whatever the Service). Ports without a usable number
 * or name, and endpoints without a usable address, are left out and listed as issues.
 */
export function prepareSlice(slice: EndpointSlice): PreparedSlice {
  const prepared = (slice as Partial<TrimmedSlice>).prepared;
  if (prepared) return prepared;
  const issues: string[] = [];
  let more = 0;
  const issue = (m: string) => {
    if (issues.length < MAX_ISSUES) issues.push(m);
    else more++;
  };
  const ports: PreparedPort[] = [];
  if (slice.ports != null && !Array.isArray(slice.ports)) issue('ports is not a list');
  const rawPorts = list(slice.ports);
  for (let i = 0; i < rawPorts.length; i++) {
    const sp = rawPorts[i];
    if (!isRecord(sp)) {
      issue(`ports[${i}] is not an object`);
      continue;
    }
    const name = sp.name ?? '';
    const port = sp.port;
    if (typeof name !== 'string') issue(`ports[${i}].name is not a string`);
    else if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535)
      issue(
        `ports[${i}] (${clip(name || 'unnamed', 63)}): port ${clip(String(port ?? 'missing'), 20)} is not a port number from 1 to 65535`,
      );
    else if (ports.some((p) => p[0] === name))
      issue(`ports[${i}]: port name "${clip(name, 63)}" appears twice; keeping the first`);
    else ports.push([name, port]);
  }
  const addressType = str(slice.addressType);
  const endpoints: PreparedEndpoint[] = [];
  if (slice.endpoints != null && !Array.isArray(slice.endpoints)) issue('endpoints is not a list');
  if (supported(addressType)) {
    const family = addressType === 'IPv6' ? 6 : addressType === 'IPv4' ? 4 : 0;
    const rawEndpoints = list(slice.endpoints);
    for (let i = 0; i < rawEndpoints.length; i++) {
      const ep = rawEndpoints[i];
      if (!isRecord(ep)) {
        issue(`endpoints[${i}] is not an object`);
        continue;
      }
      const ip = list(ep.addresses)[0];
      if (ip === undefined) continue;
      const ipFamily = typeof ip === 'string' ? isIP(ip) : 0;
      if (ipFamily === 0 || (family !== 0 && ipFamily !== family)) {
        issue(
          `endpoints[${i}]: address ${clip(JSON.stringify(ip) ?? String(ip), 60)} is not an ${addressType ?? 'IP'} address`,
        );
        continue;
      }
      const c = isRecord(ep.conditions) ? ep.conditions : {};
      const ready = c.ready ?? true;
      const serving = c.serving ?? true;
      const terminating = c.terminating ?? false;
      let draining: boolean;
      if (ready === true) draining = false;
      else if (serving === true && terminating === true) draining = true;
      else continue;
      const ref = isRecord(ep.targetRef) ? ep.targetRef : undefined;
      if (ref && ref.name != null && typeof ref.name !== 'string')
        issue(`endpoints[${i}].targetRef.name is not a string; named after its address`);
      endpoints.push({
        name: instanceName(str(ref?.name), ip as string),
        ip: ip as string,
        uid: str(ref?.uid),
        node: str(ep.nodeName) || undefined,
        zone: str(ep.zone) || undefined,
        draining,
      });
    }
  }
  if (more > 0) issues.push(`and ${more} more`);
  return {
    name: str(isRecord(slice.metadata) ? slice.metadata.name : undefined) ?? '',
    addressType,
    ports: exact(ports),
    endpoints: exact(endpoints),
    issues: issues.length ? issues : NO_ISSUES,
  };
}

/** What discovery keeps of an EndpointSlice: keys, resourceVersion, its Service, and the slice prepared. */
export function trimSlice(o: KubeObject): TrimmedSlice {
  return {
    metadata: trimMeta(isRecord(o.metadata) ? o.metadata : {}, false),
    prepared: prepareSlice(o as EndpointSlice),
  };
}

/**
 * One Service and all of its EndpointSlices (any order, duplicates allowed; raw, trimmed or
 * prepared) -> one ProjectRecord. Slice ports are matched to Service ports by name. Never throws:
 * should a case slip past the checks, the Service is reported and left out, and nothing else is.
 */
export function translateService(
  svc: Service,
  slices: Iterable<EndpointSlice | PreparedSlice>,
): ServiceTranslation {
  try {
    return translate(svc, slices);
  } catch (err) {
    const meta = isRecord(svc?.metadata) ? svc.metadata : {};
    return {
      record: null,
      problems: [
        {
          object: `service ${clip(`${str(meta.namespace) ?? 'default'}/${str(meta.name) ?? ''}`)}`,
          severity: 'error',
          code: 'invalid-object',
          message: `the Service or one of its EndpointSlices cannot be read (${clip(String((err as Error)?.message ?? err))}); it is ignored`,
        },
      ],
    };
  }
}

function translate(svc: Service, slices: Iterable<EndpointSlice | PreparedSlice>): ServiceTranslation {
  const meta = isRecord(svc.metadata) ? svc.metadata : {};
  const origin = flat(`${str(meta.namespace) ?? 'default'}/${str(meta.name) ?? ''}`);
  const object = flat(`service ${origin}`);
  const problems: Problem[] = [];
  const labels = isRecord(meta.labels) ? meta.labels : {};
  // A label value that is not a string is no label (what trimMeta keeps agrees).
  const project = Object.hasOwn(labels, PROJECT_LABEL) ? labels[PROJECT_LABEL] : undefined;
  if (typeof project !== 'string') return { record: null, problems };
  if (!DNS_LABEL.test(project)) {
    problems.push({
      object,
      field: NAME_FIELD,
      severity: 'error',
      code: 'bad-project-name',
      message: `project name "${clip(project)}" is not a DNS label (lowercase letters, digits and '-', at most 63); the Service is ignored`,
    });
    return { record: null, problems };
  }

  const ports: string[] = [];
  const spec = isRecord(svc.spec) ? svc.spec : {};
  if (spec.ports != null && !Array.isArray(spec.ports)) {
    problems.push({
      object,
      field: 'spec.ports',
      severity: 'error',
      code: 'bad-ports',
      message: `spec.ports is not a list (${clip(JSON.stringify(spec.ports) ?? '')}); nothing can be routed`,
    });
  }
  let appProtocols: Record<string, string> | undefined;
  list(spec.ports).forEach((p, i) => {
    const field = `spec.ports[${i}]`;
    const name = isRecord(p) ? p.name : undefined;
    if (name === undefined || name === null || name === '') {
      problems.push({
        object,
        field,
        severity: 'warning',
        code: 'unnamed-port',
        message: `port ${isRecord(p) ? clip(String(p.port ?? '?'), 20) : '?'} has no name; Wharf routes by port name, so it is not routed`,
      });
    } else if (typeof name !== 'string' || !DNS_LABEL.test(name)) {
      problems.push({
        object,
        field: `${field}.name`,
        severity: 'warning',
        code: 'bad-port-name',
        message: `port name "${clip(String(name), 63)}" is not a DNS label (lowercase letters, digits and '-', at most 63); it is not routed`,
      });
    } else if (ports.includes(name)) {
      problems.push({
        object,
        field: `${field}.name`,
        severity: 'warning',
        code: 'duplicate-port-name',
        message: `port name "${name}" appears twice; the first is routed`,
      });
    } else {
      ports.push(name);
      const app = (p as { appProtocol?: unknown }).appProtocol;
      if (typeof app === 'string' && app) {
        appProtocols ??= bareRecord<string>();
        appProtocols[name] = clip(app, 63);
      }
    }
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

  const settings = bareRecord<string>();
  let anySetting = false;
  if (isRecord(meta.annotations)) {
    for (const [k, v] of Object.entries(meta.annotations)) {
      if (!k.startsWith(ANNOTATION_PREFIX) || typeof v !== 'string') continue;
      const key = k.slice(ANNOTATION_PREFIX.length);
      if (key === 'project') continue;
      settings[key] = v;
      anySetting = true;
    }
  }

  const byName = new Map<string, Acc>();
  const prepared: PreparedSlice[] = [];
  for (const s of slices) prepared.push(isPrepared(s) ? s : prepareSlice(s));
  prepared.sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const slice of prepared) {
    if (!supported(slice.addressType)) {
      problems.push({
        object,
        field: `endpointslice ${clip(slice.name, 253)}`,
        severity: 'warning',
        code: 'unsupported-address-type',
        message: `addressType ${clip(String(slice.addressType))} is not routed (only IPv4 and IPv6)`,
      });
      continue;
    }
    if (slice.issues.length > 0) {
      problems.push({
        object,
        field: `endpointslice ${clip(slice.name, 253)}`,
        severity: 'warning',
        code: 'bad-endpointslice',
        message: `not routed: ${slice.issues.join('; ')}`,
      });
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
      const addresses = bareRecord<HostPort>();
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
      const addresses = bareRecord<HostPort>();
      for (const p of ports) if (Object.hasOwn(a.addresses, p)) addresses[p] = a.addresses[p];
      return instanceRecord(a.name, addresses, a.draining, a.uid, a.node, a.zone);
    });

  return {
    record: {
      name: project,
      origin,
      object,
      settingPrefix: ANNOTATION_PREFIX,
      nameField: NAME_FIELD,
      created: str(meta.creationTimestamp) ?? '',
      ports: exact(ports),
      ...(appProtocols ? { appProtocols } : {}),
      settings: anySetting ? settings : NO_SETTINGS,
      instances,
    },
    problems,
  };
}

/** Shared by every Service without settings (most of them). */
const NO_SETTINGS: Readonly<Record<string, string>> = Object.freeze(bareRecord<string>());

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
    if (!svc || typeof svc !== 'string') continue;
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
