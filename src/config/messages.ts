// Config errors in one voice: `<field path>: <value given>: expected <what>, e.g. <example>`. The
// schema (schema.ts) decides what is valid; this module decides how a refusal reads, so no wording
// of the validation library ever reaches a user. Fields without an entry below still get a message
// built from the kind of refusal (type, range, choices); the table adds the examples.

import { SETTING_KEYS } from '../routing/settings.ts';
import { closest } from '../util/suggest.ts';

/** What a field accepts, with an example: "host:port such as 127.0.0.1:8080". */
export interface FieldDoc {
  readonly expected: string;
}

const DURATION = 'a duration such as 500ms, 1s or 2m';
const FILE = (example: string) => `a file path such as ${example}`;
const BOOL = 'true or false';

/** Field paths (`*` matches one segment: a project, an instance, a list index) to what they accept. */
const FIELDS: Record<string, string> = {
  '': 'a YAML mapping such as `listen: 127.0.0.1:8080`',
  listen: 'host:port such as 127.0.0.1:8080, 0.0.0.0:8080 or [::]:8080',
  admin: 'host:port such as 127.0.0.1:9901',
  'admin-token': 'a secret of at least 16 characters, e.g. the output of `openssl rand -hex 16`',
  domain: 'a DNS name such as apps.example.com',
  tier: 'internal or edge',
  'instance-header': BOOL,
  defaults: 'per-project settings such as { health-interval: 1s, retries: 2 }',
  timeouts: 'a mapping such as { connect: 2s, drain: 10s }',
  'timeouts.*': DURATION,
  limits: 'a mapping such as { max-body-bytes: 10485760 }',
  'limits.max-header-bytes': 'a whole number from 1024 to 1048576, e.g. 16384',
  'limits.max-headers': 'a whole number from 8 to 1000, e.g. 100',
  'limits.max-body-bytes': 'a whole number of bytes (0: no limit), e.g. 10485760',
  'limits.client-connections': 'a whole number (0: no limit), e.g. 256',
  'limits.client-rate': 'requests per second (0: no limit), e.g. 100',
  'trusted-proxies': 'a list of CIDRs such as [10.0.0.0/8, 192.168.0.0/16]',
  'trusted-proxies.*': 'a CIDR such as 10.0.0.0/8',
  tls: 'a mapping such as { certificates: [{ cert: /etc/wharf/tls.crt, key: /etc/wharf/tls.key }] }',
  'tls.certificates': 'a list such as [{ cert: /etc/wharf/tls.crt, key: /etc/wharf/tls.key }]',
  'tls.certificates.*': 'a mapping such as { cert: /etc/wharf/tls.crt, key: /etc/wharf/tls.key }',
  'tls.certificates.*.cert': FILE('/etc/wharf/tls/tls.crt'),
  'tls.certificates.*.key': FILE('/etc/wharf/tls/tls.key'),
  'tls.certificates.*.hosts': 'a list of host patterns such as ["*.apps.example.com"]',
  'tls.certificates.*.hosts.*': 'a host pattern such as "*.apps.example.com"',
  'tls.secrets': 'a list such as [{ namespace: wharf-system, name: wharf-edge-tls }]',
  'tls.secrets.*': 'a mapping such as { namespace: wharf-system, name: wharf-edge-tls }',
  'tls.secrets.*.namespace': 'a namespace name (a DNS label) such as wharf-system',
  'tls.secrets.*.name': "a Secret name (lowercase letters, digits, '-' and '.') such as wharf-edge-tls",
  'tls.secrets.*.hosts': 'a list of host patterns such as ["*.apps.example.com"]',
  'tls.min-version': 'TLSv1.2 or TLSv1.3',
  'tls.redirect-http': 'host:port such as 0.0.0.0:8080',
  edge: 'a mapping such as { forward-to: wharf-internal }',
  'edge.forward-to': 'a project name such as wharf-internal',
  upstream: 'a mapping such as { connections: 128, retry-budget: 0.2 }',
  'upstream.connections': 'a whole number from 1 to 10000, e.g. 128',
  'upstream.retry-budget': 'a fraction from 0 to 1, e.g. 0.2',
  'upstream.retry-budget-min': 'a whole number of retries per second, e.g. 10',
  health: 'a mapping such as { concurrency: 256 }',
  'health.concurrency': 'a whole number from 1 to 10000, e.g. 256',
  projects:
    'a mapping of project names to projects, e.g. { shop: { instances: { shop-0: { http: 127.0.0.1:8000 } } } }',
  'projects.*': 'a project such as { instances: { shop-0: { http: 127.0.0.1:8000 } } }',
  'projects.*.ports': 'a list of port names such as [http, admin]',
  'projects.*.ports.*': 'a port name such as http',
  'projects.*.instances': 'a mapping of instance names to ports, e.g. { shop-0: { http: 127.0.0.1:8000 } }',
  'projects.*.instances.*': 'a mapping of port names to addresses, e.g. { http: 127.0.0.1:8000 }',
  'projects.*.instances.*.*': 'host:port such as 127.0.0.1:8000',
  kubernetes: 'a mapping such as { in-cluster: true } or { kubeconfig: ~/.kube/config }',
  'kubernetes.in-cluster': BOOL,
  'kubernetes.kubeconfig': FILE('~/.kube/config'),
  'kubernetes.context': 'a context name, or a list of names to fail over between, e.g. [prod-a, prod-b]',
  'kubernetes.apiservers': 'a list of URLs such as [https://10.0.0.11:6443, https://10.0.0.12:6443]',
  'kubernetes.apiservers.*': 'http(s)://host:port such as https://10.0.0.11:6443',
  'kubernetes.token-file': FILE('/var/run/secrets/kubernetes.io/serviceaccount/token'),
  'kubernetes.ca-file': FILE('/etc/wharf/ca.crt'),
  'kubernetes.insecure-skip-tls-verify': BOOL,
  'kubernetes.namespaces': 'a list of namespace names such as [shop, payments]',
  'kubernetes.namespaces.*': 'a namespace name (a DNS label) such as shop',
  logs: 'a mapping such as { dir: /var/log/wharf, level: info }',
  'logs.dir': 'a directory such as /var/log/wharf',
  'logs.access': BOOL,
  'logs.health': BOOL,
  'logs.probe-failures': BOOL,
  'logs.buffer-bytes': 'a whole number of at least 65536, e.g. 1048576',
  'logs.level': 'debug, info, warn or error',
};

