// What the main thread tells the prober without a message: per probe target (a slot), when the
// instance last answered a real request, when a request last ended there, and two flags. The
// proxy's hot path writes one number per answered request; the prober reads them when a probe
// comes due. In a worker thread the arrays live in SharedArrayBuffers. The values are hints: a stale
// read costs at most one probe too many or one probe later, never a wrong state, because only the
// main thread decides states.

/** Some member of the target is in service (not unhealthy). */
export const SERVING = 1;
/** A good probe would change something (a member is pending, unhealthy or has failed probes). */
export const WANT_OK = 2;

export interface Signals {
  /** When the instance last answered a real request with a status below 500 (loop ms). */
  readonly answered: Float64Array;
  /** When a real request to the instance last ended, answered or not (loop ms). */
  readonly traffic: Float64Array;
  readonly flags: Uint8Array;
}

export function signalsCapacity(s: Signals): number {
  return s.flags.length;
}

/** New arrays of `capacity` slots holding the contents of `from` (if any). */
export function allocSignals(capacity: number, shared: boolean, from?: Signals): Signals {
  const buffer = (bytes: number) => (shared ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes));
  const s: Signals = {
    answered: new Float64Array(buffer(capacity * 8)),
    traffic: new Float64Array(buffer(capacity * 8)),
    flags: new Uint8Array(buffer(capacity)),
  };
  if (from) {
    s.answered.set(from.answered);
    s.traffic.set(from.traffic);
    s.flags.set(from.flags);
  }
  return s;
}
