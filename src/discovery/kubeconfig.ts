// A kubeconfig reader: what Wharf needs to reach an apiserver from a kubeconfig, as kubectl reads it
// (client-go's clientcmd): several files in KUBECONFIG merged (the first file that names a cluster,
// user or context wins, and the first current-context), paths relative to the file that holds them,
// and these ways to authenticate: a token, a token file, a client certificate and key (files or
// data), a username and password, and exec credential plugins (client.authentication.k8s.io v1 and
// v1beta1: kubelogin, aws-iam-authenticator, gke-gcloud-auth-plugin...).
//
// Our own rather than @kubernetes/client-node's KubeConfig, which was 57 MB of the image's 94 MB of
// production dependencies for this one job. Not supported (a clear error instead): `auth-provider`
// (removed from kubectl for gcp and azure; for oidc use an exec plugin such as kubelogin) and
// `proxy-url`.

import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { Clock } from './clock.ts';

/** The TLS side of a context, in the shape credentials.ts passes to undici. */
export interface KubeTls {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly insecure?: boolean;
  readonly servername?: string;
}

export interface ExecConfig {
  readonly apiVersion: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env: readonly { readonly name: string; readonly value: string }[];
  readonly interactiveMode?: string;
  readonly provideClusterInfo: boolean;
  readonly installHint?: string;
}

/** How a context's user authenticates (besides a client certificate, which is in `tls`). */
export type KubeAuth =
  | { readonly kind: 'none' }
  | { readonly kind: 'token'; readonly token: string }
  | { readonly kind: 'token-file'; readonly path: string }
  | { readonly kind: 'basic'; readonly username: string; readonly password: string }
  | { readonly kind: 'exec'; readonly exec: ExecConfig };

export interface KubeContext {
  readonly name: string;
  readonly server: string;
  readonly tls: KubeTls;
  readonly auth: KubeAuth;
  /** What an exec plugin gets as spec.cluster when it asks for it (provideClusterInfo). */
  readonly clusterInfo: Record<string, unknown>;
}

type Entry = Record<string, unknown>;
interface Named {
  readonly entry: Entry;
  /** Directory of the file the entry came from: relative paths are relative to it. */
  readonly dir: string;
}

export interface Kubeconfig {
  readonly files: readonly string[];
  readonly currentContext?: string;
  readonly clusters: ReadonlyMap<string, Named>;
  readonly users: ReadonlyMap<string, Named>;
  readonly contexts: ReadonlyMap<string, Named>;
}

