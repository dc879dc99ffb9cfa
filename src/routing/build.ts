// Project records + conventions -> RouteTable + Problems. Pure: no I/O, no clock. A bad setting
// becomes a Problem and disables only itself; nothing here throws on user input. Every record has a
// name of its own: the control plane's aggregator resolved name conflicts (and dropped names that
// are not DNS labels) before records get here.

import { createHash } from 'node:crypto';
import type { Problem } from '../model/problem.ts';
import type { Endpoint, PortRoute, ProjectRoute, RouteTable, Tier } from '../model/routes.ts';
import type { ProjectSettings, UpstreamProtocol } from '../model/settings.ts';
import type { InstanceRecord, ProjectChange, ProjectRecord } from '../model/snapshot.ts';
import { DNS_LABEL } from '../util/dns.ts';
import { LayeredMap } from '../util/layered-map.ts';
import { own } from '../util/records.ts';
import { clip, exact, flat } from '../util/strings.ts';
import { type AddressPolicy, refusal } from './addresses.ts';
import { DEFAULT_SETTINGS, parseSettings, protocolOfAppProtocol } from './settings.ts';

export type { ProjectChange, Tier };
export { DNS_LABEL };

export interface Conventions {
  readonly tier: Tier;
  /** Defaults applied under every project's own settings (config `defaults:`). */
  readonly defaults: ProjectSettings;
  /** Edge tier: the project whose instances are the internal tier (see RouteTable.forwardTo). */
  readonly forwardTo?: string;
  /** Which endpoint addresses are refused (Wharf's own listeners, ...); default DEFAULT_ADDRESS_POLICY. */
  readonly addresses?: AddressPolicy;
}

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
  conv: Conventions,
  refused: string[],
  asUpstream: boolean,
): PortRoute {
  const endpoints: Endpoint[] = [];
  for (const inst of instances) {
    // Own properties only: a port named `constructor` is a port, not Object.prototype's.
    const addr = own(inst.addresses, port);
    if (!addr) continue;
    // Stored for as long as the endpoint lives: flat strings, and one string when the probe goes to
    // the routed address itself (the usual case).
    const address = flat(formatAddress(addr.host, addr.port));
    const probe = settings.health.port ? own(inst.addresses, settings.health.port) : undefined;
    const probed = probe && (probe.host !== addr.host || probe.port !== addr.port) ? probe : undefined;
    const refusedWhy =
      refusal(addr.host, addr.port, project.declared === true, conv.addresses) ??
      (probed ? refusal(probed.host, probed.port, project.declared === true, conv.addresses) : undefined);
    if (refusedWhy !== undefined) {
      const at =
        probed && refusal(addr.host, addr.port, project.declared === true, conv.addresses) === undefined
          ? probed
          : addr;
      refused.push(
        `instance "${clip(inst.name, 63)}" port ${port}: address ${clip(formatAddress(at.host, at.port))} ${refusedWhy}; not routed or probed`,
      );
      continue;
    }
    const probeAddress = probed ? flat(formatAddress(probed.host, probed.port)) : address;
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
    protocol: upstreamProtocol(project, port, settings, asUpstream),
  });
}

/** The port's `appProtocol` when Wharf speaks it, else the project's `protocol` setting. */
function upstreamProtocol(
  project: ProjectRecord,
  port: string,
  settings: ProjectSettings,
  asUpstream: boolean,
): UpstreamProtocol {
  const app = project.appProtocols?.[port];
  const fromApp = app === undefined ? undefined : protocolOfAppProtocol(app);
  // The edge's forward target is Wharf's internal tier, which speaks both: keep the client's protocol.
  if (asUpstream && settings.protocol === DEFAULT_SETTINGS.protocol) return fromApp ?? 'auto';
  return fromApp ?? settings.protocol.ports.get(port) ?? settings.protocol.all;
}

/** The ports requests may reach: the tier's choice (edge: public ones), minus those `expose` hides. */
function exposedPorts(
  settings: ProjectSettings,
  ports: readonly string[],
  tier: Tier,
  asUpstream: boolean,
): readonly string[] {
  const hidden = settings.hidden;
  if (hidden === true) return [];
  let names = ports;
  if (!asUpstream && tier === 'edge' && settings.public !== true) {
    const pub = settings.public;
    names = pub === false ? [] : ports.filter((p) => pub.includes(p));
  }
  return hidden === false ? names : names.filter((p) => !hidden.includes(p));
}

