// Every Kubernetes API call Wharf makes, in one place. deploy/rbac is checked against this list by a
// test, so the ClusterRole grants exactly what the code uses.

export interface ApiUse {
  readonly group: string; // '' is the core group
  readonly resource: string;
  readonly verbs: readonly string[];
}

export const KUBERNETES_API_USES: readonly ApiUse[] = [
  { group: '', resource: 'services', verbs: ['get', 'list', 'watch'] },
  { group: 'discovery.k8s.io', resource: 'endpointslices', verbs: ['get', 'list', 'watch'] },
];
