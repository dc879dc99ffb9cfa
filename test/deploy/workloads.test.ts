// The properties the issue asks of Wharf's pods, checked on the manifests themselves, and the
// values that must agree across files (ports, paths, timeouts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { parseSettings } from '../../src/routing/settings.ts';
import { allDocs, find, kubeletArgs, type Obj, podSpecs, settings } from './load.ts';

const docs = allDocs();
/** What `kubectl apply -k deploy/` applies before components: the files under deploy/base. */
const baseDocs = docs.filter((d) => d.file.startsWith('deploy/base/'));
const NODE_LOG_DIR = '/var/log/services';

function duration(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(s);
  assert.ok(m, `duration ${s}`);
  return Number(m[1]) * { ms: 0.001, s: 1, m: 60 }[m[2] as 'ms' | 's' | 'm'];
}

function matches(selector: Obj, labels: Obj): boolean {
  return Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
}

describe('Wharf pods (internal, edge, webhook)', () => {
  const wharf = podSpecs(docs).filter((p) => p.obj.metadata.labels?.['app.kubernetes.io/name'] === 'wharf');

  it('there are three: internal, edge, webhook', () => {
    assert.deepEqual(wharf.map((p) => p.obj.metadata.name).sort(), [
      'wharf-edge',
      'wharf-internal',
      'wharf-webhook',
    ]);
  });

  for (const p of wharf) {
    it(`${p.obj.metadata.name}: non-root, read-only root FS, seccomp, no capabilities, resources`, () => {
      assert.equal(p.spec.securityContext.runAsNonRoot, true);
      assert.ok(p.spec.securityContext.runAsUser > 0);
      assert.equal(p.spec.securityContext.seccompProfile.type, 'RuntimeDefault');
      assert.ok(!p.spec.hostNetwork && !p.spec.hostPID && !p.spec.hostIPC);
      for (const c of p.spec.containers) {
        assert.equal(c.securityContext.readOnlyRootFilesystem, true, c.name);
        assert.equal(c.securityContext.allowPrivilegeEscalation, false, c.name);
        assert.deepEqual(c.securityContext.capabilities.drop, ['ALL'], c.name);
        assert.equal(c.securityContext.capabilities.add, undefined, c.name);
        assert.ok(c.securityContext.privileged !== true, c.name);
        assert.ok(
          c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory,
          c.name,
        );
        assert.ok(c.readinessProbe && c.livenessProbe, c.name);
        // The root filesystem is read-only; /tmp is the one writable place (diagnostics).
        assert.ok(
          c.volumeMounts.some((m: Obj) => m.mountPath === '/tmp'),
          `${c.name}: /tmp`,
        );
      }
    });

    it(`${p.obj.metadata.name}: >= 2 replicas, anti-affinity, and a PodDisruptionBudget`, () => {
      assert.ok(p.obj.spec.replicas >= 2);
      const aa = p.spec.affinity.podAntiAffinity;
      const terms = [
        ...(aa.requiredDuringSchedulingIgnoredDuringExecution ?? []),
        ...(aa.preferredDuringSchedulingIgnoredDuringExecution ?? []).map((w: Obj) => w.podAffinityTerm),
      ];
      const labels = p.obj.spec.template.metadata.labels;
      assert.ok(
        terms.some(
          (t: Obj) => t.topologyKey === 'kubernetes.io/hostname' && matches(t.labelSelector, labels),
        ),
      );
      const pdbs = docs.filter(
        (d) => d.obj.kind === 'PodDisruptionBudget' && matches(d.obj.spec.selector, labels),
      );
      assert.equal(pdbs.length, 1);
      assert.equal(pdbs[0].obj.metadata.namespace, p.obj.metadata.namespace);
      // A PDB that allows no disruption would block every node drain.
      assert.ok(pdbs[0].obj.spec.maxUnavailable >= 1 || pdbs[0].obj.spec.minAvailable < p.obj.spec.replicas);
    });
  }

  for (const tier of ['internal', 'edge']) {
    it(`${tier}: config, ports, probes, shutdown timing, domain and logs agree`, () => {
      const dep = find(docs, 'Deployment', `wharf-${tier}`);
      const spec = dep.spec.template.spec;
      const c = spec.containers[0];
      const cmName = spec.volumes.find((v: Obj) => v.name === 'config').configMap.name;
      const config = parse(find(docs, 'ConfigMap', cmName).data['config.yaml']);
      assert.equal(config.tier, tier);
      // The domain is the one setting of deploy/kustomization.yaml, passed as --domain.
      assert.equal(config.domain, undefined, 'the domain lives in deploy/kustomization.yaml only');
      assert.deepEqual(kubeletArgs(c), [
        'serve',
        '--config',
        '/etc/wharf/config.yaml',
        '--domain',
        settings().domain,
      ]);
      assert.equal(c.volumeMounts.find((m: Obj) => m.name === 'config').mountPath, '/etc/wharf');

      const port = (name: string) => c.ports.find((x: Obj) => x.name === name).containerPort;
      // With `tls` the listener speaks TLS and plain HTTP only redirects.
      assert.equal(config.listen, `0.0.0.0:${port(config.tls ? 'https' : 'http')}`);
      if (config.tls) {
        assert.equal(config.tls['redirect-http'], `0.0.0.0:${port('http')}`);
        for (const { cert, key } of config.tls.certificates ?? []) {
          const dir = cert.slice(0, cert.lastIndexOf('/'));
          assert.equal(key.slice(0, key.lastIndexOf('/')), dir);
          const mount = c.volumeMounts.find((m: Obj) => m.mountPath === dir);
          assert.ok(mount, `a volume mounted at ${dir}`);
          assert.ok(!dir.startsWith('/etc/wharf/'), 'not nested in the ConfigMap volume');
          const secret = spec.volumes.find((v: Obj) => v.name === mount.name).secret.secretName;
          assert.ok(
            docs.some((d) => d.obj.kind === 'Certificate' && d.obj.spec.secretName === secret),
            `a Certificate writes ${secret}`,
          );
        }
        // Secrets read through the apiserver: each is written by a Certificate in its namespace.
        for (const { namespace, name } of config.tls.secrets ?? []) {
          assert.ok(
            docs.some(
              (d) =>
                d.obj.kind === 'Certificate' &&
                d.obj.metadata.namespace === namespace &&
                d.obj.spec.secretName === name,
            ),
            `a Certificate writes ${namespace}/${name}`,
          );
        }
        assert.ok((config.tls.certificates ?? []).length + (config.tls.secrets ?? []).length > 0);
      }
      assert.equal(config.admin, `0.0.0.0:${port('admin')}`);
      assert.deepEqual([c.livenessProbe.httpGet.path, c.livenessProbe.httpGet.port], ['/healthz', 'admin']);
      assert.deepEqual([c.readinessProbe.httpGet.path, c.readinessProbe.httpGet.port], ['/readyz', 'admin']);
      assert.equal(config.kubernetes['in-cluster'], true);

      // preStop sleep, then SIGTERM, then up to `drain` of draining, all before SIGKILL.
      const preStop = c.lifecycle.preStop.sleep.seconds;
      assert.ok(preStop >= 3, 'endpoints removal needs a few seconds to reach every proxy');
      assert.ok(preStop + duration(config.timeouts.drain) < spec.terminationGracePeriodSeconds);

      // Logs go to stdout (filebeat reads the container logs): no log directory, no hostPath, so
      // wharf-system can enforce Pod Security "restricted".
      assert.equal(config.logs?.dir, undefined);
      assert.ok(!spec.volumes.some((v: Obj) => v.hostPath), 'no hostPath volume');
    });
  }

  it('the edge tier forwards to the internal tier, which is a discoverable project', () => {
    const edge = parse(find(docs, 'ConfigMap', 'wharf-edge-config').data['config.yaml']);
    const svc = find(docs, 'Service', 'wharf-internal');
    assert.equal(svc.metadata.labels['wharf.io/project'], edge.edge['forward-to']);
    assert.ok(svc.spec.ports.some((p: Obj) => p.name === 'http'));
    assert.ok(svc.spec.ports.some((p: Obj) => p.name === svc.metadata.annotations['wharf.io/health-port']));
    // Probed on its admin port, never routed there: the admin API is not reachable through Wharf.
    const { settings, errors } = parseSettings(
      Object.fromEntries(
        Object.entries(svc.metadata.annotations as Record<string, string>)
          .filter(([k]) => k.startsWith('wharf.io/'))
          .map(([k, v]) => [k.slice('wharf.io/'.length), v]),
      ),
    );
    assert.deepEqual(errors, []);
    assert.deepEqual(settings.hidden, ['admin']);
    const edgeSvc = find(docs, 'Service', 'wharf-edge');
    assert.ok(['LoadBalancer', 'NodePort'].includes(edgeSvc.spec.type));
    assert.ok(
      !edgeSvc.spec.ports.some((p: Obj) => p.targetPort === 'admin'),
      'admin port never exposed outside',
    );
  });
});

