// Certificates for the TLS listener, chosen by SNI and reloaded without a restart. A certificate that
// fails to load on reload is a Problem and the previous one keeps serving; new connections pick up a
// good replacement at once, established ones keep theirs. Sources are files from the config (fixed)
// and Kubernetes Secrets (dynamic: they come and go with the config and the Services that name them).

import { createPrivateKey, X509Certificate } from 'node:crypto';
import { type FSWatcher, readFileSync, statSync, watch } from 'node:fs';
import { dirname } from 'node:path';
import tls, { type SecureContext } from 'node:tls';
import type { Problem } from '../model/problem.ts';
import type { Clock } from '../util/clock.ts';

export interface CertSource {
  /** Unique among the sources; names it in Problems: a file path pair or `secret <ns>/<name> (...)`. */
  readonly name: string;
  /** Problems are about this object and field (default `certificate <name>`, `tls.certificates`). */
  readonly object?: string;
  readonly field?: string;
  readonly hosts?: readonly string[];
  /**
   * Serve only names at or below this one (a project's `<project>.<domain>`). A Service annotation
   * names a certificate for its own project: whatever else the certificate covers, it must not take
   * over another project's hostnames. A wildcard SAN that covers the name itself serves that name.
   */
  readonly scope?: string;
  /** May serve clients whose SNI matches no certificate (or who send none). Default true. */
  readonly fallback?: boolean;
  /**
   * When set and equal to the loaded certificate's, a reload reuses it without reading: a Secret's
   * resourceVersion, so unrelated changes do not rebuild every TLS context.
   */
  readonly version?: string;
  /** Loads the PEM pair; throws when it cannot be read (a CertSourceError says which Problem code). */
  read(): { cert: string; key: string };
  /** Files to watch for changes, if any. */
  readonly files?: readonly string[];
}

/** A load failure with its own Problem code (`secret-not-found`, ...); others are `bad-certificate`. */
export class CertSourceError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

interface Loaded {
  readonly source: CertSource;
  readonly context: SecureContext;
  readonly hosts: readonly string[];
  readonly fingerprint: string;
  readonly notAfter: Date;
  /** Kept for the listener's default context (clients that send no SNI never reach sniCallback). */
  readonly pem: { readonly cert: string; readonly key: string };
}

