import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { DemoInstanceView } from '../../src/demo/fleet.ts';
import { DEMO_PROJECTS } from '../../src/demo/scenario.ts';
import { KubeSync, kubeObjects, records } from '../../src/demo/source.ts';

const inst = (
  project: string,
  n: number,
  status: DemoInstanceView['status'] = 'running',
): DemoInstanceView => ({
  project,
  instance: `${project}-${n}`,
  ordinal: n,
  status,
  pid: 1000 + n,
  addresses: Object.fromEntries(
    DEMO_PROJECTS.find((p) => p.name === project)!.ports.map((port, i) => [
      port,
      `127.0.0.1:${20000 + n * 10 + i}`,
    ]),
  ),
});

describe('demo sources', () => {
  test('records: one ProjectRecord per project with named-port addresses; draining follows the fleet', () => {
    const recs = records(DEMO_PROJECTS, [inst('shop', 0), inst('shop', 1, 'draining'), inst('api', 0)]);
    const shop = recs.find((r) => r.name === 'shop')!;
    assert.deepEqual(shop.ports, ['web', 'admin']);
    assert.equal(shop.settings.affinity, 'cookie');
    assert.deepEqual(shop.instances[0].addresses.admin, { host: '127.0.0.1', port: 20001 });
    assert.equal(shop.instances[1].draining, true);
    assert.equal(recs.find((r) => r.name === 'api')!.settings['health-path'], '/ready');
  });

  test('kube objects: labelled Services with annotations, one EndpointSlice per instance', () => {
    const { services, slices } = kubeObjects(DEMO_PROJECTS, [inst('shop', 0), inst('shop', 1, 'draining')]);
    const shop = services.find((s) => (s.metadata as { name: string }).name === 'shop')! as {
      metadata: { labels: Record<string, string>; annotations: Record<string, string> };
      spec: { ports: { name: string }[] };
    };
    assert.equal(shop.metadata.labels['wharf.io/project'], 'shop');
    assert.equal(shop.metadata.annotations['wharf.io/affinity'], 'cookie');
    assert.deepEqual(
      shop.spec.ports.map((p) => p.name),
      ['web', 'admin'],
    );
    assert.equal(slices.length, 2);
    const s1 = slices[1] as {
      metadata: { labels: Record<string, string> };
      endpoints: { conditions: Record<string, boolean>; targetRef: { name: string } }[];
      ports: { name: string; port: number }[];
    };
    assert.equal(s1.metadata.labels['kubernetes.io/service-name'], 'shop');
    assert.equal(s1.endpoints[0].targetRef.name, 'shop-1');
    assert.deepEqual(s1.endpoints[0].conditions, { ready: false, serving: true, terminating: true });
    assert.deepEqual(s1.ports, [
      { name: 'web', port: 20010, protocol: 'TCP' },
      { name: 'admin', port: 20011, protocol: 'TCP' },
    ]);
  });

  test('KubeSync writes only what changed and deletes what left', () => {
    const log: string[] = [];
    const sync = new KubeSync({
      apply: (o: never) =>
        log.push(
          `apply ${(o as { kind: string }).kind}/${(o as { metadata: { name: string } }).metadata.name}`,
        ),
      delete: (kind, _ns, name) => log.push(`delete ${kind}/${name}`),
    });
    const one = [DEMO_PROJECTS[2]];
    sync.sync(one, [inst('blog', 0), inst('blog', 1)]);
    assert.equal(log.length, 3);
    log.length = 0;
    sync.sync(one, [inst('blog', 0), inst('blog', 1)]);
    assert.deepEqual(log, []);
    sync.sync(one, [inst('blog', 0), inst('blog', 1, 'draining')]);
    assert.deepEqual(log, ['apply EndpointSlice/blog-blog-1']);
    log.length = 0;
    sync.sync(one, [inst('blog', 0)]);
    assert.deepEqual(log, ['delete EndpointSlice/blog-blog-1']);
  });
});
