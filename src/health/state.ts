// The health state machine of one endpoint. Pure: time comes in as arguments, and a change comes
// out as a Transition for the service to publish. Active probe results and passive request outcomes
// both land here, so the rules of DESIGN.md §4 live in one place.

import type { HealthState, HealthStatus } from '../model/health.ts';
import type { AttemptOutcome } from '../model/outcome.ts';
import { flat } from '../util/strings.ts';

export interface Transition {
  readonly from: HealthState;
  readonly to: HealthState;
  readonly reason: string;
  readonly ejected: boolean;
}

/** Errors that prove the instance cannot take requests right now: eject at once (DESIGN.md §4). */
const EJECT_NOW: ReadonlySet<string> = new Set([
  'connect-refused',
  'connect-timeout',
  'connect-error',
  'reset',
  'response-timeout',
]);

export const CONSECUTIVE_5XX = 3;

/**
 * Passive ejection hold-out: 1 s for a first ejection, doubling per repeat up to 30 s, so a flapping
 * instance spends more and more time out instead of failing requests every few seconds. After a
 * quiet minute past the last hold-out the count starts over.
 */
export const HOLD_BASE_MS = 1000;
export const HOLD_MAX_MS = 30_000;
export const HOLD_RESET_AFTER_MS = 60_000;

export function holdOutMs(ejections: number): number {
  return Math.min(HOLD_MAX_MS, HOLD_BASE_MS * 2 ** Math.max(0, ejections - 1));
}

// Reasons repeat across endpoints ("probe: connect refused" for thousands of them): keep one copy.
const reasons = new Map<string, string>();

function intern(reason: string): string {
  const known = reasons.get(reason);
  if (known !== undefined) return known;
  if (reasons.size >= 4096) reasons.clear();
  const kept = flat(reason);
  reasons.set(kept, kept);
  return kept;
}

export class EndpointHealth {
  state: HealthState = 'pending';
  reason = 'waiting for the first probe';
  /** True while a passive ejection holds the endpoint out. */
  ejected = false;
  since: number;
  okStreak = 0;
  failStreak = 0;
  /** Consecutive 5xx (or invalid responses) seen by live requests. */
  bad = 0;
  ejections = 0;
  holdUntil = 0;
  /** Has passed a probe at least once. Until then one good probe admits it (see probe()). */
  everHealthy = false;
  private cached: HealthStatus | undefined;

  constructor(now: number) {
    this.since = now;
  }

  status(): HealthStatus {
    this.cached ??= Object.freeze({
      state: this.state,
      reason: this.reason,
      ejected: this.ejected,
      since: this.since,
    });
    return this.cached;
  }

  /** In service but failing probes: the loop should re-check quickly (HAProxy's fastinter). */
  falling(): boolean {
    return this.state !== 'unhealthy' && this.failStreak > 0;
  }

  probe(ok: boolean, reason: string, now: number, fall: number, rise: number): Transition | undefined {
    if (ok) {
      this.failStreak = 0;
      this.okStreak++;
      // A new endpoint that has never passed (pending, or failed while still starting up) needs one
      // good probe, as Envoy does for new hosts: it was never proven bad, only not ready yet.
      // `rise` is for readmitting what was once good and then failed.
      if (this.state === 'pending' || (this.state === 'unhealthy' && !this.everHealthy && !this.ejected)) {
        return this.move('healthy', 'probe: ok', now);
      }
      if (this.state === 'unhealthy' && this.okStreak >= rise && now >= this.holdUntil) {
        return this.move('healthy', `probe: ok ${this.okStreak} times`, now);
      }
      return undefined;
    }
    this.okStreak = 0;
    this.failStreak++;
    // The first probe of a new endpoint decides: a new pod that fails it gets no traffic.
    if (this.state === 'pending' || (this.state === 'healthy' && this.failStreak >= fall)) {
      return this.move('unhealthy', `probe: ${reason}`, now);
    }
    if (this.state === 'unhealthy' && !this.ejected) this.setReason(`probe: ${reason}`);
    return undefined;
  }

  /**
   * One live request's outcome. `may5xxEject` is asked only when 3 consecutive 5xx would eject:
   * the service refuses when too much of the route is already out (see HealthService).
   */
  passive(outcome: AttemptOutcome, now: number, may5xxEject: () => boolean): Transition | undefined {
    // Already out: a burst of failures from requests that were in flight must not stack hold-outs.
    if (this.state === 'unhealthy') return undefined;
    const err = outcome.error;
    if (err !== undefined && EJECT_NOW.has(err)) return this.eject(`passive: ${err.replace(/-/g, ' ')}`, now);
    if (
      err === 'invalid-response' ||
      (err === undefined && outcome.status !== undefined && outcome.status >= 500)
    ) {
      this.bad++;
      if (this.bad >= CONSECUTIVE_5XX && may5xxEject()) {
        return this.eject(`passive: ${this.bad} consecutive ${err ? 'bad responses' : '5xx'}`, now);
      }
      return undefined;
    }
    if (err === undefined && outcome.status !== undefined) this.answered();
    // `cancelled` says nothing about the instance.
    return undefined;
  }

  /** A live answer below 500: ends a run of 5xx (passive() for that case, without its arguments). */
  answered(): void {
    if (this.state !== 'unhealthy') this.bad = 0;
  }

  /**
   * A live answer below 500 is as good as a passing probe for an endpoint in service: it ends a run
   * of failed probes, and admits a pending one. Not for an unhealthy endpoint: only probes readmit
   * (an answer to a request sent before an ejection says little about the instance now).
   */
  trafficOk(now: number): Transition | undefined {
    if (this.state === 'unhealthy') return undefined;
    this.failStreak = 0;
    if (this.state === 'pending') return this.move('healthy', 'answered a request', now);
    return undefined;
  }

  private eject(reason: string, now: number): Transition {
    if (now - this.holdUntil > HOLD_RESET_AFTER_MS) this.ejections = 0;
    this.ejections++;
    this.holdUntil = now + holdOutMs(this.ejections);
    this.okStreak = 0;
    this.failStreak = 0;
    this.bad = 0;
    this.ejected = true;
    return this.move('unhealthy', reason, now);
  }

  private move(to: HealthState, reason: string, now: number): Transition {
    const from = this.state;
    this.state = to;
    this.since = now;
    if (to === 'healthy') {
      this.everHealthy = true;
      this.ejected = false;
      this.bad = 0;
    }
    this.setReason(reason);
    return { from, to, reason, ejected: this.ejected };
  }

  private setReason(reason: string): void {
    this.reason = intern(reason);
    this.cached = undefined;
  }
}
