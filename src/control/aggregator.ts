// Merges every source's records into one set with one record per project name. This is the only
// place name conflicts are resolved: sources publish what they see (two Services claiming one name
// included), routing builds what it is given.
//
// Who wins a name: the source registered first (the config file ranks before Kubernetes), then the
// older record (`created`), then the smaller `origin`, so every replica agrees. The others are
// reported as `name-conflict` Problems and take over when the winner goes. A name that is not a
// DNS label claims nothing (`bad-project-name`): hostnames are built from it.
//
// Work per update is proportional to the update: only the names it touches are looked at.

import type { Problem } from '../model/problem.ts';
import type { ProjectChange, ProjectRecord } from '../model/snapshot.ts';
import type { Source, SourceUpdate } from '../model/source.ts';
import { DNS_LABEL } from '../util/dns.ts';

/** Owner of the Problems the aggregator reports (bad names, conflicts). */
export const NAMES_OWNER = 'names';

export interface AggregatorOptions {
  /** The change of winning records after an update (not called when no winner changed). */
  readonly onChange: (change: ProjectChange) => void;
  /** A source's own Problems (owner: the source's name) or the aggregator's (NAMES_OWNER) changed. */
  readonly onProblems: (owner: string, problems: readonly Problem[]) => void;
}

interface Entry {
  readonly name: string;
  /** Registration order: lower wins a name. */
  readonly rank: number;
  records: Set<ProjectRecord>;
  problems: readonly Problem[];
}

export class Aggregator {
  private readonly entries: Entry[] = [];
  /** Project name -> its claims: one record (the usual case) or several, the winner first. */
  private readonly claims = new Map<string, ProjectRecord | ProjectRecord[]>();
  /** Name-conflict Problems per name, and bad-name Problems per record. */
  private readonly nameProblems = new Map<string | ProjectRecord, readonly Problem[]>();
  private readonly before = new Map<string, ProjectRecord | undefined>();

  constructor(private readonly o: AggregatorOptions) {}

  /** Registers a source (ranked after those registered before) and takes its updates from now on. */
  add(source: Source): () => void {
    const entry: Entry = { name: source.name, rank: this.entries.length, records: new Set(), problems: [] };
    this.entries.push(entry);
    return source.onUpdate((u) => this.update(entry, u));
  }

  /** The winning record of every name (a full rebuild with new conventions starts from these). */
  *winners(): IterableIterator<ProjectRecord> {
    for (const c of this.claims.values()) yield Array.isArray(c) ? c[0] : c;
  }

  private update(entry: Entry, u: SourceUpdate): void {
    let removed = u.removed;
    let added = u.added;
    if (u.reset) {
      // A reset is compared with what the source had, by identity: unchanged records cost nothing.
      const next = new Set(u.added);
      removed = [...entry.records].filter((r) => !next.has(r));
      added = u.added.filter((r) => !entry.records.has(r));
      entry.records = next;
    }
    // The winner of each touched name before this update (one map, emptied after each update).
    const before = this.before;
    let namesDirty = false;
    for (const r of removed) {
      if (!u.reset && !entry.records.delete(r)) continue; // not published (any more): no change
      if (this.nameProblems.delete(r)) {
        namesDirty = true; // a bad name claimed nothing
        continue;
      }
      if (!before.has(r.name)) before.set(r.name, this.winner(r.name));
      this.unclaim(r);
    }
    for (const r of added) {
      if (!u.reset) {
        if (entry.records.has(r)) continue; // published already: no change
        entry.records.add(r);
      }
      if (!DNS_LABEL.test(r.name)) {
        this.nameProblems.set(r, [
          {
            object: r.object,
            ...(r.nameField ? { field: r.nameField } : {}),
            severity: 'error',
            code: 'bad-project-name',
            message: `project name "${r.name}" is not a DNS label (lowercase letters, digits, '-')`,
          },
        ]);
        namesDirty = true;
        continue;
      }
      if (!before.has(r.name)) before.set(r.name, this.winner(r.name));
      this.claim(r);
    }
    const out: { removed: ProjectRecord[]; added: ProjectRecord[] } = { removed: [], added: [] };
    for (const [name, prev] of before) {
      if (this.resolve(name)) namesDirty = true;
      const next = this.winner(name);
      if (prev === next) continue;
      if (prev) out.removed.push(prev);
      if (next) out.added.push(next);
    }
    before.clear();
    if (out.removed.length > 0 || out.added.length > 0) this.o.onChange(out);
    if (u.problems !== entry.problems) {
      entry.problems = u.problems;
      this.o.onProblems(entry.name, u.problems);
    }
    if (namesDirty) this.o.onProblems(NAMES_OWNER, Object.freeze([...this.nameProblems.values()].flat()));
  }

  private winner(name: string): ProjectRecord | undefined {
    const c = this.claims.get(name);
    return Array.isArray(c) ? c[0] : c;
  }

  private claim(r: ProjectRecord): void {
    const c = this.claims.get(r.name);
    if (c === undefined) this.claims.set(r.name, r);
    else if (Array.isArray(c)) c.push(r);
    else this.claims.set(r.name, [c, r]);
  }

  private unclaim(r: ProjectRecord): void {
    const c = this.claims.get(r.name);
    if (c === r) this.claims.delete(r.name);
    else if (Array.isArray(c)) {
      const i = c.indexOf(r);
      if (i >= 0) c.splice(i, 1);
      if (c.length === 1) this.claims.set(r.name, c[0]);
    }
  }

  /** Puts the winner of `name` first and reports the others. True when its Problems changed. */
  private resolve(name: string): boolean {
    const c = this.claims.get(name);
    if (!Array.isArray(c)) return this.nameProblems.size > 0 && this.nameProblems.delete(name);
    c.sort((a, b) => this.compare(a, b));
    const winner = c[0];
    const wr = this.rank(winner);
    const problems = c.slice(1).map((loser): Problem => {
      const lr = this.rank(loser);
      const by =
        wr === lr
          ? `the older ${winner.object}`
          : `${winner.object} from ${this.entries[wr].name}, which ranks before ${this.entries[lr].name}`;
      return {
        object: loser.object,
        ...(loser.nameField ? { field: loser.nameField } : {}),
        severity: 'error',
        code: 'name-conflict',
        message: `project "${name}" is already claimed by ${by}; this one is ignored`,
      };
    });
    this.nameProblems.set(name, problems);
    return true;
  }

  private compare(a: ProjectRecord, b: ProjectRecord): number {
    const ra = this.rank(a);
    const rb = this.rank(b);
    if (ra !== rb) return ra - rb;
    if (a.created !== b.created) return a.created < b.created ? -1 : 1;
    return a.origin < b.origin ? -1 : a.origin > b.origin ? 1 : 0;
  }

  /** Only asked for names with several claims, which are rare: a scan of the few sources is enough. */
  private rank(r: ProjectRecord): number {
    for (const e of this.entries) if (e.records.has(r)) return e.rank;
    return this.entries.length;
  }
}
