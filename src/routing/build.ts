// snapshot + conventions -> RouteTable + Problems. Pure: no I/O, no clock. A bad project or setting
// becomes a Problem and disables only itself; nothing here throws on user input.

import { createHash } from 'node:crypto';
import type { Problem } from '../model/problem.ts';
import type { Endpoint, PortRoute, ProjectRoute, RouteTable } from '../model/routes.ts';
import type { ProjectSettings } from '../model/settings.ts';
import type { ClusterSnapshot, InstanceRecord, ProjectRecord } from '../model/snapshot.ts';
import { DEFAULT_SETTINGS, parseSettings } from './settings.ts';

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
  return createHash('sha256')
    .update(`${project}\0${instance.uid ?? instance.name}\0${port}`)
    .digest('base64url')
    .slice(0, 16);
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
    const address = formatAddress(addr.host, addr.port);
    const probe = (settings.health.port && inst.addresses[settings.health.port]) || addr;
    endpoints.push(
      Object.freeze({
        id: `${project.name}/${port}/${inst.name}@${address}`,
        project: project.name,
        port,
        instance: inst.name,
        host: addr.host,
        portNumber: addr.port,
        address,
        draining: inst.draining,
        token: affinityToken(project.name, inst, port),
        probeAddress: formatAddress(probe.host, probe.port),
      }),
    );
  }
  endpoints.sort((a, b) => (a.instance < b.instance ? -1 : a.instance > b.instance ? 1 : 0));
  return Object.freeze({
    project: project.name,
    port,
    endpoints: Object.freeze(endpoints),
    byInstance: new Map(endpoints.map((e) => [e.instance, e])),
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

export function buildRouteTable(snapshot: ClusterSnapshot, conv: Conventions, version: number): RouteTable {
  const problems: Problem[] = [...snapshot.problems];
  const claims = new Map<string, ProjectRecord[]>();
  for (const p of snapshot.projects) {
    if (!DNS_LABEL.test(p.name)) {
      problems.push({
        object: p.source === 'kubernetes' ? `service ${p.origin}` : `project ${p.name}`,
        severity: 'error',
        code: 'bad-project-name',
        message: `project name "${p.name}" is not a DNS label (lowercase letters, digits, '-')`,
      });
      continue;
    }
    const list = claims.get(p.name);
    if (list) list.push(p);
    else claims.set(p.name, [p]);
  }
  const projects = new Map<string, ProjectRoute>();
  let forward: PortRoute | undefined;
  for (const [name, list] of claims) {
    if (list.length > 1) {
      list.sort(compareClaims);
      for (const loser of list.slice(1)) {
        problems.push({
          object: loser.source === 'kubernetes' ? `service ${loser.origin}` : `project ${loser.name}`,
          severity: 'error',
          code: 'name-conflict',
          message: `project "${name}" is already claimed by ${list[0].origin} (older); this one is ignored`,
        });
      }
    }
    if (name === conv.forwardTo) {
      // The internal tier is an upstream of the edge, never a routable project of its own there.
      const up = buildProject(list[0], conv, true);
      problems.push(...up.problems);
      forward = up.route?.ports.get(up.route.defaultPort);
      continue;
    }
    const built = buildProjectMemo(list[0], conv);
    problems.push(...built.problems);
    if (built.route) projects.set(name, built.route);
  }
  if (conv.forwardTo !== undefined && !forward) {
    problems.push({
      object: `project ${conv.forwardTo}`,
      field: 'edge.forward-to',
      severity: 'error',
      code: 'forward-target-missing',
      message: `edge.forward-to names "${conv.forwardTo}", which is not a known project with instances; public requests get 503`,
    });
  }
  return Object.freeze({
    version,
    snapshotVersion: snapshot.version,
    projects,
    problems: Object.freeze(problems),
    forwardTo: conv.forwardTo,
    forward,
  });
}

export const DEFAULT_CONVENTIONS: Conventions = Object.freeze({
  tier: 'internal',
  defaults: DEFAULT_SETTINGS,
});
