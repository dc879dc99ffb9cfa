// How Wharf authenticates to the apiserver: in-cluster service account (token re-read as the kubelet
// rotates it), a kubeconfig (kubeconfig.ts: tokens, token files, client certificates, basic auth and
// exec plugins), or explicit URLs with a token file and CA file.

import { readFile } from 'node:fs/promises';
import { type Clock, systemClock } from './clock.ts';
import { ExecCredentials, kubeconfigFiles, readKubeconfig, resolveContext } from './kubeconfig.ts';

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
  /** Path to the kubeconfig file; default `$KUBECONFIG` (files merged) or `~/.kube/config`. */
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
 * A kubeconfig's contexts as targets. Exec plugins run once here, so a broken plugin fails the
 * start; their tokens are fetched again as they expire or after a 401. A client certificate an exec
 * plugin returns is read here, once: a new one takes a restart (as before, with client-node).
 */
export async function kubeconfigTargets(
  o: KubeconfigOptions = {},
  clock: Clock = systemClock,
): Promise<ApiServerTarget[]> {
  const kc = readKubeconfig(kubeconfigFiles(o.path));
  const names = o.contexts?.length ? o.contexts : [kc.currentContext];
  const targets: ApiServerTarget[] = [];
  for (const name of names) {
    if (!name)
      throw new Error(`kubeconfig ${kc.files.join(':')} has no current-context; name one with --context`);
    const ctx = resolveContext(kc, name);
    let tls: TlsOptions = {
      ...(ctx.tls.ca ? { ca: ctx.tls.ca } : {}),
      ...(ctx.tls.cert ? { cert: ctx.tls.cert, key: ctx.tls.key } : {}),
      ...(ctx.tls.insecure ? { rejectUnauthorized: false } : {}),
      ...(ctx.tls.servername ? { servername: ctx.tls.servername } : {}),
    };
    let credentials: Credentials;
    const a = ctx.auth;
    switch (a.kind) {
      case 'token':
        credentials = staticTokenCredentials(a.token, tls);
        break;
      case 'token-file': {
        const file = new TokenFile(a.path, clock);
        await file.get();
        credentials = tokenFileCredentials(file, tls);
        break;
      }
      case 'basic': {
        const header = `Basic ${Buffer.from(`${a.username}:${a.password}`).toString('base64')}`;
        credentials = { tls, authorization: async () => header };
        break;
      }
      case 'exec': {
        const plugin = new ExecCredentials(a.exec, ctx.clusterInfo, clock);
        const first = await plugin.get();
        if (first.cert && first.key) tls = { ...tls, cert: first.cert, key: first.key };
        credentials = {
          tls,
          async authorization() {
            const r = await plugin.get();
            return r.token ? `Bearer ${r.token}` : undefined;
          },
          invalidate: () => plugin.invalidate(),
        };
        break;
      }
      default:
        credentials = { tls, authorization: async () => undefined };
    }
    const urls = o.apiservers?.length ? o.apiservers : [ctx.server];
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
