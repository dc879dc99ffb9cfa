// Reads and validates the config file into a frozen Config. Every error names the field path and the
// reason; a file with any error yields no Config at all, so nothing starts half-configured.

import { readFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { parseDocument } from 'yaml';
import type { ProjectSettings } from '../model/settings.ts';
import type { HostPort, InstanceRecord, ProjectRecord } from '../model/snapshot.ts';
import { DNS_LABEL, type Tier } from '../routing/build.ts';
import { DEFAULT_SETTINGS, DURATION_BOUNDS, parseDuration, parseSettings } from '../routing/settings.ts';
import { parseCidr } from '../util/cidr.ts';
import { bareRecord } from '../util/records.ts';
import { closest } from '../util/suggest.ts';
import { describeIssue, expectedAt, showValue, withSettingExample } from './messages.ts';
import { type ConfigFile, configSchema, keysAt } from './schema.ts';

export interface Config {
  readonly listen: HostPort;
  readonly admin: HostPort;
  readonly adminToken?: string;
  /** Host names the admin port answers to besides its own address and `localhost`. */
  readonly adminHosts: readonly string[];
  readonly domain: string;
  readonly tier: Tier;
  /** Send `x-wharf-instance` on responses (default: on for internal, off for edge). */
  readonly instanceHeader: boolean;
  readonly defaults: ProjectSettings;
  readonly timeouts: {
    readonly connectMs: number;
    readonly requestHeadersMs: number;
    readonly clientIdleMs: number;
    readonly upstreamIdleMs: number;
    readonly bodyIdleMs: number;
    readonly queueMs: number;
    readonly drainMs: number;
  };
  readonly limits: {
    readonly maxHeaderBytes: number;
    readonly maxHeaders: number;
    readonly maxBodyBytes: number;
    readonly bodyBufferBytes: number;
    readonly clientConnections: number;
    readonly clientRate: number;
  };
  /** CIDRs whose x-forwarded-* and x-wharf-* headers the edge believes; never held to per-client caps. */
  readonly trustedProxies: readonly string[];
  /** Read a PROXY protocol header from `trustedProxies` on the proxy listeners. */
  readonly proxyProtocol: boolean;
  readonly tls?: TlsConfig;
  /** Edge tier: the project whose instances are the internal tier (Host is preserved). */
  readonly forwardTo?: string;
  readonly logs: {
    readonly dir?: string;
    readonly access: boolean;
    readonly health: boolean;
    readonly probeFailures: boolean;
    readonly bufferBytes?: number;
    readonly level: 'debug' | 'info' | 'warn' | 'error';
  };
  readonly health: {
    /** Active probes in flight at once, across every project. */
    readonly concurrency: number;
    /** Probe period of idle instances (traffic-aware probing, health/loop.ts). */
    readonly idleIntervalMs: number;
  };
  readonly upstream: {
    readonly connections: number;
    readonly retryBudget: number;
    readonly retryBudgetMin: number;
    readonly uploadsPerClient: number;
  };
  /** Static projects, in the shape discovery produces. */
  readonly projects: readonly ProjectRecord[];
  /** Kubernetes discovery (the `kubernetes:` section and the CLI flags); absent = static only. */
  readonly kubernetes?: KubernetesConfig;
}

export interface KubernetesConfig {
  readonly inCluster: boolean;
  readonly kubeconfig?: string;
  readonly contexts?: readonly string[];
  readonly apiservers?: readonly string[];
  readonly tokenFile?: string;
  readonly caFile?: string;
  readonly insecureSkipTlsVerify: boolean;
  /** Empty = all namespaces. */
  readonly namespaces: readonly string[];
  /** Endpoints on loopback addresses are routed (local setups only: the demo, tests). */
  readonly allowLoopback: boolean;
  /** A watch without an event for this long is restarted (`watchdog`, default 90 s). */
  readonly watchdogMs: number;
}

export interface TlsConfig {
  readonly certificates: readonly {
    readonly cert: string;
    readonly key: string;
    readonly hosts?: readonly string[];
  }[];
  /** `kubernetes.io/tls` Secrets (edge tier with Kubernetes discovery only), namespace resolved. */
  readonly secrets: readonly TlsSecretConfig[];
  readonly minVersion: 'TLSv1.2' | 'TLSv1.3';
  readonly redirectHttp?: HostPort;
}

export interface TlsSecretConfig {
  readonly namespace: string;
  readonly name: string;
  /** Host patterns; default: the certificate's own DNS names. */
  readonly hosts?: readonly string[];
}

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly issues: readonly string[],
  ) {
    super(`${file}: invalid configuration:\n${issues.map((i) => `  - ${i}`).join('\n')}`);
  }
}

