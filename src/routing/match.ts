// Host -> route, by the conventions of DESIGN.md §2. Runs once per request: no allocation beyond a
// couple of substrings, no regular expressions.

import type { PortRoute, ProjectRoute, RouteTable } from '../model/routes.ts';

export type Resolution =
  | {
      readonly ok: true;
      readonly project: ProjectRoute;
      readonly route: PortRoute;
      readonly instance?: string;
    }
  | {
      readonly ok: false;
      readonly status: 400 | 404;
      readonly reason: string;
      readonly project?: string;
      readonly port?: string;
    };

/**
 * Lowercases, strips the port and a trailing dot. Returns undefined for a Host that cannot be a DNS
 * name (empty, IP literal with brackets handled, characters outside [a-z0-9.-]).
 */
export function normalizeHost(raw: string | undefined): string | undefined {
  if (!raw) return undefined;
  let end = raw.length;
  if (raw.charCodeAt(0) === 91 /* [ */) return undefined; // IPv6 literal: never a convention host
  const colon = raw.lastIndexOf(':');
  if (colon !== -1) {
    for (let i = colon + 1; i < raw.length; i++) {
      const c = raw.charCodeAt(i);
      if (c < 48 || c > 57) return undefined;
    }
    end = colon;
  }
  if (end > 0 && raw.charCodeAt(end - 1) === 46 /* . */) end--;
  if (end === 0 || end > 253) return undefined;
  const host = raw.slice(0, end).toLowerCase();
  for (let i = 0; i < host.length; i++) {
    const c = host.charCodeAt(i);
    const ok = (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 || c === 46;
    if (!ok) return undefined;
  }
  return host;
}

/**
 * Resolves `<project>.D`, `<port>.<project>.D`, `<instance>.<port>.<project>.D`. `domain` is
 * lowercase without a trailing dot. `pinHeader` is the `x-wharf-instance` value when the tier honours it.
 */
export function resolve(
  table: RouteTable,
  domain: string,
  rawHost: string | undefined,
  pinHeader?: string,
): Resolution {
  const host = normalizeHost(rawHost);
  if (host === undefined) return { ok: false, status: 400, reason: 'missing or invalid Host header' };
  const suffixStart = host.length - domain.length - 1;
  if (suffixStart <= 0 || host.charCodeAt(suffixStart) !== 46 || !host.endsWith(domain)) {
    return { ok: false, status: 404, reason: `host "${host}" is not under the domain "${domain}"` };
  }
  const prefix = host.slice(0, suffixStart);
  const d1 = prefix.lastIndexOf('.');
  const projectName = d1 === -1 ? prefix : prefix.slice(d1 + 1);
  const project = table.projects.get(projectName);
  if (!project)
    return { ok: false, status: 404, reason: `no project "${projectName}"`, project: projectName };
  if (d1 === -1) return found(project, project.defaultPort, pinHeader);
  const rest = prefix.slice(0, d1);
  const d2 = rest.lastIndexOf('.');
  const portName = d2 === -1 ? rest : rest.slice(d2 + 1);
  if (d2 === -1) return found(project, portName, pinHeader);
  const instance = rest.slice(0, d2);
  if (instance.includes('.')) {
    return { ok: false, status: 404, reason: `host "${host}" has too many labels`, project: projectName };
  }
  return found(project, portName, instance);
}

function found(project: ProjectRoute, portName: string, instance: string | undefined): Resolution {
  const route = project.ports.get(portName);
  if (!route) {
    return {
      ok: false,
      status: 404,
      reason: `project "${project.name}" has no port "${portName}"`,
      project: project.name,
      port: portName,
    };
  }
  return instance ? { ok: true, project, route, instance } : { ok: true, project, route };
}
