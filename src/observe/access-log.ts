// The access log record (defined in model/access.ts): one JSON line per request, written when the
// response ends. Its field names are the contract with filebeat pipelines; add, never rename.

export type { AccessRecord } from '../model/access.ts';

/** An error in the sense of the dashboards: a 5xx, or a request that ended without a status. */
export function isErrorStatus(status: number): boolean {
  return status >= 500 || status === 0;
}
