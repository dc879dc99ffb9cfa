// Every Kubernetes object under deploy/ validates against the OpenAPI schemas of the targeted
// release, as compiled to ajv validators by kubernetes-models (Kubernetes v1.33.0) and
// @kubernetes-models/cert-manager (cert-manager.io/v1). Offline: the schemas are in node_modules.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { allDocs, clusterEnv, type Doc, isKubeObject, ROOT } from './load.ts';
import { modulePath, NOT_API, validate } from './models.ts';

/** Where the TypeScript interface `I<Kind>` of a model lives. */
function typePath(apiVersion: string, kind: string): string {
  const path = modulePath(apiVersion);
  assert.ok(path, `no models for ${apiVersion}`);
  return `${path}/${kind}`;
}

/** One typed constant per object, one object per line, so tsc's line numbers name the object. */
function strictSource(docs: Doc[]): { text: string; where: Record<number, string> } {
  const lines: string[] = [];
  const where: Record<number, string> = {};
  docs.forEach((d, i) => {
    const { apiVersion, kind } = d.obj;
    lines.push(`import type { I${kind} as T${i} } from '${typePath(apiVersion, kind)}';`);
  });
  docs.forEach((d, i) => {
    lines.push(`export const o${i}: T${i} = ${JSON.stringify(d.obj)};`);
    where[lines.length] = `${d.file} ${d.obj.kind}/${d.obj.metadata.name}`;
  });
  return { text: `${lines.join('\n')}\n`, where };
}

describe('manifests validate against the Kubernetes schemas', () => {
  const docs = allDocs();

  it('every YAML document is a known kind', () => {
    for (const d of docs) {
      const id = `${d.obj.apiVersion}/${d.obj.kind}`;
      if (NOT_API.has(id)) continue;
      // The wharf config for outside-cluster use is the only non-Kubernetes file allowed.
      if (d.file.endsWith('wharf-external.yaml')) continue;
      assert.ok(isKubeObject(d.obj), `${d.file} document ${d.index} is not a Kubernetes object (${id})`);
    }
  });

  it('each Kubernetes object is valid', async () => {
    let n = 0;
    for (const d of docs) {
      if (!isKubeObject(d.obj) || NOT_API.has(`${d.obj.apiVersion}/${d.obj.kind}`)) continue;
      await validate(d);
      n++;
    }
    console.log(`validated ${n} objects`);
    assert.ok(n >= 30, `expected at least 30 objects, validated ${n}`);
  });

  it('the validator rejects broken manifests (so a pass means something)', async () => {
    const deployment = structuredClone(
      docs.find((d) => d.obj.kind === 'Deployment' && d.obj.metadata.name === 'wharf-internal')!,
    );
    deployment.obj.spec.template.spec.containers[0].ports[0].containerPort = 'eighty';
    await assert.rejects(validate(deployment), /containerPort/);

    const svc = structuredClone(
      docs.find((d) => d.obj.kind === 'Service' && d.obj.metadata.name === 'wharf-edge')!,
    );
    svc.obj.spec.type = 'Loadbalancer';
    await assert.rejects(validate(svc), /type/);

    const hook = structuredClone(docs.find((d) => d.obj.kind === 'MutatingWebhookConfiguration')!);
    hook.obj.webhooks[0].failurePolicy = 'Sometimes';
    await assert.rejects(validate(hook), /failurePolicy/);

    const cert = structuredClone(docs.find((d) => d.obj.kind === 'Certificate')!);
    delete cert.obj.spec.secretName;
    await assert.rejects(validate(cert), /secretName/);
  });

  it('has no unknown fields (TypeScript excess-property check against the same models)', () => {
    // The OpenAPI schemas allow unknown properties, so ajv alone accepts `imagee:` or a field at
    // the wrong level; the apiserver's strict field validation would reject them at apply time.
    // The models' TypeScript interfaces are generated from the same schemas, and an object
    // literal with a property its type does not declare is a compile error: use that.
    const api = docs.filter((d) => isKubeObject(d.obj) && !NOT_API.has(`${d.obj.apiVersion}/${d.obj.kind}`));
    const source = strictSource(api);
    const dir = join(ROOT, 'node_modules', '.cache', 'wharf-strict');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'manifests.ts'), source.text);
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noEmit: true,
          module: 'nodenext',
          moduleResolution: 'nodenext',
          skipLibCheck: true,
          types: [],
        },
        files: ['manifests.ts'],
      }),
    );
    const tsc = spawnSync(join(ROOT, 'node_modules', '.bin', 'tsc'), ['-p', join(dir, 'tsconfig.json')], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    const errors = `${tsc.stdout}${tsc.stderr}`
      .split('\n')
      .filter((l) => /error TS/.test(l))
      .map((l) => {
        const line = Number(/\((\d+),\d+\)/.exec(l)?.[1]);
        return `${source.where[line] ?? '?'}: ${l.replace(/^.*error /, '')}`;
      });
    assert.deepEqual(errors, []);
    assert.equal(tsc.status, 0, tsc.stdout + tsc.stderr);

    // And the check catches what it is meant to catch.
    const broken = structuredClone(api.find((d) => d.obj.kind === 'Deployment')!);
    broken.obj.spec.template.spec.containers[0].imagee = broken.obj.spec.template.spec.containers[0].image;
    writeFileSync(join(dir, 'manifests.ts'), strictSource([broken]).text);
    const bad = spawnSync(join(ROOT, 'node_modules', '.bin', 'tsc'), ['-p', join(dir, 'tsconfig.json')], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    assert.notEqual(bad.status, 0);
    assert.match(bad.stdout, /imagee.{0,4} does not exist/);
  });

  it('targets the Kubernetes release the schemas describe', () => {
    // kubernetes-models 4.5.x is generated from Kubernetes v1.33.0 (its changelog).
    assert.match(clusterEnv().KUBERNETES_VERSION, /^v1\.33\.\d+$/);
  });
});
