// The pod the apiserver ends up with after applying the webhook's patch is a valid v1 Pod: the
// sample project's pod template, mutated, validates against the Kubernetes schema.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Pod } from 'kubernetes-models/v1/Pod';
import { mutatePod } from '../../src/webhook/index.ts';
import { DEPLOY, find, parseFile } from '../deploy/load.ts';
import { applyPatch, decodePatch, OPTS, podReview } from './helpers.ts';

describe('webhook output against the Pod schema', () => {
  it('the mutated sample pod is a valid Pod with the mount in each container', () => {
    const dep = find(parseFile(join(DEPLOY, 'examples', 'hello.yaml')), 'Deployment', 'hello');
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { ...dep.spec.template.metadata, generateName: 'hello-5c7d-', namespace: 'demo' },
      spec: dep.spec.template.spec,
    };
    const ops = decodePatch(mutatePod(podReview(pod), OPTS));
    assert.ok(ops);
    const out = applyPatch(pod, ops);
    assert.doesNotThrow(() => new Pod(out).validate());
    for (const c of out.spec.containers) {
      assert.ok(
        c.volumeMounts.some((m: { mountPath: string }) => m.mountPath === OPTS.mountPath),
        c.name,
      );
    }
    // A mount whose volume does not exist would be rejected by the apiserver.
    const volumes = new Set(out.spec.volumes.map((v: { name: string }) => v.name));
    for (const c of out.spec.containers)
      for (const m of c.volumeMounts) assert.ok(volumes.has(m.name), m.name);
  });
});
