// The contract between a source of projects (the config file, Kubernetes, next: Ingress, Consul)
// and the control plane. A source publishes what it knows as ProjectRecords plus its own Problems,
// and says how current that is; the control plane merges every source (it alone resolves name
// clashes), builds the route table and decides readiness. A source knows nothing of the others.

import type { Problem } from './problem.ts';
import type { ProjectChange } from './snapshot.ts';

/**
 * `syncing`: no complete view yet (the replica is not ready). `synced`: current. `degraded`: the
 * last complete view keeps serving while the source cannot refresh it (ready, with the reason).
 */
export type SourceState = 'syncing' | 'synced' | 'degraded';

export interface SourceStatus {
  readonly state: SourceState;
  /** Why it is not `synced` (the last error), if known. */
  readonly reason?: string;
  /** Epoch ms of the last complete view, once synced. */
  readonly lastSyncAt?: number;
}

/**
 * One publish. Records are compared by identity, and that is what makes a rebuild cost only what
 * changed:
 * - records are immutable; `removed` names the very objects published before;
 * - a project that did not change is not in the update at all (or, in a reset, is the same object
 *   as before): routing memoizes its build per record object, health and pools look only at the
 *   projects whose route object changed;
 * - a changed project is one record in `removed` and its successor in `added`. An equal record as a
 *   new object is correct too, it only costs a rebuild of that project.
 */
export interface SourceUpdate extends ProjectChange {
  /** `added` is everything the source has now and replaces all it published before (`removed` is empty). */
  readonly reset: boolean;
  /** The source's own Problems, all of them: the same array object while they do not change. */
  readonly problems: readonly Problem[];
}

export interface Source {
  /** `config`, `kubernetes`: owner of its Problems, name in `source` events and readiness reasons. */
  readonly name: string;
  readonly status: SourceStatus;
  /** Every publish; a source that already published calls a new listener at once with a reset. */
  onUpdate(listener: (update: SourceUpdate) => void): () => void;
  /** Every change of `status`. */
  onStatus(listener: (status: SourceStatus) => void): () => void;
  start(): void;
  stop(): Promise<void>;
}

/** `/readyz`: derived from the sources' states and what else holds a starting replica back. */
export interface Readiness {
  readonly ready: boolean;
  /** `ok`, `starting`, `degraded` or `stopping`. */
  readonly status: string;
  readonly reasons: readonly string[];
}
