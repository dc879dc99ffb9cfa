// Complete records for tests; each test overrides only the fields it is about.

import type { AccessRecord } from '../../src/model/access.ts';
import type { ProjectRecord } from '../../src/model/snapshot.ts';

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

/**
 * A ProjectRecord as a source would publish it: `origin` `<namespace>/<service>` gives a Service's
 * (Problems name `service <origin>` and `wharf.io/<key>`), anything else a config file project's.
 */
export function projectRecord(
  name: string,
  origin: string,
  over: Partial<Omit<ProjectRecord, 'name' | 'origin'>> = {},
): ProjectRecord {
  const service = origin.includes('/');
  return {
    name,
    origin,
    object: service ? `service ${origin}` : `project ${name}`,
    settingPrefix: service ? 'wharf.io/' : `projects.${name}.`,
    nameField: service ? 'metadata.labels.wharf.io/project' : `projects.${name}`,
    ...(service ? {} : { declared: true }),
    created: '2026-01-01T00:00:00Z',
    ports: ['http'],
    settings: {},
    instances: [],
    ...over,
  };
}
