// The Kubernetes models (kubernetes-models 4.5.x: Kubernetes v1.33.0; cert-manager.io/v1 and
// monitoring.coreos.com/v1 from @kubernetes-models) as validators for deploy/'s objects, shared by
// the schema test (each file) and the kustomize test (the rendered output).
import assert from 'node:assert/strict';
import type { Doc, Obj } from './load.ts';

interface Model {
  validate(): void;
}
type ModelClass = new (data: Obj) => Model;

/** Where the model classes of each apiVersion live. */
export function modulePath(apiVersion: string): string | undefined {
  if (apiVersion === 'v1') return 'kubernetes-models/v1';
  if (apiVersion === 'cert-manager.io/v1') return '@kubernetes-models/cert-manager/cert-manager.io/v1';
  if (apiVersion === 'monitoring.coreos.com/v1')
    return '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
  // Groups of the Kubernetes API itself: apps/v1, policy/v1, rbac.authorization.k8s.io/v1, ...
  if (/^[a-z0-9.-]+\/v[0-9a-z]+$/.test(apiVersion)) return `kubernetes-models/${apiVersion}`;
  return undefined;
}

async function modelFor(apiVersion: string, kind: string): Promise<ModelClass | undefined> {
  const path = modulePath(apiVersion);
  if (!path) return undefined;
  try {
    const mod = (await import(path)) as Record<string, unknown>;
    return mod[kind] as ModelClass | undefined;
  } catch {
    return undefined;
  }
}

/** Files that are not Kubernetes API objects, each checked by its own test. */
export const NOT_API = new Set([
  'kubeadm.k8s.io/v1beta4/InitConfiguration',
  'kubeadm.k8s.io/v1beta4/ClusterConfiguration',
  'kubeadm.k8s.io/v1beta4/JoinConfiguration',
  'kubelet.config.k8s.io/v1beta1/KubeletConfiguration',
  'kustomize.config.k8s.io/v1beta1/Kustomization',
  'kustomize.config.k8s.io/v1alpha1/Component',
  'v1/Config', // kubeconfig
]);

export async function validate(doc: Doc): Promise<void> {
  const { apiVersion, kind } = doc.obj;
  const Model = await modelFor(apiVersion, kind);
  assert.ok(Model, `${doc.file}: no schema for ${apiVersion} ${kind}`);
  try {
    new Model(doc.obj).validate();
  } catch (err) {
    assert.fail(`${doc.file} ${kind}/${doc.obj.metadata?.name}: ${(err as Error).message}`);
  }
}
