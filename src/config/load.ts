// Reads and validates the config file into a frozen Config. Every error names the field path and the
// reason; a file with any error yields no Config at all, so nothing starts half-configured.

import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import type { ProjectSettings } from '../model/settings.ts';
import type { HostPort, InstanceRecord, ProjectRecord } from '../model/snapshot.ts';
import { DNS_LABEL, type Tier } from '../routing/build.ts';
import { DEFAULT_SETTINGS, parseDuration, parseSettings } from '../routing/settings.ts';
import { parseCidr } from '../util/cidr.ts';
import { type ConfigFile, configSchema } from './schema.ts';

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
        issues.push(`--apiserver: expected http(s)://host:port, got "${u}"`);
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
  };
  const where = flagged ? 'kubernetes (flags)' : 'kubernetes';
  if (kc.inCluster && kc.kubeconfig) issues.push(`${where}: in-cluster and kubeconfig exclude each other`);
  if (!kc.inCluster && !kc.kubeconfig && !kc.contexts && !kc.apiservers?.length)
    issues.push(`${where}: set in-cluster, kubeconfig (optionally with context) or apiservers`);
  return Object.freeze(kc);
}

/** `host:port`, `[v6]:port` or `:port` (all interfaces). */
export function parseHostPort(value: string): HostPort {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value.trim());
  if (!m) throw new Error(`expected host:port, got "${value}"`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`port out of range in "${value}"`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
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
  at: <T>(field: string, fn: () => T) => T | undefined,
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
    redirectHttp: redirect === undefined ? undefined : at('tls.redirect-http', () => parseHostPort(redirect)),
  });
}

function settingsToStrings(p: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(p)) {
    if (k === 'instances' || k === 'ports' || v === undefined) continue;
    out[k] = String(v);
  }
  return out;
}

function resolve(file: ConfigFile, over: Overrides, issues: string[]): Config | undefined {
  const at = <T>(field: string, fn: () => T): T | undefined => {
    try {
      return fn();
    } catch (err) {
      issues.push(`${field}: ${(err as Error).message}`);
      return undefined;
    }
  };
  const listen = at(over.listen ? '--listen' : 'listen', () => parseHostPort(over.listen ?? file.listen));
  const admin = at(over.admin ? '--admin' : 'admin', () => parseHostPort(over.admin ?? file.admin));
  const domain = (over.domain ?? file.domain).toLowerCase().replace(/\.$/, '');
  if (over.domain !== undefined && !/^[a-z0-9.-]+$/.test(domain))
    issues.push('--domain: expected a DNS name');

  const d = parseSettings(settingsToStrings(file.defaults), DEFAULT_SETTINGS);
  for (const e of d.errors) issues.push(`defaults.${e.key}: "${e.value}": ${e.reason}`);

  const t = file.timeouts;
  const ms = (key: keyof typeof t) => at(`timeouts.${key}`, () => parseDuration(t[key])) ?? 0;
  const timeouts = {
    connectMs: ms('connect'),
    requestHeadersMs: ms('request-headers'),
    clientIdleMs: ms('client-idle'),
    upstreamIdleMs: ms('upstream-idle'),
    bodyIdleMs: ms('body-idle'),
    queueMs: ms('queue'),
    drainMs: ms('drain'),
  };

  file['trusted-proxies'].forEach((cidr, i) => {
    at(`trusted-proxies.${i}`, () => parseCidr(cidr));
  });
  const forwardTo = file.edge['forward-to'];
  if (forwardTo !== undefined) {
    if (file.tier !== 'edge') issues.push('edge.forward-to: only the edge tier forwards to another tier');
    if (!DNS_LABEL.test(forwardTo)) issues.push('edge.forward-to: expected a project name');
  }

  const projects: ProjectRecord[] = [];
  for (const [name, p] of Object.entries(file.projects)) {
    const base = `projects.${name}`;
    if (!DNS_LABEL.test(name)) {
      issues.push(`${base}: project names are DNS labels (lowercase letters, digits, '-')`);
      continue;
    }
    const proj = p ?? { instances: {} };
    const raw = settingsToStrings(proj);
    for (const e of parseSettings(raw, d.settings).errors)
      issues.push(`${base}.${e.key}: "${e.value}": ${e.reason}`);
    const seenPorts: string[] = [];
    const instances: InstanceRecord[] = [];
    for (const [inst, ports] of Object.entries(proj.instances)) {
      if (!DNS_LABEL.test(inst)) {
        issues.push(`${base}.instances.${inst}: instance names are DNS labels`);
        continue;
      }
      const addresses: Record<string, HostPort> = {};
      for (const [port, addr] of Object.entries(ports ?? {})) {
        const hp = at(`${base}.instances.${inst}.${port}`, () => parseHostPort(addr));
        if (hp) addresses[port] = hp;
        if (!seenPorts.includes(port)) seenPorts.push(port);
      }
      if (Object.keys(addresses).length === 0 && ports && Object.keys(ports).length === 0) {
        issues.push(`${base}.instances.${inst}: needs at least one port, e.g. { http: 127.0.0.1:8000 }`);
      }
      instances.push(Object.freeze({ name: inst, addresses: Object.freeze(addresses), draining: false }));
    }
    let ports = seenPorts;
    if (proj.ports) {
      for (const extra of seenPorts.filter((x) => !proj.ports!.includes(x))) {
        issues.push(`${base}.ports: instances use port "${extra}" which is not listed`);
      }
      ports = proj.ports;
    }
    projects.push(
      Object.freeze({
        name,
        source: 'config',
        origin: 'config',
        created: '1970-01-01T00:00:00Z',
        ports: Object.freeze(ports),
        settings: Object.freeze(raw),
        instances: Object.freeze(instances),
      }),
    );
  }
  const kubernetes = resolveKubernetes(file, over, issues);
  const tls = resolveTls(file, kubernetes, issues, at);
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
    health: Object.freeze({ concurrency: file.health.concurrency }),
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
  const parsed = configSchema.safeParse(data);
  if (!parsed.success) {
    throw new ConfigError(
      file,
      parsed.error.issues.map((i) => {
        const where = i.path.length > 0 ? `${i.path.join('.')}: ` : '';
        if (i.code === 'unrecognized_keys')
          return `${where}unknown key(s) ${i.keys.map((k) => `"${k}"`).join(', ')}`;
        return `${where || '(top level): '}${i.message}`;
      }),
    );
  }
  const issues: string[] = [];
  const config = resolve(parsed.data, over, issues);
  if (!config) throw new ConfigError(file, issues);
  return config;
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
