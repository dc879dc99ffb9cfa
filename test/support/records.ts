// A complete AccessRecord for tests; each test overrides only the fields it is about.

import type { AccessRecord } from '../../src/model/access.ts';

export function accessRecord(over: Partial<AccessRecord> = {}): AccessRecord {
  return {
    time: 0,
    requestId: 'r',
    client: '127.0.0.1',
    host: 'h',
    method: 'GET',
    path: '/',
    status: 200,
    bytesIn: 0,
    bytesOut: 0,
    durationMs: 1,
    project: 'shop',
    port: 'web',
    instance: 'shop-0',
    attempts: 1,
    ...over,
  };
}
