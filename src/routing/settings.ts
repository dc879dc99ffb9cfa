// Parsing of the per-project settings of DESIGN.md §3. Pure. The same parser serves Service
// annotations (a bad value falls back to the default and becomes a Problem) and the config file
// (a bad value is a validation error), so the two can never disagree on what a value means.

import type {
  Affinity,
  HealthCheckSettings,
  ProjectSettings,
  ProtocolSetting,
  SecretRef,
  StatusRange,
  UpstreamProtocol,
} from '../model/settings.ts';
import { clip } from '../util/strings.ts';

export const DEFAULT_SETTINGS: ProjectSettings = Object.freeze({
  health: Object.freeze({
    check: 'http',
    path: '/',
    grpcService: '',
    port: null,
    intervalMs: 1000,
    timeoutMs: 1000,
    fall: 2,
    rise: 2,
    expect: Object.freeze([{ from: 200, to: 399 }]),
  }),
  affinity: Object.freeze({ kind: 'none' }),
  public: false,
  timeoutMs: 30_000,
  retries: 2,
  balancer: 'p2c',
  allowPinHeader: false,
  hstsMaxAge: 0,
  tlsSecret: null,
  protocol: Object.freeze({ all: 'http1', ports: new Map() }),
  hidden: false,
}) as ProjectSettings;

/** The setting keys, as written in the config file and (with the `wharf.io/` prefix) as annotations. */
export const SETTING_KEYS = [
  'health-path',
  'health-port',
  'health-interval',
  'health-timeout',
  'health-fall',
  'health-rise',
  'health-expect',
  'affinity',
  'public',
  'timeout',
  'retries',
  'balancer',
  'allow-pin-header',
  'hsts-max-age',
  'tls-secret',
  'protocol',
  'expose',
] as const;
export type SettingKey = (typeof SETTING_KEYS)[number];

export interface SettingError {
  readonly key: string;
  readonly value: string;
  readonly reason: string;
}

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

/** The range a duration must fall in. Every bound is far below Node's timer limit (2^31-1 ms, 24.8 days). */
export interface DurationBounds {
  readonly minMs: number;
  readonly maxMs: number;
}

/** Any duration without bounds of its own: from 1 ms to a day. */
export const ANY_DURATION: DurationBounds = Object.freeze({ minMs: 1, maxMs: DAY_MS });

/**
 * The bounds of every duration setting and config field (README: "Durations"). A probe every few
 * milliseconds is a flood to one pod; a timeout past 2^31-1 ms overflows Node's timers to 1 ms.
 */
export const DURATION_BOUNDS = Object.freeze({
  'health-interval': Object.freeze({ minMs: 100, maxMs: DAY_MS }),
  'health-timeout': Object.freeze({ minMs: 10, maxMs: DAY_MS }),
  timeout: Object.freeze({ minMs: 10, maxMs: DAY_MS }),
  /** Every field under `timeouts:` in the config file. */
  timeouts: Object.freeze({ minMs: 10, maxMs: DAY_MS }),
  /** `kubernetes.watchdog`: a watch without an event for this long is restarted. */
  watchdog: Object.freeze({ minMs: 1000, maxMs: HOUR_MS }),
}) satisfies Record<string, DurationBounds>;

