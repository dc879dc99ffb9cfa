// The honest part of a source's state: while its view may be stale (for Kubernetes: the apiserver is
// failing, a watch cannot resume, a relist is due or running), `/api/problems` says so as well as
// `/readyz`, so nobody reads an old route table as the source's word.

import type { Problem } from '../model/problem.ts';
import type { SourceStatus } from '../model/source.ts';

/** One Problem while `state` is degraded, none otherwise. */
export function staleViewProblems(state: SourceStatus, source: string): readonly Problem[] {
  if (state.state !== 'degraded') return [];
  const since = state.lastSyncAt ? `; last in sync ${new Date(state.lastSyncAt).toISOString()}` : '';
  return [
    {
      object: source,
      severity: 'warning',
      code: 'stale-view',
      message: `the routes may be stale: ${state.reason ?? 'the source cannot be reached'}${since}. The last good state keeps serving.`,
    },
  ];
}