export interface Overrides {
  listen?: string;
  admin?: string;
  domain?: string;
  /** CLI flags for Kubernetes discovery; any of them enables it. */
  kubeconfig?: string;
  context?: string;
  inCluster?: boolean;
  /** `--apiserver URL[,URL...]`. */
  apiservers?: string;
  tokenFile?: string;
  caFile?: string;
}

/** The `kubernetes:` section merged with the CLI flags (flags win); undefined when neither is set. */
function resolveKubernetes(
  file: ConfigFile,
  over: Overrides,
  issues: string[],
): KubernetesConfig | undefined {
  const k = file.kubernetes;
  const flagged =
    over.kubeconfig !== undefined ||
    over.context !== undefined ||
    over.inCluster !== undefined ||
    over.apiservers !== undefined ||
    over.tokenFile !== undefined ||
    over.caFile !== undefined;
  if (!k && !flagged) return undefined;
  const split = (v: string) =>
    v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  let apiservers = k?.apiservers;
  if (over.apiservers !== undefined) {
    apiservers = split(over.apiservers);
    for (const u of apiservers)
      if (!/^https?:\/\/[^\s/]+\/?$/.test(u))
        issues.push(`--apiserver: "${u}": expected http(s)://host:port such as https://10.0.0.11:6443`);
  }
  const ctx = over.context ?? k?.context;
  const contexts = ctx === undefined ? undefined : typeof ctx === 'string' ? split(ctx) : ctx;
  const kc: KubernetesConfig = {
    inCluster: over.inCluster ?? k?.['in-cluster'] ?? false,
    kubeconfig: over.kubeconfig ?? k?.kubeconfig,
    contexts,
    apiservers,
    tokenFile: over.tokenFile ?? k?.['token-file'],
    caFile: over.caFile ?? k?.['ca-file'],
    insecureSkipTlsVerify: k?.['insecure-skip-tls-verify'] ?? false,
    namespaces: k?.namespaces ?? [],
    allowLoopback: k?.['allow-loopback'] ?? false,
    watchdogMs: 90_000,
  };
  const watchdog = k?.watchdog;
  if (watchdog !== undefined) {
    try {
      (kc as { watchdogMs: number }).watchdogMs = parseDuration(watchdog, DURATION_BOUNDS.watchdog);
    } catch (err) {
      issues.push(`kubernetes.watchdog: "${watchdog}": ${(err as Error).message}`);
    }
  }
  const where = flagged ? 'kubernetes (flags)' : 'kubernetes';
  if (kc.inCluster && kc.kubeconfig) issues.push(`${where}: in-cluster and kubeconfig exclude each other`);
  if (!kc.inCluster && !kc.kubeconfig && !kc.contexts && !kc.apiservers?.length)
    issues.push(`${where}: set in-cluster, kubeconfig (optionally with context) or apiservers`);
  return Object.freeze(kc);
}

/** A host name (RFC 1123), e.g. `localhost` or `wharf-internal.wharf-system.svc`. */
const HOSTNAME =
  /^(?=.{1,253}\.?$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i;

/**
 * `host:port`, `[v6]:port` or `:port` (all interfaces). The host is an IP address or a host name:
 * `300.1.1.1` is refused here rather than when the listener fails to bind.
 */
export function parseHostPort(value: string): HostPort {
  const m = /^(?:\[([^\]]*)\]|([^:[\]]*)):(\d{1,5})$/.exec(value.trim());
  if (!m) throw new Error('expected host:port such as 127.0.0.1:8080');
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`port ${port} is out of range: expected a port from 0 to 65535`);
  if (m[1] !== undefined) {
    if (!isIPv6(m[1])) throw new Error(`[${m[1]}] is not an IPv6 address: expected e.g. [::1]:${port}`);
    return { host: m[1], port };
  }
  const host = m[2] || '0.0.0.0';
  if (/^[\d.]+$/.test(host) && !isIPv4(host))
    throw new Error(
      `${host} is not an IPv4 address: expected four numbers from 0 to 255, e.g. 10.0.0.1:${port}`,
    );
  if (!isIPv4(host) && !HOSTNAME.test(host))
    throw new Error(`"${host}" is neither an IP address nor a host name: expected e.g. 127.0.0.1:${port}`);
  return { host, port };
}

