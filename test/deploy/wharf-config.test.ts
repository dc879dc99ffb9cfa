// The Wharf configs shipped in deploy/ (the ConfigMaps of both tiers, the outside-cluster edge) load
// with Wharf's own config parser, completely: a key the schema does not know fails here.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { parseConfig } from '../../src/config/load.ts';
import { allDocs, CLUSTER, clusterEnv, find, render, settings } from './load.ts';

const docs = allDocs();
const configs: [string, string][] = [
  ['internal', find(docs, 'ConfigMap', 'wharf-internal-config').data['config.yaml']],
  ['edge', find(docs, 'ConfigMap', 'wharf-edge-config').data['config.yaml']],
  [
    'outside-cluster edge',
    render(readFileSync(join(CLUSTER, 'wharf-external.yaml'), 'utf8'), clusterEnv(), 'wharf-external.yaml'),
  ],
];

describe('Wharf configs in deploy/', () => {
  it('are YAML maps with the tier set, and one domain for all (the setting in deploy/kustomization.yaml)', () => {
    const domain = settings().domain;
    assert.match(domain, /^[a-z0-9.-]+$/);
    for (const [name, text] of configs) {
      const c = parse(text);
      assert.ok(['internal', 'edge'].includes(c.tier), name);
      // In the cluster the Deployments pass it as --domain; the outside edge's file carries it.
      assert.equal(c.domain ?? domain, domain, name);
    }
  });

  it('load with parseConfig(), every section, as the file says', () => {
    for (const [name, text] of configs) {
      const raw = parse(text);
      const c = parseConfig(text, name);
      assert.equal(c.tier, raw.tier, name);
      if (raw.domain !== undefined) assert.equal(c.domain, raw.domain, name);
      assert.ok(c.logs, name);
    }
  });
});
