// The route table: what the data plane reads, once per request. Built by routing/ as one immutable
// object and swapped whole by the control plane; nothing writes into it afterwards.

import type { ProjectSettings, UpstreamProtocol } from './settings.ts';

/** The role of a Wharf process (DESIGN.md §6): serve every project, or only public ones at the edge. */
export type Tier = 'internal' | 'edge';

/**
 * Stable key of one routable endpoint: `<project>/<port>/<instance>@<host>:<port>`. Health state is
 * keyed by it and survives table swaps; a pod recreated at a new address is a new endpoint.
 */
export type EndpointId = string;

export interface Endpoint {
  readonly id: EndpointId;
  readonly project: string;
  /** Port name. */
  readonly port: string;
  readonly instance: string;
  readonly host: string;
  readonly portNumber: number;
  /** `host:port`, with IPv6 hosts bracketed; the undici origin is `http://${address}`. */
  readonly address: string;
  readonly draining: boolean;
  /** Stable affinity token of (instance, port): derived from the pod UID or name, never stored. */
  readonly token: string;
  /** Address probed by the active health check (the health port of the same instance). */
  readonly probeAddress: string;
  /** The node the instance runs on (EndpointSlice `nodeName`), when known: its pods fail together. */
  readonly node?: string;
}

export interface PortRoute {
  readonly project: string;
  readonly port: string;
  /** Sorted by instance name so every replica sees the same order (consistent hashing relies on it). */
  readonly endpoints: readonly Endpoint[];
  readonly byInstance: ReadonlyMap<string, Endpoint>;
  readonly settings: ProjectSettings;
  /** How Wharf speaks to these instances (the port's `appProtocol`, else the `protocol` setting). */
  readonly protocol: UpstreamProtocol;
}

export interface ProjectRoute {
  readonly name: string;
  readonly origin: string;
  readonly defaultPort: string;
  readonly ports: ReadonlyMap<string, PortRoute>;
  readonly settings: ProjectSettings;
}

export interface RouteTable {
  /** Increases with every swap. */
  readonly version: number;
  readonly projects: ReadonlyMap<string, ProjectRoute>;
  /**
   * Edge tier forwarding to the internal tier: the name of the project whose instances are the
   * internal replicas, and its route (undefined while that project is unknown). Requests for public
   * projects go there with their Host kept; the internal tier routes by convention.
   */
  readonly forwardTo?: string;
  readonly forward?: PortRoute;
}

/**
 * One swap of the route table, as the control plane announces it. Whoever keeps state per endpoint
 * (health checks, upstream pools, certificates, metrics) reconciles from this in proportion to the
 * change: `changed` names the projects whose route object differs (every other project's route is
 * the same object in both tables), and the endpoint lists are what came and went, the edge's
 * forward route included.
 */
export interface TableSwapped {
  readonly prev: RouteTable;
  readonly next: RouteTable;
  readonly changed: readonly string[];
  readonly added: readonly Endpoint[];
  readonly removed: readonly Endpoint[];
  /** Endpoints in `next`, the forward route's included. */
  readonly endpoints: number;
}
