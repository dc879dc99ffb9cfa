// A source whose records are handed to it: the config file's `projects:` (set again on each
// reload), or the demo's fleet. It is always synced. A record equal to the one it replaces keeps
// the old object (the identity rule of SourceUpdate), so a reload that leaves a project as it was
// rebuilds nothing for it.

import type { Problem } from '../model/problem.ts';
import type { ProjectRecord } from '../model/snapshot.ts';
import type { Source, SourceStatus, SourceUpdate } from '../model/source.ts';

export class StaticSource implements Source {
  readonly status: SourceStatus = { state: 'synced' };
  private records: readonly ProjectRecord[] = [];
  private problems: readonly Problem[] = [];
  private readonly listeners = new Set<(u: SourceUpdate) => void>();

  constructor(
    readonly name: string,
    records: readonly ProjectRecord[] = [],
  ) {
    this.records = records;
  }

  /** Publishes `records` as everything this source has now. */
  set(records: readonly ProjectRecord[], problems: readonly Problem[] = []): void {
    const before = new Map(this.records.map((r) => [r.name, r]));
    this.records = records.map((r) => {
      const old = before.get(r.name);
      return old && JSON.stringify(old) === JSON.stringify(r) ? old : r;
    });
    if (problems.length > 0 || this.problems.length > 0) this.problems = problems;
    const update: SourceUpdate = { reset: true, removed: [], added: this.records, problems: this.problems };
    for (const l of this.listeners) l(update);
  }

  onUpdate(listener: (u: SourceUpdate) => void): () => void {
    this.listeners.add(listener);
    listener({ reset: true, removed: [], added: this.records, problems: this.problems });
    return () => this.listeners.delete(listener);
  }

  onStatus(): () => void {
    return () => {};
  }

  start(): void {}

  async stop(): Promise<void> {}
}
