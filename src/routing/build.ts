// snapshot + conventions -> RouteTable + Problems. Pure: no I/O, no clock. A bad project or setting
// becomes a Problem and disables only itself; nothing here throws on user input.

import { createHash } from 'node:crypto';
import type { Problem } from '../model/problem.ts';
import type { Endpoint, PortRoute, ProjectRoute, RouteTable } from '../model/routes.ts';
import type { ProjectSettings } from '../model/settings.ts';
import type { ClusterSnapshot, InstanceRecord, ProjectChange, ProjectRecord } from '../model/snapshot.ts';
import { LayeredMap } from '../util/layered-map.ts';
import { exact, flat } from '../util/strings.ts';
import { DEFAULT_SETTINGS, parseSettings } from './settings.ts';

export type { ProjectChange };

export type Tier = 'internal' | 'edge';

export interface Conventions {
  readonly tier: Tier;
  /** Defaults applied under every project's own settings (config `defaults:`). */
  readonly defaults: ProjectSettings;
  /** Edge tier: the project whose instances are the internal tier (see RouteTable.forwardTo). */
  readonly forwardTo?: string;
}

export const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Affinity token: stable for (project, instance identity, port), opaque, and reveals no name. */
export function affinityToken(project: string, instance: InstanceRecord, port: string): string {
  return tokenOf(project, instance.uid ?? instance.name, port);
}

function tokenOf(project: string, identity: string, port: string): string {
  return createHash('sha256').update(`${project}\0${identity}\0${port}`).digest('base64url').slice(0, 16);
}

/**
 * One routable endpoint. Its affinity token (a SHA-256) is computed on first use: only affinity
 * picks read it, and hashing 50,000 endpoints at every initial sync would cost more than the rest of
 * the build. The object is frozen; the cached token lives in a private field, derived from fields
 * that never change, so every reader sees the same value.
 */
class RouteEndpoint implements Endpoint {
  #token: string | undefined;
  readonly #identity: string;

  constructor(
    readonly id: string,
    readonly project: string,
    readonly port: string,
    readonly instance: string,
    readonly host: string,
    readonly portNumber: number,
    readonly address: string,
    readonly draining: boolean,
    readonly probeAddress: string,
    identity: string,
    readonly node: string | undefined,
  ) {
    this.#identity = identity;
    Object.freeze(this);
  }

  get token(): string {
    this.#token ??= flat(tokenOf(this.project, this.#identity, this.port));
    return this.#token;
  }
}

/**
 * `byInstance` of a port route: a binary search over its endpoints (sorted by instance name), so
 * 10,000 routes do not each carry a hash table for a handful of instances.
 */
class InstanceIndex implements ReadonlyMap<string, Endpoint> {
  constructor(private readonly sorted: readonly Endpoint[]) {}

  get size(): number {
    return this.sorted.length;
  }

  get(instance: string): Endpoint | undefined {
    const a = this.sorted;
    let lo = 0;
    let hi = a.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const name = a[mid].instance;
      if (name === instance) return a[mid];
      if (name < instance) lo = mid + 1;
      else hi = mid - 1;
    }
    return undefined;
  }

  has(instance: string): boolean {
    return this.get(instance) !== undefined;
  }

  *entries(): MapIterator<[string, Endpoint]> {
    for (const e of this.sorted) yield [e.instance, e];
  }

  *keys(): MapIterator<string> {
    for (const e of this.sorted) yield e.instance;
  }

  *values(): MapIterator<Endpoint> {
    yield* this.sorted;
  }

  [Symbol.iterator](): MapIterator<[string, Endpoint]> {
    return this.entries();
  }

  forEach(
    fn: (value: Endpoint, key: string, map: ReadonlyMap<string, Endpoint>) => void,
    thisArg?: unknown,
  ): void {
    for (const e of this.sorted) fn.call(thisArg, e, e.instance, this);
  }
}

function buildPortRoute(
  project: ProjectRecord,
  port: string,
  settings: ProjectSettings,
  instances: readonly InstanceRecord[],
): PortRoute {
  const endpoints: Endpoint[] = [];
  for (const inst of instances) {
    const addr = inst.addresses[port];
    if (!addr) continue;
    // Stored for as long as the endpoint lives: flat strings, and one string when the probe goes to
    // the routed address itself (the usual case).
    const address = flat(formatAddress(addr.host, addr.port));
    const probe = settings.health.port ? inst.addresses[settings.health.port] : undefined;
    const probeAddress =
      probe && (probe.host !== addr.host || probe.port !== addr.port)
        ? flat(formatAddress(probe.host, probe.port))
        : address;
    endpoints.push(
      new RouteEndpoint(
        flat(`${project.name}/${port}/${inst.name}@${address}`),
        project.name,
        port,
        inst.name,
        addr.host,
        addr.port,
        address,
        inst.draining,
        probeAddress,
        inst.uid ?? inst.name,
        inst.node,
      ),
    );
  }
  endpoints.sort((a, b) => (a.instance < b.instance ? -1 : a.instance > b.instance ? 1 : 0));
  const sorted = Object.freeze(exact(endpoints));
  return Object.freeze({
    project: project.name,
    port,
    endpoints: sorted,
    byInstance: new InstanceIndex(sorted),
    settings,
  });
}

