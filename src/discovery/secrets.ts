// SecretWatcher: keeps the `kubernetes.io/tls` Secrets the edge tier needs, and only those.
//
// Why one list/watch per named Secret (`fieldSelector=metadata.name=<name>` in its namespace) and not
// one watch of every TLS Secret in a namespace (`fieldSelector=type=kubernetes.io/tls`):
//
// - Least privilege. The apiserver treats a list/watch with a `metadata.name` field selector as a
//   request for that one object, so an RBAC rule with `resourceNames` authorizes it (the Kubernetes
//   RBAC docs say so for list and watch). The edge can then be granted exactly the Secrets named in
//   its config, not read access to every Secret of a namespace. A namespace-wide watch needs the
//   latter, and a proxy facing the internet that can read every Secret is what turned
//   ingress-nginx's admission-webhook bug (CVE-2025-1974) into a cluster takeover.
// - Memory and exposure. A type-filtered watch still streams the key of every TLS Secret in the
//   namespace into this process (cert-manager keeps one per Certificate); here only wanted Secrets
//   arrive at all, and only their `tls.crt`/`tls.key` are kept.
// - Cost. Each named Secret is one long-lived watch request (the apiserver filters its events like
//   any selector's). An edge names a handful (wildcards, a few per team), so that is cheap; an edge
//   with thousands of per-project Secrets would be better served by one namespace watch, a trade
//   left for when someone has it.
//
// Secrets named by Service annotations are not known in advance, so RBAC for them is granted per
// project namespace (docs/deploy.md); the watches are still one per named Secret.
//
// Each Secret is one Reflector: resume, relist on 410, backoff, failover and the silence watchdog
// come with it. A view per Secret says what is known: pending (not listed yet), present (with its
// data), or absent (listed and not there, or deleted), plus the last client error (403: not allowed).

import { ApiClient } from './apiclient.ts';
import type { Clock } from './clock.ts';
import type { ApiServerTarget } from './credentials.ts';
import type { KubeObject } from './k8s-types.ts';
import { type LogFn, Reflector } from './reflector.ts';

export const TLS_SECRET_TYPE = 'kubernetes.io/tls';

export interface SecretView {
  readonly state: 'pending' | 'present' | 'absent';
  /** Absent after having been present: the Secret was deleted. */
  readonly deleted?: boolean;
  readonly resourceVersion?: string;
  readonly type?: string;
  /** `tls.crt` / `tls.key` as on the wire (base64); no other data key is kept. */
  readonly crt?: string;
  readonly key?: string;
  /** The last error that retrying will not fix (401, 403, ...); cleared when a request succeeds. */
  readonly error?: { readonly code: number; readonly message: string };
}

export interface SecretWatcherOptions {
  servers: readonly ApiServerTarget[];
  clock?: Clock;
  random?: () => number;
  log?: LogFn;
  silenceMs?: number;
  watchTimeoutSeconds?: readonly [number, number];
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  relistBackoffInitialMs?: number;
  relistBackoffMaxMs?: number;
}

/** What is cached of a Secret: its identity, type and the two keys a certificate needs. */
export function trimSecret(o: KubeObject): KubeObject {
  const data = (o.data ?? {}) as Record<string, string>;
  const kept: Record<string, string> = {};
  if (typeof data['tls.crt'] === 'string') kept['tls.crt'] = data['tls.crt'];
  if (typeof data['tls.key'] === 'string') kept['tls.key'] = data['tls.key'];
  return {
    metadata: {
      name: o.metadata?.name,
      namespace: o.metadata?.namespace,
      resourceVersion: o.metadata?.resourceVersion,
    },
    type: o.type,
    data: kept,
  };
}

function viewOf(obj: KubeObject | undefined, prev: SecretView): SecretView {
  if (!obj) return prev.state === 'present' ? { state: 'absent', deleted: true } : { state: 'absent' };
  const data = obj.data as Record<string, string>;
  return {
    state: 'present',
    resourceVersion: obj.metadata.resourceVersion,
    type: typeof obj.type === 'string' ? obj.type : undefined,
    crt: data['tls.crt'],
    key: data['tls.key'],
  };
}

interface Entry {
  readonly reflector: Reflector;
  view: SecretView;
}

export class SecretWatcher {
  private readonly client: ApiClient;
  private readonly entries = new Map<string, Entry>();
  private readonly listeners = new Set<() => void>();
  private notifyQueued = false;
  private stopped = false;

  constructor(private readonly o: SecretWatcherOptions) {
    this.client = new ApiClient(o.servers, { clock: o.clock, silenceMs: o.silenceMs });
  }

  /** Watches exactly these Secrets (`<namespace>/<name>`): new ones start, the others stop. */
  setWanted(keys: Iterable<string>): void {
    if (this.stopped) return;
    const want = new Set(keys);
    for (const [key, e] of this.entries) {
      if (want.has(key)) continue;
      this.entries.delete(key);
      e.reflector.stop().catch(() => {});
    }
    for (const key of want) if (!this.entries.has(key)) this.add(key);
    this.notify();
  }

  private add(key: string): void {
    const slash = key.indexOf('/');
    const namespace = key.slice(0, slash);
    const name = key.slice(slash + 1);
    let entry: Entry | undefined;
    const update = (view: SecretView) => {
      if (!entry || this.entries.get(key) !== entry) return; // stopped meanwhile
      entry.view = view;
      this.notify();
    };
    const reflector = new Reflector({
      client: this.client,
      path: `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets`,
      fieldSelector: `metadata.name=${name}`,
      transform: trimSecret,
      onChanges: () => update(viewOf(reflector.objects.get(key), entry!.view)),
      // After a list the cache is exact: still nothing there means there is no such Secret.
      onListed: () => update(viewOf(reflector.objects.get(key), entry!.view)),
      onHealth: (problem, err) => {
        const { error, ...rest } = entry!.view;
        if (problem === null) {
          if (error) update(rest);
          return;
        }
        // Outages and 5xx are the apiserver's (discovery reports them); a refusal is this Secret's.
        if (err && !err.serverFault) update({ ...rest, error: { code: err.code, message: err.message } });
      },
      log: this.o.log,
      clock: this.o.clock,
      random: this.o.random,
      watchTimeoutSeconds: this.o.watchTimeoutSeconds,
      backoffInitialMs: this.o.backoffInitialMs,
      backoffMaxMs: this.o.backoffMaxMs,
      relistBackoffInitialMs: this.o.relistBackoffInitialMs,
      relistBackoffMaxMs: this.o.relistBackoffMaxMs,
    });
    entry = { reflector, view: { state: 'pending' } };
    this.entries.set(key, entry);
    reflector.start();
  }

  view(key: string): SecretView | undefined {
    return this.entries.get(key)?.view;
  }

  get keys(): readonly string[] {
    return [...this.entries.keys()];
  }

  /** Called (once per burst) whenever any view changes. */
  onChange(cb: () => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  private notify(): void {
    if (this.notifyQueued) return;
    this.notifyQueued = true;
    queueMicrotask(() => {
      this.notifyQueued = false;
      if (this.stopped) return;
      for (const cb of this.listeners) cb();
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const all = [...this.entries.values()];
    this.entries.clear();
    await Promise.all(all.map((e) => e.reflector.stop()));
    await this.client.close();
  }
}
