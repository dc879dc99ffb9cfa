// The ClusterRole grants exactly the Kubernetes API calls Wharf's code declares it makes; only the
// edge tier may read Secrets, and only those its config names.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { EDGE_TLS_API_USES, KUBERNETES_API_USES } from '../../src/discovery/resources.ts';
import { allDocs, BASE, find, type Obj, parseFile, podSpecs } from './load.ts';

function triples(rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[]): string[] {
  const out = new Set<string>();
  for (const r of rules) {
    for (const g of r.apiGroups)
      for (const res of r.resources) for (const v of r.verbs) out.add(`${g}|${res}|${v}`);
  }
  return [...out].sort();
}

describe('RBAC matches src/discovery/resources.ts', () => {
  const docs = parseFile(join(BASE, 'rbac.yaml'));
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

  it('binds the role to the ServiceAccount of each tier', () => {
    const binding = find(docs, 'ClusterRoleBinding', 'wharf-discovery');
    assert.deepEqual(binding.roleRef, {
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'ClusterRole',
      name: 'wharf-discovery',
    });
    const all = allDocs();
    const accounts: Record<string, string> = { internal: 'wharf', edge: 'wharf-edge' };
    for (const tier of ['internal', 'edge']) {
      const sa = find(all, 'ServiceAccount', accounts[tier]);
      const [tmpl] = podSpecs(parseFile(join(BASE, tier, 'deployment.yaml')));
      assert.equal(tmpl.spec.serviceAccountName, accounts[tier], tier);
      assert.equal(tmpl.obj.metadata.namespace, sa.metadata.namespace, tier);
      assert.ok(
        binding.subjects.some(
          (s: Obj) =>
            s.kind === 'ServiceAccount' && s.name === accounts[tier] && s.namespace === sa.metadata.namespace,
        ),
        tier,
      );
    }
    assert.equal(binding.subjects.length, 2);
  });
});

describe('Secrets: the edge tier reads only the ones it names, the internal tier none', () => {
  const all = allDocs();
  const edgeConfig = parse(find(all, 'ConfigMap', 'wharf-edge-config').data['config.yaml']);
  /** Rules of every Role/ClusterRole bound to a ServiceAccount, wherever the binding is. */
  function rulesOf(account: string): { where: string; rule: Obj }[] {
    const out: { where: string; rule: Obj }[] = [];
    for (const d of all) {
      const b = d.obj;
      if (b.kind !== 'RoleBinding' && b.kind !== 'ClusterRoleBinding') continue;
      if (!b.subjects?.some((s: Obj) => s.kind === 'ServiceAccount' && s.name === account)) continue;
      const role = all.find(
        (r) =>
          r.obj.kind === b.roleRef.kind &&
          r.obj.metadata.name === b.roleRef.name &&
          (b.roleRef.kind === 'ClusterRole' || r.obj.metadata.namespace === b.metadata.namespace),
      );
      assert.ok(role, `${d.file}: ${b.roleRef.kind} ${b.roleRef.name} exists`);
      for (const rule of role.obj.rules ?? [])
        out.push({
          where: `${role.file} ${role.obj.kind}/${role.obj.metadata.name} in ${b.metadata.namespace ?? 'the cluster'}`,
          rule: { ...rule, namespace: b.metadata.namespace },
        });
    }
    return out;
  }
  const secretRules = (account: string) =>
    rulesOf(account).filter(({ rule }) => rule.resources.includes('secrets') || rule.resources.includes('*'));

  it('the internal tier has no rule that mentions Secrets', () => {
    assert.deepEqual(secretRules('wharf'), []);
  });

  it('the edge tier: EDGE_TLS_API_USES verbs, by resourceNames, in a namespaced Role only', () => {
    const verbs = EDGE_TLS_API_USES.find((u) => u.resource === 'secrets')!.verbs;
    const rules = secretRules('wharf-edge');
    assert.ok(rules.length > 0);
    for (const { where, rule } of rules) {
      assert.deepEqual([...rule.verbs].sort(), [...verbs].sort(), where);
      assert.ok(rule.resourceNames?.length > 0, `${where}: resourceNames`);
      assert.ok(rule.namespace, `${where}: bound by a RoleBinding, not cluster-wide`);
      assert.deepEqual(rule.apiGroups, [''], where);
    }
  });

  it("grants exactly the Secrets of the edge config's tls.secrets in deploy/ (examples grant their own)", () => {
    const named = (edgeConfig.tls.secrets as Obj[]).map((s) => `${s.namespace}/${s.name}`).sort();
    assert.ok(named.length > 0);
    const granted = secretRules('wharf-edge')
      .filter(({ where }) => !where.startsWith('deploy/examples/'))
      .flatMap(({ rule }) => rule.resourceNames.map((n: string) => `${rule.namespace}/${n}`))
      .sort();
    assert.deepEqual(granted, named);
  });
});
