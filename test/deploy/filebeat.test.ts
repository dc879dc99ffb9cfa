// filebeat's configuration: which input reads which file, and what an event looks like at the end
// of the pipeline. No filebeat binary here, so the pipeline is simulated: the container and ndjson
// parsers, and each processor of filebeat.yml in order (the `script` processors run their own
// JavaScript in a sandbox; add_kubernetes_metadata, timestamp and drop_fields are modelled on
// filebeat's own code, including "add_kubernetes_metadata does nothing to an event that already
// has a `kubernetes` field"). The sample lines are written by Wharf's own logger, so a field
// Wharf renames breaks this test. The final field sets are asserted, not just a script's output.
import assert from 'node:assert/strict';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runInNewContext } from 'node:vm';
import { parse } from 'yaml';
import { createLogs } from '../../src/observe/log.ts';
import { allDocs, find, type Obj } from './load.ts';

const docs = allDocs();
const main = parse(find(docs, 'ConfigMap', 'filebeat-config').data['filebeat.yml']) as Obj;
const output = parse(find(docs, 'ConfigMap', 'filebeat-output').data['output.yml']) as Obj;
const ds = find(docs, 'DaemonSet', 'filebeat');
const inputs = main['filebeat.inputs'] as Obj[];

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
  return inputs
    .filter((i) => i.paths.some((g: string) => globToRegExp(g).test(path)))
    .filter(
      (i) => !(i['prospector.scanner.exclude_files'] ?? []).some((re: string) => new RegExp(re).test(path)),
    )
    .map((i) => i.id);
}

// ---- the pipeline, simulated ----

type Event = Record<string, unknown>;

function getPath(e: Event, path: string): unknown {
  let cur: unknown = e;
  for (const k of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Event)[k];
  }
  return cur;
}
function putPath(e: Event, path: string, v: unknown): void {
  const keys = path.split('.');
  let cur = e;
  for (const k of keys.slice(0, -1)) {
    if (cur[k] === null || typeof cur[k] !== 'object' || Array.isArray(cur[k])) cur[k] = {};
    cur = cur[k] as Event;
  }
  cur[keys[keys.length - 1]] = v;
}
function deletePath(e: Event, path: string): void {
  const keys = path.split('.');
  const parent = keys.length === 1 ? e : getPath(e, keys.slice(0, -1).join('.'));
  if (parent && typeof parent === 'object') delete (parent as Event)[keys[keys.length - 1]];
}
/** Flattened keys (arrays are leaves), what Kibana lists as the event's fields. */
function flat(e: Event, prefix = ''): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(e)) {
    if (v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Date))
      Object.assign(out, flat(v as Event, `${prefix}${k}.`));
    else out[`${prefix}${k}`] = v;
  }
  return out;
}

interface Pod {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  containers: Record<string, string>; // container id -> container name
  deployment?: string;
}

/** What add_kubernetes_metadata holds for a pod (labels de-dotted, as filebeat does by default). */
function podMetadata(p: Pod, container?: string): Event {
  const labels = Object.fromEntries(Object.entries(p.labels).map(([k, v]) => [k.replace(/\./g, '_'), v]));
  const k: Event = {
    pod: { name: p.name, uid: `uid-${p.name}` },
    namespace: p.namespace,
    labels,
    node: { name: 'worker-1' },
    ...(p.deployment ? { deployment: { name: p.deployment } } : {}),
  };
  if (container) k.container = { name: container };
  return k;
}