/** An example value per project setting (the same keys as Service annotations). */
export const SETTING_EXAMPLES: Readonly<Record<string, string>> = {
  'health-path': '/healthz (or tcp, or grpc)',
  'health-port': 'admin',
  'health-interval': '1s',
  'health-timeout': '1s',
  'health-fall': '2',
  'health-rise': '2',
  'health-expect': '200-399',
  affinity: 'cookie',
  public: 'true',
  timeout: '30s',
  retries: '2',
  balancer: 'p2c',
  'allow-pin-header': 'true',
  'hsts-max-age': '31536000',
  'tls-secret': 'wharf-system/shop-tls',
};

/** Adds an example to a setting's reason unless it already shows one ("such as", "e.g."). */
export function withSettingExample(key: string, reason: string): string {
  const example = SETTING_EXAMPLES[key];
  if (!example || /such as|e\.g\./.test(reason) || !reason.startsWith('expected')) return reason;
  return `${reason}, e.g. ${key}: ${example}`;
}

function lookup(path: readonly (string | number)[]): string | undefined {
  const segs = path.map(String);
  // Settings may sit under `defaults:` or under any project.
  const last = segs[segs.length - 1];
  const settingsAt =
    segs.length === 2 && segs[0] === 'defaults' ? true : segs.length === 3 && segs[0] === 'projects';
  if (settingsAt && (SETTING_KEYS as readonly string[]).includes(last)) {
    return `a string, number or boolean such as ${last}: ${SETTING_EXAMPLES[last] ?? '…'}`;
  }
  const exact = FIELDS[segs.join('.')];
  if (exact) return exact;
  for (const [pattern, doc] of Object.entries(FIELDS)) {
    const p = pattern === '' ? [] : pattern.split('.');
    if (p.length !== segs.length) continue;
    if (p.every((x, i) => x === '*' || x === segs[i])) return doc;
  }
  return undefined;
}

