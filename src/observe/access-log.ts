// The access log record: one JSON line per request, written by the proxy when the response ends.
// Field names are the contract with filebeat pipelines and dashboards; add, never rename.

export interface AccessRecord {
  /** Epoch ms when the request arrived. */
  time: number;
  requestId: string;
  /** Client address (the socket peer; X-Forwarded-For is the proxy's business, not the log's). */
  client: string;
  host: string;
  method: string;
  path: string;
  status: number;
  bytesIn: number;
  bytesOut: number;
  /** Total time from request to last response byte. */
  durationMs: number;
  /** Time of the last upstream attempt, from dispatch to response end. */
  upstreamMs?: number;
  project?: string;
  port?: string;
  instance?: string;
  /** Upstream attempts made (0 when no upstream was tried: 404, all unhealthy, ...). */
  attempts: number;
  /** Why the request failed, e.g. `connect-refused`, `no-healthy-instance`, `unknown-host`. */
  error?: string;
}

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
