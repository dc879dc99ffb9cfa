// One upstream attempt as observe/ sees it (metrics, dashboard): produced by proxy/ once per
// attempt, when its response headers arrive or when it ends without them. Health evidence travels
// separately (outcome.ts); this record is for counting and timing only.

import type { AttemptError } from './outcome.ts';

/**
 * `rescued`: moved to another instance because the one it waited on was ejected meanwhile (not
 * the upstream's answer, so not health evidence, but it did wait there). `cancelled`: the client
 * went away before the response headers. None of the rest is evidence against the instance either:
 * `refused-stream` (HTTP/2: it declined the stream before processing it), `deadline-exceeded` (the
 * client's own grpc-timeout ran out), `request-error` (the request could not be sent as it was),
 * `proxy-error` (a failure of ours).
 */
export type AttemptResult =
  | number
  | AttemptError
  | 'rescued'
  | 'cancelled'
  | 'refused-stream'
  | 'deadline-exceeded'
  | 'request-error'
  | 'proxy-error';

export interface AttemptRecord {
  readonly project: string;
  readonly port: string;
  /** The instance that took this attempt (not necessarily the one that answered the request). */
  readonly instance: string;
  /** The response status, or why the attempt ended without one. */
  readonly outcome: AttemptResult;
  /** From sending the request to the response headers, or to the failure, rescue or cancel. */
  readonly durationMs: number;
  /** Not the request's first attempt (a retry, or the move after a rescue). */
  readonly retry: boolean;
}
