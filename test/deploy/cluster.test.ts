// The kubeadm templates of deploy/cluster/ render (every ${VAR} is defined) and describe a
// 3-master stacked-etcd control plane behind one endpoint. kubeadm itself is not on CI machines,
// so this checks the structure kubeadm v1beta4 expects rather than running `kubeadm config validate`.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CLUSTER, COMPONENTS, clusterEnv, type Obj, parseFile, render, settings } from './load.ts';

const env = clusterEnv();
function load(name: string, extra: Record<string, string> = {}): Obj[] {
  const path = join(CLUSTER, name);
  return parseFile(path, render(readFileSync(path, 'utf8'), { ...env, ...extra }, name)).map((d) => d.obj);
}
const byKind = (docs: Obj[], kind: string) => docs.filter((d) => d.kind === kind);
const masters = [1, 2, 3].map((i) => ({ name: env[`MASTER_${i}_NAME`], ip: env[`MASTER_${i}_IP`] }));
const endpoint = `${env.CONTROL_PLANE_DNS}:${env.CONTROL_PLANE_PORT}`;

describe('kubeadm HA control plane', () => {
  it('render rejects an undefined variable', () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal ${VAR} of envsubst, filebeat or docker
    assert.throws(() => render('a: ${NOPE}', env, 't.yaml'), /NOPE/);
  });

  it('init: stacked etcd behind a controlPlaneEndpoint, SANs for every master', () => {
    const docs = load('kubeadm-init.yaml', { NODE_NAME: masters[0].name, NODE_IP: masters[0].ip });
    const [init] = byKind(docs, 'InitConfiguration');
    const [cluster] = byKind(docs, 'ClusterConfiguration');
    for (const d of [init, cluster]) assert.equal(d.apiVersion, 'kubeadm.k8s.io/v1beta4');
    assert.equal(init.localAPIEndpoint.advertiseAddress, masters[0].ip);
    assert.equal(init.localAPIEndpoint.bindPort, Number(env.CONTROL_PLANE_PORT));
    assert.equal(cluster.controlPlaneEndpoint, endpoint);
    assert.ok(cluster.etcd.local, 'stacked (local) etcd');
    assert.equal(cluster.etcd.external, undefined);
    for (const m of masters) {
      assert.ok(cluster.apiServer.certSANs.includes(m.ip), m.ip);
      assert.ok(cluster.apiServer.certSANs.includes(m.name), m.name);
    }
    assert.ok(cluster.apiServer.certSANs.includes(env.CONTROL_PLANE_VIP));
    assert.equal(cluster.kubernetesVersion, env.KUBERNETES_VERSION);
    assert.equal(cluster.networking.podSubnet, env.POD_SUBNET);
    const [kubelet] = byKind(docs, 'KubeletConfiguration');
    assert.equal(kubelet.cgroupDriver, 'systemd');
  });

  it('control-plane join: local endpoint, certificate key, discovery through the endpoint', () => {
    const [join] = load('kubeadm-join-control-plane.yaml');
    assert.equal(join.apiVersion, 'kubeadm.k8s.io/v1beta4');
    assert.equal(join.kind, 'JoinConfiguration');
    assert.ok(join.controlPlane.certificateKey);
    assert.equal(join.controlPlane.localAPIEndpoint.advertiseAddress, env.NODE_IP);
    assert.equal(join.discovery.bootstrapToken.apiServerEndpoint, endpoint);
    assert.match(join.discovery.bootstrapToken.token, /^[a-z0-9]{6}\.[a-z0-9]{16}$/);
    assert.match(join.discovery.bootstrapToken.caCertHashes[0], /^sha256:[0-9a-f]{64}$/);
  });

  it('worker join: no controlPlane section', () => {
    const [join] = load('kubeadm-join-worker.yaml');
    assert.equal(join.kind, 'JoinConfiguration');
    assert.equal(join.controlPlane, undefined);
    assert.equal(join.discovery.bootstrapToken.apiServerEndpoint, endpoint);
  });

  it('kube-vip announces the endpoint address on the masters, and no Service address', () => {
    const [pod] = load('kube-vip.yaml');
    const vars = Object.fromEntries(pod.spec.containers[0].env.map((e: Obj) => [e.name, e.value]));
    assert.equal(vars.address, env.CONTROL_PLANE_VIP);
    assert.equal(vars.port, env.CONTROL_PLANE_PORT);
    assert.equal(vars.cp_enable, 'true');
    // Masters run no edge pod: answering for the edge's address there (externalTrafficPolicy
    // Local) would drop its traffic. components/kube-vip does that from the edge pods' nodes.
    assert.equal(vars.svc_enable, 'false');
    assert.equal(pod.spec.hostNetwork, true);
    // The Service-mode DaemonSet (components/kube-vip) runs the same release.
    const ds = parseFile(join(COMPONENTS, 'kube-vip', 'daemonset.yaml'))[0].obj;
    assert.equal(ds.spec.template.spec.containers[0].image, pod.spec.containers[0].image);
  });

  it('node preparation creates the log directory world-writable with the sticky bit, before any pod', () => {
    const lines = readFileSync(join(CLUSTER, 'tmpfiles-wharf.conf'), 'utf8')
      .split('\n')
      .filter((l) => l.trim() && !l.startsWith('#'));
    assert.deepEqual(lines, [`d ${settings()['node-log-dir']} 1777 root root -`]);
  });

  it('the outside edge: the same domain as the cluster, TLS, and the wharf-edge identity', () => {
    assert.equal(env.WHARF_DOMAIN, settings().domain);
    const [cfg] = load('wharf-external.yaml');
    assert.equal(cfg.tier, 'edge');
    assert.equal(cfg.domain, settings().domain);
    assert.equal(cfg.listen, '0.0.0.0:8443');
    assert.deepEqual(cfg.tls.secrets, [{ namespace: 'wharf-system', name: 'wharf-edge-tls' }]);
    assert.equal(cfg.tls['redirect-http'], '0.0.0.0:8080');
    const [token] = load('wharf-token.yaml');
    assert.equal(token.metadata.annotations['kubernetes.io/service-account.name'], 'wharf-edge');
  });

  it("Wharf's kubeconfig and outside config list all three apiservers", () => {
    const [kc] = load('wharf-kubeconfig.yaml');
    const servers = kc.clusters.map((c: Obj) => c.cluster.server);
    assert.deepEqual(
      servers,
      masters.map((m) => `https://${m.ip}:${env.CONTROL_PLANE_PORT}`),
    );
    for (const c of kc.clusters) assert.ok(c.cluster['certificate-authority-data']);
    assert.equal(kc.contexts.length, 3);
    assert.ok(kc.contexts.some((c: Obj) => c.name === kc['current-context']));
    const [cfg] = load('wharf-external.yaml');
    assert.deepEqual(cfg.kubernetes.apiservers, servers);
  });
});
