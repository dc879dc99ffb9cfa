// The Wharf configs shipped in the ConfigMaps load with Wharf's own config parser, once that
// parser (src/config/load.ts, written on main) is present on this branch.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { allDocs, CLUSTER, clusterEnv, find, ROOT, render } from './load.ts';

const loader = join(ROOT, 'src', 'config', 'load.ts');
const skip = existsSync(loader) ? false : 'src/config/load.ts is not on this branch yet';
if (skip) console.log(`skipping Wharf config parse: ${skip}`);

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
  it('are YAML maps with the tier and domain set', () => {
    for (const [name, text] of configs) {
      const c = parse(text);
      assert.ok(['internal', 'edge'].includes(c.tier), name);
      assert.match(c.domain, /^[a-z0-9.-]+$/, name);
    }
  });

  it('load with parseConfig()', { skip }, async () => {
    const mod = (await import(loader)) as { parseConfig: (text: string, file?: string) => unknown };
    for (const [name, text] of configs) {
      assert.doesNotThrow(() => mod.parseConfig(text, name), name);
    }
  });
});
