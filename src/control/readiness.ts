// `/readyz` from the sources' states, in one place.
//
// Not ready until every source has its first complete view. When a source cannot refresh it later
// (the apiserver is away) Wharf stays ready, saying `degraded` with the reason: it serves from the
// last good view, and pulling every replica out of its Service because the control plane is down
// would turn an apiserver outage into a data-plane outage.

import type { Readiness, SourceStatus } from '../model/source.ts';

export interface ReadinessInput {
  readonly stopping: boolean;
  readonly sources: readonly { readonly name: string; readonly status: SourceStatus }[];
  /**
   * What else holds a starting replica back (TLS: Secrets not read yet, no certificate), each
   * `undefined` or a reason. Asked only once every source is synced, in order; the first reason
   * counts.
   */
  readonly gates?: readonly (() => string | undefined)[];
}

export function readiness(i: ReadinessInput): Readiness {
  if (i.stopping) return { ready: false, status: 'stopping', reasons: [] };
  const syncing = i.sources.filter((s) => s.status.state === 'syncing');
  if (syncing.length > 0)
    return {
      ready: false,
      status: 'starting',
      reasons: syncing.map(
        (s) =>
          `${s.name}: waiting for the first complete sync${s.status.reason ? ` (${s.status.reason})` : ''}`,
      ),
    };
  for (const gate of i.gates ?? []) {
    const reason = gate();
    if (reason) return { ready: false, status: 'starting', reasons: [reason] };
  }
  const degraded = i.sources.filter((s) => s.status.state === 'degraded');
  if (degraded.length > 0)
    return {
      ready: true,
      status: 'degraded',
      reasons: degraded.map(
        (s) => `${s.name}: ${s.status.reason ?? 'cannot refresh; serving the last view'}`,
      ),
    };
  return { ready: true, status: 'ok', reasons: [] };
}