/** What a field expects (for messages built outside the schema, e.g. host:port checks). */
export function expectedAt(path: string): string | undefined {
  return lookup(path === '' ? [] : path.split('.'));
}

/** A value as the user wrote it, short: strings quoted, structures abbreviated. */
export function showValue(v: unknown): string {
  if (v === undefined) return 'missing';
  if (v === null) return 'empty (null)';
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return v.length === 0 ? 'an empty list' : `a list (${short(v)})`;
  if (typeof v === 'object') return `a mapping (${short(v)})`;
  return String(v);
}

function short(v: unknown): string {
  const s = JSON.stringify(v);
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

/** The parts of a zod issue this module reads (zod 4, parsed with `reportInput: true`). */
export interface RawIssue {
  readonly code: string;
  readonly path: readonly PropertyKey[];
  readonly message: string;
  readonly input?: unknown;
  readonly expected?: string;
  readonly keys?: readonly string[];
  readonly values?: readonly unknown[];
  readonly minimum?: number | bigint;
  readonly maximum?: number | bigint;
  readonly inclusive?: boolean;
  readonly origin?: string;
}

const TYPE_WORDS: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: BOOL,
  array: 'a list',
  object: 'a mapping',
  record: 'a mapping',
  nonoptional: 'a value',
};

/** What the refusal itself says is expected, for fields without a table entry. */
function fromIssue(i: RawIssue): string {
  switch (i.code) {
    case 'invalid_type':
      return TYPE_WORDS[i.expected ?? ''] ?? `a ${i.expected}`;
    case 'too_small':
      return i.origin === 'string'
        ? `at least ${i.minimum} character(s)`
        : i.origin === 'array'
          ? `at least ${i.minimum} item(s)`
          : `a number of at least ${i.minimum}`;
    case 'too_big':
      return i.origin === 'string'
        ? `at most ${i.maximum} characters`
        : i.origin === 'array'
          ? `at most ${i.maximum} items`
          : `a number of at most ${i.maximum}`;
    case 'invalid_value':
      return `one of ${(i.values ?? []).map((v) => String(v)).join(', ')}`;
    default:
      // A message written in schema.ts ("namespace names are DNS labels") is ours; keep it.
      return /^(Invalid|Too |Unrecognized|Expected)/.test(i.message) ? 'a valid value' : i.message;
  }
}

/**
 * The keys a mapping at `path` accepts, for suggestions on unknown keys. `shapeAt` walks the
 * schema (schema.ts knows it); absent, no list is given.
 */
export type ShapeLookup = (path: readonly PropertyKey[]) => readonly string[] | undefined;

/** One line for one schema refusal. */
export function describeIssue(i: RawIssue, shapeAt?: ShapeLookup): string {
  const path = i.path.map((p) => String(p));
  const where = path.length > 0 ? path.join('.') : '(top level)';
  if (i.code === 'unrecognized_keys') {
    const keys = i.keys ?? [];
    const known = shapeAt?.(i.path) ?? [];
    const hints = keys
      .map((k) => closest(k, known))
      .filter((x): x is string => x !== undefined)
      .map((x) => `"${x}"`);
    const head = `${path.length > 0 ? `${where}: ` : ''}unknown key(s) ${keys.map((k) => `"${k}"`).join(', ')}`;
    const expected = known.length > 0 ? `: expected one of ${known.join(', ')}` : '';
    return `${head}${expected}${hints.length > 0 ? ` (did you mean ${hints.join(', ')}?)` : ''}`;
  }
  if (i.code === 'invalid_key') {
    // A record key (an instance's port name) refused: the key is the value given.
    const parent = path.slice(0, -1).join('.');
    const key = path[path.length - 1];
    const portName = /^projects\.[^.]+\.instances\.[^.]+$/.test(parent);
    const expected = portName
      ? "a port name (a DNS label: lowercase letters, digits, '-') such as http"
      : 'a valid name';
    return `${parent}: key ${JSON.stringify(key)}: expected ${expected}`;
  }
  const expected = lookup(i.path.map((p) => String(p) as string)) ?? fromIssue(i);
  return `${where}: ${showValue(i.input)}: expected ${expected}`;
}
