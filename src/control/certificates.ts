// What the TLS listener serves, kept up to date: the config's certificate files (reloaded when they
// change) and, on an edge with Kubernetes discovery, the `kubernetes.io/tls` Secrets named by
// `tls.secrets` and by public projects, which follow every table swap. Its Problems go to the
// board under `tls` and `tls-secrets`; they never touch the route table. Also the plain-HTTP
// listener that redirects to HTTPS (`tls.redirect-http`).

import type http from 'node:http';
import type net from 'node:net';
import type { TlsConfig, TlsSecretConfig } from '../config/load.ts';
import type { ApiServerTarget } from '../discovery/credentials.ts';
import { SecretWatcher, type SecretWatcherOptions } from '../discovery/secrets.ts';
import type { Problem } from '../model/problem.ts';
import type { RouteTable, TableSwapped } from '../model/routes.ts';
import { CertificateStore, fileSource } from '../proxy/certificates.ts';
import { type ProxyAcceptOptions, proxyProtocolServer } from '../proxy/proxy-accept.ts';
import { createRedirectServer } from '../proxy/server.ts';
import type { Clock } from '../util/clock.ts';
import { listen } from '../util/listen.ts';
import type { Log } from '../util/log.ts';
import type { ProblemBoard } from './problems.ts';
import { SecretCertificates } from './tls-secrets.ts';

export interface CertificatesOptions {
  readonly clock: Clock;
  readonly log: Log;
  /** Where its Problems go: `tls` (files), `tls-secrets` (Secrets the apiserver refuses). */
  readonly problems: ProblemBoard;
}

export class Certificates {
  readonly store: CertificateStore;
  /** The `kubernetes.io/tls` Secrets watched, once `watchSecrets` ran. */
  secretWatcher?: SecretWatcher;
  private secrets?: SecretCertificates;
  /** The plain-HTTP listener redirecting to HTTPS, once started. */
  redirect?: http.Server;
  /** What accepts the redirect port's connections when the PROXY protocol is on. */
  private redirectAcceptor?: net.Server;

  /** Loads every certificate file; throws if one cannot be served (nothing starts half-configured). */
  constructor(
    readonly tls: TlsConfig,
    private readonly o: CertificatesOptions,
  ) {
    const files = tls.certificates.map((x) => fileSource(x.cert, x.key, x.hosts));
    const onChange = (problems: readonly Problem[], loaded: number) => {
      o.log(problems.length ? 'error' : 'info', 'certificates loaded', { loaded, problems: problems.length });
      o.problems.set('tls', problems);
    };
    this.store = new CertificateStore(files, { minVersion: tls.minVersion, clock: o.clock, onChange });
    this.store.loadOrThrow();
  }

  /** Serve from Secrets too: the configured ones and those `table`'s public projects name. */
  watchSecrets(
    servers: readonly ApiServerTarget[],
    domain: string,
    table: RouteTable,
    tuning: Omit<SecretWatcherOptions, 'servers' | 'log'>,
  ): void {
    const { random, silenceMs, watchTimeoutSeconds, backoffInitialMs, backoffMaxMs } = tuning;
    const { relistBackoffInitialMs, relistBackoffMaxMs } = tuning;
    this.secretWatcher = new SecretWatcher({
      servers,
      log: this.o.log,
      random,
      silenceMs,
      watchTimeoutSeconds,
      backoffInitialMs,
      backoffMaxMs,
      relistBackoffInitialMs,
      relistBackoffMaxMs,
    });
    this.secrets = new SecretCertificates({
      watcher: this.secretWatcher,
      store: this.store,
      secrets: this.tls.secrets,
      domain,
      onProblems: (problems) => this.o.problems.set('tls-secrets', problems),
    });
    this.secrets.tableChanged(table);
  }

  /** A table swap: the Secrets public projects name may have changed. */
  swapped(s: TableSwapped): void {
    this.secrets?.tableChanged(s.next, s.changed);
  }

  /** A reloaded `tls.secrets`. */
  setConfigured(secrets: readonly TlsSecretConfig[]): void {
    this.secrets?.setConfigured(secrets);
  }

  /** What holds a starting replica back (see ReadinessInput.gates). */
  readonly gates: readonly (() => string | undefined)[] = [
    () => this.secrets?.waitingAtStart(),
    () => (this.store.size === 0 ? 'tls: no certificate to serve yet' : undefined),
  ];

  /** What the TLS listener needs. */
  get server(): { readonly store: CertificateStore; readonly minVersion: TlsConfig['minVersion'] } {
    return { store: this.store, minVersion: this.tls.minVersion };
  }

  /**
   * Once the TLS listener listens on `httpsPort`: watch the files, start the redirect listener
   * (behind the PROXY protocol too when the front listener takes it).
   */
  async start(httpsPort: number, proxyProtocol?: ProxyAcceptOptions): Promise<void> {
    this.store.watch();
    const r = this.tls.redirectHttp;
    if (!r) return;
    this.redirect = createRedirectServer(httpsPort);
    this.redirectAcceptor = proxyProtocol ? proxyProtocolServer(this.redirect, proxyProtocol) : undefined;
    await listen(this.redirectAcceptor ?? this.redirect, r.host, r.port);
  }

  /** At stop, before the drain: no more reloads, no more redirects. */
  close(): void {
    this.store.close();
    this.redirect?.close();
    this.redirectAcceptor?.close();
    this.redirect?.closeAllConnections();
  }

  /** After the drain: stop watching Secrets. */
  async stop(): Promise<void> {
    this.secrets?.close();
    await this.secretWatcher?.stop();
  }
}
