// Reads every manifest under deploy/ for the deploy tests. Templates in deploy/cluster/ are
// rendered first with deploy/cluster/cluster.env plus sample per-node values, as an operator
// would with envsubst. `kustomize()` renders deploy/ as `kubectl apply -k` would (where kubectl
// exists), with a chosen set of components.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';

export const ROOT = join(import.meta.dirname, '..', '..');
export const DEPLOY = join(ROOT, 'deploy');
export const CLUSTER = join(DEPLOY, 'cluster');
export const BASE = join(DEPLOY, 'base');
export const COMPONENTS = join(DEPLOY, 'components');

// biome-ignore lint/suspicious/noExplicitAny: manifests are untyped YAML
export type Obj = Record<string, any>;

export interface Doc {
  file: string; // relative to the repository root
  index: number;
  obj: Obj;
}

export function walkYaml(dir: string): string[] {
  return readdirSync(dir)
    .flatMap((name) => {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) return walkYaml(p);
      return /\.ya?ml$/.test(name) ? [p] : [];
    })
    .sort();
}

export function readEnvFile(path: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) out[m[1]] = m[2];
  }
  return out;
}

/** Values an operator supplies per node or from `kubeadm init` output (see the templates). */
export const SAMPLE_NODE_VALUES: Record<string, string> = {
  NODE_NAME: 'master-2',
  NODE_IP: '192.0.2.12',
  BOOTSTRAP_TOKEN: 'abcdef.0123456789abcdef',
  CA_CERT_HASH: `sha256:${'0'.repeat(64)}`,
  CERTIFICATE_KEY: 'f'.repeat(64),
  CLUSTER_CA_DATA: Buffer.from('-----BEGIN CERTIFICATE-----\n').toString('base64'),
  KUBECONFIG_PATH: '/etc/kubernetes/admin.conf',
};

export function clusterEnv(): Record<string, string> {
  return { ...readEnvFile(join(CLUSTER, 'cluster.env')), ...SAMPLE_NODE_VALUES };
}

/** envsubst: `${NAME}`; an unknown name is an error so a typo in a template cannot pass. */
export function render(text: string, env: Record<string, string>, file: string): string {
  return text.replace(/\$\{([A-Za-z0-9_]+)\}/g, (_m, name: string) => {
    if (!(name in env))
      throw new Error(`${file}: \${${name}} is not defined in cluster.env or the documented values`);
    return env[name];
  });
}

export function parseFile(path: string, text = readFileSync(path, 'utf8')): Doc[] {
  const file = relative(ROOT, path);
  return parseAllDocuments(text).flatMap((d, index) => {
    if (d.errors.length > 0)
      throw new Error(`${file} document ${index}: ${d.errors.map((e) => e.message).join('; ')}`);
    const obj = d.toJS();
    return obj === null || obj === undefined ? [] : [{ file, index, obj }];
  });
}

/** Every YAML document under deploy/, templates rendered. */
export function allDocs(): Doc[] {
  const env = clusterEnv();
  return walkYaml(DEPLOY).flatMap((p) => {
    const text = readFileSync(p, 'utf8');
    return parseFile(p, p.startsWith(CLUSTER) ? render(text, env, relative(ROOT, p)) : text);
  });
}

export function isKubeObject(o: Obj): boolean {
  return (
    typeof o.apiVersion === 'string' && typeof o.kind === 'string' && typeof o.metadata?.name === 'string'
  );
}

export function find(docs: Doc[], kind: string, name: string): Obj {
  const d = docs.find((x) => x.obj.kind === kind && x.obj.metadata?.name === name);
  if (!d) throw new Error(`no ${kind} ${name} in deploy/`);
  return d.obj;
}

/** Pod templates (or static pods) with where they came from. */
export function podSpecs(docs: Doc[]): { where: string; obj: Obj; spec: Obj }[] {
  return docs.flatMap((d) => {
    const o = d.obj;
    if (o.kind === 'Pod') return [{ where: `${d.file} Pod/${o.metadata.name}`, obj: o, spec: o.spec }];
    const spec = o.spec?.template?.spec;
    return spec ? [{ where: `${d.file} ${o.kind}/${o.metadata.name}`, obj: o, spec }] : [];
  });
}

/** The settings of deploy/kustomization.yaml (the wharf-settings ConfigMap generator's literals). */
export function settings(): Record<string, string> {
  const k = parseFile(join(DEPLOY, 'kustomization.yaml'))[0].obj;
  const gen = (k.configMapGenerator as Obj[]).find((g) => g.name === 'wharf-settings');
  if (!gen) throw new Error('deploy/kustomization.yaml has no wharf-settings generator');
  return Object.fromEntries(
    (gen.literals as string[]).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
}

/**
 * A container's args as the kubelet runs them: `$(VAR)` replaced by the container's env, values
 * from the wharf-settings ConfigMap taken from `values` (default: deploy/kustomization.yaml's).
 */
export function kubeletArgs(container: Obj, values: Record<string, string> = settings()): string[] {
  const env: Record<string, string> = {};
  for (const e of container.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    const ref = e.valueFrom?.configMapKeyRef;
    if (ref?.name === 'wharf-settings' || ref?.name?.startsWith('wharf-settings-'))
      env[e.name] = values[ref.key];
  }
  return (container.args as string[]).map((a) =>
    a.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name: string) => env[name] ?? m),
  );
}

export const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' }).status === 0;

/**
 * `kubectl kustomize deploy` with the given components enabled in place of the listed ones (and
 * `edit` applied to deploy/kustomization.yaml's text first), in a scratch copy of deploy/.
 */
export function kustomize(opts: { components?: string[]; edit?: (text: string) => string } = {}): Doc[] {
  const dir = mkdtempSync(join(tmpdir(), 'wharf-kustomize-'));
  try {
    cpSync(DEPLOY, dir, { recursive: true });
    let text = readFileSync(join(DEPLOY, 'kustomization.yaml'), 'utf8');
    if (opts.edit) text = opts.edit(text);
    if (opts.components) {
      const k = parseAllDocuments(text)[0].toJS() as Obj;
      k.components = opts.components.map((c) => `components/${c}`);
      text = JSON.stringify(k);
    }
    writeFileSync(join(dir, 'kustomization.yaml'), text);
    const out = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8', timeout: 60_000 });
    if (out.status !== 0) throw new Error(`kubectl kustomize: ${out.stderr}`);
    return parseAllDocuments(out.stdout).map((d, index) => ({
      file: 'kubectl kustomize',
      index,
      obj: d.toJS() as Obj,
    }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
