// Shared fixtures for the webhook tests: AdmissionReview builders and a JSONPatch applier.
import fjp, { type Operation } from 'fast-json-patch';
import type { AdmissionReview } from '../../src/webhook/index.ts';

export const OPTS = { hostPath: '/var/log/services', mountPath: '/var/log/service' };

let seq = 0;
export function podReview(pod: unknown, extra: Record<string, unknown> = {}): AdmissionReview {
  seq += 1;
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: `00000000-0000-4000-8000-${String(seq).padStart(12, '0')}`,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'shop',
      operation: 'CREATE',
      userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller' },
      object: pod,
      oldObject: null,
      dryRun: false,
      options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1' },
      ...extra,
    },
  };
}

/** A pod as the ReplicaSet controller sends it: generateName, no name yet. */
export function samplePod(): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { generateName: 'shop-7d9c-', namespace: 'shop', labels: { app: 'shop' } },
    spec: {
      initContainers: [{ name: 'migrate', image: 'registry.example.com/shop:1.2.3', args: ['migrate'] }],
      containers: [
        {
          name: 'app',
          image: 'registry.example.com/shop:1.2.3',
          env: [{ name: 'PORT', value: '8080' }],
          volumeMounts: [{ name: 'cache', mountPath: '/cache' }],
        },
        { name: 'sidecar', image: 'registry.example.com/sidecar:0.4.1' },
      ],
      volumes: [{ name: 'cache', emptyDir: {} }],
    },
  };
}

export function decodePatch(review: AdmissionReview): Operation[] | undefined {
  const p = review.response?.patch;
  if (p === undefined) return undefined;
  return JSON.parse(Buffer.from(p, 'base64').toString('utf8')) as Operation[];
}

/** Applies like the apiserver does: validate each op, fail on any error, never mutate the input. */
export function applyPatch<T>(doc: T, ops: Operation[]): T {
  return fjp.applyPatch(structuredClone(doc), ops, true, false).newDocument;
}