function runProcessor(proc: Obj, e: Event, pods: Pod[]): void {
  const [type, cfg] = Object.entries(proc)[0] as [string, Obj];
  const when = cfg?.when?.has_fields as string[] | undefined;
  if (when && !when.every((f) => getPath(e, f) !== undefined)) return;
  switch (type) {
    case 'script': {
      const event = {
        Get: (k: string) => getPath(e, k) ?? null,
        Put: (k: string, v: unknown) => putPath(e, k, v),
        Delete: (k: string) => deletePath(e, k),
      };
      runInNewContext(`${cfg.source}\nprocess(event);`, { event });
      return;
    }
    case 'add_kubernetes_metadata': {
      // filebeat: `if kubernetesMetadataExist(event) { return event, nil }`.
      if (getPath(e, 'kubernetes') !== undefined) return;
      let pod: Pod | undefined;
      let container: string | undefined;
      for (const m of cfg.matchers as Obj[]) {
        if (m.fields) {
          const key = (m.fields.lookup_fields as string[])
            .map((f) => getPath(e, f))
            .find((v) => v !== undefined);
          if (key !== undefined && (cfg.indexers as Obj[]).some((i) => 'pod_name' in i))
            pod = pods.find((p) => `${p.namespace}/${p.name}` === key);
        }
        if (m.logs_path) {
          const path = String(getPath(e, 'log.file.path'));
          if (!path.startsWith(m.logs_path.logs_path)) continue;
          const id = /-([0-9a-f]{64})\.log$/.exec(path)?.[1];
          if (id && (cfg.indexers as Obj[]).some((i) => 'container' in i)) {
            pod = pods.find((p) => id in p.containers);
            container = pod?.containers[id];
            if (pod) putPath(e, 'container.id', id);
          }
        }
      }
      if (pod) putPath(e, 'kubernetes', podMetadata(pod, container));
      return;
    }
    case 'drop_fields':
      for (const f of cfg.fields as string[]) deletePath(e, f);
      return;
    case 'timestamp': {
      const v = getPath(e, cfg.field);
      assert.deepEqual(cfg.layouts, ['UNIX_MS']);
      if (typeof v === 'number') e['@timestamp'] = new Date(v).toISOString();
      return;
    }
    case 'add_host_metadata':
      putPath(e, 'host.name', 'worker-1');
      return;
    default:
      throw new Error(`no simulation for processor ${type}`);
  }
}

/** One line read from `path` through its input's parsers and processors, then the global ones. */
function pipeline(path: string, line: string, pods: Pod[]): Event {
  const ids = inputFor(path);
  assert.equal(ids.length, 1, `${path}: read by ${ids.join(', ') || 'no input'}`);
  const input = inputs.find((i) => i.id === ids[0])!;
  const e: Event = { '@timestamp': 'read-time', log: { file: { path } }, input: { type: 'filestream' } };
  let content = line;
  for (const p of input.parsers ?? []) {
    if (p.container) {
      const m = /^(\S+) (stdout|stderr) ([FP]) (.*)$/.exec(content);
      assert.ok(m, `a CRI line: ${content}`);
      if (p.container.stream && p.container.stream !== m[2]) return {};
      e.stream = m[2];
      content = m[4];
    } else if (p.ndjson) {
      try {
        putPath(e, p.ndjson.target, JSON.parse(content));
      } catch (err) {
        if (p.ndjson.add_error_key) putPath(e, 'error.message', (err as Error).message);
      }
      // Without message_key the line itself is not kept (filebeat's readjson).
      content = '';
    } else if (p.multiline) {
      // One-line samples: nothing to join.
    }
  }
  if (content) e.message = content;
  if (input.tags) e.tags = input.tags;
  for (const proc of input.processors ?? []) runProcessor(proc, e, pods);
  for (const proc of main.processors as Obj[]) runProcessor(proc, e, pods);
  return e;
}

// ---- sample lines, written by Wharf's logger ----

