// The config file, validated strictly: an unknown key is an error, not a silent no-op. Values keep
// their user-facing form here (durations as strings); load.ts turns them into the resolved Config.

import { z } from 'zod';
import { DNS_SUBDOMAIN, NAMESPACE_NAME, SETTING_KEYS } from '../routing/settings.ts';

const settingValue = z.union([z.string(), z.number(), z.boolean()]);

/** The per-project settings of DESIGN.md §3, without the `wharf.io/` prefix. */
const settingsShape = Object.fromEntries(SETTING_KEYS.map((k) => [k, settingValue.optional()])) as Record<
  (typeof SETTING_KEYS)[number],
  z.ZodOptional<typeof settingValue>
>;

const hostPort = z.string().min(1);
const duration = z.string().min(1);

const instanceSchema = z.record(
  z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'port names are DNS labels'),
  hostPort,
);

const projectSchema = z.strictObject({
  ...settingsShape,
  /** Optional explicit port order; otherwise the order ports first appear in `instances`. */
  ports: z
    .array(z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'port names are DNS labels'))
    .optional(),
  instances: z.record(z.string(), instanceSchema.nullable()).default({}),
});

/** Where the Kubernetes projects come from (issue 3). Absent: static projects only. */
const kubernetesSchema = z.strictObject({
  'in-cluster': z.boolean().optional(),
  kubeconfig: z.string().min(1).optional(),
  /** A context name, or several (comma list or array) to fail over between. */
  context: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
  apiservers: z
    .array(z.string().regex(/^https?:\/\/[^\s/]+\/?$/, 'expected http(s)://host:port'))
    .min(1)
    .optional(),
  'token-file': z.string().min(1).optional(),
  'ca-file': z.string().min(1).optional(),
  'insecure-skip-tls-verify': z.boolean().optional(),
  namespaces: z
    .array(z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'namespace names are DNS labels'))
    .min(1)
    .optional(),
  /** Route endpoints on loopback addresses: only for local setups (the demo, tests) whose pods are local processes. */
  'allow-loopback': z.boolean().optional(),
  /** A watch with no event (bookmarks count) for this long is restarted. Default 90s. */
  watchdog: duration.optional(),
});