export function fileSource(cert: string, key: string, hosts?: readonly string[]): CertSource {
  return {
    name: `${cert} + ${key}`,
    hosts,
    files: [cert, key],
    read: () => ({ cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') }),
  };
}

/**
 * The hosts of `names` that lie within `scope`: names equal to it or below it (`*.shop.D` too), and
 * `scope` itself when a one-label wildcard covers it (`*.D` covers `shop.D`). Pure.
 */
export function scopeHosts(names: readonly string[], scope: string): string[] {
  const s = scope.toLowerCase().replace(/\.$/, '');
  const parent = s.slice(s.indexOf('.') + 1);
  const out = new Set<string>();
  for (const raw of names) {
    const n = raw.toLowerCase();
    if (n === s || n.endsWith(`.${s}`)) out.add(n);
    else if (n.startsWith('*.') && s.includes('.') && n.slice(2) === parent) out.add(s);
  }
  return [...out];
}

/** DNS names of a certificate: its subjectAltName DNS entries, else its CN. */
function certificateHosts(x509: X509Certificate): string[] {
  const san = x509.subjectAltName;
  if (san) {
    const names = san
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.startsWith('DNS:'))
      .map((s) => s.slice(4).toLowerCase());
    if (names.length > 0) return names;
  }
  const cn = /CN=([^\n,]+)/.exec(x509.subject)?.[1];
  return cn ? [cn.toLowerCase()] : [];
}

export class CertificateStore {
  private loaded: Loaded[] = [];
  private fallbackContext?: SecureContext;
  private fallbackFingerprint?: string;
  private fallbackListeners: ((pem: { cert: string; key: string }) => void)[] = [];
  /** The sources given at construction (config files); `setDynamicSources` adds to these. */
  private readonly base: readonly CertSource[];
  private exact = new Map<string, SecureContext>();
  private wildcard = new Map<string, SecureContext>();
  private problems: Problem[] = [];
  private watchers: FSWatcher[] = [];
  private poll?: NodeJS.Timeout;
  private mtimes = new Map<string, number>();
  private reloadTimer?: NodeJS.Timeout;

  constructor(
    private sources: readonly CertSource[],
    private readonly opts: {
      readonly minVersion: 'TLSv1.2' | 'TLSv1.3';
      readonly clock: Clock;
      readonly onChange?: (problems: readonly Problem[], loaded: number) => void;
    },
  ) {
    this.base = sources;
  }

  /** First load: every certificate must be good, or the listener does not start. */
  loadOrThrow(): void {
    this.reload();
    if (this.problems.length > 0) throw new Error(this.problems.map((p) => p.message).join('; '));
  }

  private build(source: CertSource): Loaded {
    const { cert, key } = source.read();
    const x509 = new X509Certificate(cert);
    if (!x509.checkPrivateKey(createPrivateKey(key)))
      throw new Error('the key does not match the certificate');
    const notAfter = new Date(x509.validTo);
    if (notAfter.getTime() < this.opts.clock.now())
      throw new Error(`the certificate expired on ${x509.validTo}`);
    const context = tls.createSecureContext({ cert, key, minVersion: this.opts.minVersion });
    let hosts = (source.hosts ?? certificateHosts(x509)).map((h) => h.toLowerCase());
    if (source.scope !== undefined) {
      hosts = scopeHosts(hosts, source.scope);
      if (hosts.length === 0)
        throw new CertSourceError(
          `the certificate names none of ${source.scope} and the names below it`,
          'certificate-hosts',
        );
    }
    return { source, context, hosts, fingerprint: x509.fingerprint256, notAfter, pem: { cert, key } };
  }

  /** Reloads every source; a source that fails keeps its previous certificate. */
  reload(): readonly Problem[] {
    const previous = new Map(this.loaded.map((l) => [l.source.name, l]));
    const next: Loaded[] = [];
    const problems: Problem[] = [];
    for (const source of this.sources) {
      const old = previous.get(source.name);
      if (old && source.version !== undefined && old.source.version === source.version) {
        next.push(old);
        continue;
      }
      try {
        next.push(this.build(source));
      } catch (err) {
        if (old) next.push(old);
        problems.push({
          object: source.object ?? `certificate ${source.name}`,
          field: source.field ?? 'tls.certificates',
          severity: 'error',
          code: err instanceof CertSourceError ? err.code : 'bad-certificate',
          message: `cannot load ${source.name}: ${(err as Error).message}${old ? '; the previous certificate keeps serving' : ''}`,
        });
      }
    }
    const changed =
      next.length !== this.loaded.length ||
      next.some((l, i) => l.fingerprint !== this.loaded[i]?.fingerprint);
    this.loaded = next;
    this.index();
    const problemsChanged = JSON.stringify(problems) !== JSON.stringify(this.problems);
    this.problems = problems;
    if (changed || problemsChanged) this.opts.onChange?.(problems, next.length);
    return problems;
  }

  /** Replaces the set of sources (Kubernetes Secrets come and go) and reloads. */
  setSources(sources: readonly CertSource[]): readonly Problem[] {
    this.sources = sources;
    return this.reload();
  }

  /** The construction-time sources (config files) followed by `dynamic` (Secrets), reloaded. */
  setDynamicSources(dynamic: readonly CertSource[]): readonly Problem[] {
    return this.setSources([...this.base, ...dynamic]);
  }

  /** How many certificates are serving. */
  get size(): number {
    return this.loaded.length;
  }

  private index(): void {
    const exact = new Map<string, SecureContext>();
    const wildcard = new Map<string, SecureContext>();
    // Earlier certificates win a tie, like the order of `tls.certificates`.
    for (const l of this.loaded) {
      for (const h of l.hosts) {
        if (h.startsWith('*.')) {
          if (!wildcard.has(h.slice(2))) wildcard.set(h.slice(2), l.context);
        } else if (!exact.has(h)) exact.set(h, l.context);
      }
    }
    this.exact = exact;
    this.wildcard = wildcard;
    const fallback = this.loaded.find((l) => l.source.fallback !== false);
    this.fallbackContext = fallback?.context;
    if (fallback && fallback.fingerprint !== this.fallbackFingerprint) {
      this.fallbackFingerprint = fallback.fingerprint;
      for (const f of this.fallbackListeners) f(fallback.pem);
    }
  }

  /**
   * Calls `f` now and whenever the fallback certificate changes. A client that sends no server name
   * (an IP address, an old client) never reaches `sniCallback`: node answers it with the listener's
   * default context, which the front server keeps equal to the fallback through this.
   */
  onFallback(f: (pem: { cert: string; key: string }) => void): void {
    this.fallbackListeners.push(f);
    const fallback = this.loaded.find((l) => l.source.fallback !== false);
    if (fallback) f(fallback.pem);
  }

  /**
   * The context for an SNI name: exact, then one-label wildcard, then the first certificate that may
   * be a fallback (a project's own certificate never is: it would tell strangers the project exists).
   */
  contextFor(servername: string | undefined): SecureContext | undefined {
    if (servername) {
      const name = servername.toLowerCase().replace(/\.$/, '');
      const hit = this.exact.get(name);
      if (hit) return hit;
      const dot = name.indexOf('.');
      if (dot !== -1) {
        const wild = this.wildcard.get(name.slice(dot + 1));
        if (wild) return wild;
      }
    }
    return this.fallbackContext;
  }

  readonly sniCallback = (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void): void => {
    const ctx = this.contextFor(servername);
    if (ctx) cb(null, ctx);
    else cb(new Error('no certificate'));
  };

  currentProblems(): readonly Problem[] {
    return this.problems;
  }

  summary(): Array<{ name: string; hosts: readonly string[]; notAfter: string }> {
    return this.loaded.map((l) => ({
      name: l.source.name,
      hosts: l.hosts,
      notAfter: l.notAfter.toISOString(),
    }));
  }

  /**
   * Watches the certificate files' directories (renames, Kubernetes Secret volume swaps) and also
   * polls their mtimes, since some filesystems do not deliver events.
   */
  watch(pollMs = 5000): void {
    const files = this.sources.flatMap((s) => s.files ?? []);
    const schedule = () => {
      clearTimeout(this.reloadTimer);
      this.reloadTimer = setTimeout(() => this.reload(), 100);
    };
    for (const dir of new Set(files.map((f) => dirname(f)))) {
      try {
        const w = watch(dir, schedule);
        w.on('error', () => {});
        this.watchers.push(w);
      } catch {}
    }
    const stamp = (f: string) => {
      try {
        return statSync(f).mtimeMs;
      } catch {
        return -1;
      }
    };
    for (const f of files) this.mtimes.set(f, stamp(f));
    this.poll = setInterval(() => {
      let changed = false;
      for (const f of files) {
        const m = stamp(f);
        if (m !== this.mtimes.get(f)) {
          this.mtimes.set(f, m);
          changed = true;
        }
      }
      if (changed) schedule();
    }, pollMs);
    this.poll.unref();
  }

  close(): void {
    for (const w of this.watchers) w.close();
    clearInterval(this.poll);
    clearTimeout(this.reloadTimer);
  }
}
