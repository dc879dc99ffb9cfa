// How the demo fleet reaches Wharf. Two ways, same world:
//  - `records()`: ProjectRecords published straight into Wharf as a source (no apiserver);
//  - `kubeObjects()`: the Services and EndpointSlices a cluster would hold, for the fake apiserver
//    that Wharf's discovery watches. All instances share 127.0.0.1 with their own ports, so each
//    instance gets an EndpointSlice of its own (a slice has one port list for all its endpoints).
//
// A killed instance stays listed, as a crashed pod does until the kubelet notices: showing that
// Wharf's own health checks take it out is the point of the demo. Scale-down removes it.

import type { ProjectRecord } from '../model/snapshot.ts';
import type { DemoInstanceView } from './fleet.ts';

export interface DemoProjectView {
  readonly name: string;
  readonly ports: readonly string[];
  readonly settings: Readonly<Record<string, string>>;
}

const CREATED = '2026-01-01T00:00:00Z';

function hostPort(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  return { host: addr.slice(0, i), port: Number(addr.slice(i + 1)) };
}

/** Only instances that have listened once have ports worth publishing. */
function published(instances: readonly DemoInstanceView[], project: string): DemoInstanceView[] {
  return instances.filter(
    (i) => i.project === project && Object.values(i.addresses).every((a) => !a.endsWith(':0')),
  );
}

export function records(
  projects: readonly DemoProjectView[],
  instances: readonly DemoInstanceView[],
): ProjectRecord[] {
  return projects.map((p) => ({
    name: p.name,
    origin: 'demo',
    object: `project ${p.name}`,
    settingPrefix: `projects.${p.name}.`,
    declared: true,
    created: CREATED,
    ports: p.ports,
    settings: p.settings,
    instances: published(instances, p.name).map((i) => ({
      name: i.instance,
      uid: `demo-${i.instance}`,
      addresses: Object.fromEntries(Object.entries(i.addresses).map(([k, v]) => [k, hostPort(v)])),
      draining: i.status === 'draining',
    })),
  }));
}

export interface KubeObjects {
  readonly services: Record<string, unknown>[];
  readonly slices: Record<string, unknown>[];
}

/** The Services and EndpointSlices of the demo world, namespace `demo`. */
export function kubeObjects(
  projects: readonly DemoProjectView[],
  instances: readonly DemoInstanceView[],
): KubeObjects {
  const services: Record<string, unknown>[] = [];
  const slices: Record<string, unknown>[] = [];
  for (const p of projects) {
    const annotations: Record<string, string> = {};
    for (const [k, v] of Object.entries(p.settings)) annotations[`wharf.io/${k}`] = v;
    services.push({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: {
        name: p.name,
        namespace: 'demo',
        labels: { 'wharf.io/project': p.name },
        annotations,
        creationTimestamp: CREATED,
      },
      spec: {
        type: 'ClusterIP',
        selector: { app: p.name },
        ports: p.ports.map((name, i) => ({ name, port: 80 + i, targetPort: name, protocol: 'TCP' })),
      },
    });
    for (const i of published(instances, p.name)) {
      const first = hostPort(Object.values(i.addresses)[0]);
      slices.push({
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: {
          name: `${p.name}-${i.instance}`,
          namespace: 'demo',
          labels: {
            'kubernetes.io/service-name': p.name,
            'endpointslice.kubernetes.io/managed-by': 'wharf-demo',
          },
        },
        addressType: 'IPv4',
        endpoints: [
          {
            addresses: [first.host],
            // A killed or frozen instance stays ready, as a pod does until the kubelet notices:
            // Wharf's own checks take it out first. A scaled-down one drains.
            conditions:
              i.status === 'draining'
                ? { ready: false, serving: true, terminating: true }
                : { ready: true, serving: true, terminating: false },
            targetRef: { kind: 'Pod', namespace: 'demo', name: i.instance, uid: `demo-${i.instance}` },
          },
        ],
        ports: Object.entries(i.addresses).map(([name, a]) => ({
          name,
          port: hostPort(a).port,
          protocol: 'TCP',
        })),
      });
    }
  }
  return { services, slices };
}

/** The part of the fake apiserver the demo writes through (FakeApiServer satisfies it). */
export interface KubeWriter {
  apply(obj: never): unknown;
  delete(kind: string, namespace: string | undefined, name: string): unknown;
}

/**
 * Keeps the apiserver's Services and EndpointSlices equal to the fleet: writes only objects that
 * changed, so watchers (Wharf's discovery) see one event per real change, and deletes the slices
 * of instances that are gone.
 */
export class KubeSync {
  private readonly written = new Map<string, string>();

  constructor(private readonly api: KubeWriter) {}

  sync(projects: readonly DemoProjectView[], instances: readonly DemoInstanceView[]): void {
    const { services, slices } = kubeObjects(projects, instances);
    const seen = new Set<string>();
    for (const obj of [...services, ...slices]) {
      const meta = obj.metadata as { name: string };
      const key = `${obj.kind as string}/${meta.name}`;
      seen.add(key);
      const json = JSON.stringify(obj);
      if (this.written.get(key) === json) continue;
      this.api.apply(structuredClone(obj) as never);
      this.written.set(key, json);
    }
    for (const key of [...this.written.keys()]) {
      if (seen.has(key)) continue;
      const [kind, name] = key.split('/');
      this.api.delete(kind, 'demo', name);
      this.written.delete(key);
    }
  }
}
