// Every image reference is pinned: an exact version tag (optionally with a digest) or a digest.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { allDocs, clusterEnv, podSpecs, ROOT } from './load.ts';

const EXACT_TAG = /^v?\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?$/;
/** Images whose releases are numbered major.minor only (each tag is one immutable release). */
const TWO_PART_RELEASES = new Set(['registry.k8s.io/e2e-test-images/agnhost']);

function pinned(ref: string): boolean {
  const at = ref.indexOf('@');
  if (at >= 0) return /^sha256:[0-9a-f]{64}$/.test(ref.slice(at + 1));
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  if (colon <= slash) return false; // no tag at all means latest
  const tag = ref.slice(colon + 1);
  return EXACT_TAG.test(tag) || (TWO_PART_RELEASES.has(ref.slice(0, colon)) && /^\d+\.\d+$/.test(tag));
}

describe('image references are pinned', () => {
  it('the pin rule itself', () => {
    for (const ok of [
      'registry.example.com/wharf:0.1.0',
      'docker.elastic.co/beats/filebeat:9.4.4',
      'ghcr.io/kube-vip/kube-vip:v1.0.4',
      'node:24.21.0-trixie-slim',
      `node@sha256:${'a'.repeat(64)}`,
      'localhost:5000/x:1.2.3',
      'registry.k8s.io/e2e-test-images/agnhost:2.53',
    ]) {
      assert.ok(pinned(ok), ok);
    }
    for (const bad of [
      'wharf',
      'wharf:latest',
      'node:24',
      'x/y:2.53',
      'node:24-slim',
      'node:lts',
      'localhost:5000/x',
      'x@sha256:abc',
    ]) {
      assert.ok(!pinned(bad), bad);
    }
  });

  it('in every pod template, init containers included', () => {
    const refs = podSpecs(allDocs()).flatMap(({ where, spec }) =>
      [...(spec.initContainers ?? []), ...spec.containers].map((c: { image: string }) => ({
        where,
        image: c.image,
      })),
    );
    assert.ok(refs.length >= 6);
    for (const r of refs) assert.ok(pinned(r.image), `${r.where}: ${r.image} is not pinned`);
  });

  it("Wharf's own image carries the package version", () => {
    const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version;
    const wharf = podSpecs(allDocs())
      .flatMap(({ spec }) => spec.containers)
      .filter((c: { image: string }) => c.image.includes('/wharf:'));
    assert.equal(wharf.length, 3, 'internal, edge, webhook');
    for (const c of wharf) assert.equal(c.image.split(':').pop(), version);
  });

  it('in the Dockerfile', () => {
    const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    const arg = /^ARG NODE_IMAGE=(\S+)$/m.exec(text)?.[1];
    assert.ok(arg, 'ARG NODE_IMAGE');
    assert.ok(pinned(arg), arg);
    assert.match(arg, /^node:24\./, 'Node.js 24 LTS');
    const froms = [...text.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    assert.ok(froms.length >= 2, 'multi-stage');
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal ${VAR} of envsubst, filebeat or docker
    for (const f of froms) assert.ok(f === '${NODE_IMAGE}' || pinned(f), f);
  });

  it('the CNI and cert-manager manifest URLs name exact releases', () => {
    const env = clusterEnv();
    assert.match(env.CALICO_VERSION, /^v\d+\.\d+\.\d+$/);
    assert.equal(
      env.CALICO_MANIFEST_URL,
      `https://raw.githubusercontent.com/projectcalico/calico/${env.CALICO_VERSION}/manifests/calico.yaml`,
    );
    assert.match(env.KUBE_VIP_VERSION, /^v\d+\.\d+\.\d+$/);
    assert.match(env.CERT_MANAGER_VERSION, /^v\d+\.\d+\.\d+$/);
    assert.equal(
      env.CERT_MANAGER_MANIFEST_URL,
      `https://github.com/cert-manager/cert-manager/releases/download/${env.CERT_MANAGER_VERSION}/cert-manager.yaml`,
    );
  });
});
