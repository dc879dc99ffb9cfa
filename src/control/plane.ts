// The control plane (DESIGN.md §5): sources -> aggregate -> build -> swap.
//
//   Source (config file, Kubernetes, ...) --SourceUpdate--> Aggregator (the one place names are
//   resolved) --ProjectChange--> RouteRuntime (incremental build, one atomic swap) --TableSwapped-->
//   subscribers (health, upstream pools, certificates, observe)
//
// Problems are kept per owner on the ProblemBoard, beside the table, never in it. What it tells
// observe goes out as typed events (`routes`, `problems`, `source`). Adding a source is one
// `add(source)`; the order of `add` calls is the order in which sources win a name.

import type { WharfEvent } from '../model/events.ts';
import type { Problem } from '../model/problem.ts';
import type { RouteTable, TableSwapped } from '../model/routes.ts';
import type { ProjectRecord } from '../model/snapshot.ts';
import type { Readiness, Source } from '../model/source.ts';
import type { Conventions } from '../routing/build.ts';
import type { Clock } from '../util/clock.ts';
import { Aggregator, NAMES_OWNER } from './aggregator.ts';
import { ProblemBoard } from './problems.ts';
import { readiness } from './readiness.ts';
import { RouteRuntime } from './runtime.ts';
import { staleViewProblems } from './staleness.ts';
import { StaticSource } from './static-source.ts';

export interface ControlPlaneOptions {
  readonly conventions: Conventions;
  readonly clock: Clock;
  /** Typed events for observe: `routes` per swap, `problems` per change, `source` per source state change. */
  readonly emit?: (e: WharfEvent) => void;
}

export class ControlPlane {
  readonly problems: ProblemBoard;
  readonly runtime: RouteRuntime;
  private readonly aggregator: Aggregator;
  private readonly sources: Source[] = [];
  private readonly handed = new Map<string, StaticSource>();

  constructor(private readonly o: ControlPlaneOptions) {
    // Sources' Problems first, then the aggregator's and routing's, then the other owners' (`tls`,
    // `tls-secrets`) as they first report.
    const after = [NAMES_OWNER, 'routing'];
    this.problems = new ProblemBoard((owner) => {
      const i = this.sources.findIndex((s) => s.name === owner);
      return i >= 0 ? i : this.sources.length + (after.indexOf(owner) + 1 || after.length + 1);
    });
    this.runtime = new RouteRuntime(o.conventions, (p) => this.problems.set('routing', p));
    // Looked up at each call, so the runtime's apply can be observed (bench/discovery.ts does).
    this.aggregator = new Aggregator({
      onChange: (change) => this.runtime.apply(change),
      onProblems: (owner, problems) => this.problems.set(owner, problems),
    });
    const emit = o.emit;
    if (!emit) return;
    this.runtime.onSwap((s) => emit(routesEvent(s, o.clock.now())));
    this.problems.onChange((problems) => emit({ type: 'problems', time: o.clock.now(), problems }));
  }

  /** Registers a source: it wins a name over every source added after it. Returns it. */
  add<S extends Source>(source: S): S {
    this.sources.push(source);
    source.onStatus((st) => {
      this.o.emit?.({
        type: 'source',
        time: this.o.clock.now(),
        source: source.name,
        state: st.state,
        ...(st.reason ? { reason: st.reason } : {}),
      });
      // A degraded source serves its last view: a Problem says the routes may be stale.
      this.problems.set(`${source.name}-state`, staleViewProblems(st, source.name));
    });
    this.aggregator.add(source);
    return source;
  }

  /**
   * Records handed over as the whole of source `name` (the config file's projects, the demo's
   * fleet): a StaticSource, added on first use.
   */
  set(name: string, records: readonly ProjectRecord[], problems: readonly Problem[] = []): void {
    const source = this.handed.get(name) ?? this.add(new StaticSource(name));
    this.handed.set(name, source);
    source.set(records, problems);
  }

  table(): RouteTable {
    return this.runtime.table();
  }

  onSwap(listener: (s: TableSwapped) => void): void {
    this.runtime.onSwap(listener);
  }

  /** New conventions (a reloaded `defaults:`) rebuild everything; equal ones change nothing. */
  setConventions(conventions: Conventions): void {
    if (JSON.stringify(conventions) === JSON.stringify(this.runtime.conventions)) return;
    this.runtime.rebuild(conventions, this.aggregator.winners());
  }

  /** `/readyz`: every source synced, then `gates` (see ReadinessInput). */
  readiness(stopping: boolean, gates: readonly (() => string | undefined)[] = []): Readiness {
    return readiness({
      stopping,
      sources: this.sources.map((s) => ({ name: s.name, status: s.status })),
      gates,
    });
  }

  start(): void {
    for (const s of this.sources) s.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.sources.map((s) => s.stop()));
  }
}

function routesEvent(s: TableSwapped, time: number): WharfEvent {
  return {
    type: 'routes',
    time,
    version: s.next.version,
    projects: s.next.projects.size,
    endpoints: s.endpoints,
    added: s.added.map((e) => e.id),
    removed: s.removed.map((e) => e.id),
  };
}