/** `field: <value>: reason`, the one shape of every config error. */
function fieldIssue(field: string, value: unknown, reason: string): string {
  return `${field}: ${showValue(value)}: ${reason}`;
}

const WILDCARDS = new Set(['0.0.0.0', '::', '']);

/** Whether two listeners would fight over one socket (port 0 never does: the kernel picks). */
function sameSocket(a: HostPort, b: HostPort): boolean {
  if (a.port === 0 || a.port !== b.port) return false;
  const norm = (h: string) => (h.toLowerCase() === 'localhost' ? '127.0.0.1' : h.toLowerCase());
  return WILDCARDS.has(a.host) || WILDCARDS.has(b.host) || norm(a.host) === norm(b.host);
}

/**
 * The `tls:` section. Secrets are read only by the edge tier and only through Kubernetes discovery;
 * a Secret's namespace may be left out only when discovery watches exactly one namespace, so it is
 * never a guess. Without any certificate source the listener would fail every handshake, except on
 * an edge with discovery, where `wharf.io/tls-secret` annotations can bring the certificates.
 */
function resolveTls(
  file: ConfigFile,
  kubernetes: KubernetesConfig | undefined,
  issues: string[],
  at: <T>(field: string, value: unknown, fn: () => T) => T | undefined,
): TlsConfig | undefined {
  const t = file.tls;
  const edge = file.tier === 'edge';
  for (const [name, p] of Object.entries(file.projects)) {
    const ref = p?.['tls-secret'];
    if (ref === undefined) continue;
    if (!edge) issues.push(`projects.${name}.tls-secret: only the edge tier reads Secrets (tier: edge)`);
    else if (!String(ref).includes('/'))
      issues.push(
        `projects.${name}.tls-secret: a project of the config file names its Secret as <namespace>/<name>`,
      );
  }
  if (file.defaults['tls-secret'] !== undefined)
    issues.push('defaults.tls-secret: name a Secret per project, or list it under tls.secrets');
  if (!t) return undefined;
  const secrets: TlsSecretConfig[] = [];
  t.secrets.forEach((s, i) => {
    const where = `tls.secrets.${i}`;
    let namespace = s.namespace;
    if (namespace === undefined) {
      if (kubernetes?.namespaces.length === 1) namespace = kubernetes.namespaces[0];
      else {
        issues.push(
          `${where}.namespace: required (it may be left out only when kubernetes.namespaces lists one namespace)`,
        );
        return;
      }
    }
    secrets.push(Object.freeze({ namespace, name: s.name, ...(s.hosts ? { hosts: s.hosts } : {}) }));
  });
  if (t.secrets.length > 0 && !edge)
    issues.push('tls.secrets: only the edge tier reads Secrets (tier: edge)');
  if (t.secrets.length > 0 && !kubernetes)
    issues.push(
      'tls.secrets: needs Kubernetes discovery (the kubernetes: section or a --kubeconfig/--in-cluster/--apiserver flag)',
    );
  if (t.certificates.length === 0 && t.secrets.length === 0 && !(edge && kubernetes))
    issues.push(
      'tls: at least one certificate (tls.certificates, or on the edge tier with Kubernetes discovery tls.secrets or wharf.io/tls-secret annotations)',
    );
  const redirect = t['redirect-http'];
  return Object.freeze({
    certificates: Object.freeze(t.certificates.map((c) => Object.freeze({ ...c }))),
    secrets: Object.freeze(secrets),
    minVersion: t['min-version'],
    redirectHttp:
      redirect === undefined ? undefined : at('tls.redirect-http', redirect, () => parseHostPort(redirect)),
  });
}

/** A DNS label close to `name`, for the example in a message: `Shop_API` -> `shop-api`. */
function suggestLabel(name: string): string {
  const s = name
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63);
  return s || 'shop';
}

