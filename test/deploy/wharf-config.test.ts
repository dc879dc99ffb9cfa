// The Wharf configs shipped in the ConfigMaps load with Wharf's own config parser, once that
// parser (src/config/load.ts, written on main) is present on this branch.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { allDocs, CLUSTER, clusterEnv, find, ROOT, render, settings } from './load.ts';

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

  // Sections whose code is written in parallel issues. Until the config schema knows them, the
  // full parse is skipped with the reason printed, and the rest of each config is still parsed
  // strictly. (`kubernetes` is no longer pending, and the edge's tls.secrets needs it.)
  const PENDING = ['logs'];

  it('load with parseConfig(), pending sections left out', { skip }, async () => {
    const mod = (await import(loader)) as { parseConfig: (text: string, file?: string) => unknown };
    for (const [name, text] of configs) {
      const c = parse(text);
      for (const k of PENDING) delete c[k];
      assert.doesNotThrow(() => mod.parseConfig(stringify(c), name), name);
    }
  });

  it('load with parseConfig(), complete', { skip }, async (t) => {
    const mod = (await import(loader)) as { parseConfig: (text: string, file?: string) => unknown };
    const missing = new Set<string>();
    for (const [name, text] of configs) {
      try {
        mod.parseConfig(text, name);
      } catch (err) {
        const issues = ((err as { issues?: string[] }).issues ?? [String(err)]).join('\n');
        const unknown = [...issues.matchAll(/"([a-z-]+)"/g)].map((m) => m[1]);
        const onlyPending = /^unknown key\(s\)/.test(issues) && unknown.every((k) => PENDING.includes(k));
        assert.ok(onlyPending, `${name}: ${issues}`);
        for (const k of unknown) missing.add(k);
      }
    }
    if (missing.size > 0) {
      const reason = `the config schema does not know ${[...missing].map((k) => `"${k}"`).join(', ')} yet`;
      console.log(`skipping the complete Wharf config parse: ${reason}`);
      t.skip(reason);
    }
  });
});
