// Certificates from `kubernetes.io/tls` Secrets on the edge tier: which Secrets are wanted (the config's
// `tls.secrets` plus `wharf.io/tls-secret` of the public projects in the route table), and what the
// CertificateStore should serve from what the SecretWatcher knows of them.
//
// Static stability, as for the routing table: whatever goes wrong with a Secret that is still named
// (invalid data, wrong type, deleted, access revoked), the certificate it last served keeps serving
// and a Problem says why. Only when nothing names the Secret any more does its certificate go.

import type { TlsSecretConfig } from '../config/load.ts';
import type { SecretView } from '../discovery/secrets.ts';
import { TLS_SECRET_TYPE } from '../discovery/secrets.ts';
import type { Problem } from '../model/problem.ts';
import type { ProjectRoute, RouteTable } from '../model/routes.ts';
import { type CertificateStore, type CertSource, CertSourceError } from '../proxy/certificates.ts';

/** One use of a Secret: a `tls.secrets` entry or a project's annotation. */
export interface TlsSecretRef {
  /** `<namespace>/<name>`. */
  readonly key: string;
  /** Who names it, for Problems: `tls.secrets.0`, `service shop/web`, `project shop`. */
  readonly by: string;
  /** The field that names it: `tls.secrets.0`, `wharf.io/tls-secret`, `projects.shop.tls-secret`. */
  readonly field: string;
  /** Explicit host patterns (config only). */
  readonly hosts?: readonly string[];
  /** A project's `<project>.<domain>`: the certificate serves only that name and those below it. */
  readonly scope?: string;
  /** May serve clients whose SNI matches nothing: operator certificates yes, project ones no. */
  readonly fallback: boolean;
}

/**
 * The Secrets wanted now: the config's first (in order; they win ties), then public projects'
 * annotations sorted by project name, so every replica serves the same certificate for a name.
 * Pure. Only projects in the table count: non-public projects and losers of name conflicts are not
 * served by the edge, so their Secrets are not read.
 */
export function tlsSecretRefs(
  configured: readonly TlsSecretConfig[],
  table: RouteTable,
  domain: string,
): TlsSecretRef[] {
  const projects: TlsSecretRef[] = [];
  for (const route of table.projects.values()) {
    const ref = projectSecretRef(route, domain);
    if (ref) projects.push(ref);
  }
  return [...configuredRefs(configured), ...sortedByScope(projects)];
}

/** The config's `tls.secrets`, in order. */
export function configuredRefs(configured: readonly TlsSecretConfig[]): TlsSecretRef[] {
  return configured.map((s, i) => ({
    key: `${s.namespace}/${s.name}`,
    by: `tls.secrets.${i}`,
    field: `tls.secrets.${i}`,
    ...(s.hosts ? { hosts: s.hosts } : {}),
    fallback: true,
  }));
}

/** The Secret one project's `tls-secret` names, if any (undefined too when no namespace applies). */
export function projectSecretRef(route: ProjectRoute, domain: string): TlsSecretRef | undefined {
  const ref = route.settings.tlsSecret;
  if (!ref) return undefined;
  const fromService = route.origin.includes('/');
  // Config projects must name the namespace (load.ts checks); Services default to their own.
  const namespace = ref.namespace ?? (fromService ? route.origin.slice(0, route.origin.indexOf('/')) : null);
  if (namespace === null) return undefined;
  return {
    key: `${namespace}/${ref.name}`,
    by: fromService ? `service ${route.origin}` : `project ${route.name}`,
    field: fromService ? 'wharf.io/tls-secret' : `projects.${route.name}.tls-secret`,
    scope: `${route.name}.${domain}`,
    fallback: false,
  };
}

function sortedByScope(refs: TlsSecretRef[]): TlsSecretRef[] {
  return refs.sort((a, b) => (a.scope! < b.scope! ? -1 : a.scope! > b.scope! ? 1 : 0));
}

