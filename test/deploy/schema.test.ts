// Every Kubernetes object under deploy/ validates against the OpenAPI schemas of the targeted
// release, as compiled to ajv validators by kubernetes-models (Kubernetes v1.33.0) and
// @kubernetes-models/cert-manager (cert-manager.io/v1). Offline: the schemas are in node_modules.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { allDocs, clusterEnv, type Doc, isKubeObject, type Obj } from './load.ts';

interface Model {
  validate(): void;
}
type ModelClass = new (data: Obj) => Model;

/** Where the model classes of each apiVersion live. */
function modulePath(apiVersion: string): string | undefined {
  if (apiVersion === 'v1') return 'kubernetes-models/v1';
  if (apiVersion === 'cert-manager.io/v1') return '@kubernetes-models/cert-manager/cert-manager.io/v1';
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
const NOT_API = new Set([
  'kubeadm.k8s.io/v1beta4/InitConfiguration',
  'kubeadm.k8s.io/v1beta4/ClusterConfiguration',
  'kubeadm.k8s.io/v1beta4/JoinConfiguration',
  'kubelet.config.k8s.io/v1beta1/KubeletConfiguration',
  'kustomize.config.k8s.io/v1beta1/Kustomization',
  'v1/Config', // kubeconfig
]);

async function validate(doc: Doc): Promise<void> {
  const { apiVersion, kind } = doc.obj;
  const Model = await modelFor(apiVersion, kind);
  assert.ok(Model, `${doc.file}: no schema for ${apiVersion} ${kind}`);
  try {
    new Model(doc.obj).validate();
  } catch (err) {
    assert.fail(`${doc.file} ${kind}/${doc.obj.metadata?.name}: ${(err as Error).message}`);
  }
}

describe('manifests validate against the Kubernetes schemas', () => {
  const docs = allDocs();

  it('every YAML document is a known kind', () => {
    for (const d of docs) {
      const id = `${d.obj.apiVersion}/${d.obj.kind}`;
      if (NOT_API.has(id)) continue;
      // The wharf config for outside-cluster use is the only non-Kubernetes file allowed.
      if (d.file.endsWith('wharf-external.yaml')) continue;
      assert.ok(isKubeObject(d.obj), `${d.file} document ${d.index} is not a Kubernetes object (${id})`);
    }
  });

  it('each Kubernetes object is valid', async () => {
    let n = 0;
    for (const d of docs) {
      if (!isKubeObject(d.obj) || NOT_API.has(`${d.obj.apiVersion}/${d.obj.kind}`)) continue;
      await validate(d);
      n++;
    }
    console.log(`validated ${n} objects`);
    assert.ok(n >= 30, `expected at least 30 objects, validated ${n}`);
  });

  it('the validator rejects broken manifests (so a pass means something)', async () => {
    const deployment = structuredClone(
      docs.find((d) => d.obj.kind === 'Deployment' && d.obj.metadata.name === 'wharf-internal')!,
    );
    deployment.obj.spec.template.spec.containers[0].ports[0].containerPort = 'eighty';
    await assert.rejects(validate(deployment), /containerPort/);

    const svc = structuredClone(
      docs.find((d) => d.obj.kind === 'Service' && d.obj.metadata.name === 'wharf-edge')!,
    );
    svc.obj.spec.type = 'Loadbalancer';
    await assert.rejects(validate(svc), /type/);

    const hook = structuredClone(docs.find((d) => d.obj.kind === 'MutatingWebhookConfiguration')!);
    hook.obj.webhooks[0].failurePolicy = 'Sometimes';
    await assert.rejects(validate(hook), /failurePolicy/);

    const cert = structuredClone(docs.find((d) => d.obj.kind === 'Certificate')!);
    delete cert.obj.spec.secretName;
    await assert.rejects(validate(cert), /secretName/);
  });

  it('targets the Kubernetes release the schemas describe', () => {
    // kubernetes-models 4.5.x is generated from Kubernetes v1.33.0 (its changelog).
    assert.match(clusterEnv().KUBERNETES_VERSION, /^v1\.33\.\d+$/);
  });
});