function settingsToStrings(p: Record<string, unknown>): Record<string, string> {
  const out = bareRecord<string>();
  for (const [k, v] of Object.entries(p)) {
    if (k === 'instances' || k === 'ports' || v === undefined) continue;
    out[k] = String(v);
  }
  return out;
}

function resolve(file: ConfigFile, over: Overrides, issues: string[]): Config | undefined {
  /** Runs a parser of `value`; a refusal becomes `field: "value": reason`. */
  const at = <T>(field: string, value: unknown, fn: () => T): T | undefined => {
    try {
      return fn();
    } catch (err) {
      issues.push(fieldIssue(field, value, (err as Error).message));
      return undefined;
    }
  };
  const listenField = over.listen ? '--listen' : 'listen';
  const adminField = over.admin ? '--admin' : 'admin';
  const listenValue = over.listen ?? file.listen;
  const adminValue = over.admin ?? file.admin;
  const listen = at(listenField, listenValue, () => parseHostPort(listenValue));
  const admin = at(adminField, adminValue, () => parseHostPort(adminValue));
  const domain = (over.domain ?? file.domain).toLowerCase().replace(/\.$/, '');
  if (over.domain !== undefined && !/^[a-z0-9.-]+$/.test(domain))
    issues.push(fieldIssue('--domain', over.domain, `expected ${expectedAt('domain')}`));

  const d = parseSettings(settingsToStrings(file.defaults), DEFAULT_SETTINGS);
  for (const e of d.errors)
    issues.push(fieldIssue(`defaults.${e.key}`, e.value, withSettingExample(e.key, e.reason)));

  const t = file.timeouts;
  const ms = (key: keyof typeof t) =>
    at(`timeouts.${key}`, t[key], () => parseDuration(t[key], DURATION_BOUNDS.timeouts)) ?? 0;
  const timeouts = {
    connectMs: ms('connect'),
    requestHeadersMs: ms('request-headers'),
    clientIdleMs: ms('client-idle'),
    upstreamIdleMs: ms('upstream-idle'),
    bodyIdleMs: ms('body-idle'),
    queueMs: ms('queue'),
    drainMs: ms('drain'),
  };

  const idleIntervalMs =
    at('health.idle-interval', file.health['idle-interval'], () => {
      const v = parseDuration(file.health['idle-interval']);
      if (v < 1000 || v > 600_000) throw new Error('expected a duration from 1s to 10m');
      return v;
    }) ?? 0;

  file['trusted-proxies'].forEach((cidr, i) => {
    at(`trusted-proxies.${i}`, cidr, () => {
      try {
        return parseCidr(cidr);
      } catch {
        throw new Error(`expected ${expectedAt('trusted-proxies.0')}`);
      }
    });
  });
  if (file['proxy-protocol'] && file['trusted-proxies'].length === 0)
    issues.push('proxy-protocol: list the load balancers that send the header under trusted-proxies');
  const forwardTo = file.edge['forward-to'];
  if (forwardTo !== undefined) {
    if (file.tier !== 'edge') issues.push('edge.forward-to: only the edge tier forwards to another tier');
    if (!DNS_LABEL.test(forwardTo))
      issues.push(fieldIssue('edge.forward-to', forwardTo, `expected ${expectedAt('edge.forward-to')}`));
    // With discovery the project may be a Service, which only the cluster knows.
    else if (!file.kubernetes && !over.kubeconfig && !over.inCluster && !over.apiservers) {
      const names = Object.keys(file.projects);
      if (!names.includes(forwardTo)) {
        const hint = closest(forwardTo, names);
        issues.push(
          fieldIssue(
            'edge.forward-to',
            forwardTo,
            names.length > 0
              ? `not a project of this config: expected one of ${names.join(', ')}${hint ? ` (did you mean "${hint}"?)` : ''}`
              : 'not a project of this config: declare it under projects: (its instances are the internal replicas)',
          ),
        );
      }
    }
  }

  const projects: ProjectRecord[] = [];
  for (const [name, p] of Object.entries(file.projects)) {
    const base = `projects.${name}`;
    if (!DNS_LABEL.test(name)) {
      issues.push(
        `${base}: project name "${name}": expected a DNS label (lowercase letters, digits, '-') such as ${suggestLabel(name)}`,
      );
      continue;
    }
    const proj = p ?? { instances: {} };
    const raw = settingsToStrings(proj);
    const own = parseSettings(raw, d.settings);
    for (const e of own.errors)
      issues.push(fieldIssue(`${base}.${e.key}`, e.value, withSettingExample(e.key, e.reason)));
    const seenPorts: string[] = [];
    const instances: InstanceRecord[] = [];
    for (const [inst, ports] of Object.entries(proj.instances)) {
      if (!DNS_LABEL.test(inst)) {
        issues.push(
          `${base}.instances.${inst}: instance name "${inst}": expected a DNS label (lowercase letters, digits, '-') such as ${suggestLabel(inst)}`,
        );
        continue;
      }
      const addresses = bareRecord<HostPort>();
      for (const [port, addr] of Object.entries(ports ?? {})) {
        const hp = at(`${base}.instances.${inst}.${port}`, addr, () => parseHostPort(addr));
        if (hp) addresses[port] = hp;
        if (!seenPorts.includes(port)) seenPorts.push(port);
      }
      if (Object.keys(addresses).length === 0 && ports && Object.keys(ports).length === 0) {
        issues.push(
          `${base}.instances.${inst}: an empty mapping: expected at least one port, e.g. { http: 127.0.0.1:8000 }`,
        );
      }
      instances.push(Object.freeze({ name: inst, addresses: Object.freeze(addresses), draining: false }));
    }
    let ports = seenPorts;
    if (proj.ports) {
      proj.ports.forEach((p, i) => {
        if (proj.ports!.indexOf(p) !== i) issues.push(`${base}.ports.${i}: port "${p}" is listed twice`);
      });
      for (const extra of seenPorts.filter((x) => !proj.ports!.includes(x))) {
        issues.push(
          fieldIssue(
            `${base}.ports`,
            proj.ports,
            `instances use port "${extra}", which is not listed: expected every port the instances use, e.g. [${[...proj.ports, extra].join(', ')}]`,
          ),
        );
      }
      ports = proj.ports;
    }
    // A health port no instance has would make every probe fall back to the routed port: say so now.
    const healthPort = own.settings.health.port;
    if (healthPort && ports.length > 0 && !ports.includes(healthPort)) {
      const mine = raw['health-port'] !== undefined;
      issues.push(
        fieldIssue(
          mine ? `${base}.health-port` : 'defaults.health-port',
          healthPort,
          `${mine ? 'no instance' : `no instance of project ${name}`} has a port "${healthPort}": expected one of ${ports.join(', ')}${mine ? '' : ` (or set health-port under ${base})`}`,
        ),
      );
    }
    projects.push(
      Object.freeze({
        name,
        origin: 'config',
        object: `project ${name}`,
        settingPrefix: `projects.${name}.`,
        declared: true,
        nameField: `projects.${name}`,
        created: '1970-01-01T00:00:00Z',
        ports: Object.freeze(ports),
        settings: Object.freeze(raw),
        instances: Object.freeze(instances),
      }),
    );
  }
  const kubernetes = resolveKubernetes(file, over, issues);
  const tls = resolveTls(file, kubernetes, issues, at);
  // Two listeners on one address: the second would fail to bind at start. Caught here instead.
  const listeners: [string, HostPort | undefined][] = [
    [listenField, listen],
    [adminField, admin],
    ['tls.redirect-http', tls?.redirectHttp],
  ];
  for (let i = 0; i < listeners.length; i++) {
    for (let j = 0; j < i; j++) {
      const [fa, a] = listeners[j];
      const [fb, b] = listeners[i];
      if (a && b && sameSocket(a, b)) {
        const value = `${b.host.includes(':') ? `[${b.host}]` : b.host}:${b.port}`;
        issues.push(
          fieldIssue(
            fb,
            value,
            `the same address as ${fa}: expected an address of its own, e.g. ${fb === adminField ? `${fb} 127.0.0.1:9901` : `${fb} 0.0.0.0:8080`}`,
          ),
        );
      }
    }
  }
  if (issues.length > 0 || !listen || !admin) return undefined;
  return Object.freeze({
    listen,
    admin,
    adminToken: file['admin-token'],
    adminHosts: Object.freeze(file['admin-hosts'].map((h) => h.toLowerCase())),
    domain,
    tier: file.tier,
    instanceHeader: file['instance-header'] ?? file.tier === 'internal',
    defaults: d.settings,
    timeouts: Object.freeze(timeouts),
    limits: Object.freeze({
      maxHeaderBytes: file.limits['max-header-bytes'],
      maxHeaders: file.limits['max-headers'],
      maxBodyBytes: file.limits['max-body-bytes'],
      bodyBufferBytes: file.limits['body-buffer-bytes'],
      clientConnections: file.limits['client-connections'],
      clientRate: file.limits['client-rate'],
    }),
    trustedProxies: Object.freeze([...file['trusted-proxies']]),
    proxyProtocol: file['proxy-protocol'],
    tls: tls,
    forwardTo: file.edge['forward-to'],
    logs: Object.freeze({
      dir: file.logs.dir,
      access: file.logs.access,
      health: file.logs.health,
      probeFailures: file.logs['probe-failures'],
      bufferBytes: file.logs['buffer-bytes'],
      level: file.logs.level,
    }),
    health: Object.freeze({ concurrency: file.health.concurrency, idleIntervalMs }),
    upstream: Object.freeze({
      connections: file.upstream.connections,
      retryBudget: file.upstream['retry-budget'],
      retryBudgetMin: file.upstream['retry-budget-min'],
      uploadsPerClient: file.upstream['uploads-per-client'],
    }),
    projects: Object.freeze(projects),
    ...(kubernetes ? { kubernetes } : {}),
  });
}