describe('NetworkPolicy keeps admin ports in the cluster', () => {
  const policies = baseDocs.filter((d) => d.obj.kind === 'NetworkPolicy').map((d) => d.obj);

  for (const tier of ['internal', 'edge']) {
    it(`${tier}: admin only from the monitoring namespace (and the edge tier), never from an ipBlock`, () => {
      const labels = find(docs, 'Deployment', `wharf-${tier}`).spec.template.metadata.labels;
      const mine = policies.filter((p) => matches(p.spec.podSelector, labels));
      assert.equal(mine.length, 1);
      const rules = mine[0].spec.ingress.filter((r: Obj) =>
        r.ports.some((p: Obj) => p.port === 'admin' || p.port === 9901),
      );
      assert.ok(rules.length >= 1);
      for (const r of rules) {
        assert.ok(r.from?.length > 0, 'an admin rule without `from` would allow everyone');
        for (const f of r.from) {
          assert.equal(f.ipBlock, undefined);
          const ns = f.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'];
          const pod = f.podSelector?.matchLabels?.['app.kubernetes.io/component'];
          assert.ok(ns === 'monitoring' || (pod === 'edge' && !f.namespaceSelector), JSON.stringify(f));
        }
      }
      // Any rule open to the world must not include the admin port.
      for (const r of mine[0].spec.ingress) {
        if (r.from?.some((f: Obj) => f.ipBlock) || !r.from) {
          assert.ok(!r.ports.some((p: Obj) => p.port === 'admin' || p.port === 9901));
        }
      }
    });
  }
});

