// The only thing that flows backwards: one outcome per upstream attempt, from proxy/ to health/.

import type { EndpointId } from './routes.ts';

export type AttemptError =
  | 'connect-refused'
  | 'connect-timeout'
  | 'connect-error'
  | 'reset'
  | 'response-timeout'
  | 'invalid-response'
  | 'cancelled';

export interface AttemptOutcome {
  readonly endpoint: EndpointId;
  /** Upstream status when response headers arrived. */
  readonly status?: number;
  readonly error?: AttemptError;
  readonly durationMs: number;
}