/** Validates config text. Throws ConfigError listing every problem found. */
export function parseConfig(text: string, file = 'config', over: Overrides = {}): Config {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.map((e) => `YAML: ${e.message.split('\n')[0]}`),
    );
  }
  const data = doc.toJS() ?? {};
  const parsed = configSchema.safeParse(data, { reportInput: true });
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => describeIssue(i, keysAt));
    // Every error at once: without the fields the schema refused, the checks that come after it
    // (addresses, durations, settings) still run on the rest.
    const rest = configSchema.safeParse(without(data, parsed.error.issues));
    if (rest.success) {
      const later: string[] = [];
      resolve(rest.data, over, later);
      // Not what only the removal caused (an instance left with no port, a section left empty).
      const refused = parsed.error.issues.flatMap((i) =>
        i.code === 'unrecognized_keys' ? i.keys.map((k) => [...i.path, k].join('.')) : [i.path.join('.')],
      );
      const near = (field: string) =>
        refused.some((r) => r === field || r.startsWith(`${field}.`) || field.startsWith(`${r}.`));
      for (const issue of later) if (!near(issue.slice(0, issue.indexOf(': ')))) issues.push(issue);
    }
    throw new ConfigError(file, issues);
  }
  const issues: string[] = [];
  const config = resolve(parsed.data, over, issues);
  if (!config) throw new ConfigError(file, issues);
  return config;
}

/** A copy of `data` without the values the schema refused (unknown keys, bad keys, bad values). */
function without(
  data: unknown,
  refused: readonly { path: readonly PropertyKey[]; code: string; keys?: readonly string[] }[],
): unknown {
  const copy = structuredClone(data) as Record<string, unknown>;
  const drop = (path: readonly PropertyKey[]) => {
    let node: unknown = copy;
    for (const seg of path.slice(0, -1)) {
      if (node === null || typeof node !== 'object') return;
      node = (node as Record<string, unknown>)[String(seg)];
    }
    if (node === null || typeof node !== 'object') return;
    const key = String(path[path.length - 1]);
    if (Array.isArray(node)) node.splice(Number(key), 1, undefined);
    else delete (node as Record<string, unknown>)[key];
  };
  for (const i of refused) {
    if (i.path.length === 0 && i.code !== 'unrecognized_keys') return {};
    if (i.code === 'unrecognized_keys') for (const k of i.keys ?? []) drop([...i.path, k]);
    else drop(i.path);
  }
  return copy;
}

export function loadConfig(path: string, over: Overrides = {}): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, [`cannot read file: ${(err as Error).message}`]);
  }
  return parseConfig(text, path, over);
}
