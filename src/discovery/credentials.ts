// How Wharf authenticates to the apiserver: in-cluster service account (token re-read as the kubelet
// rotates it), a kubeconfig (via @kubernetes/client-node's KubeConfig, so tokens, token files,
// client certificates and exec plugins all work), or explicit URLs with a token file and CA file.

import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { type Clock, systemClock } from './clock.ts';

export interface TlsOptions {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  /** false = `insecure-skip-tls-verify`. */
  readonly rejectUnauthorized?: boolean;
  readonly servername?: string;
}

export interface Credentials {
  readonly tls?: TlsOptions;
  /** The `Authorization` header for the next request, if any. */
  authorization(): Promise<string | undefined>;
  /** Called after a 401: the next `authorization()` reloads instead of using a cached value. */
  invalidate?(): void;
}

export interface ApiServerTarget {
  readonly url: string;
  readonly credentials: Credentials;
}

export const NO_CREDENTIALS: Credentials = { authorization: async () => undefined };

/**
 * A bearer token read from a file, re-read at most every `maxAgeMs` (60 s, as client-go and
 * client-node do) or at once after a 401, so projected service-account tokens can rotate.
 */
export class TokenFile {
  private token: string | undefined;
  private readAt = Number.NEGATIVE_INFINITY;

  constructor(
    readonly path: string,
    private readonly clock: Clock = systemClock,
    private readonly maxAgeMs = 60_000,
  ) {}

  async get(): Promise<string> {
    if (this.token === undefined || this.clock.now() - this.readAt >= this.maxAgeMs) {
      const text = (await readFile(this.path, 'utf8')).trim();
      if (!text) throw new Error(`token file ${this.path} is empty`);
      this.token = text;
      this.readAt = this.clock.now();
    }
    return this.token;
  }

  invalidate(): void {
    this.readAt = Number.NEGATIVE_INFINITY;
  }
}

export function tokenFileCredentials(file: TokenFile, tls?: TlsOptions): Credentials {
  return {
    tls,
    authorization: async () => `Bearer ${await file.get()}`,
    invalidate: () => file.invalidate(),
  };
}

export function staticTokenCredentials(token: string | undefined, tls?: TlsOptions): Credentials {
  return { tls, authorization: async () => (token ? `Bearer ${token}` : undefined) };
}

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface InClusterOptions {
  /** Directory holding `token` and `ca.crt`. */
  dir?: string;
  env?: Readonly<Record<string, string | undefined>>;
  clock?: Clock;
}

/** The service account of the pod Wharf runs in. */
export async function inClusterTargets(o: InClusterOptions = {}): Promise<ApiServerTarget[]> {
  const env = o.env ?? process.env;
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT_HTTPS ?? env.KUBERNETES_SERVICE_PORT;
  if (!host || !port)
    throw new Error('not running in a cluster: KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not set');
  const dir = o.dir ?? SERVICE_ACCOUNT_DIR;
  const ca = await readFile(`${dir}/ca.crt`, 'utf8');
  const token = new TokenFile(`${dir}/token`, o.clock);
  await token.get(); // fail early and clearly when the token is missing
  const h = host.includes(':') ? `[${host}]` : host;
  return [{ url: `https://${h}:${port}`, credentials: tokenFileCredentials(token, { ca }) }];
}

export interface ExplicitOptions {
  apiservers: readonly string[];
  tokenFile?: string;
  caFile?: string;
  insecureSkipTlsVerify?: boolean;
  clock?: Clock;
}

/** `--apiserver URL[,URL...]` with `--token-file` and `--ca-file`. One credential set for every URL. */
export async function explicitTargets(o: ExplicitOptions): Promise<ApiServerTarget[]> {
  const tls: TlsOptions = {
    ...(o.caFile ? { ca: await readFile(o.caFile, 'utf8') } : {}),
    ...(o.insecureSkipTlsVerify ? { rejectUnauthorized: false } : {}),
  };
  let creds: Credentials = { tls, authorization: async () => undefined };
  if (o.tokenFile) {
    const file = new TokenFile(o.tokenFile, o.clock);
    await file.get();
    creds = tokenFileCredentials(file, tls);
  }
  return o.apiservers.map((url) => ({ url: url.replace(/\/+$/, ''), credentials: creds }));
}

export interface KubeconfigOptions {
  /** Path to the kubeconfig file; default `$KUBECONFIG` or `~/.kube/config` (client-node's default). */
  path?: string;
  /**
   * Context names. The first is the one used; more (or a cluster with several `server`s listed
   * in `apiservers`) give failover targets, each with its own credentials.
   */
  contexts?: readonly string[];
  /** Override the server URLs (the HA masters) while keeping the context's credentials. */
  apiservers?: readonly string[];
}