export const configSchema = z.strictObject({
  listen: hostPort.default('127.0.0.1:8080'),
  admin: hostPort.default('127.0.0.1:9901'),
  'admin-token': z.string().min(16, 'use at least 16 characters').optional(),
  /**
   * Host names the admin port answers to besides its own address and `localhost` (a Service name,
   * say): any other Host is refused, so a web page cannot reach it by DNS rebinding.
   */
  'admin-hosts': z
    .array(z.string().regex(/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/i, 'expected a host name'))
    .default([]),
  domain: z
    .string()
    .regex(
      /^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.?$/i,
      'expected a DNS name',
    )
    .default('wharf.local'),
  tier: z.enum(['internal', 'edge']).default('internal'),
  'instance-header': z.boolean().optional(),
  defaults: z.strictObject(settingsShape).default({}),
  timeouts: z
    .strictObject({
      connect: duration.default('2s'),
      'request-headers': duration.default('10s'),
      'client-idle': duration.default('60s'),
      'upstream-idle': duration.default('4s'),
      'body-idle': duration.default('60s'),
      /** Longest wait for one of an instance's pooled connections before a 503. */
      queue: duration.default('5s'),
      drain: duration.default('10s'),
    })
    .default({
      connect: '2s',
      'request-headers': '10s',
      'client-idle': '60s',
      'upstream-idle': '4s',
      'body-idle': '60s',
      queue: '5s',
      drain: '10s',
    }),
  limits: z
    .strictObject({
      'max-header-bytes': z.number().int().min(1024).max(1_048_576).default(16_384),
      'max-headers': z.number().int().min(8).max(1000).default(100),
      'max-body-bytes': z.number().int().min(0).default(0),
      /** Request bodies are read up to this size before an upstream connection is taken (0: stream). */
      'body-buffer-bytes': z.number().int().min(0).max(16_777_216).default(65_536),
      /** Concurrent connections per client address (0: no limit). */
      'client-connections': z.number().int().min(0).default(0),
      /** Requests per second per client address, with a burst of twice that (0: no limit). */
      'client-rate': z.number().min(0).default(0),
    })
    .default({
      'max-header-bytes': 16_384,
      'max-headers': 100,
      'max-body-bytes': 0,
      'body-buffer-bytes': 65_536,
      'client-connections': 0,
      'client-rate': 0,
    }),
  /**
   * CIDRs whose x-forwarded-* and x-wharf-* headers are believed (edge tier), and which carry many
   * clients' requests (either tier: not held to upstream.uploads-per-client).
   */
  'trusted-proxies': z.array(z.string()).default([]),
  /**
   * The proxy listeners (and `tls.redirect-http`) read a PROXY protocol header (v1 or v2) from
   * peers in `trusted-proxies`, which must send one; other peers are served as they are.
   */
  'proxy-protocol': z.boolean().default(false),
  tls: z
    .strictObject({
      certificates: z
        .array(
          z.strictObject({
            cert: z.string().min(1),
            key: z.string().min(1),
            /** Host patterns (`*.apps.example.com`); default: the certificate's own DNS names. */
            hosts: z.array(z.string()).optional(),
          }),
        )
        .default([]),
      /**
       * `kubernetes.io/tls` Secrets (edge tier with Kubernetes discovery), watched one by one by name.
       * `namespace` may be left out only when `kubernetes.namespaces` names exactly one namespace.
       */
      secrets: z
        .array(
          z.strictObject({
            namespace: z.string().regex(NAMESPACE_NAME, 'namespace names are DNS labels').optional(),
            name: z.string().regex(DNS_SUBDOMAIN, "Secret names are lowercase letters, digits, '-' and '.'"),
            hosts: z.array(z.string()).optional(),
          }),
        )
        .default([]),
      'min-version': z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
      /** A plain-HTTP listener that answers every request with a redirect to https. */
      'redirect-http': hostPort.optional(),
    })
    .optional(),
  edge: z
    .strictObject({
      /** Project whose instances are the internal tier's replicas; public requests go there, Host kept. */
      'forward-to': z.string().optional(),
    })
    .default({}),
  upstream: z
    .strictObject({
      connections: z.number().int().min(1).max(10_000).default(128),
      'retry-budget': z.number().min(0).max(1).default(0.2),
      'retry-budget-min': z.number().int().min(0).default(10),
      /** Uploads over limits.body-buffer-bytes one client address may stream to one instance (0: any). */
      'uploads-per-client': z.number().int().min(0).default(16),
    })
    .default({ connections: 128, 'retry-budget': 0.2, 'retry-budget-min': 10, 'uploads-per-client': 16 }),
  /** The active health checker as a whole (per-project probe settings are under `defaults:`). */
  health: z
    .strictObject({
      /** Probes in flight at once across every project (each holds one socket). */
      concurrency: z.number().int().min(1).max(10_000).default(256),
      /** Probe period of an idle instance (no request within its project's interval): 1s to 10m. */
      'idle-interval': duration.default('20s'),
    })
    .default({ concurrency: 256, 'idle-interval': '20s' }),
  projects: z.record(z.string(), projectSchema.nullable()).default({}),
  kubernetes: kubernetesSchema.optional(),
  logs: z
    .strictObject({
      /** Directory for access.log, health.log and wharf.log (the node log directory); default stdout. */
      dir: z.string().min(1).optional(),
      access: z.boolean().default(true),
      health: z.boolean().default(true),
      'probe-failures': z.boolean().default(false),
      'buffer-bytes': z.number().int().min(65_536).optional(),
      level: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
    })
    .default({ access: true, health: true, 'probe-failures': false, level: 'info' }),
});

export type ConfigFile = z.infer<typeof configSchema>;

/** A zod 4 schema's definition, as far as `keysAt` reads it. */
interface Def {
  readonly type: string;
  readonly shape?: Record<string, { _zod: { def: Def } }>;
  readonly innerType?: { _zod: { def: Def } };
  readonly valueType?: { _zod: { def: Def } };
  readonly element?: { _zod: { def: Def } };
  readonly options?: readonly { _zod: { def: Def } }[];
}

/**
 * The keys the mapping at `path` accepts (for "did you mean" on unknown keys), or undefined where
 * the config has no fixed set of keys (project names, instance names).
 */
export function keysAt(path: readonly PropertyKey[]): readonly string[] | undefined {
  let def: Def | undefined = (configSchema as unknown as { _zod: { def: Def } })._zod.def;
  const unwrap = (d: Def | undefined): Def | undefined => {
    let x = d;
    while (x?.innerType) x = x.innerType._zod.def;
    if (x?.type === 'union') return x.options?.map((o) => unwrap(o._zod.def)).find((o) => o?.shape);
    return x;
  };
  for (const seg of path) {
    def = unwrap(def);
    if (!def) return undefined;
    if (def.shape) def = def.shape[String(seg)]?._zod.def;
    else if (def.valueType) def = def.valueType._zod.def;
    else if (def.element) def = def.element._zod.def;
    else return undefined;
  }
  def = unwrap(def);
  return def?.shape ? Object.keys(def.shape) : undefined;
}