/** The files kubectl reads: the given path, else each of $KUBECONFIG, else ~/.kube/config. */
export function kubeconfigFiles(
  path: string | undefined,
  env: Readonly<Record<string, string | undefined>> = process.env,
): string[] {
  const expand = (p: string) => (p === '~' || p.startsWith('~/') ? join(homedir(), p.slice(1)) : p);
  if (path) return [expand(path)];
  const list = (env.KUBECONFIG ?? '').split(':').filter(Boolean);
  return list.length > 0 ? list.map(expand) : [join(homedir(), '.kube', 'config')];
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** Reads and merges kubeconfig files. A missing file in a KUBECONFIG list is skipped, as kubectl does. */
export function readKubeconfig(files: readonly string[]): Kubeconfig {
  const clusters = new Map<string, Named>();
  const users = new Map<string, Named>();
  const contexts = new Map<string, Named>();
  let currentContext: string | undefined;
  let read = 0;
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if (files.length > 1 && (err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new Error(`kubeconfig ${file}: ${(err as Error).message}`);
    }
    read++;
    let doc: Entry;
    try {
      doc = (parseYaml(text) ?? {}) as Entry;
    } catch (err) {
      throw new Error(`kubeconfig ${file}: not YAML: ${(err as Error).message}`);
    }
    const dir = dirname(resolve(file));
    const add = (into: Map<string, Named>, list: unknown, key: string) => {
      if (list === undefined || list === null) return;
      if (!Array.isArray(list)) throw new Error(`kubeconfig ${file}: ${key}s must be a list`);
      for (const item of list as Entry[]) {
        const name = str(item?.name);
        if (!name) throw new Error(`kubeconfig ${file}: a ${key} without a name`);
        if (!into.has(name)) into.set(name, { entry: (item[key] ?? {}) as Entry, dir });
      }
    };
    add(clusters, doc.clusters, 'cluster');
    add(users, doc.users, 'user');
    add(contexts, doc.contexts, 'context');
    currentContext ??= str(doc['current-context']);
  }
  if (read === 0) throw new Error(`kubeconfig: none of ${files.join(', ')} exists`);
  return { files, currentContext, clusters, users, contexts };
}

function readPath(dir: string, p: string, what: string): string {
  const full = isAbsolute(p) ? p : join(dir, p);
  try {
    return readFileSync(full, 'utf8');
  } catch (err) {
    throw new Error(`${what} ${full}: ${(err as Error).message}`);
  }
}

function base64(v: string, what: string): string {
  const text = Buffer.from(v, 'base64').toString('utf8');
  if (!text) throw new Error(`${what} is not base64 data`);
  return text;
}

/** Data (base64) or a file path, whichever the entry has; undefined when neither. */
function dataOrFile(n: Named, dataKey: string, fileKey: string, what: string): string | undefined {
  const data = str(n.entry[dataKey]);
  if (data) return base64(data, `${what} (${dataKey})`);
  const file = str(n.entry[fileKey]);
  return file ? readPath(n.dir, file, what) : undefined;
}

function execConfig(n: Named, user: string): ExecConfig {
  const e = n.entry.exec as Entry;
  const apiVersion = str(e.apiVersion);
  if (
    apiVersion !== 'client.authentication.k8s.io/v1' &&
    apiVersion !== 'client.authentication.k8s.io/v1beta1'
  )
    throw new Error(
      `user "${user}": exec apiVersion ${apiVersion ?? '(none)'} is not client.authentication.k8s.io/v1 or v1beta1`,
    );
  const command = str(e.command);
  if (!command) throw new Error(`user "${user}": exec has no command`);
  return {
    apiVersion,
    // A command with a slash is relative to the kubeconfig file (client-go); a bare name is looked up in PATH.
    command: command.includes('/') && !isAbsolute(command) ? join(n.dir, command) : command,
    args: Array.isArray(e.args) ? (e.args as unknown[]).map(String) : [],
    env: Array.isArray(e.env)
      ? (e.env as Entry[]).map((x) => ({ name: String(x.name), value: String(x.value ?? '') }))
      : [],
    interactiveMode: str(e.interactiveMode),
    provideClusterInfo: e.provideClusterInfo === true,
    installHint: str(e.installHint),
  };
}

/** One context, resolved: server, TLS material (files read) and how to authenticate. */
export function resolveContext(kc: Kubeconfig, name: string): KubeContext {
  const ctx = kc.contexts.get(name);
  if (!ctx) throw new Error(`kubeconfig has no context "${name}"`);
  const clusterName = str(ctx.entry.cluster);
  const cluster = clusterName ? kc.clusters.get(clusterName) : undefined;
  if (!cluster)
    throw new Error(
      `context "${name}" names no cluster${clusterName ? ` ("${clusterName}" is not defined)` : ''}`,
    );
  const server = str(cluster.entry.server);
  if (!server) throw new Error(`cluster "${clusterName}" has no server`);
  if (str(cluster.entry['proxy-url']))
    throw new Error(`cluster "${clusterName}": proxy-url is not supported; reach the apiserver directly`);
  const userName = str(ctx.entry.user);
  const user = userName ? kc.users.get(userName) : undefined;
  if (userName && !user) throw new Error(`context "${name}" names user "${userName}", which is not defined`);
  const ca = dataOrFile(
    cluster,
    'certificate-authority-data',
    'certificate-authority',
    `cluster "${clusterName}" CA`,
  );
  const tls: KubeTls = {
    ...(ca ? { ca } : {}),
    ...(cluster.entry['insecure-skip-tls-verify'] === true ? { insecure: true } : {}),
    ...(str(cluster.entry['tls-server-name']) ? { servername: str(cluster.entry['tls-server-name']) } : {}),
  };
  let auth: KubeAuth = { kind: 'none' };
  let withCert = tls;
  if (user) {
    const u = user.entry;
    if (u['auth-provider'])
      throw new Error(
        `user "${userName}": auth-provider "${str((u['auth-provider'] as Entry).name) ?? '?'}" is not supported; use an exec credential plugin (for OIDC, kubelogin)`,
      );
    const cert = dataOrFile(
      user,
      'client-certificate-data',
      'client-certificate',
      `user "${userName}" client certificate`,
    );
    const key = dataOrFile(user, 'client-key-data', 'client-key', `user "${userName}" client key`);
    if (Boolean(cert) !== Boolean(key))
      throw new Error(`user "${userName}": a client certificate needs its key, and a key its certificate`);
    if (cert && key) withCert = { ...tls, cert, key };
    if (str(u.token)) auth = { kind: 'token', token: str(u.token) as string };
    else if (str(u.tokenFile)) {
      const p = str(u.tokenFile) as string;
      auth = { kind: 'token-file', path: isAbsolute(p) ? p : join(user.dir, p) };
    } else if (u.exec) auth = { kind: 'exec', exec: execConfig(user, userName as string) };
    else if (str(u.username))
      auth = { kind: 'basic', username: str(u.username) as string, password: String(u.password ?? '') };
  }
  const clusterInfo: Record<string, unknown> = {
    server,
    ...(str(cluster.entry['tls-server-name'])
      ? { 'tls-server-name': str(cluster.entry['tls-server-name']) }
      : {}),
    ...(cluster.entry['insecure-skip-tls-verify'] === true ? { 'insecure-skip-tls-verify': true } : {}),
    ...(ca ? { 'certificate-authority-data': Buffer.from(ca).toString('base64') } : {}),
    ...(cluster.entry.extensions ? { config: cluster.entry.extensions } : {}),
  };
  return { name, server: server.replace(/\/+$/, ''), tls: withCert, auth, clusterInfo };
}

/** What an exec plugin answered. */
export interface ExecResult {
  readonly token?: string;
  readonly cert?: string;
  readonly key?: string;
  /** Epoch ms; undefined: valid until the apiserver says otherwise (401). */
  readonly expiresAt?: number;
}

/**
 * Runs an exec credential plugin (non-interactively, at most one run at a time) and keeps its answer
 * until it expires (minus a little margin) or a 401 invalidates it.
 */
export class ExecCredentials {
  private current?: ExecResult;
  private running?: Promise<ExecResult>;

  constructor(
    private readonly exec: ExecConfig,
    private readonly clusterInfo: Record<string, unknown>,
    private readonly clock: Clock,
    private readonly timeoutMs = 60_000,
  ) {}

  async get(): Promise<ExecResult> {
    const c = this.current;
    if (c && (c.expiresAt === undefined || c.expiresAt - 10_000 > this.clock.now())) return c;
    this.running ??= this.run().finally(() => {
      this.running = undefined;
    });
    this.current = await this.running;
    return this.current;
  }

  invalidate(): void {
    this.current = undefined;
  }

  private run(): Promise<ExecResult> {
    const e = this.exec;
    if (e.interactiveMode === 'Always')
      return Promise.reject(
        new Error(
          `exec plugin ${e.command} needs a terminal (interactiveMode: Always); Wharf runs without one`,
        ),
      );
    const info = {
      apiVersion: e.apiVersion,
      kind: 'ExecCredential',
      spec: { interactive: false, ...(e.provideClusterInfo ? { cluster: this.clusterInfo } : {}) },
    };
    const env: NodeJS.ProcessEnv = { ...process.env, KUBERNETES_EXEC_INFO: JSON.stringify(info) };
    for (const v of e.env) env[v.name] = v.value;
    return new Promise((resolvePlugin, reject) => {
      execFile(
        e.command,
        [...e.args],
        { env, timeout: this.timeoutMs, maxBuffer: 1024 * 1024, encoding: 'utf8' },
        (err, stdout, stderr) => {
          if (err) {
            const hint =
              (err as NodeJS.ErrnoException).code === 'ENOENT' && e.installHint ? `\n${e.installHint}` : '';
            const tail = String(stderr).trim().split('\n').slice(-3).join(' | ');
            reject(
              new Error(
                `exec plugin ${e.command} failed: ${err.message.split('\n')[0]}${tail ? `: ${tail}` : ''}${hint}`,
              ),
            );
            return;
          }
          try {
            resolvePlugin(this.parse(String(stdout)));
          } catch (parseErr) {
            reject(new Error(`exec plugin ${e.command}: ${(parseErr as Error).message}`));
          }
        },
      );
    });
  }

  private parse(stdout: string): ExecResult {
    let doc: Entry;
    try {
      doc = JSON.parse(stdout) as Entry;
    } catch {
      throw new Error('did not print an ExecCredential (JSON)');
    }
    if (doc.kind !== 'ExecCredential')
      throw new Error(`printed kind ${String(doc.kind)}, not ExecCredential`);
    if (doc.apiVersion !== this.exec.apiVersion)
      throw new Error(
        `printed apiVersion ${String(doc.apiVersion)}, the kubeconfig asked for ${this.exec.apiVersion}`,
      );
    const s = (doc.status ?? {}) as Entry;
    const token = str(s.token);
    const cert = str(s.clientCertificateData);
    const key = str(s.clientKeyData);
    if (!token && !(cert && key))
      throw new Error('ExecCredential status has neither a token nor a client certificate and key');
    let expiresAt: number | undefined;
    if (str(s.expirationTimestamp)) {
      expiresAt = Date.parse(str(s.expirationTimestamp) as string);
      if (Number.isNaN(expiresAt))
        throw new Error(`bad expirationTimestamp "${String(s.expirationTimestamp)}"`);
    }
    return {
      ...(token ? { token } : {}),
      ...(cert && key ? { cert, key } : {}),
      ...(expiresAt !== undefined ? { expiresAt } : {}),
    };
  }
}
