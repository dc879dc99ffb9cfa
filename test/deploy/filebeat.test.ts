// filebeat's configuration parses, reads the per-node log directory, parses Wharf's JSON logs,
// adds Kubernetes metadata by pod, and has its output in exactly one place.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runInNewContext } from 'node:vm';
import { parse } from 'yaml';
import { allDocs, find, type Obj } from './load.ts';

const docs = allDocs();
const main = parse(find(docs, 'ConfigMap', 'filebeat-config').data['filebeat.yml']) as Obj;
const output = parse(find(docs, 'ConfigMap', 'filebeat-output').data['output.yml']) as Obj;
const ds = find(docs, 'DaemonSet', 'filebeat');

/** filebeat's glob as a RegExp; `**` is zero or more directories (its recursive_glob). */
function globToRegExp(glob: string): RegExp {
  const segs = glob.split('/');
  let re = '';
  segs.forEach((seg, i) => {
    if (seg === '**') {
      re += '(?:[^/]+/)*';
      return;
    }
    re += seg.replace(/[.+^$()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*');
    if (i < segs.length - 1) re += '/';
  });
  return new RegExp(`^${re}$`);
}

function inputFor(path: string): string[] {
  return (main['filebeat.inputs'] as Obj[])
    .filter((i) => i.paths.some((g: string) => globToRegExp(g).test(path)))
    .filter(
      (i) => !(i['prospector.scanner.exclude_files'] ?? []).some((re: string) => new RegExp(re).test(path)),
    )
    .map((i) => i.id);
}

describe('filebeat configuration', () => {
  it('has filestream inputs with unique ids', () => {
    const inputs = main['filebeat.inputs'] as Obj[];
    assert.ok(inputs.length >= 2);
    for (const i of inputs) assert.equal(i.type, 'filestream');
    assert.equal(new Set(inputs.map((i) => i.id)).size, inputs.length);
  });

  it("parses Wharf's access and health logs as JSON lines", () => {
    const wharf = (main['filebeat.inputs'] as Obj[]).find((i) => i.id === 'wharf-json')!;
    const ndjson = wharf.parsers.find((p: Obj) => p.ndjson)?.ndjson;
    assert.ok(ndjson, 'ndjson parser');
    assert.equal(ndjson.add_error_key, true);
  });

  it('routes each file of the node log directory to exactly one input', () => {
    const base = '/var/log/services';
    assert.deepEqual(inputFor(`${base}/wharf-system/wharf-internal-5d8f-abcde/access.log`), ['wharf-json']);
    assert.deepEqual(inputFor(`${base}/wharf-system/wharf-edge-5d8f-abcde/health.log`), ['wharf-json']);
    // Another service's access.log is its own format: plain lines, not Wharf's JSON.
    assert.deepEqual(inputFor(`${base}/shop/shop-7d9c-x2k4p/access.log`), ['services']);
    assert.deepEqual(inputFor(`${base}/shop/shop-7d9c-x2k4p/app.log`), ['services']);
    assert.deepEqual(inputFor(`${base}/shop/shop-7d9c-x2k4p/jobs/nightly.log`), ['services']);
    assert.deepEqual(inputFor(`${base}/shop/shop-7d9c-x2k4p/app.log.gz`), []);
    assert.deepEqual(inputFor('/var/log/syslog'), []);
  });

  it('derives namespace and pod from the path for add_kubernetes_metadata', () => {
    const processors = main.processors as Obj[];
    const scriptAt = processors.findIndex((p) => p.script);
    const akmAt = processors.findIndex((p) => p.add_kubernetes_metadata);
    assert.ok(scriptAt >= 0 && akmAt > scriptAt, 'script runs before add_kubernetes_metadata');
    const akm = processors[akmAt].add_kubernetes_metadata;
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal ${VAR} of envsubst, filebeat or docker
    assert.equal(akm.node, '${NODE_NAME}');
    assert.deepEqual(akm.indexers, [{ pod_name: null }]);
    const key = akm.matchers[0].fields.lookup_fields[0];

    // Run the processor's JavaScript as filebeat would, against a stand-in event.
    const run = (path: string | undefined): Record<string, unknown> => {
      const fields: Record<string, unknown> = { 'log.file.path': path };
      const event = { Get: (k: string) => fields[k], Put: (k: string, v: unknown) => (fields[k] = v) };
      runInNewContext(`${processors[scriptAt].script.source}\nprocess(event);`, { event });
      return fields;
    };
    const f = run('/var/log/services/shop/shop-7d9c-x2k4p/app.log');
    assert.equal(f['kubernetes.namespace'], 'shop');
    assert.equal(f['kubernetes.pod.name'], 'shop-7d9c-x2k4p');
    // The pod_name indexer keys pods as "<namespace>/<name>".
    assert.equal(f[key], 'shop/shop-7d9c-x2k4p');
    assert.equal(run('/elsewhere/x.log')[key], undefined);
    assert.equal(run(undefined)[key], undefined);
  });

  it('has its output in exactly one place: the filebeat-output ConfigMap', () => {
    const outputs = (o: Obj) => Object.keys(o).filter((k) => k === 'output' || k.startsWith('output.'));
    assert.deepEqual(outputs(main), []);
    assert.equal(outputs(output).length, 1);
    assert.ok(['output.elasticsearch', 'output.logstash'].includes(outputs(output)[0]));
    const args: string[] = ds.spec.template.spec.containers[0].args;
    const files = args.flatMap((a, i) => (a === '-c' ? [args[i + 1]] : []));
    assert.deepEqual(files, ['/etc/filebeat/filebeat.yml', '/etc/filebeat/output.yml']);
  });

  it('runs on every node and reads the node log directory read-only', () => {
    const spec = ds.spec.template.spec;
    assert.deepEqual(spec.tolerations, [{ operator: 'Exists' }]);
    const c = spec.containers[0];
    const vol = spec.volumes.find((v: Obj) => v.hostPath?.path === '/var/log/services');
    const mount = c.volumeMounts.find((m: Obj) => m.name === vol.name);
    assert.equal(mount.mountPath, '/var/log/services', 'paths in filebeat.yml are node paths');
    assert.equal(mount.readOnly, true);
    assert.equal(
      c.env.find((e: Obj) => e.name === 'NODE_NAME').valueFrom.fieldRef.fieldPath,
      'spec.nodeName',
    );
    assert.ok(
      spec.volumes.some(
        (v: Obj) =>
          v.hostPath &&
          c.volumeMounts.some((m: Obj) => m.name === v.name && m.mountPath === '/usr/share/filebeat/data'),
      ),
      'registry persisted on the node',
    );
  });
});
