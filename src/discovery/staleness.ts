// The honest part of a source's state: while the view of the cluster may be stale (the apiserver is
// failing, a watch cannot resume, a relist is due or running), `/api/problems` says so as well as
// `/readyz`, so nobody reads an old route table as the cluster's word.

import type { Problem } from '../model/problem.ts';
import type { SourceState } from './source.ts';

/** One Problem while `state` is degraded, none otherwise. */
export function staleViewProblems(state: SourceState, source = 'kubernetes'): readonly Problem[] {
  if (state.state !== 'degraded') return [];
  const since = state.lastSyncAt ? `; last in sync ${new Date(state.lastSyncAt).toISOString()}` : '';
  return [
    {
      object: source,
      severity: 'warning',
      code: 'stale-view',
      message: `the routes may be stale: ${state.reason ?? 'the apiserver is unreachable'}${since}. The last good state keeps serving.`,
    },
  ];
}