/** `100ms`, `1s`, `24h`: a bound as a message shows it. */
export function formatDuration(ms: number): string {
  if (ms % HOUR_MS === 0) return `${ms / HOUR_MS}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/**
 * `500ms`, `1s`, `1.5s`, `2m`, `1h`, within `bounds` (default: 1 ms to 24 h). A bare number is
 * refused: its unit would be a guess.
 */
export function parseDuration(value: string, bounds: DurationBounds = ANY_DURATION): number {
  const m = DURATION.exec(value.trim());
  if (!m) throw new Error('expected a duration such as 500ms, 1s or 2m');
  const ms = Math.round(Number(m[1]) * UNIT_MS[m[2]]);
  if (ms <= 0) throw new Error('must be greater than zero');
  if (ms < bounds.minMs) throw new Error(`must be at least ${formatDuration(bounds.minMs)}`);
  // Also catches Infinity (a number too long to be one).
  if (!(ms <= bounds.maxMs)) throw new Error(`must be at most ${formatDuration(bounds.maxMs)}`);
  return ms;
}

function parseCount(value: string, min: number, max: number): number {
  if (!/^\d+$/.test(value.trim())) throw new Error(`expected a whole number from ${min} to ${max}`);
  const n = Number(value);
  if (n < min || n > max) throw new Error(`expected a whole number from ${min} to ${max}`);
  return n;
}

/** `200-399`, `200,204`, `2xx`, or a mix: `200-299,404`. */
export function parseStatusRanges(value: string): StatusRange[] {
  const ranges: StatusRange[] = [];
  for (const part of value.split(',').map((s) => s.trim())) {
    const cls = /^([1-5])xx$/i.exec(part);
    const range = /^(\d{3})-(\d{3})$/.exec(part);
    const one = /^(\d{3})$/.exec(part);
    if (cls) ranges.push({ from: Number(cls[1]) * 100, to: Number(cls[1]) * 100 + 99 });
    else if (range) ranges.push({ from: Number(range[1]), to: Number(range[2]) });
    else if (one) ranges.push({ from: Number(one[1]), to: Number(one[1]) });
    else throw new Error('expected status codes such as 200-399, 2xx or 200,204');
    const last = ranges[ranges.length - 1];
    if (last.from < 100 || last.to > 599 || last.from > last.to)
      throw new Error(`bad status range "${part}"`);
  }
  return ranges;
}

const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;

export function parseAffinity(value: string): Affinity {
  const v = value.trim();
  if (v === 'none') return { kind: 'none' };
  if (v === 'cookie') return { kind: 'cookie' };
  if (v === 'ip') return { kind: 'ip' };
  if (v.startsWith('header:')) {
    const header = v.slice('header:'.length).trim().toLowerCase();
    if (!HEADER_NAME.test(header)) throw new Error('header:<name> needs a valid header name');
    return { kind: 'header', header };
  }
  throw new Error('expected none, cookie, header:<name> or ip');
}

const PATH = /^\/[\x21-\x7e]*$/;

/** A fully qualified protobuf service name (`echo.Echo`, `grpc.health.v1.Health`). */
const GRPC_SERVICE = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

/** `/healthz` (HTTP), `tcp` (connect only), `grpc` (the whole server) or `grpc:<service>`. */
export function parseHealthPath(value: string): Pick<HealthCheckSettings, 'check' | 'path' | 'grpcService'> {
  if (value === 'tcp') return { check: 'tcp', path: null, grpcService: '' };
  if (value === 'grpc') return { check: 'grpc', path: null, grpcService: '' };
  if (value.startsWith('grpc:')) {
    const service = value.slice('grpc:'.length);
    if (!GRPC_SERVICE.test(service) || service.length > 200)
      throw new Error('grpc:<service> needs a service name such as echo.Echo');
    return { check: 'grpc', path: null, grpcService: service };
  }
  if (PATH.test(value)) return { check: 'http', path: value, grpcService: '' };
  throw new Error('expected tcp, grpc, grpc:<service> or an absolute path such as /healthz');
}

const PORT_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Kubernetes object names (RFC 1123 subdomains), e.g. Secret names. */
export const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** Namespace names (RFC 1123 labels). */
export const NAMESPACE_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** `name` (in the Service's own namespace) or `namespace/name`. */
export function parseSecretRef(value: string): SecretRef {
  const parts = value.trim().split('/');
  if (parts.length > 2) throw new Error('expected <name> or <namespace>/<name>');
  const [namespace, name] = parts.length === 2 ? parts : [null, parts[0]];
  if (namespace !== null && !NAMESPACE_NAME.test(namespace))
    throw new Error(`"${clip(namespace)}" is not a namespace name (a DNS label)`);
  if (!DNS_SUBDOMAIN.test(name))
    throw new Error(`"${clip(name)}" is not a Secret name (lowercase letters, digits, '-' and '.')`);
  return Object.freeze({ namespace, name });
}

const PROTOCOLS: ReadonlySet<string> = new Set<UpstreamProtocol>(['http1', 'h2c', 'auto']);

/** `h2c`, or `grpc=h2c,http=http1`, or both: `auto,admin=http1` (a bare value covers the other ports). */
export function parseProtocol(value: string): ProtocolSetting {
  let all: UpstreamProtocol = 'http1';
  const ports = new Map<string, UpstreamProtocol>();
  for (const part of value.split(',').map((x) => x.trim())) {
    const eq = part.indexOf('=');
    const port = eq < 0 ? undefined : part.slice(0, eq).trim();
    const proto = (eq < 0 ? part : part.slice(eq + 1)).trim();
    if (!PROTOCOLS.has(proto))
      throw new Error('expected http1, h2c or auto, or port=value pairs such as grpc=h2c');
    if (port === undefined) all = proto as UpstreamProtocol;
    else if (!PORT_NAME.test(port)) throw new Error(`"${port}" is not a port name`);
    else ports.set(port, proto as UpstreamProtocol);
  }
  return Object.freeze({ all, ports });
}

/**
 * A Service port's `appProtocol` (Kubernetes: IANA names or `kubernetes.io/...`) as an upstream
 * protocol; undefined for one Wharf does not speak (the `protocol` setting applies then).
 */
export function protocolOfAppProtocol(appProtocol: string): UpstreamProtocol | undefined {
  switch (appProtocol.trim().toLowerCase()) {
    case 'kubernetes.io/h2c':
    case 'h2c':
    case 'http2':
    case 'grpc':
      return 'h2c';
    case 'http':
    case 'http1':
    case 'kubernetes.io/ws':
      return 'http1';
    default:
      return undefined;
  }
}

function parseBool(value: string): boolean {
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw new Error('expected true or false');
}

/** `false` (no port is routed), `true`, or `port=false` pairs (`admin=false,metrics=false`): what is hidden. */
export function parseExpose(value: string): boolean | string[] {
  const v = value.trim();
  if (v === 'true' || v === 'false') return v === 'false';
  const hidden: string[] = [];
  for (const pair of v.split(',')) {
    const m = /^\s*([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)\s*=\s*(true|false)\s*$/.exec(pair);
    if (!m) throw new Error('expected false, true, or port=false pairs such as admin=false,metrics=false');
    if (m[3] === 'false' && !hidden.includes(m[1])) hidden.push(m[1]);
  }
  return hidden.length > 0 ? hidden : false;
}

function parsePublic(value: string): boolean | string[] {
  const v = value.trim();
  if (v === 'true' || v === 'false') return v === 'true';
  const names = v.split(',').map((s) => s.trim());
  for (const n of names)
    if (!PORT_NAME.test(n)) throw new Error('expected true, false or a comma list of port names');
  return names;
}

/**
 * Parses raw settings over `base` (the tier's defaults). Unknown keys and bad values are returned as
 * errors and leave the base value in place, so one bad annotation disables only itself.
 */
export function parseSettings(
  raw: Readonly<Record<string, string>>,
  base: ProjectSettings = DEFAULT_SETTINGS,
): { settings: ProjectSettings; errors: SettingError[] } {
  // Most projects set nothing: they share the base object (10,000 copies of the defaults add up).
  let empty = true;
  for (const _ in raw) {
    empty = false;
    break;
  }
  if (empty && Object.isFrozen(base) && Object.isFrozen(base.health)) return { settings: base, errors: [] };
  const errors: SettingError[] = [];
  const health: { -readonly [K in keyof HealthCheckSettings]: HealthCheckSettings[K] } = { ...base.health };
  const s: { -readonly [K in keyof ProjectSettings]: ProjectSettings[K] } = { ...base };
  for (const [key, value] of Object.entries(raw)) {
    try {
      switch (key as SettingKey) {
        case 'health-path':
          Object.assign(health, parseHealthPath(value));
          break;
        case 'health-port':
          if (!PORT_NAME.test(value)) throw new Error('expected a port name');
          health.port = value;
          break;
        case 'health-interval':
          health.intervalMs = parseDuration(value, DURATION_BOUNDS['health-interval']);
          break;
        case 'health-timeout':
          health.timeoutMs = parseDuration(value, DURATION_BOUNDS['health-timeout']);
          break;
        case 'health-fall':
          health.fall = parseCount(value, 1, 100);
          break;
        case 'health-rise':
          health.rise = parseCount(value, 1, 100);
          break;
        case 'health-expect':
          health.expect = parseStatusRanges(value);
          break;
        case 'affinity':
          s.affinity = parseAffinity(value);
          break;
        case 'public':
          s.public = parsePublic(value);
          break;
        case 'timeout':
          s.timeoutMs = parseDuration(value, DURATION_BOUNDS.timeout);
          break;
        case 'retries':
          s.retries = parseCount(value, 0, 10);
          break;
        case 'balancer':
          if (value !== 'p2c' && value !== 'round-robin') throw new Error('expected p2c or round-robin');
          s.balancer = value;
          break;
        case 'allow-pin-header':
          s.allowPinHeader = parseBool(value);
          break;
        case 'hsts-max-age':
          s.hstsMaxAge = parseCount(value, 0, 63_072_000);
          break;
        case 'tls-secret':
          s.tlsSecret = parseSecretRef(value);
          break;
        case 'protocol':
          s.protocol = parseProtocol(value);
          break;
        case 'expose':
          s.hidden = parseExpose(value);
          break;
        default:
          throw new Error(`unknown setting; known: ${SETTING_KEYS.join(', ')}`);
      }
    } catch (err) {
      errors.push({ key: clip(key), value: clip(value), reason: (err as Error).message });
    }
  }
  s.health = Object.freeze(health);
  return { settings: Object.freeze(s), errors };
}
