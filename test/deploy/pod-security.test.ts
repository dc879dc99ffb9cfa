// Pod Security: every pod template under deploy/ passes the level its namespace enforces, and each
// namespace enforces the lowest level its pods need. The checks are the Pod Security Standards'
// "baseline" and "restricted" controls (Kubernetes v1.33), written out here because no admission
// controller runs offline; the same checks fail on the manifests that mounted the node log
// directory into wharf-system (see the last test).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Operation } from 'fast-json-patch';
import { podPatch } from '../../src/webhook/mutate.ts';
import { applyPatch } from '../webhook/helpers.ts';
import { allDocs, find, type Obj, podSpecs } from './load.ts';

type Level = 'privileged' | 'baseline' | 'restricted';

const BASELINE_CAPS = new Set([
  'AUDIT_WRITE',
  'CHOWN',
  'DAC_OVERRIDE',
  'FOWNER',
  'FSETID',
  'KILL',
  'MKNOD',
  'NET_BIND_SERVICE',
  'SETFCAP',
  'SETGID',
  'SETPCAP',
  'SETUID',
  'SYS_CHROOT',
]);
const SAFE_SYSCTLS = new Set([
  'kernel.shm_rmid_forced',
  'net.ipv4.ip_local_port_range',
  'net.ipv4.ip_unprivileged_port_start',
  'net.ipv4.tcp_syncookies',
  'net.ipv4.ping_group_range',
  'net.ipv4.ip_local_reserved_ports',
  'net.ipv4.tcp_keepalive_time',
  'net.ipv4.tcp_fin_timeout',
  'net.ipv4.tcp_keepalive_intvl',
  'net.ipv4.tcp_keepalive_probes',
]);
const RESTRICTED_VOLUMES = new Set([
  'configMap',
  'csi',
  'downwardAPI',
  'emptyDir',
  'ephemeral',
  'persistentVolumeClaim',
  'projected',
  'secret',
]);

/** The controls a pod spec fails at `level`, each as a short reason. */
function violations(spec: Obj, level: Level): string[] {
  if (level === 'privileged') return [];
  const out: string[] = [];
  const containers: Obj[] = [
    ...(spec.initContainers ?? []),
    ...spec.containers,
    ...(spec.ephemeralContainers ?? []),
  ];
  const psc = spec.securityContext ?? {};
  // baseline
  if (spec.hostNetwork || spec.hostPID || spec.hostIPC) out.push('host namespaces');
  for (const v of spec.volumes ?? []) if (v.hostPath) out.push(`hostPath volume ${v.name}`);
  for (const s of psc.sysctls ?? []) if (!SAFE_SYSCTLS.has(s.name)) out.push(`sysctl ${s.name}`);
  if (psc.seccompProfile?.type === 'Unconfined') out.push('seccomp Unconfined');
  for (const c of containers) {
    const sc = c.securityContext ?? {};
    if (sc.privileged) out.push(`${c.name}: privileged`);
    if (sc.windowsOptions?.hostProcess) out.push(`${c.name}: hostProcess`);
    for (const cap of sc.capabilities?.add ?? [])
      if (!BASELINE_CAPS.has(cap)) out.push(`${c.name}: capability ${cap}`);
    for (const p of c.ports ?? []) if (p.hostPort) out.push(`${c.name}: hostPort ${p.hostPort}`);
    if (sc.procMount && sc.procMount !== 'Default') out.push(`${c.name}: procMount`);
    if (sc.seccompProfile?.type === 'Unconfined') out.push(`${c.name}: seccomp Unconfined`);
    if (sc.appArmorProfile?.type === 'Unconfined') out.push(`${c.name}: AppArmor Unconfined`);
    if (sc.seLinuxOptions?.user || sc.seLinuxOptions?.role) out.push(`${c.name}: SELinux user/role`);
  }
  if (level === 'baseline') return out;
  // restricted
  for (const v of spec.volumes ?? []) {
    const type = Object.keys(v).find((k) => k !== 'name');
    if (!type || !RESTRICTED_VOLUMES.has(type)) out.push(`volume type ${type}`);
  }
  for (const c of containers) {
    const sc = c.securityContext ?? {};
    if (sc.allowPrivilegeEscalation !== false) out.push(`${c.name}: allowPrivilegeEscalation`);
    if ((sc.runAsNonRoot ?? psc.runAsNonRoot) !== true) out.push(`${c.name}: runAsNonRoot`);
    if ((sc.runAsUser ?? psc.runAsUser) === 0) out.push(`${c.name}: runAsUser 0`);
    const seccomp = sc.seccompProfile?.type ?? psc.seccompProfile?.type;
    if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost') out.push(`${c.name}: seccomp profile`);
    if (!(sc.capabilities?.drop ?? []).includes('ALL')) out.push(`${c.name}: does not drop ALL`);
    for (const cap of sc.capabilities?.add ?? [])
      if (cap !== 'NET_BIND_SERVICE') out.push(`${c.name}: adds ${cap}`);
  }
  return out;
}

