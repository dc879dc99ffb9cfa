// Pure builder of the webhook's answer: given an AdmissionReview for a Pod, the JSONPatch that
// mounts the node log directory into every container. No I/O, so it is tested without a server.
//
// Which pods get here is decided by the MutatingWebhookConfiguration (namespaceSelector
// `wharf.io/logs: enabled`); the handler itself mutates every Pod CREATE it receives unless the pod
// opts out with the annotation `wharf.io/logs: disabled`.

import { ADMISSION_API_VERSION, type AdmissionRequest, type AdmissionReview } from './review.ts';

export const OPT_OUT_ANNOTATION = 'wharf.io/logs';
export const MOUNTED_ANNOTATION = 'wharf.io/logs-mount';
export const POD_NAMESPACE_ENV = 'WHARF_POD_NAMESPACE';
export const POD_NAME_ENV = 'WHARF_POD_NAME';
/** Each pod writes under `<node dir>/<namespace>/<pod>`, so pods never share files. */
export const SUB_PATH_EXPR = `$(${POD_NAMESPACE_ENV})/$(${POD_NAME_ENV})`;

export interface MutateOptions {
  /** The per-node log directory on the host, e.g. `/var/log/services`. */
  hostPath: string;
  /** Where containers see their own folder of it, e.g. `/var/log/service`. */
  mountPath: string;
  /** Name of the injected volume; also how a second pass recognises its own work. */
  volumeName?: string;
}

export const DEFAULT_VOLUME_NAME = 'wharf-node-logs';

export type JsonPatchOp = { op: 'add'; path: string; value: unknown };

/** RFC 6901: `~` first, then `/`, so `a/b~c` becomes `a~1b~0c` and not `a~01b...`. */
export function escapePointer(segment: string): string {
  return segment.replace(/~/g, '~0').replace(/\//g, '~1');
}

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function trimSlash(p: string): string {
  return p.length > 1 ? p.replace(/\/+$/, '') : p;
}

function isPodCreate(req: AdmissionRequest): boolean {
  const k = req.kind;
  const r = req.resource;
  const podKind = k ? k.group === '' && k.version === 'v1' && k.kind === 'Pod' : true;
  const podResource = r ? r.group === '' && r.resource === 'pods' : true;
  // No kind and no resource at all is not a pod we can reason about.
  if (!k && !r) return false;
  const op = req.operation ?? 'CREATE';
  return podKind && podResource && !req.subResource && op === 'CREATE';
}

/** The operations that bring `pod` to the desired shape; empty when it is already there. */
export function podPatch(pod: unknown, opts: MutateOptions): JsonPatchOp[] {
  if (!isObject(pod)) return [];
  const metadata = isObject(pod.metadata) ? pod.metadata : undefined;
  const annotations = metadata && isObject(metadata.annotations) ? metadata.annotations : undefined;
  if (annotations?.[OPT_OUT_ANNOTATION] === 'disabled') return [];
  const spec = pod.spec;
  if (!isObject(spec)) return [];
  // A hostPath with a Linux path means nothing on a Windows node.
  if (isObject(spec.os) && spec.os.name === 'windows') return [];

  const volumeName = opts.volumeName ?? DEFAULT_VOLUME_NAME;
  const mountPath = trimSlash(opts.mountPath);
  const ops: JsonPatchOp[] = [];

  const volume = { name: volumeName, hostPath: { path: opts.hostPath, type: 'DirectoryOrCreate' } };
  if (!Array.isArray(spec.volumes)) {
    ops.push({ op: 'add', path: '/spec/volumes', value: [volume] });
  } else if (!spec.volumes.some((v) => isObject(v) && v.name === volumeName)) {
    ops.push({ op: 'add', path: '/spec/volumes/-', value: volume });
  }

  const envVars = [
    { name: POD_NAMESPACE_ENV, valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
    { name: POD_NAME_ENV, valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
  ];
  const mount = { name: volumeName, mountPath, subPathExpr: SUB_PATH_EXPR };

  // initContainers too: a migration or setup step's logs are the ones most often lost.
  for (const list of ['initContainers', 'containers'] as const) {
    const containers = spec[list];
    if (!Array.isArray(containers)) continue;
    containers.forEach((c, i) => {
      if (!isObject(c)) return;
      const base = `/spec/${list}/${i}`;
      const mounts = Array.isArray(c.volumeMounts) ? c.volumeMounts.filter(isObject) : undefined;
      // A container that already mounts something at that path (or mounts our volume itself) is
      // left as it is: two mounts on one path would make the apiserver reject the whole pod.
      const taken = mounts?.some(
        (m) => m.name === volumeName || trimSlash(String(m.mountPath)) === mountPath,
      );
      if (taken) return;

      const env = Array.isArray(c.env) ? c.env.filter(isObject) : undefined;
      const missing = envVars.filter((e) => !env?.some((x) => x.name === e.name));
      if (!Array.isArray(c.env)) {
        ops.push({ op: 'add', path: `${base}/env`, value: missing });
      } else {
        for (const e of missing) ops.push({ op: 'add', path: `${base}/env/-`, value: e });
      }
      if (!Array.isArray(c.volumeMounts)) {
        ops.push({ op: 'add', path: `${base}/volumeMounts`, value: [mount] });
      } else {
        ops.push({ op: 'add', path: `${base}/volumeMounts/-`, value: mount });
      }
    });
  }

  if (ops.length === 0) return ops;
  // Record what was done, for people reading `kubectl get pod -o yaml`.
  if (annotations?.[MOUNTED_ANNOTATION] !== mountPath) {
    if (!metadata) {
      ops.push({ op: 'add', path: '/metadata', value: { annotations: { [MOUNTED_ANNOTATION]: mountPath } } });
    } else if (!annotations) {
      ops.push({ op: 'add', path: '/metadata/annotations', value: { [MOUNTED_ANNOTATION]: mountPath } });
    } else {
      // `add` on an existing member replaces it (RFC 6902 §4.1), so a stale value is overwritten.
      ops.push({
        op: 'add',
        path: `/metadata/annotations/${escapePointer(MOUNTED_ANNOTATION)}`,
        value: mountPath,
      });
    }
  }
  return ops;
}

/**
 * The AdmissionReview v1 response for `review`. Always `allowed: true`: this webhook only adds a
 * mount; refusing pods is not its job. The patch is present only when something changes, so a
 * second pass (reinvocation) over an already mutated pod answers with no patch.
 */
export function mutatePod(review: AdmissionReview, opts: MutateOptions): AdmissionReview {
  const req = review.request!;
  const ops = isPodCreate(req) ? podPatch(req.object, opts) : [];
  const response: NonNullable<AdmissionReview['response']> = { uid: req.uid, allowed: true };
  if (ops.length > 0) {
    response.patchType = 'JSONPatch';
    response.patch = Buffer.from(JSON.stringify(ops)).toString('base64');
  }
  return { apiVersion: ADMISSION_API_VERSION, kind: 'AdmissionReview', response };
}