/** A project's port names that can be hostname labels, each once; the others are Problems. */
function validPorts(project: ProjectRecord, object: string, problems: Problem[]): readonly string[] {
  let ok = true;
  for (let i = 0; i < project.ports.length && ok; i++) {
    const p = project.ports[i];
    ok = typeof p === 'string' && DNS_LABEL.test(p) && project.ports.indexOf(p) === i;
  }
  if (ok) return project.ports;
  const ports: string[] = [];
  for (const p of project.ports) {
    if (typeof p !== 'string' || !DNS_LABEL.test(p)) {
      problems.push({
        object,
        field: 'ports',
        severity: 'warning',
        code: 'bad-port-name',
        message: `port name "${clip(String(p), 63)}" is not a DNS label (lowercase letters, digits, '-'); it is not routed`,
      });
    } else if (ports.includes(p)) {
      problems.push({
        object,
        field: 'ports',
        severity: 'warning',
        code: 'duplicate-port-name',
        message: `port name "${p}" appears twice; the first is routed`,
      });
    } else ports.push(p);
  }
  return ports;
}

/** Problems of one kind reported per project; past this one Problem says how many more there are. */
const MAX_PROBLEMS = 10;

interface Built {
  readonly route: ProjectRoute | undefined;
  readonly problems: readonly Problem[];
}

function buildProject(project: ProjectRecord, conv: Conventions, asUpstream = false): Built {
  const problems: Problem[] = [];
  const object = project.object;
  const { settings, errors } = parseSettings(project.settings, conv.defaults);
  for (const e of errors.slice(0, MAX_PROBLEMS)) {
    const field = `${project.settingPrefix}${e.key}`;
    problems.push({
      object,
      field,
      severity: 'warning',
      code: 'bad-setting',
      message: `${field}: "${e.value}": ${e.reason}; using the default`,
    });
  }
  for (const [port, app] of Object.entries(project.appProtocols ?? {})) {
    if (protocolOfAppProtocol(app) !== undefined) continue;
    problems.push({
      object,
      field: `spec.ports[${port}].appProtocol`,
      severity: 'warning',
      code: 'unsupported-app-protocol',
      message: `port "${port}" declares appProtocol "${app}", which Wharf does not speak to instances (http, kubernetes.io/h2c, grpc, kubernetes.io/ws); using the protocol setting`,
    });
  }
  if (errors.length > MAX_PROBLEMS) {
    problems.push({
      object,
      severity: 'warning',
      code: 'bad-setting',
      message: `and ${errors.length - MAX_PROBLEMS} more bad settings`,
    });
  }
  const projectPorts = validPorts(project, object, problems);
  if (settings.health.port && !projectPorts.includes(settings.health.port)) {
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
        message: `instance name "${clip(inst.name, 63)}" appears twice; keeping the first`,
      });
      return false;
    }
    seen.add(inst.name);
    return true;
  });
  const names = exposedPorts(settings, projectPorts, conv.tier, asUpstream);
  if (names.length === 0) return { route: undefined, problems };
  const ports = new Map<string, PortRoute>();
  const refused: string[] = [];
  for (const name of names)
    ports.set(name, buildPortRoute(project, name, settings, instances, conv, refused, asUpstream));
  for (const message of refused.slice(0, MAX_PROBLEMS))
    problems.push({
      object,
      field: project.declared ? 'instances' : 'endpoints',
      severity: 'error',
      code: 'refused-address',
      message,
    });
  if (refused.length > MAX_PROBLEMS)
    problems.push({
      object,
      field: project.declared ? 'instances' : 'endpoints',
      severity: 'error',
      code: 'refused-address',
      message: `and ${refused.length - MAX_PROBLEMS} more refused addresses`,
    });
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
 * Memo of per-project results keyed by the ProjectRecord object and the conventions: the identity
 * rule of SourceUpdate (model/source.ts). A record is immutable, so the same object with the same
 * conventions builds the same route; the route object is reused, which is what lets `changed` (and
 * with it health, pools and certificates) skip every project whose record did not change. Sources
 * keep the object of an unchanged project (discovery reuses the record of a Service whose
 * translation is equal), and so the memo hits for all but the changed projects. A WeakMap keeps
 * this invisible to callers: the output depends on the inputs alone, a record nobody holds any more
 * takes its entry with it.
 */
const memo = new WeakMap<ProjectRecord, { conv: Conventions; built: Built }>();