const docs = allDocs();
/** Enforced level per namespace: its label, or privileged (the default when nothing is configured). */
function enforced(ns: string): Level {
  const obj = docs.find((d) => d.obj.kind === 'Namespace' && d.obj.metadata.name === ns)?.obj;
  return (obj?.metadata.labels?.['pod-security.kubernetes.io/enforce'] as Level | undefined) ?? 'privileged';
}
/** The lowest level a pod spec passes. */
const needs = (spec: Obj): Level =>
  violations(spec, 'restricted').length === 0
    ? 'restricted'
    : violations(spec, 'baseline').length === 0
      ? 'baseline'
      : 'privileged';

describe('Pod Security', () => {
  const pods = podSpecs(docs).filter(
    (p) => p.obj.kind !== 'Pod' || p.obj.metadata.namespace !== 'kube-system',
  );

  it("wharf-system, with the internet-facing edge, enforces (and warns and audits at) 'restricted'", () => {
    const ns = find(docs, 'Namespace', 'wharf-system');
    for (const mode of ['enforce', 'warn', 'audit'])
      assert.equal(ns.metadata.labels[`pod-security.kubernetes.io/${mode}`], 'restricted', mode);
  });

  it('every pod template passes the level its namespace enforces', () => {
    const failed: string[] = [];
    for (const p of pods) {
      const ns = p.obj.metadata.namespace;
      const v = violations(p.spec, enforced(ns));
      if (v.length > 0) failed.push(`${p.where} in ${ns} (${enforced(ns)}): ${v.join('; ')}`);
    }
    assert.deepEqual(failed, []);
  });

  it('each namespace enforces no more than its pods need: why logging, kube-system and demo are privileged', () => {
    const level = (name: string) =>
      needs(pods.find((p) => p.obj.metadata.name === name && p.obj.kind !== 'Pod')!.spec);
    for (const n of ['wharf-internal', 'wharf-edge', 'wharf-webhook'])
      assert.equal(level(n), 'restricted', n);
    // filebeat: hostPath (node logs, its registry), root with DAC_READ_SEARCH to read every pod's files.
    const filebeat = pods.find((p) => p.obj.metadata.name === 'filebeat')!.spec;
    assert.equal(needs(filebeat), 'privileged');
    assert.ok(violations(filebeat, 'baseline').some((v) => v.includes('hostPath')));
    assert.equal(enforced('logging'), 'privileged');
    // kube-vip: the host's network and NET_ADMIN/NET_RAW to own an address and answer ARP.
    const kubeVip = pods.find((p) => p.obj.metadata.name === 'kube-vip-services')!;
    assert.equal(kubeVip.obj.metadata.namespace, 'kube-system');
    assert.deepEqual(
      violations(kubeVip.spec, 'baseline').sort(),
      ['host namespaces', 'kube-vip: capability NET_ADMIN', 'kube-vip: capability NET_RAW'].sort(),
    );
    // A project namespace with the log mount: the webhook adds a hostPath to each pod.
    const hello = find(docs, 'Deployment', 'hello');
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { namespace: 'demo' },
      spec: hello.spec.template.spec,
    };
    const ops = podPatch(pod, { hostPath: '/var/log/services', mountPath: '/var/log/service' });
    const mutated = applyPatch(pod, ops as Operation[]);
    assert.notEqual(needs(hello.spec.template.spec), 'privileged', 'before the webhook');
    assert.equal(needs(mutated.spec), 'privileged', 'after the webhook');
    assert.equal(enforced('demo'), 'privileged');
  });

  it('the checks bite: the old wharf-internal, with the node log directory mounted, fails restricted', () => {
    const dep = structuredClone(find(docs, 'Deployment', 'wharf-internal'));
    dep.spec.template.spec.volumes.push({
      name: 'node-logs',
      hostPath: { path: '/var/log/services', type: 'DirectoryOrCreate' },
    });
    assert.deepEqual(violations(dep.spec.template.spec, 'restricted'), [
      'hostPath volume node-logs',
      'volume type hostPath',
    ]);
    const root = structuredClone(find(docs, 'Deployment', 'wharf-edge'));
    root.spec.template.spec.securityContext.runAsUser = 0;
    root.spec.template.spec.containers[0].securityContext.capabilities = { add: ['NET_ADMIN'] };
    assert.deepEqual(violations(root.spec.template.spec, 'restricted').sort(), [
      'wharf: adds NET_ADMIN',
      'wharf: capability NET_ADMIN',
      'wharf: does not drop ALL',
      'wharf: runAsUser 0',
    ]);
  });
});
