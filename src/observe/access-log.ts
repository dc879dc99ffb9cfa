// The access log record (defined in model/access.ts): one JSON line per request, written when the
// response ends. Its field names are the contract with filebeat pipelines; add, never rename.

export type { AccessRecord } from '../model/access.ts';

/** `2xx`..`5xx`; anything else (1xx upgrades, 0 for a request that got no response) is `other`. */
export function statusClass(status: number): string {
  switch ((status / 100) | 0) {
    case 2:
      return '2xx';
    case 3:
      return '3xx';
    case 4:
      return '4xx';
    case 5:
      return '5xx';
    default:
      return 'other';
  }
}

/** An error in the sense of the dashboards: a 5xx, or a request that ended without a status. */
export function isErrorStatus(status: number): boolean {
  return status >= 500 || status === 0;
}
