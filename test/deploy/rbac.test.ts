// The ClusterRole grants exactly the Kubernetes API calls Wharf's code declares it makes.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { KUBERNETES_API_USES } from '../../src/discovery/resources.ts';
import { DEPLOY, find, type Obj, parseFile, podSpecs } from './load.ts';

function triples(rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[]): string[] {
  const out = new Set<string>();
  for (const r of rules) {
    for (const g of r.apiGroups)
      for (const res of r.resources) for (const v of r.verbs) out.add(`${g}|${res}|${v}`);
  }
  return [...out].sort();
}

describe('RBAC matches src/discovery/resources.ts', () => {
  const docs = parseFile(join(DEPLOY, 'rbac.yaml'));
  const role = find(docs, 'ClusterRole', 'wharf-discovery');

  it('grants exactly KUBERNETES_API_USES, nothing more, nothing less', () => {
    const fromCode = triples(
      KUBERNETES_API_USES.map((u) => ({
        apiGroups: [u.group],
        resources: [u.resource],
        verbs: [...u.verbs],
      })),
    );
    assert.ok(fromCode.length > 0);
    assert.deepEqual(triples(role.rules), fromCode);
  });

  it('uses no wildcards, resourceNames or nonResourceURLs', () => {
    for (const r of role.rules as Obj[]) {
      for (const list of [r.apiGroups, r.resources, r.verbs])
        assert.ok(!list.includes('*'), JSON.stringify(r));
      assert.equal(r.resourceNames, undefined);
      assert.equal(r.nonResourceURLs, undefined);
    }
  });

  it('binds the role to the ServiceAccount both tiers run as', () => {
    const binding = find(docs, 'ClusterRoleBinding', 'wharf-discovery');
    assert.deepEqual(binding.roleRef, {
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'ClusterRole',
      name: 'wharf-discovery',
    });
    const sa = find(docs, 'ServiceAccount', 'wharf');
    assert.deepEqual(binding.subjects, [
      { kind: 'ServiceAccount', name: 'wharf', namespace: sa.metadata.namespace },
    ]);
    for (const tier of ['internal', 'edge']) {
      const [tmpl] = podSpecs(parseFile(join(DEPLOY, tier, 'deployment.yaml')));
      assert.equal(tmpl.spec.serviceAccountName, 'wharf', tier);
      assert.equal(tmpl.obj.metadata.namespace, sa.metadata.namespace, tier);
    }
  });
});
