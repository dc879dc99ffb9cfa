// Request ids for `x-request-id`: 16 random bytes as 32 hex digits, the format of nginx's
// $request_id. Random rather than a counter, so ids from many replicas never collide and an outside
// client cannot read a replica's traffic volume off them. Drawn from a pooled buffer refilled by
// the CSPRNG every IDS_PER_FILL ids: a request costs one native slice into a flat string.

import { randomFillSync } from 'node:crypto';

const IDS_PER_FILL = 256;
const pool = Buffer.allocUnsafeSlow(16 * IDS_PER_FILL);
let used = IDS_PER_FILL;

export function newRequestId(): string {
  if (used === IDS_PER_FILL) {
    randomFillSync(pool);
    used = 0;
  }
  const start = 16 * used++;
  return pool.toString('hex', start, start + 16);
}