function exposedPorts(settings: ProjectSettings, ports: readonly string[], tier: Tier): readonly string[] {
  if (tier === 'internal' || settings.public === true) return ports;
  if (settings.public === false) return [];
  const pub = settings.public;
  return ports.filter((p) => pub.includes(p));
}

interface Built {
  readonly route: ProjectRoute | undefined;
  readonly problems: readonly Problem[];
}

function buildProject(project: ProjectRecord, conv: Conventions, asUpstream = false): Built {
  const problems: Problem[] = [];
  const object = project.source === 'kubernetes' ? `service ${project.origin}` : `project ${project.name}`;
  const { settings, errors } = parseSettings(project.settings, conv.defaults);
  for (const e of errors) {
    const field = project.source === 'kubernetes' ? `wharf.io/${e.key}` : `projects.${project.name}.${e.key}`;
    problems.push({
      object,
      field,
      severity: 'warning',
      code: 'bad-setting',
      message: `${field}: "${e.value}": ${e.reason}; using the default`,
    });
  }
  if (settings.health.port && !project.ports.includes(settings.health.port)) {
    problems.push({
      object,
      field: 'health-port',
      severity: 'warning',
      code: 'bad-setting',
      message: `health-port "${settings.health.port}" is not a port of the project; probing the routed port`,
    });
  }
  const seen = new Set<string>();
  const instances = project.instances.filter((inst) => {
    if (seen.has(inst.name)) {
      problems.push({
        object,
        severity: 'warning',
        code: 'duplicate-instance',
        message: `instance name "${inst.name}" appears twice; keeping the first`,
      });
      return false;
    }
    seen.add(inst.name);
    return true;
  });
  const names = asUpstream ? project.ports : exposedPorts(settings, project.ports, conv.tier);
  if (names.length === 0) return { route: undefined, problems };
  const ports = new Map<string, PortRoute>();
  for (const name of names) ports.set(name, buildPortRoute(project, name, settings, instances));
  const route: ProjectRoute = Object.freeze({
    name: project.name,
    origin: project.origin,
    defaultPort: names.includes('http') ? 'http' : names[0],
    ports,
    settings,
  });
  return { route, problems: Object.freeze(problems) };
}

/**
 * Memo of per-project results keyed by the ProjectRecord object and the conventions. Discovery
 * reuses the record object of an unchanged Service, so a rebuild costs work only for what changed.
 * A WeakMap keeps this invisible to callers: the output depends on the inputs alone.
 */
const memo = new WeakMap<ProjectRecord, { conv: Conventions; built: Built }>();

function buildProjectMemo(project: ProjectRecord, conv: Conventions): Built {
  const hit = memo.get(project);
  if (hit && hit.conv === conv) return hit.built;
  const built = buildProject(project, conv);
  memo.set(project, { conv, built });
  return built;
}

function compareClaims(a: ProjectRecord, b: ProjectRecord): number {
  // The config file wins over Kubernetes, then the older object, then a stable tie-break.
  if (a.source !== b.source) return a.source === 'config' ? -1 : 1;
  if (a.created !== b.created) return a.created < b.created ? -1 : 1;
  return a.origin < b.origin ? -1 : a.origin > b.origin ? 1 : 0;
}

function objectOf(p: ProjectRecord): string {
  return p.source === 'kubernetes' ? `service ${p.origin}` : `project ${p.name}`;
}

export interface BuildResult {
  readonly table: RouteTable;
  /** Names whose ProjectRoute object differs from the previous table's (added, replaced, removed). */
  readonly changed: readonly string[];
}

const FORWARD_KEY = '\0forward';

/**
 * Builds route tables from a stream of snapshot changes, at a cost proportional to the change: only
 * project names touched by a change are resolved and built again, and the new table's project map
 * shares everything else with the previous table's (LayeredMap). Each table is still one frozen
 * object that nothing writes into afterwards; the builder only remembers which records claim which
 * name. Applying any sequence of changes gives the same table (up to the order of entries) as
 * `buildRouteTable` on the final snapshot: test/routing/incremental.test.ts checks that property.
 */
export class RouteTableBuilder {
  /** Valid project name -> the records claiming it (the winner first after each resolve). */
  private readonly claims = new Map<string, ProjectRecord[]>();
  /** Problems by project name (conflicts, bad settings), by record (a bad name), or FORWARD_KEY. */
  private readonly problemsBy = new Map<unknown, readonly Problem[]>();
  private routes = LayeredMap.empty<string, ProjectRoute>();
  private forward: PortRoute | undefined;
  private sourceProblems: readonly Problem[] = [];
  private problems: readonly Problem[] = Object.freeze([]);