describe('mutating webhook configuration', () => {
  const cfg = find(docs, 'MutatingWebhookConfiguration', 'wharf-logs');
  const hook = cfg.webhooks[0];
  const dep = find(docs, 'Deployment', 'wharf-webhook');
  const args = Object.fromEntries(
    dep.spec.template.spec.containers[0].args
      .filter((a: string) => a.startsWith('--'))
      .map((a: string) => a.slice(2).split('=')),
  );

  it('is safe by default', () => {
    assert.deepEqual(hook.admissionReviewVersions, ['v1']);
    assert.equal(hook.sideEffects, 'None');
    assert.equal(hook.failurePolicy, 'Ignore');
    assert.equal(hook.reinvocationPolicy, 'IfNeeded');
    assert.ok(hook.timeoutSeconds <= 10);
    assert.deepEqual(hook.namespaceSelector.matchLabels, { 'wharf.io/logs': 'enabled' });
    const excluded = hook.namespaceSelector.matchExpressions[0];
    assert.equal(excluded.operator, 'NotIn');
    for (const ns of ['kube-system', dep.metadata.namespace]) assert.ok(excluded.values.includes(ns), ns);
    assert.deepEqual(hook.rules, [
      {
        operations: ['CREATE'],
        apiGroups: [''],
        apiVersions: ['v1'],
        resources: ['pods'],
        scope: 'Namespaced',
      },
    ]);
  });

  it('points at the webhook Service, path and certificate', () => {
    const svcRef = hook.clientConfig.service;
    const svc = find(docs, 'Service', svcRef.name);
    assert.equal(svc.metadata.namespace, svcRef.namespace);
    assert.equal(svcRef.path, '/mutate'); // startWebhook's default path
    const port = svc.spec.ports.find((p: Obj) => p.port === svcRef.port);
    assert.equal(port.targetPort, 'https');
    assert.equal(args.listen, `0.0.0.0:${dep.spec.template.spec.containers[0].ports[0].containerPort}`);

    const [ns, name] = cfg.metadata.annotations['cert-manager.io/inject-ca-from'].split('/');
    const cert = find(docs, 'Certificate', name);
    assert.equal(cert.metadata.namespace, ns);
    assert.ok(cert.spec.dnsNames.includes(`${svc.metadata.name}.${svc.metadata.namespace}.svc`));
    const tls = dep.spec.template.spec.volumes.find((v: Obj) => v.secret);
    assert.equal(tls.secret.secretName, cert.spec.secretName);
    const mount = dep.spec.template.spec.containers[0].volumeMounts.find((m: Obj) => m.name === tls.name);
    assert.equal(args['cert-file'], `${mount.mountPath}/tls.crt`);
    assert.equal(args['key-file'], `${mount.mountPath}/tls.key`);
  });

  it('mounts the node directory that filebeat reads: the node-log-dir setting', () => {
    // As the kubelet expands it, and as kustomize writes filebeat's hostPath (kustomize.test.ts).
    const expanded = Object.fromEntries(
      kubeletArgs(dep.spec.template.spec.containers[0])
        .filter((a: string) => a.startsWith('--'))
        .map((a: string) => a.slice(2).split('=')),
    );
    assert.equal(settings()['node-log-dir'], NODE_LOG_DIR);
    assert.equal(expanded['host-path'], NODE_LOG_DIR);
    assert.ok(args['mount-path'].startsWith('/'));
    const fb = find(docs, 'DaemonSet', 'filebeat');
    assert.ok(fb.spec.template.spec.volumes.some((v: Obj) => v.hostPath?.path === NODE_LOG_DIR));
  });
});
