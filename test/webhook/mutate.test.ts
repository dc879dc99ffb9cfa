// biome-ignore-all lint/suspicious/noExplicitAny: the tests walk untyped pod JSON as the apiserver sends it
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  escapePointer,
  MOUNTED_ANNOTATION,
  mutatePod,
  parseAdmissionReview,
  podPatch,
  ReviewError,
  SUB_PATH_EXPR,
} from '../../src/webhook/index.ts';
import { applyPatch, decodePatch, OPTS, podReview, samplePod } from './helpers.ts';

type Pod = ReturnType<typeof samplePod> & { metadata: any; spec: any };

function mutated(pod: unknown): Pod {
  const answer = mutatePod(podReview(pod), OPTS);
  const ops = decodePatch(answer);
  assert.ok(ops, 'expected a patch');
  return applyPatch(pod, ops) as Pod;
}

describe('escapePointer', () => {
  it('escapes ~ before / (RFC 6901)', () => {
    assert.equal(escapePointer('wharf.io/logs-mount'), 'wharf.io~1logs-mount');
    assert.equal(escapePointer('a~1/b'), 'a~01~1b');
    assert.equal(escapePointer('~/'), '~0~1');
  });
});

describe('mutatePod', () => {
  it('mounts the node log dir in every container and initContainer with subPathExpr and env', () => {
    const pod = mutated(samplePod());
    const vol = pod.spec.volumes.find((v: any) => v.name === 'wharf-node-logs');
    assert.deepEqual(vol, {
      name: 'wharf-node-logs',
      hostPath: { path: '/var/log/services', type: 'DirectoryOrCreate' },
    });
    assert.equal(pod.spec.volumes.length, 2, 'existing volume kept');
    for (const c of [...pod.spec.initContainers, ...pod.spec.containers]) {
      const m = c.volumeMounts.find((x: any) => x.name === 'wharf-node-logs');
      assert.deepEqual(
        m,
        { name: 'wharf-node-logs', mountPath: '/var/log/service', subPathExpr: SUB_PATH_EXPR },
        c.name,
      );
      const env = Object.fromEntries(
        c.env.map((e: any) => [e.name, e.valueFrom?.fieldRef?.fieldPath ?? e.value]),
      );
      assert.equal(env.WHARF_POD_NAMESPACE, 'metadata.namespace', c.name);
      assert.equal(env.WHARF_POD_NAME, 'metadata.name', c.name);
    }
    assert.equal(SUB_PATH_EXPR, '$(WHARF_POD_NAMESPACE)/$(WHARF_POD_NAME)');
    // Existing env and mounts survive, in order.
    assert.deepEqual(pod.spec.containers[0].env[0], { name: 'PORT', value: '8080' });
    assert.deepEqual(pod.spec.containers[0].volumeMounts[0], { name: 'cache', mountPath: '/cache' });
    assert.equal(pod.metadata.annotations[MOUNTED_ANNOTATION], '/var/log/service');
    assert.deepEqual(pod.metadata.labels, { app: 'shop' });
  });

  it('is idempotent: a second pass over the mutated pod returns no patch', () => {
    const once = mutated(samplePod());
    const again = mutatePod(podReview(once), OPTS);
    assert.equal(again.response?.allowed, true);
    assert.equal(again.response?.patch, undefined);
    assert.equal(again.response?.patchType, undefined);
  });

  it('reinvocation after another webhook added a container patches only that container', () => {
    const once = mutated(samplePod());
    once.spec.containers.push({ name: 'late', image: 'registry.example.com/late:1.0.0' });
    const ops = decodePatch(mutatePod(podReview(once), OPTS))!;
    assert.ok(
      ops.every((o) => o.path.startsWith('/spec/containers/2/')),
      JSON.stringify(ops),
    );
    const twice = applyPatch(once, ops);
    assert.equal(twice.spec.containers[2].volumeMounts[0].subPathExpr, SUB_PATH_EXPR);
    assert.equal(twice.spec.volumes.filter((v: any) => v.name === 'wharf-node-logs').length, 1);
  });

  it('handles a pod with no volumes, env, volumeMounts, metadata annotations or initContainers', () => {
    const bare = { metadata: { name: 'p' }, spec: { containers: [{ name: 'a', image: 'x:1' }] } };
    const pod = mutated(bare);
    assert.equal(pod.spec.volumes.length, 1);
    assert.equal(pod.spec.containers[0].env.length, 2);
    assert.equal(pod.spec.containers[0].volumeMounts.length, 1);
    assert.equal(pod.metadata.annotations[MOUNTED_ANNOTATION], '/var/log/service');
    assert.equal(pod.spec.initContainers, undefined);
  });

  it('escapes the annotation key when annotations already exist', () => {
    const p = samplePod() as Pod;
    p.metadata.annotations = { 'other/key~x': 'v' };
    const ops = decodePatch(mutatePod(podReview(p), OPTS))!;
    const ann = ops.find((o) => o.path.startsWith('/metadata/annotations'));
    assert.equal(ann?.path, '/metadata/annotations/wharf.io~1logs-mount');
    const pod = applyPatch(p, ops);
    assert.deepEqual(pod.metadata.annotations, {
      'other/key~x': 'v',
      'wharf.io/logs-mount': '/var/log/service',
    });
  });

  it('leaves pods annotated wharf.io/logs: disabled alone', () => {
    const p = samplePod() as Pod;
    p.metadata.annotations = { 'wharf.io/logs': 'disabled' };
    const answer = mutatePod(podReview(p), OPTS);
    assert.equal(answer.response?.allowed, true);
    assert.equal(answer.response?.patch, undefined);
  });

  it('keeps an env var the user already defined and adds only the missing one', () => {
    const p = samplePod() as Pod;
    p.spec.containers[0].env.push({ name: 'WHARF_POD_NAME', value: 'fixed' });
    const pod = mutated(p);
    const names = pod.spec.containers[0].env.map((e: any) => e.name);
    assert.deepEqual(names, ['PORT', 'WHARF_POD_NAME', 'WHARF_POD_NAMESPACE']);
    assert.equal(pod.spec.containers[0].env[1].value, 'fixed');
  });

  it('does not double-mount a path a container already uses', () => {
    const p = samplePod() as Pod;
    p.spec.containers[1].volumeMounts = [{ name: 'cache', mountPath: '/var/log/service/' }];
    const pod = mutated(p);
    assert.deepEqual(pod.spec.containers[1].volumeMounts, [
      { name: 'cache', mountPath: '/var/log/service/' },
    ]);
    assert.equal(pod.spec.containers[0].volumeMounts.length, 2);
  });

  it('ignores non-pods, subresources, updates and Windows pods', () => {
    const cm = podReview(
      { metadata: { name: 'c' }, data: {} },
      {
        kind: { group: '', version: 'v1', kind: 'ConfigMap' },
        resource: { group: '', version: 'v1', resource: 'configmaps' },
      },
    );
    assert.equal(mutatePod(cm, OPTS).response?.patch, undefined);
    const binding = podReview(samplePod(), { subResource: 'binding' });
    assert.equal(mutatePod(binding, OPTS).response?.patch, undefined);
    const update = podReview(samplePod(), { operation: 'UPDATE' });
    assert.equal(mutatePod(update, OPTS).response?.patch, undefined);
    const win = samplePod() as Pod;
    win.spec.os = { name: 'windows' };
    assert.deepEqual(podPatch(win, OPTS), []);
    for (const r of [cm, binding, update]) assert.equal(mutatePod(r, OPTS).response?.allowed, true);
  });

  it('echoes the request uid and answers in admission.k8s.io/v1', () => {
    const review = podReview(samplePod());
    const answer = mutatePod(review, OPTS);
    assert.equal(answer.apiVersion, 'admission.k8s.io/v1');
    assert.equal(answer.kind, 'AdmissionReview');
    assert.equal(answer.response?.uid, review.request?.uid);
    assert.equal(answer.response?.patchType, 'JSONPatch');
  });

  it('fails open on a pod without a spec', () => {
    assert.equal(mutatePod(podReview({ metadata: {} }), OPTS).response?.patch, undefined);
    assert.equal(mutatePod(podReview(null), OPTS).response?.patch, undefined);
  });
});

describe('parseAdmissionReview', () => {
  it('rejects malformed envelopes', () => {
    const bad: unknown[] = [
      null,
      [],
      'x',
      { kind: 'AdmissionReview', apiVersion: 'admission.k8s.io/v1' },
      { kind: 'AdmissionReview', apiVersion: 'admission.k8s.io/v1beta1', request: { uid: 'a' } },
      { kind: 'Pod', apiVersion: 'admission.k8s.io/v1', request: { uid: 'a' } },
      { kind: 'AdmissionReview', apiVersion: 'admission.k8s.io/v1', request: { uid: '' } },
    ];
    for (const b of bad) assert.throws(() => parseAdmissionReview(b), ReviewError, JSON.stringify(b));
    assert.doesNotThrow(() => parseAdmissionReview(podReview(samplePod())));
  });
});