  constructor(readonly conventions: Conventions) {
    this.refreshForwardProblem();
  }

  /**
   * Applies `change` and returns the new table. `sourceProblems` are the snapshot's own problems (all
   * of them, not a change); passing the same array object again costs nothing.
   */
  apply(
    change: ProjectChange,
    sourceProblems: readonly Problem[],
    version: number,
    snapshotVersion: number,
  ): BuildResult {
    const touched = new Set<string>();
    let problemsDirty = sourceProblems !== this.sourceProblems;
    for (const r of change.removed) {
      if (!DNS_LABEL.test(r.name)) {
        if (this.problemsBy.delete(r)) problemsDirty = true;
        continue;
      }
      const list = this.claims.get(r.name);
      const i = list ? list.indexOf(r) : -1;
      if (i < 0) continue;
      list!.splice(i, 1);
      if (list!.length === 0) this.claims.delete(r.name);
      touched.add(r.name);
    }
    for (const r of change.added) {
      if (!DNS_LABEL.test(r.name)) {
        this.problemsBy.set(r, [
          {
            object: objectOf(r),
            severity: 'error',
            code: 'bad-project-name',
            message: `project name "${r.name}" is not a DNS label (lowercase letters, digits, '-')`,
          },
        ]);
        problemsDirty = true;
        continue;
      }
      const list = this.claims.get(r.name);
      if (list) list.push(r);
      else this.claims.set(r.name, [r]);
      touched.add(r.name);
    }
    const updates: [string, ProjectRoute | undefined][] = [];
    const changed: string[] = [];
    for (const name of touched) {
      const problems: Problem[] = [];
      let route: ProjectRoute | undefined;
      const list = this.claims.get(name);
      if (list && list.length > 1) {
        list.sort(compareClaims);
        for (const loser of list.slice(1)) {
          problems.push({
            object: objectOf(loser),
            severity: 'error',
            code: 'name-conflict',
            message: `project "${name}" is already claimed by ${list[0].origin} (older); this one is ignored`,
          });
        }
      }
      if (name === this.conventions.forwardTo) {
        // The internal tier is an upstream of the edge, never a routable project of its own there.
        const up = list ? buildProject(list[0], this.conventions, true) : undefined;
        if (up) problems.push(...up.problems);
        const forward = up?.route?.ports.get(up.route.defaultPort);
        if (forward !== this.forward) {
          this.forward = forward;
          this.refreshForwardProblem();
          problemsDirty = true;
        }
      } else if (list) {
        const built = buildProjectMemo(list[0], this.conventions);
        problems.push(...built.problems);
        route = built.route;
      }
      const had = this.problemsBy.get(name);
      if (problems.length > 0) {
        this.problemsBy.set(name, problems);
        problemsDirty = true;
      } else if (had) {
        this.problemsBy.delete(name);
        problemsDirty = true;
      }
      if (this.routes.get(name) !== route) {
        updates.push([name, route]);
        changed.push(name);
      }
    }
    if (updates.length > 0) this.routes = this.routes.with(updates);
    if (problemsDirty) {
      this.sourceProblems = sourceProblems;
      const all: Problem[] = [...sourceProblems];
      for (const list of this.problemsBy.values()) for (const p of list) all.push(p);
      this.problems = Object.freeze(all);
    }
    const table: RouteTable = Object.freeze({
      version,
      snapshotVersion,
      projects: this.routes,
      problems: this.problems,
      forwardTo: this.conventions.forwardTo,
      forward: this.forward,
    });
    return { table, changed };
  }

  private refreshForwardProblem(): void {
    const to = this.conventions.forwardTo;
    if (to === undefined || this.forward) {
      this.problemsBy.delete(FORWARD_KEY);
      return;
    }
    this.problemsBy.set(FORWARD_KEY, [
      {
        object: `project ${to}`,
        field: 'edge.forward-to',
        severity: 'error',
        code: 'forward-target-missing',
        message: `edge.forward-to names "${to}", which is not a known project with instances; public requests get 503`,
      },
    ]);
  }
}

/** The whole snapshot at once: what RouteTableBuilder gives after one change adding everything. */
export function buildRouteTable(snapshot: ClusterSnapshot, conv: Conventions, version: number): RouteTable {
  return new RouteTableBuilder(conv).apply(
    { removed: [], added: snapshot.projects },
    snapshot.problems,
    version,
    snapshot.version,
  ).table;
}

export const DEFAULT_CONVENTIONS: Conventions = Object.freeze({
  tier: 'internal',
  defaults: DEFAULT_SETTINGS,
});
