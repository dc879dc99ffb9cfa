// deploy/ as kustomize sees it: base/ lists every manifest, each component lists its files, and
// (where kubectl exists) `kubectl kustomize deploy` renders valid objects in which the settings of
// deploy/kustomization.yaml, the one place to configure, reach every object that needs them, with
// each component on its own.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import {
  BASE,
  COMPONENTS,
  DEPLOY,
  type Doc,
  kubectl,
  kubeletArgs,
  kustomize,
  type Obj,
  parseFile,
  settings,
  walkYaml,
} from './load.ts';
import { validate } from './models.ts';

const id = (o: Obj) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
const root = parse(readFileSync(join(DEPLOY, 'kustomization.yaml'), 'utf8')) as Obj;
const components = readdirSync(COMPONENTS).sort();

describe('kustomize layout', () => {
  it('base/ lists every manifest file under it, once', () => {
    const k = parse(readFileSync(join(BASE, 'kustomization.yaml'), 'utf8'));
    const files = walkYaml(BASE)
      .map((p) => relative(BASE, p))
      .filter((f) => f !== 'kustomization.yaml');
    assert.deepEqual([...k.resources].sort(), files.sort());
  });

  it('each component lists every manifest file in its folder', () => {
    assert.deepEqual(components, ['edge-outside', 'kube-vip', 'monitoring', 'single-node']);
    for (const c of components) {
      const k = parse(readFileSync(join(COMPONENTS, c, 'kustomization.yaml'), 'utf8'));
      assert.equal(k.kind, 'Component', c);
      const files = walkYaml(join(COMPONENTS, c))
        .map((p) => relative(join(COMPONENTS, c), p))
        .filter((f) => f !== 'kustomization.yaml');
      assert.deepEqual([...(k.resources ?? [])].sort(), files.sort(), c);
    }
  });

  it('deploy/kustomization.yaml includes base/ and names every component (enabled or commented)', () => {
    assert.deepEqual(root.resources, ['base']);
    const text = readFileSync(join(DEPLOY, 'kustomization.yaml'), 'utf8');
    for (const c of components) assert.match(text, new RegExp(`components/${c}\\b`), c);
    for (const c of root.components) assert.ok(components.includes(c.replace('components/', '')), c);
    // Settings are literals of one generator; images and replica counts sit next to them.
    assert.deepEqual(Object.keys(settings()).sort(), [
      'domain',
      'edge-address',
      'edge-hosts',
      'node-log-dir',
    ]);
    assert.equal(root.images[0].name, 'registry.example.com/wharf');
  });
});

const skip = kubectl ? false : 'kubectl is not installed (the layout and schema checks above do not need it)';
if (skip) console.log(`skipping \`kubectl kustomize deploy\`: ${skip}`);

async function validAll(docs: Doc[]): Promise<void> {
  for (const d of docs) await validate(d);
}
const byId = (docs: Doc[], kind: string, name: string): Obj | undefined =>
  docs.find((d) => d.obj.kind === kind && d.obj.metadata.name === name)?.obj;