function sameRef(a: TlsSecretRef | undefined, b: TlsSecretRef | undefined): boolean {
  return (
    a === b || (a !== undefined && b !== undefined && a.key === b.key && a.by === b.by && a.scope === b.scope)
  );
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function decode(view: SecretView, field: 'crt' | 'key'): string {
  const b64 = view[field];
  const name = field === 'crt' ? 'tls.crt' : 'tls.key';
  if (b64 === undefined || b64 === '')
    throw new CertSourceError(`the Secret has no ${name}`, 'secret-incomplete');
  if (!BASE64.test(b64)) throw new CertSourceError(`${name} is not base64`, 'bad-certificate');
  return Buffer.from(b64, 'base64').toString('utf8');
}

/** The PEM pair of a Secret, or a CertSourceError naming what is wrong with it. Pure. */
export function readTlsSecret(view: SecretView | undefined): { cert: string; key: string } {
  if (!view || view.state === 'pending')
    throw new CertSourceError('the Secret has not been read yet', 'secret-pending');
  if (view.state === 'absent')
    throw new CertSourceError(
      view.deleted ? 'the Secret was deleted' : 'there is no such Secret',
      'secret-not-found',
    );
  if (view.type !== TLS_SECRET_TYPE)
    throw new CertSourceError(
      `the Secret is of type "${view.type ?? ''}", not ${TLS_SECRET_TYPE}`,
      'secret-wrong-type',
    );
  return { cert: decode(view, 'crt'), key: decode(view, 'key') };
}

function sourceName(ref: TlsSecretRef): string {
  return `secret ${ref.key} (${ref.by})`;
}

/**
 * CertSources for the refs. A Secret not read yet gives no source (there is nothing to keep serving
 * and nothing wrong yet). The version makes the store rebuild a context only when the Secret (or how
 * it is used) changed.
 */
export function secretCertSources(
  refs: readonly TlsSecretRef[],
  view: (key: string) => SecretView | undefined,
): CertSource[] {
  const out: CertSource[] = [];
  for (const ref of refs) {
    const v = view(ref.key);
    if (!v || v.state === 'pending') continue;
    out.push({
      name: sourceName(ref),
      object: `secret ${ref.key}`,
      field: ref.field,
      ...(ref.hosts ? { hosts: ref.hosts } : {}),
      ...(ref.scope ? { scope: ref.scope } : {}),
      fallback: ref.fallback,
      version: JSON.stringify([v.state, v.deleted ?? false, v.resourceVersion ?? '', ref.hosts, ref.scope]),
      read: () => readTlsSecret(v),
    });
  }
  return out;
}

/** Problems of Secrets the apiserver refuses to show (RBAC): one per Secret, naming every user. */
export function secretAccessProblems(
  refs: readonly TlsSecretRef[],
  view: (key: string) => SecretView | undefined,
): Problem[] {
  const users = new Map<string, TlsSecretRef[]>();
  for (const r of refs) users.set(r.key, [...(users.get(r.key) ?? []), r]);
  const problems: Problem[] = [];
  for (const [key, list] of users) {
    const err = view(key)?.error;
    if (!err) continue;
    const hint =
      err.code === 403
        ? "; grant list and watch on it to the edge tier's ServiceAccount (docs/deploy.md)"
        : '';
    problems.push({
      object: `secret ${key}`,
      field: list[0].field,
      severity: 'error',
      code: err.code === 403 ? 'secret-forbidden' : 'secret-unreadable',
      message: `cannot read the Secret (named by ${list.map((r) => r.by).join(', ')}): ${err.message}${hint}`,
    });
  }
  return problems;
}

export interface SecretWatcherLike {
  setWanted(keys: Iterable<string>): void;
  view(key: string): SecretView | undefined;
  onChange(cb: () => void): () => void;
}

/**
 * Keeps the CertificateStore in step with the wanted Secrets. `tableChanged` after every route
 * table swap (cheap when the refs did not change); Secret changes arrive from the watcher. Updates
 * are applied in a microtask, so one burst of changes rebuilds the certificates once and never runs
 * inside a table rebuild.
 */
export class SecretCertificates {
  private refs: readonly TlsSecretRef[] = [];
  private refsKey = '';
  /** Project name -> the Secret its annotation names: kept per project, so a swap costs O(changed). */
  private readonly projectRefs = new Map<string, TlsSecretRef>();
  private queued = false;
  private settled = false;
  private lastProblems = '[]';
  private table?: RouteTable;
  private secrets: readonly TlsSecretConfig[];
  private readonly unsubscribe: () => void;

  constructor(
    private readonly o: {
      readonly watcher: SecretWatcherLike;
      readonly store: CertificateStore;
      readonly secrets: readonly TlsSecretConfig[];
      readonly domain: string;
      /** Access Problems (the store reports certificate Problems itself). */
      readonly onProblems: (problems: readonly Problem[]) => void;
    },
  ) {
    this.secrets = o.secrets;
    this.unsubscribe = o.watcher.onChange(() => this.schedule());
  }

  /** The config's `tls.secrets` after a reload. */
  setConfigured(secrets: readonly TlsSecretConfig[]): void {
    this.secrets = secrets;
    if (this.table) this.update();
  }

  /**
   * After a table swap. `changed` names the projects that may differ from the previous table (as the
   * swap knows them); without it, or on the first table, every project is looked at.
   */
  tableChanged(table: RouteTable, changed?: Iterable<string>): void {
    const first = this.table === undefined;
    this.table = table;
    let dirty = first || changed === undefined;
    if (dirty) {
      this.projectRefs.clear();
      for (const route of table.projects.values()) {
        const ref = projectSecretRef(route, this.o.domain);
        if (ref) this.projectRefs.set(route.name, ref);
      }
    } else {
      for (const name of changed!) {
        const route = table.projects.get(name);
        const ref = route ? projectSecretRef(route, this.o.domain) : undefined;
        if (sameRef(ref, this.projectRefs.get(name))) continue;
        dirty = true;
        if (ref) this.projectRefs.set(name, ref);
        else this.projectRefs.delete(name);
      }
    }
    if (dirty) this.update();
  }

  private update(): void {
    const refs = [...configuredRefs(this.secrets), ...sortedByScope([...this.projectRefs.values()])];
    const key = JSON.stringify(refs);
    if (key === this.refsKey) return;
    this.refs = refs;
    this.refsKey = key;
    this.o.watcher.setWanted(refs.map((r) => r.key));
    this.schedule();
  }

  /**
   * What a starting replica still waits for, once its sources are synced: `tls: waiting for Secrets
   * ...` while wanted Secrets are pending, then never again. Only a starting replica waits, so it
   * never serves fewer certificates than the others; later, a newly named Secret that the apiserver
   * is slow to give must not take every replica out of its Service at once.
   */
  waitingAtStart(): string | undefined {
    if (this.settled) return undefined;
    const pending = this.pending();
    if (pending.length > 0) return `tls: waiting for Secrets ${pending.join(', ')}`;
    this.settled = true;
    return undefined;
  }

  /** Wanted Secrets not read yet and not refused: a replica is not ready before they are. */
  pending(): string[] {
    const out = new Set<string>();
    for (const r of this.refs) {
      const v = this.o.watcher.view(r.key);
      if (!v || (v.state === 'pending' && !v.error)) out.add(r.key);
    }
    return [...out];
  }

  private schedule(): void {
    if (this.queued) return;
    this.queued = true;
    queueMicrotask(() => {
      this.queued = false;
      this.apply();
    });
  }

  private apply(): void {
    const view = (k: string) => this.o.watcher.view(k);
    this.o.store.setDynamicSources(secretCertSources(this.refs, view));
    const problems = secretAccessProblems(this.refs, view);
    const text = JSON.stringify(problems);
    if (text === this.lastProblems) return;
    this.lastProblems = text;
    this.o.onProblems(problems);
  }

  close(): void {
    this.unsubscribe();
  }
}
