// Problems kept per owner (each source, the aggregator's `names`, `routing`, `tls`, `tls-secrets`),
// outside the route table: a certificate that fails to load is reported without a route being
// rebuilt, and each owner replaces only its own list.

import type { Problem } from '../model/problem.ts';

export class ProblemBoard {
  private readonly byOwner = new Map<string, readonly Problem[]>();
  private all: readonly Problem[] = Object.freeze([]);
  private readonly listeners: ((all: readonly Problem[]) => void)[] = [];

  /** `rank` orders the owners' lists in `list()` (lower first; ties as they first appeared). */
  constructor(private readonly rank: (owner: string) => number = () => 0) {}

  /** Replaces `owner`'s Problems. Passing the same array again, or empty for empty, changes nothing. */
  set(owner: string, problems: readonly Problem[]): void {
    const prev = this.byOwner.get(owner);
    if (prev === problems || (problems.length === 0 && (prev === undefined || prev.length === 0))) return;
    this.byOwner.set(owner, problems);
    const owners = [...this.byOwner.keys()].sort((a, b) => this.rank(a) - this.rank(b));
    this.all = Object.freeze(owners.flatMap((o) => this.byOwner.get(o)!));
    for (const l of this.listeners) l(this.all);
  }

  /** Every owner's Problems in one array: the same object until one of them changes. */
  list(): readonly Problem[] {
    return this.all;
  }

  onChange(listener: (all: readonly Problem[]) => void): void {
    this.listeners.push(listener);
  }
}
