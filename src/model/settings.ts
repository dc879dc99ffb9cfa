// Per-project settings after parsing (DESIGN.md §3). Durations are milliseconds.

export type Affinity =
  | { readonly kind: 'none' }
  | { readonly kind: 'cookie' }
  | { readonly kind: 'header'; readonly header: string }
  | { readonly kind: 'ip' };

export type BalancerKind = 'p2c' | 'round-robin';

/**
 * How Wharf speaks to a port's instances: HTTP/1.1, HTTP/2 in cleartext with prior knowledge (h2c,
 * what gRPC servers speak), or `auto`: the protocol the client used (HTTP/2 clients get h2c).
 */
export type UpstreamProtocol = 'http1' | 'h2c' | 'auto';

/** `wharf.io/protocol`: one value for every port, and per-port values over it. */
export interface ProtocolSetting {
  readonly all: UpstreamProtocol;
  readonly ports: ReadonlyMap<string, UpstreamProtocol>;
}

export interface StatusRange {
  readonly from: number;
  readonly to: number;
}

/**
 * What an active probe asks: an HTTP GET of `path`, a TCP connect, or the standard gRPC health
 * check (`grpc.health.v1.Health/Check` over h2c, as Envoy's `grpc_health_check` and Kubernetes'
 * `grpc:` probes ask it).
 */
export type HealthCheckKind = 'http' | 'tcp' | 'grpc';

export interface HealthCheckSettings {
  readonly check: HealthCheckKind;
  /** HTTP path to probe; `null` unless `check` is `http`. */
  readonly path: string | null;
  /** gRPC service asked about; `''` (the whole server) unless `check` is `grpc` with a name. */
  readonly grpcService: string;
  /** Port name probed; `null` means the routed port itself. */
  readonly port: string | null;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly fall: number;
  readonly rise: number;
  readonly expect: readonly StatusRange[];
}

/** A Secret named by `wharf.io/tls-secret: <name>` or `<namespace>/<name>`. */
export interface SecretRef {
  /** `null`: the namespace of the Service that names it. */
  readonly namespace: string | null;
  readonly name: string;
}

export interface ProjectSettings {
  readonly health: HealthCheckSettings;
  readonly affinity: Affinity;
  /** Edge exposure: `true` for every port, a list of port names, or `false`. */
  readonly public: boolean | readonly string[];
  /** Upstream response (headers) timeout. */
  readonly timeoutMs: number;
  /** Extra attempts for idempotent requests. */
  readonly retries: number;
  readonly balancer: BalancerKind;
  /** Edge tier only: allow pinning with the `x-wharf-instance` header from outside. */
  readonly allowPinHeader: boolean;
  /** Edge tier only: `Strict-Transport-Security` max-age in seconds, 0 for none. */
  readonly hstsMaxAge: number;
  /** Edge tier with TLS only: the `kubernetes.io/tls` Secret serving this project's hostnames. */
  readonly tlsSecret: SecretRef | null;
  /** Upstream protocol per port (a Service port's `appProtocol` wins over it). */
  readonly protocol: ProtocolSetting;
  /**
   * `wharf.io/expose`: ports never routed (admin, metrics), still probed when `health-port` names
   * them. `true`: every port (the project is not routed at all); `false`: none.
   */
  readonly hidden: boolean | readonly string[];
}
