// Owns the current route table: builds the next one from a change of records (routing's
// incremental builder), swaps it in as one object, and announces the swap once, as TableSwapped,
// to whoever keeps state per endpoint (health, upstream pools, certificates, observe). They
// reconcile themselves from it; the runtime knows none of them.

import type { Problem } from '../model/problem.ts';
import type { Endpoint, PortRoute, ProjectRoute, RouteTable, TableSwapped } from '../model/routes.ts';
import type { ProjectChange, ProjectRecord } from '../model/snapshot.ts';
import { type Conventions, RouteTableBuilder } from '../routing/build.ts';

/** Endpoint id -> endpoint, over some port routes. */
function byId(ports: Iterable<PortRoute>): Map<string, Endpoint> {
  const m = new Map<string, Endpoint>();
  for (const port of ports) for (const e of port.endpoints) m.set(e.id, e);
  return m;
}

function portsOf(r: ProjectRoute | undefined): Iterable<PortRoute> {
  return r ? r.ports.values() : [];
}

function diff(
  a: Map<string, Endpoint>,
  b: Map<string, Endpoint>,
  added: Endpoint[],
  removed: Endpoint[],
): void {
  for (const [id, e] of b) if (!a.has(id)) added.push(e);
  for (const [id, e] of a) if (!b.has(id)) removed.push(e);
}

/**
 * Endpoints added and removed between two tables, looking only at the projects the builder says
 * changed (and the edge's forward route): O(changed endpoints) per swap, not O(all endpoints).
 */
function diffEndpoints(
  prev: RouteTable,
  next: RouteTable,
  changed: Iterable<string>,
): { added: Endpoint[]; removed: Endpoint[] } {
  const added: Endpoint[] = [];
  const removed: Endpoint[] = [];
  for (const name of changed) {
    const old = prev.projects.get(name);
    const route = next.projects.get(name);
    if (old !== route) diff(byId(portsOf(old)), byId(portsOf(route)), added, removed);
  }
  // The edge tier's forward target is outside `projects`: diff it too.
  if (prev.forward !== next.forward)
    diff(byId(prev.forward ? [prev.forward] : []), byId(next.forward ? [next.forward] : []), added, removed);
  return { added, removed };
}

export class RouteRuntime {
  private builder: RouteTableBuilder;
  private current: RouteTable;
  private endpoints = 0;
  private readonly listeners: ((s: TableSwapped) => void)[] = [];

  constructor(
    conventions: Conventions,
    /** Routing's own Problems, after every build (the same array while they do not change). */
    private readonly onProblems: (problems: readonly Problem[]) => void = () => {},
  ) {
    this.builder = new RouteTableBuilder(conventions);
    const first = this.builder.apply({ removed: [], added: [] }, 0);
    this.current = first.table;
    onProblems(first.problems);
  }

  table(): RouteTable {
    return this.current;
  }

  get conventions(): Conventions {
    return this.builder.conventions;
  }

  /** Listeners run in the order they subscribed, right after the swap. */
  onSwap(listener: (s: TableSwapped) => void): void {
    this.listeners.push(listener);
  }

  /** Builds from `change` and swaps, unless no route changed. */
  apply(change: ProjectChange): void {
    const { table, changed, problems } = this.builder.apply(change, this.current.version + 1);
    this.onProblems(problems);
    if (changed.length > 0 || table.forward !== this.current.forward) this.swap(table, changed);
  }

  /** New conventions (a reloaded `defaults:`): everything is built again with a new builder. */
  rebuild(conventions: Conventions, records: Iterable<ProjectRecord>): void {
    const prev = this.current;
    this.builder = new RouteTableBuilder(conventions);
    const { table, problems } = this.builder.apply({ removed: [], added: [...records] }, prev.version + 1);
    this.onProblems(problems);
    this.swap(table, [...new Set([...prev.projects.keys(), ...table.projects.keys()])]);
  }

  private swap(next: RouteTable, changed: readonly string[]): void {
    const prev = this.current;
    // Swap first: from here every new request sees the new table as one object.
    this.current = next;
    const { added, removed } = diffEndpoints(prev, next, changed);
    this.endpoints += added.length - removed.length;
    const swapped: TableSwapped = { prev, next, changed, added, removed, endpoints: this.endpoints };
    for (const l of this.listeners) l(swapped);
  }
}