describe('kubectl kustomize deploy', { skip }, () => {
  it('renders the base, the default components and the settings ConfigMap, all valid', async () => {
    const out = kustomize();
    await validAll(out);
    const fromFiles = walkYaml(BASE)
      .filter((p) => !p.endsWith('kustomization.yaml'))
      .flatMap((p) => parseFile(p))
      .map((d) => id(d.obj));
    const kubeVip = walkYaml(join(COMPONENTS, 'kube-vip'))
      .filter((p) => !p.endsWith('kustomization.yaml'))
      .flatMap((p) => parseFile(p))
      .map((d) => id(d.obj));
    const rendered = out
      .map((d) => id(d.obj))
      .filter((x) => !x.startsWith('ConfigMap/wharf-system/wharf-settings-'));
    assert.deepEqual(rendered.sort(), [...fromFiles, ...kubeVip].sort());
    assert.ok(out.some((d) => id(d.obj).startsWith('ConfigMap/wharf-system/wharf-settings-')));
  });

  it('every setting reaches its objects; changing it in deploy/kustomization.yaml changes them', () => {
    for (const [values, edit] of [
      [settings(), (t: string) => t],
      [
        {
          ...settings(),
          domain: 'corp.example.org',
          'node-log-dir': '/srv/pod-logs',
          'edge-address': '198.51.100.7',
        },
        (t: string) =>
          t
            .replace(/domain=\S+/, 'domain=corp.example.org')
            .replace(/node-log-dir=\S+/, 'node-log-dir=/srv/pod-logs')
            .replace(/edge-address=\S+/, 'edge-address=198.51.100.7')
            .replace(/newTag: \S+/, 'newTag: 9.9.9')
            .replace(/("value": )2\}/g, '$13}'),
      ],
    ] as const) {
      const out = kustomize({ edit });
      const gen = out.find((d) => id(d.obj).startsWith('ConfigMap/wharf-system/wharf-settings-'))!.obj;
      assert.deepEqual(gen.data, values);
      const cert = byId(out, 'Certificate', 'wharf-edge')!;
      assert.deepEqual(cert.spec.dnsNames, [values.domain, `*.${values.domain}`]);
      const fb = byId(out, 'DaemonSet', 'filebeat')!;
      assert.equal(
        fb.spec.template.spec.volumes.find((v: Obj) => v.name === 'services').hostPath.path,
        values['node-log-dir'],
      );
      const edgeSvc = byId(out, 'Service', 'wharf-edge')!;
      assert.equal(edgeSvc.metadata.annotations['kube-vip.io/loadbalancerIPs'], values['edge-address']);
      // Read at run time: the kubelet expands $(VAR) from the generated ConfigMap (renamed with
      // its hash suffix everywhere it is referenced).
      for (const name of ['wharf-internal', 'wharf-edge']) {
        const c = byId(out, 'Deployment', name)!.spec.template.spec.containers[0];
        const ref = c.env.find((e: Obj) => e.name === 'WHARF_DOMAIN').valueFrom.configMapKeyRef;
        assert.equal(ref.name, gen.metadata.name, name);
        assert.ok(kubeletArgs(c, gen.data).join(' ').endsWith(`--domain ${values.domain}`), name);
      }
      const hook = byId(out, 'Deployment', 'wharf-webhook')!.spec.template.spec.containers[0];
      assert.ok(kubeletArgs(hook, gen.data).includes(`--host-path=${values['node-log-dir']}`));
      const images = out
        .flatMap((d) => d.obj.spec?.template?.spec?.containers ?? [])
        .map((c: Obj) => c.image);
      const wharf = images.filter((i: string) => i.includes('/wharf:'));
      assert.equal(wharf.length, 3);
      const replicas = ['wharf-internal', 'wharf-edge', 'wharf-webhook'].map(
        (n) => byId(out, 'Deployment', n)!.spec.replicas,
      );
      if (values.domain === 'corp.example.org') {
        assert.ok(wharf.every((i: string) => i.endsWith(':9.9.9')));
        assert.deepEqual(replicas, [3, 3, 3]);
      } else assert.deepEqual(replicas, [2, 2, 2]);
    }
  });

  it('kube-vip: the edge Service is of its class, and kube-vip serves only that class per Service', () => {
    const out = kustomize({ components: ['kube-vip'] });
    assert.equal(byId(out, 'Service', 'wharf-edge')!.spec.loadBalancerClass, 'kube-vip.io/kube-vip-class');
    const ds = byId(out, 'DaemonSet', 'kube-vip-services')!;
    const env = Object.fromEntries(
      ds.spec.template.spec.containers[0].env.map((e: Obj) => [e.name, e.value]),
    );
    assert.equal(env.svc_election, 'true');
    assert.equal(env.cp_enable, 'false');
    assert.equal(env.lb_class_only, 'true');
    const without = kustomize({ components: [] });
    assert.equal(byId(without, 'Service', 'wharf-edge')!.spec.loadBalancerClass, undefined);
    assert.equal(byId(without, 'DaemonSet', 'kube-vip-services'), undefined);
  });

  it('monitoring: a PodMonitor for both tiers, the PrometheusRule and the dashboard ConfigMap', async () => {
    const out = kustomize({ components: ['monitoring'] });
    await validAll(out);
    const pm = byId(out, 'PodMonitor', 'wharf')!;
    assert.deepEqual(pm.spec.selector.matchExpressions[1].values, ['internal', 'edge']);
    assert.equal(pm.spec.podMetricsEndpoints[0].port, 'admin');
    assert.ok(byId(out, 'PrometheusRule', 'wharf'));
    const dash = byId(out, 'ConfigMap', 'wharf-grafana-dashboard')!;
    assert.equal(dash.metadata.labels.grafana_dashboard, '1');
    assert.equal(JSON.parse(dash.data['wharf.json']).uid, 'wharf');
  });

  it('single-node: one replica each, no required anti-affinity, the edge on NodePorts', async () => {
    const out = kustomize({
      components: ['single-node'],
      edit: (t) => t.replace(/("value": )2\}/g, '$11}'),
    });
    await validAll(out);
    for (const n of ['wharf-internal', 'wharf-edge', 'wharf-webhook']) {
      const d = byId(out, 'Deployment', n)!;
      assert.equal(d.spec.replicas, 1, n);
      assert.equal(d.spec.template.spec.affinity, undefined, n);
    }
    const svc = byId(out, 'Service', 'wharf-edge')!;
    assert.equal(svc.spec.type, 'NodePort');
    assert.deepEqual(
      svc.spec.ports.map((p: Obj) => p.nodePort),
      [30443, 30080],
    );
  });

  it('edge-outside: no edge in the cluster; the edge hosts (and only they) reach the internal tier', async () => {
    const out = kustomize({ components: ['edge-outside'] });
    await validAll(out);
    for (const [kind, name] of [
      ['Deployment', 'wharf-edge'],
      ['Service', 'wharf-edge'],
      ['PodDisruptionBudget', 'wharf-edge'],
      ['ConfigMap', 'wharf-edge-config'],
    ])
      assert.equal(byId(out, kind, name), undefined, `${kind}/${name}`);
    // Its identity stays: the outside edge uses the wharf-edge ServiceAccount's token.
    assert.ok(byId(out, 'ServiceAccount', 'wharf-edge'));
    assert.ok(byId(out, 'Certificate', 'wharf-edge'));
    const np = byId(out, 'NetworkPolicy', 'wharf-internal-from-edge-hosts')!;
    assert.deepEqual(np.spec.podSelector.matchLabels, {
      'app.kubernetes.io/name': 'wharf',
      'app.kubernetes.io/component': 'internal',
    });
    assert.deepEqual(np.spec.ingress, [
      {
        from: [{ ipBlock: { cidr: settings()['edge-hosts'] } }],
        ports: [
          { port: 'http', protocol: 'TCP' },
          { port: 'admin', protocol: 'TCP' },
        ],
      },
    ]);
    assert.notEqual(settings()['edge-hosts'], '0.0.0.0/0');
  });
});