async function wharfLines(): Promise<{ access: string; health: string; app: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'wharf-fb-'));
  try {
    const file = join(dir, 'stdout');
    const logs = createLogs({ access: true, health: true, fd: openSync(file, 'a') });
    logs.access({
      time: 1_790_000_000_123,
      requestId: '8d2f0c1e9b7a4c3d8e1f2a3b4c5d6e7f',
      client: '203.0.113.7',
      host: 'shop.apps.example.com',
      method: 'GET',
      path: '/cart?id=7',
      status: 504,
      bytesIn: 0,
      bytesOut: 120,
      durationMs: 1500.25,
      upstreamMs: 1499.5,
      project: 'shop',
      port: 'http',
      instance: 'shop-7d9c-x2k4p',
      attempts: 2,
      error: 'response-timeout',
    });
    logs.event({
      type: 'health',
      time: 1_790_000_000_500,
      project: 'shop',
      port: 'http',
      instance: 'shop-7d9c-x2k4p',
      address: '10.244.1.7:8080',
      from: 'healthy',
      to: 'unhealthy',
      ejected: true,
      reason: 'probe: timeout after 1000 ms',
      probeLatencyMs: 1000,
    });
    logs.app('info', 'config reloaded', { version: 3 });
    await logs.close();
    const [access, health, app] = readFileSync(file, 'utf8').trim().split('\n');
    return { access, health, app };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const CID = 'a'.repeat(64);
const PODS: Pod[] = [
  {
    namespace: 'wharf-system',
    name: 'wharf-internal-5d8f9c7b4-x2k4p',
    labels: { 'app.kubernetes.io/name': 'wharf', 'app.kubernetes.io/component': 'internal' },
    containers: { [CID]: 'wharf' },
    deployment: 'wharf-internal',
  },
  {
    namespace: 'shop',
    name: 'shop-7d9c-x2k4p',
    labels: { app: 'shop' },
    containers: { ['b'.repeat(64)]: 'app' },
    deployment: 'shop',
  },
];
const STDOUT = `/var/log/containers/wharf-internal-5d8f9c7b4-x2k4p_wharf-system_wharf-${CID}.log`;
const cri = (line: string) => `2026-12-06T08:00:00.000000000Z stdout F ${line}`;

/** The ECS fields of an access event, plus what Wharf keeps under wharf.* and filebeat adds. */
const ACCESS_FIELDS = [
  '@timestamp',
  'event.dataset',
  'event.kind',
  'event.category',
  'event.type',
  'event.outcome',
  'event.duration',
  'log.level',
  'message',
  'source.ip',
  'url.domain',
  'url.original',
  'url.path',
  'url.query',
  'http.request.method',
  'http.request.id',
  'http.request.body.bytes',
  'http.response.status_code',
  'http.response.body.bytes',
  'error.type',
  'wharf.upstreamMs',
  'wharf.project',
  'wharf.port',
  'wharf.instance',
  'wharf.attempts',
  'tags',
  'host.name',
  'input.type',
  'log.file.path',
];

describe('filebeat configuration', () => {
  it('has filestream inputs with unique ids, each reading even a short file (fingerprint length)', () => {
    assert.ok(inputs.length >= 3);
    for (const i of inputs) {
      assert.equal(i.type, 'filestream');
      // filebeat 9 ignores files shorter than the fingerprint (1024 bytes by default).
      assert.equal(i['prospector.scanner.fingerprint.length'], 64, i.id);
    }
    assert.equal(new Set(inputs.map((i) => i.id)).size, inputs.length);
  });

  it('routes each file to exactly one input', () => {
    const base = '/var/log/services';
    assert.deepEqual(inputFor(STDOUT), ['wharf-stdout']);
    assert.deepEqual(inputFor(`/var/log/containers/wharf-edge-7c-abcde_wharf-system_wharf-${CID}.log`), [
      'wharf-stdout',
    ]);
    // The webhook's container and every other pod's stdout are not Wharf's JSON.
    assert.deepEqual(
      inputFor(`/var/log/containers/wharf-webhook-6b-abcde_wharf-system_webhook-${CID}.log`),
      [],
    );
    assert.deepEqual(inputFor(`/var/log/containers/shop-1_shop_app-${CID}.log`), []);
    for (const f of ['access', 'health', 'wharf'])
      assert.deepEqual(inputFor(`${base}/wharf-system/wharf-edge-5d8f-abcde/${f}.log`), ['wharf-files']);
    // Another service's access.log is its own format: plain lines, not Wharf's JSON.
    assert.deepEqual(inputFor(`${base}/shop/shop-7d9c-x2k4p/access.log`), ['services']);
    assert.deepEqual(inputFor(`${base}/shop/shop-7d9c-x2k4p/app.log`), ['services']);
    assert.deepEqual(inputFor(`${base}/shop/shop-7d9c-x2k4p/jobs/nightly.log`), ['services']);
    assert.deepEqual(inputFor(`${base}/shop/shop-7d9c-x2k4p/app.log.gz`), []);
    assert.deepEqual(inputFor('/var/log/syslog'), []);
  });

  it("Wharf's access line from stdout ends as ECS fields, with its pod's metadata and its own time", async () => {
    const lines = await wharfLines();
    const e = pipeline(STDOUT, cri(lines.access), PODS);
    const f = flat(e);
    const own = Object.keys(f).filter((k) => !k.startsWith('kubernetes.') && !k.startsWith('container.'));
    assert.deepEqual(own.sort(), [...ACCESS_FIELDS, 'stream'].sort());
    assert.equal(
      f['@timestamp'],
      new Date(1_790_000_000_123).toISOString(),
      "Wharf's time, not the read time",
    );
    assert.equal(f['event.dataset'], 'wharf.access');
    assert.equal(f['event.duration'], 1_500_250_000, 'nanoseconds');
    assert.equal(f['event.outcome'], 'failure');
    assert.equal(f['source.ip'], '203.0.113.7');
    assert.equal(f['url.path'], '/cart');
    assert.equal(f['url.query'], 'id=7');
    assert.equal(f['http.response.status_code'], 504);
    assert.equal(f['error.type'], 'response-timeout');
    assert.equal(f['wharf.instance'], 'shop-7d9c-x2k4p');
    assert.equal(f.message, 'GET shop.apps.example.com/cart?id=7 504');
    // add_kubernetes_metadata found the pod by the container id in the file name.
    assert.equal(f['kubernetes.namespace'], 'wharf-system');
    assert.equal(f['kubernetes.pod.name'], 'wharf-internal-5d8f9c7b4-x2k4p');
    assert.equal(f['kubernetes.labels.app_kubernetes_io/component'], 'internal');
    assert.equal(f['kubernetes.container.name'], 'wharf');
  });

  it("Wharf's health and application lines: dataset, action, reason, message, level", async () => {
    const lines = await wharfLines();
    const h = flat(pipeline(STDOUT, cri(lines.health), PODS));
    assert.equal(h['event.dataset'], 'wharf.health');
    assert.equal(h['event.action'], 'health');
    assert.equal(h['event.reason'], 'probe: timeout after 1000 ms');
    assert.equal(h['log.level'], 'warn');
    assert.equal(h['@timestamp'], new Date(1_790_000_000_500).toISOString());
    assert.equal(h['wharf.project'], 'shop');
    assert.equal(h['wharf.to'], 'unhealthy');
    assert.match(String(h.message), /shop\/http\/shop-7d9c-x2k4p healthy -> unhealthy/);
    const a = flat(pipeline(STDOUT, cri(lines.app), PODS));
    assert.equal(a['event.dataset'], 'wharf.app');
    assert.equal(a.message, 'config reloaded');
    assert.equal(a['log.level'], 'info');
    assert.equal(a['wharf.version'], 3);
    assert.equal(a['kubernetes.pod.name'], 'wharf-internal-5d8f9c7b4-x2k4p');
  });

  it("Wharf's JSON files in the node log directory give the same fields as its stdout", async () => {
    const lines = await wharfLines();
    const path = '/var/log/services/wharf-system/wharf-internal-5d8f9c7b4-x2k4p/access.log';
    const f = flat(pipeline(path, lines.access, PODS));
    const own = Object.keys(f).filter((k) => !k.startsWith('kubernetes.') && !k.startsWith('container.'));
    assert.deepEqual(own.sort(), ACCESS_FIELDS.sort());
    assert.equal(f['kubernetes.pod.name'], 'wharf-internal-5d8f9c7b4-x2k4p');
    assert.equal(f['kubernetes.deployment.name'], 'wharf-internal');
  });

  it("a service's file gets its pod's labels, so the documented query by pod label finds it", () => {
    const e = flat(pipeline('/var/log/services/shop/shop-7d9c-x2k4p/app.log', 'order 7 paid', PODS));
    assert.equal(e.message, 'order 7 paid');
    assert.equal(e['kubernetes.labels.app'], 'shop', 'kubernetes.labels.app: shop');
    assert.equal(e['kubernetes.namespace'], 'shop');
    assert.equal(e['kubernetes.deployment.name'], 'shop');
    assert.ok(!Object.keys(e).some((k) => k.startsWith('wharf_log')), 'helper fields dropped');
    assert.equal(e['@timestamp'], 'read-time', 'not a Wharf line: filebeat keeps its own time');
    assert.equal(e['event.dataset'], undefined);
  });

  it('a file of a pod that is gone still names its namespace and pod (from the path)', () => {
    const e = flat(pipeline('/var/log/services/shop/shop-old-abcde/app.log', 'bye', PODS));
    assert.equal(e['kubernetes.namespace'], 'shop');
    assert.equal(e['kubernetes.pod.name'], 'shop-old-abcde');
    assert.equal(e['kubernetes.labels.app'], undefined);
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

  it('runs on every node and reads the node log directory and the container logs read-only', () => {
    const spec = ds.spec.template.spec;
    assert.deepEqual(spec.tolerations, [{ operator: 'Exists' }]);
    const c = spec.containers[0];
    for (const [hostPath, mountPath] of [
      ['/var/log/services', '/var/log/services'],
      ['/var/log/containers', '/var/log/containers'],
      ['/var/log/pods', '/var/log/pods'],
    ]) {
      const vol = spec.volumes.find((v: Obj) => v.hostPath?.path === hostPath);
      assert.ok(vol, hostPath);
      const mount = c.volumeMounts.find((m: Obj) => m.name === vol.name);
      assert.equal(mount.mountPath, mountPath, 'paths in filebeat.yml are these');
      assert.equal(mount.readOnly, true);
    }
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
