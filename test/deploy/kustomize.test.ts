// deploy/kustomization.yaml lists every manifest, and (where kubectl exists) renders.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import { CLUSTER, DEPLOY, type Obj, parseFile, walkYaml } from './load.ts';

const EXAMPLES = join(DEPLOY, 'examples');
const kustomization = parse(readFileSync(join(DEPLOY, 'kustomization.yaml'), 'utf8'));
const manifestFiles = walkYaml(DEPLOY)
  .filter((p) => !p.startsWith(CLUSTER) && !p.startsWith(EXAMPLES) && !p.endsWith('kustomization.yaml'))
  .map((p) => relative(DEPLOY, p));
const id = (o: Obj) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;

describe('kustomize', () => {
  it('lists every manifest file under deploy/ (outside deploy/cluster and deploy/examples), once', () => {
    assert.deepEqual([...kustomization.resources].sort(), manifestFiles.sort());
  });

  const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
  const skip = kubectl.status === 0 ? false : 'kubectl is not installed';
  if (skip)
    console.log(
      'skipping `kubectl kustomize deploy`: kubectl is not installed (validation does not need it)',
    );

  it('`kubectl kustomize deploy` renders exactly the objects of the files', { skip }, () => {
    const out = spawnSync('kubectl', ['kustomize', DEPLOY], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(out.status, 0, out.stderr);
    const rendered = parseAllDocuments(out.stdout)
      .map((d) => d.toJS() as Obj)
      .map(id)
      .sort();
    const fromFiles = manifestFiles
      .flatMap((f) => parseFile(join(DEPLOY, f)))
      .map((d) => id(d.obj))
      .sort();
    assert.deepEqual(rendered, fromFiles);
  });
});