/**
 * `users[].user.tokenFile` of a kubeconfig. client-node 1.4.0 only knows a `token-file` key (which
 * kubectl does not write) and reads it once, so Wharf reads this one itself, with rotation.
 */
function tokenFilesOf(path: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  const file = path ?? (process.env.KUBECONFIG?.split(':')[0] || join(homedir(), '.kube', 'config'));
  try {
    const doc = parseYaml(readFileSync(file, 'utf8')) as {
      users?: { name?: string; user?: { tokenFile?: string } }[];
    };
    for (const u of doc?.users ?? []) if (u?.name && u.user?.tokenFile) out.set(u.name, u.user.tokenFile);
  } catch {
    // client-node reports unreadable kubeconfigs itself.
  }
  return out;
}

/** Kubeconfig through client-node 1.4.0's KubeConfig, loaded lazily (it is large). */
export async function kubeconfigTargets(
  o: KubeconfigOptions = {},
  clock: Clock = systemClock,
): Promise<ApiServerTarget[]> {
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  if (o.path) kc.loadFromFile(o.path);
  else kc.loadFromDefault();
  const tokenFiles = tokenFilesOf(o.path);
  const contexts = o.contexts?.length ? o.contexts : [kc.getCurrentContext()];
  const targets: ApiServerTarget[] = [];
  for (const name of contexts) {
    const ctx = kc.getContextObject(name);
    if (!ctx) throw new Error(`kubeconfig has no context "${name}"`);
    // A KubeConfig per context, so applying auth for one never reads another's user.
    const one = new k8s.KubeConfig();
    one.loadFromString(kc.exportConfig());
    one.setCurrentContext(name);
    const cluster = one.getCurrentCluster();
    if (!cluster) throw new Error(`context "${name}" names no cluster`);
    const probe: { ca?: unknown; cert?: unknown; key?: unknown; headers?: Record<string, string> } = {};
    await one.applyToHTTPSOptions(probe as never);
    const tls: TlsOptions = {
      ...(probe.ca ? { ca: String(probe.ca) } : {}),
      ...(probe.cert ? { cert: String(probe.cert) } : {}),
      ...(probe.key ? { key: String(probe.key) } : {}),
      ...(cluster.skipTLSVerify ? { rejectUnauthorized: false } : {}),
      ...(cluster.tlsServerName ? { servername: cluster.tlsServerName } : {}),
    };
    const user = one.getCurrentUser();
    const tokenFile =
      user && !user.token && !user.exec && !user.authProvider ? tokenFiles.get(user.name) : undefined;
    const credentials: Credentials = tokenFile
      ? tokenFileCredentials(new TokenFile(tokenFile, clock), tls)
      : {
          tls,
          // client-node re-runs exec plugins and refreshes auth providers as their credentials expire.
          async authorization() {
            const opts: { headers?: Record<string, string> } = { headers: {} };
            await one.applyToHTTPSOptions(opts as never);
            const h = opts.headers ?? {};
            return h.Authorization ?? h.authorization;
          },
        };
    const urls = o.apiservers?.length ? o.apiservers : [cluster.server];
    for (const url of urls) targets.push({ url: url.replace(/\/+$/, ''), credentials });
  }
  return targets;
}

/** The `kubernetes:` config section / CLI flags, resolved to apiserver targets. */
export interface KubernetesConnection {
  inCluster?: boolean;
  kubeconfig?: string;
  context?: string | readonly string[];
  apiservers?: readonly string[];
  tokenFile?: string;
  caFile?: string;
  insecureSkipTlsVerify?: boolean;
  /** In-cluster only, for tests: where the service-account files are, and the environment. */
  serviceAccountDir?: string;
  env?: Readonly<Record<string, string | undefined>>;
  clock?: Clock;
}

export async function resolveTargets(c: KubernetesConnection): Promise<ApiServerTarget[]> {
  if (c.inCluster) {
    const t = await inClusterTargets({ dir: c.serviceAccountDir, env: c.env, clock: c.clock });
    if (!c.apiservers?.length) return t;
    return c.apiservers.map((url) => ({ url, credentials: t[0].credentials }));
  }
  if (c.kubeconfig || c.context) {
    const contexts = typeof c.context === 'string' ? c.context.split(',') : c.context;
    return kubeconfigTargets({ path: c.kubeconfig, contexts, apiservers: c.apiservers }, c.clock);
  }
  if (c.apiservers?.length)
    return explicitTargets({
      apiservers: c.apiservers,
      tokenFile: c.tokenFile,
      caFile: c.caFile,
      insecureSkipTlsVerify: c.insecureSkipTlsVerify,
      clock: c.clock,
    });
  throw new Error('kubernetes: set in-cluster, kubeconfig or apiservers');
}