function buildProjectMemo(project: ProjectRecord, conv: Conventions): Built {
  const hit = memo.get(project);
  if (hit && hit.conv === conv) return hit.built;
  const built = buildProject(project, conv);
  memo.set(project, { conv, built });
  return built;
}

export interface BuildResult {
  readonly table: RouteTable;
  /** Names whose ProjectRoute object differs from the previous table's (added, replaced, removed). */
  readonly changed: readonly string[];
  /** Routing's own Problems (bad settings, duplicate instances, a missing forward target), all of them. */
  readonly problems: readonly Problem[];
}

const FORWARD_KEY = '\0forward';

/**
 * Builds route tables from a stream of changes, at a cost proportional to the change: only the
 * names a change touches are built again (and only if their record object is new: see the memo),
 * and the new table's project map shares everything else with the previous table's (LayeredMap).
 * Each table is still one frozen object that nothing writes into afterwards; the builder only
 * remembers which record holds which name. Applying any sequence of changes gives the same table
 * (up to the order of entries) as `buildRouteTable` on the final set of records:
 * test/routing/incremental.test.ts checks that property, through the aggregator as production
 * runs it.
 *
 * Names are unique in what the aggregator sends. Should a change add a second record for a name
 * anyway, the later one replaces the first (and removing the replaced one later changes nothing).
 */
export class RouteTableBuilder {
  /** Project name -> the record that holds it. */
  private readonly records = new Map<string, ProjectRecord>();
  /** Problems by project name, or FORWARD_KEY. */
  private readonly problemsBy = new Map<string, readonly Problem[]>();
  private routes = LayeredMap.empty<string, ProjectRoute>();
  private forward: PortRoute | undefined;
  private problems: readonly Problem[] = Object.freeze([]);

  constructor(readonly conventions: Conventions) {
    this.refreshForwardProblem();
    this.collectProblems();
  }

  /** Applies `change` and returns the new table, numbered `version`. */
  apply(change: ProjectChange, version: number): BuildResult {
    const touched = new Set<string>();
    let problemsDirty = false;
    for (const r of change.removed) {
      if (!DNS_LABEL.test(r.name) && this.problemsBy.delete(r.name)) problemsDirty = true;
      if (this.records.get(r.name) !== r) continue;
      this.records.delete(r.name);
      touched.add(r.name);
    }
    for (const r of change.added) {
      if (!DNS_LABEL.test(r.name)) {
        // Sources check names; should one slip through, it is never routed, and says why.
        this.problemsBy.set(r.name, [
          {
            object: r.object,
            severity: 'error',
            code: 'bad-project-name',
            message: `project name "${clip(String(r.name))}" is not a DNS label (lowercase letters, digits, '-')`,
          },
        ]);
        problemsDirty = true;
        continue;
      }
      this.records.set(r.name, r);
      touched.add(r.name);
    }
    const updates: [string, ProjectRoute | undefined][] = [];
    const changed: string[] = [];
    for (const name of touched) {
      const problems: Problem[] = [];
      let route: ProjectRoute | undefined;
      const record = this.records.get(name);
      if (name === this.conventions.forwardTo) {
        // The internal tier is an upstream of the edge, never a routable project of its own there.
        const up = record ? buildProject(record, this.conventions, true) : undefined;
        if (up) problems.push(...up.problems);
        const forward = up?.route?.ports.get(up.route.defaultPort);
        if (forward !== this.forward) {
          this.forward = forward;
          this.refreshForwardProblem();
          problemsDirty = true;
        }
      } else if (record) {
        const built = buildProjectMemo(record, this.conventions);
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
    if (problemsDirty) this.collectProblems();
    const table: RouteTable = Object.freeze({
      version,
      projects: this.routes,
      forwardTo: this.conventions.forwardTo,
      forward: this.forward,
    });
    return { table, changed, problems: this.problems };
  }

  private collectProblems(): void {
    const all: Problem[] = [];
    for (const list of this.problemsBy.values()) for (const p of list) all.push(p);
    this.problems = Object.freeze(all);
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

/** Every record at once: what RouteTableBuilder gives after one change adding everything. */
export function buildRouteTable(
  records: readonly ProjectRecord[],
  conv: Conventions,
  version: number,
): BuildResult {
  return new RouteTableBuilder(conv).apply({ removed: [], added: records }, version);
}

export const DEFAULT_CONVENTIONS: Conventions = Object.freeze({
  tier: 'internal',
  defaults: DEFAULT_SETTINGS,
});
