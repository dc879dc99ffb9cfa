// Every Kubernetes API call Wharf makes, in one place. deploy/rbac is checked against this list by a
// test, so the ClusterRole grants exactly what the code uses.

export interface ApiUse {
  readonly group: string; // '' is the core group
  readonly resource: string;
  readonly verbs: readonly string[];
}

export const KUBERNETES_API_USES: readonly ApiUse[] = [
  // Reflector: paged LIST and WATCH of the collections (source.ts). No GET of single objects, no pods.
  { group: '', resource: 'services', verbs: ['list', 'watch'] },
  { group: 'discovery.k8s.io', resource: 'endpointslices', verbs: ['list', 'watch'] },
];

/**
 * The edge tier with TLS only, on top of the above: list/watch of single named Secrets
 * (`fieldSelector=metadata.name=<name>`, src/discovery/secrets.ts), so a Role with `resourceNames`
 * suffices. The internal tier never reads Secrets. deploy/edge/rbac.yaml is checked against this.
 */
export const EDGE_TLS_API_USES: readonly ApiUse[] = [
  { group: '', resource: 'secrets', verbs: ['list', 'watch'] },
];
