// An in-process Kubernetes API server for tests and the demo, faithful to what kubectl, client-go's
// Reflector, client-node and Wharf's own list/watch loop need (shared/reference/kubernetes-api.md
// §1 and §6): discovery documents, list with selectors and limit/continue paging, watch (NDJSON,
// replay from an RV, bookmarks, timeoutSeconds, 410 Expired, sendInitialEvents), GET of one object,
// Status errors, optional TLS with bearer-token or client-certificate auth, and fault hooks.

import { randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { KubeObject, Status } from '../discovery/k8s-types.ts';
import { objectKey } from '../discovery/k8s-types.ts';
import { parseFieldSelector, parseLabelSelector, SelectorError, selectedName } from './selectors.ts';
import {
  apiVersionOf,
  BY_KIND,
  BY_PLURAL,
  type Change,
  fieldsOf,
  RESOURCES,
  type ResourceDef,
  resourceOf,
  Store,
  StoreError,
} from './store.ts';

export interface FakeApiServerOptions {
  /** Serve HTTPS with this key pair. */
  tls?: { key: string | Buffer; cert: string | Buffer; ca?: string | Buffer };
  /** Accepted bearer tokens; `null`/absent means no authentication is required. */
  tokens?: readonly string[] | null;
  /** With TLS and a CA: a client certificate signed by it also authenticates. */
  clientCertAuth?: boolean;
  /** Period of BOOKMARK events on watches that allow them. Default 5 s (real servers: about 1 min). */
  bookmarkIntervalMs?: number;
  /** Changes kept for watch replay. */
  maxHistory?: number;
  /** Serialize empty `endpoints`/`ports` as `null`, as the real apiserver does. Default true. */
  nullEmptyLists?: boolean;
  /** Answer a watch from a too-old RV with HTTP 410 instead of an in-band ERROR event. */
  goneAsHttp?: boolean;
  host?: string;
  port?: number;
}

export interface RequestRecord {
  readonly time: number;
  readonly method: string;
  readonly path: string;
  readonly authorization?: string;
  readonly clientCert?: string;
}

interface Watcher {
  readonly resource: ResourceDef;
  readonly namespace?: string;
  readonly matches: (o: KubeObject) => boolean;
  readonly res: http.ServerResponse;
  readonly timers: NodeJS.Timeout[];
  readonly bookmarks: boolean;
  closed: boolean;
}

interface Snapshot {
  readonly rv: number;
  readonly items: KubeObject[];
}

function status(code: number, reason: string, message: string, details?: Record<string, unknown>): Status {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    code,
    details,
  };
}

const REASONS: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  409: 'Conflict',
  410: 'Expired',
  422: 'Invalid',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
};

export class FakeApiServer {
  readonly store: Store;
  readonly requests: RequestRecord[] = [];
  private readonly server: http.Server | https.Server;
  private readonly sockets = new Set<Socket>();
  private readonly watchers = new Set<Watcher>();
  private readonly snapshots = new Map<string, Snapshot>();
  private readonly held = new Set<http.ServerResponse>();
  private tokens: readonly string[] | null;
  private forbidden = new Set<string>();
  /** RBAC `resourceNames` emulation: plural -> the `<namespace>/<name>` keys that may be read. */
  private named = new Map<string, ReadonlySet<string>>();
  private failures: {
    count: number;
    code: number;
    message: string;
    retryAfterSeconds?: number;
    match?: (path: string) => boolean;
  } | null = null;
  private stalled = false;
  private listening = false;
  private boundPort = 0;
  private readonly bookmarkIntervalMs: number;
  private readonly nullEmptyLists: boolean;
  goneAsHttp: boolean;
  /** Test hook: called for every request before it is answered. */
  onRequest: ((r: RequestRecord) => void) | null = null;
  /**
   * Test hook for a broken server: rewrites the items of each list page before it is sent (e.g. to
   * slip in items that are not objects). Watches are not affected; see `injectLine`.
   */
  listHook: ((plural: string, items: unknown[]) => unknown[]) | null = null;

  constructor(private readonly opts: FakeApiServerOptions = {}) {
    this.store = new Store(opts.maxHistory ?? 100_000);
    this.tokens = opts.tokens ?? null;
    this.bookmarkIntervalMs = opts.bookmarkIntervalMs ?? 5000;
    this.nullEmptyLists = opts.nullEmptyLists ?? true;
    this.goneAsHttp = opts.goneAsHttp ?? false;
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => this.handle(req, res);
    this.server = opts.tls
      ? https.createServer(
          {
            key: opts.tls.key,
            cert: opts.tls.cert,
            ca: opts.tls.ca,
            requestCert: Boolean(opts.clientCertAuth),
            rejectUnauthorized: false,
          },
          handler,
        )
      : http.createServer(handler);
    this.server.keepAliveTimeout = 30_000;
    const track = (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    };
    this.server.on(opts.tls ? 'secureConnection' : 'connection', track);
    // TLS sockets are tracked at the TCP level too, so crash() also kills handshakes in progress.
    if (opts.tls) this.server.on('connection', track);
    this.store.onChange((c) => this.dispatch(c));
  }

  // ---------------------------------------------------------------- lifecycle

  async start(): Promise<this> {
    await this.listen(this.opts.port ?? 0);
    return this;
  }

  private listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, this.opts.host ?? '127.0.0.1', () => {
        this.server.off('error', reject);
        this.boundPort = (this.server.address() as AddressInfo).port;
        this.listening = true;
        resolve();
      });
    });
  }

  get port(): number {
    return this.boundPort;
  }

  get url(): string {
    const host = this.opts.host ?? '127.0.0.1';
    return `${this.opts.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${this.boundPort}`;
  }

  /** Stops listening and drops every connection. */
  async close(): Promise<void> {
    this.crash();
    if (this.listening) {
      this.listening = false;
      await new Promise<void>((r) => this.server.close(() => r()));
    }
  }

  /** Outage: the port refuses connections until `up()`. */
  async down(): Promise<void> {
    await this.close();
  }

  /** Back on the same port after `down()`. */
  async up(): Promise<void> {
    if (!this.listening) await this.listen(this.boundPort);
  }

  /** Destroys every socket without a clean end (a process crash or a network cut). */
  crash(): void {
    for (const w of this.watchers) this.closeWatcher(w, false);
    for (const r of this.held) r.destroy();
    this.held.clear();
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  /** An apiserver restart: connections drop, paging tokens expire, and with `freshHistory` every old RV gets 410. */
  restart(o: { freshHistory?: boolean } = {}): void {
    this.crash();
    this.snapshots.clear();
    if (o.freshHistory) this.store.freshHistory();
  }

  /** Ends every watch cleanly (as at timeoutSeconds). */
  endAllWatches(): void {
    for (const w of this.watchers) this.closeWatcher(w, true);
  }

  /** Forgets the change history: resuming from any earlier RV gets 410; paging tokens expire. */
  compact(): void {
    this.store.compact();
    this.snapshots.clear();
  }

  expireContinueTokens(): void {
    this.snapshots.clear();
  }

  /** New requests are accepted and never answered; open watches stop sending. */
  stall(): void {
    this.stalled = true;
  }

  unstall(): void {
    this.stalled = false;
  }

  /**
   * The next `count` API requests (those `match` accepts, by path with query) get `code` with a
   * Status body, and a `Retry-After` header (and `details.retryAfterSeconds`) when given.
   */
  failNext(
    count: number,
    code: number,
    message = 'injected failure',
    o: { retryAfterSeconds?: number; match?: (path: string) => boolean } = {},
  ): void {
    this.failures = { count, code, message, ...o };
  }

  /**
   * Writes `text` as it is (no newline added) on every open watch of `plural` (every watch if
   * absent): garbage, an ERROR event, a line without an end, a huge line. What a broken or hostile
   * server, or a proxy in between, might send.
   */
  injectLine(text: string | Buffer, plural?: string): number {
    let n = 0;
    for (const w of this.watchers) {
      if (w.closed || (plural && w.resource.plural !== plural)) continue;
      w.res.write(text);
      n++;
    }
    return n;
  }

  /**
   * An etcd restore from a backup: the resourceVersion goes back by `by` and the history is gone, so
   * a client's last version is now in the server's future ("Too large resource version").
   */
  rewind(by: number): void {
    this.crash();
    this.snapshots.clear();
    this.store.rewind(by);
  }

  setTokens(tokens: readonly string[] | null): void {
    this.tokens = tokens;
  }

  /** Answer 403 for this resource (plural), as a missing RBAC rule would. */
  forbid(plural: string, on = true): void {
    if (on) this.forbidden.add(plural);
    else this.forbidden.delete(plural);
  }

  /**
   * Emulates an RBAC rule with `resourceNames` for this resource: a GET of a listed object, or a
   * list/watch in its namespace with `fieldSelector=metadata.name=<name>`, is allowed; any other
   * read is 403. Keys are `<namespace>/<name>`; `null` lifts the restriction.
   */
  grantOnly(plural: string, keys: readonly string[] | null): void {
    if (keys === null) this.named.delete(plural);
    else this.named.set(plural, new Set(keys));
  }

  /** Sends a BOOKMARK now on every watch that allows them. */
  sendBookmarks(): void {
    for (const w of this.watchers) if (w.bookmarks) this.bookmark(w);
  }

  get watchCount(): number {
    return this.watchers.size;
  }

  // ---------------------------------------------------------------- objects

  create(obj: KubeObject): KubeObject {
    return this.store.write(obj, 'create');
  }

  update(obj: KubeObject): KubeObject {
    return this.store.write(obj, 'update');
  }

  apply(obj: KubeObject): KubeObject {
    return this.store.write(obj, 'apply');
  }

  /** Read-modify-write of a stored object. */
  modify(kind: string, namespace: string | undefined, name: string, fn: (o: KubeObject) => void): KubeObject {
    const r = this.resource(kind);
    const cur = this.store.get(r, namespace ? `${namespace}/${name}` : name);
    if (!cur) throw new StoreError(404, 'NotFound', `${r.plural} "${name}" not found`);
    const copy = structuredClone(cur);
    copy.kind = r.kind;
    fn(copy);
    return this.store.write(copy, 'update');
  }

  delete(obj: KubeObject): KubeObject;
  delete(kind: string, namespace: string | undefined, name: string): KubeObject;
  delete(a: KubeObject | string, namespace?: string, name?: string): KubeObject {
    if (typeof a === 'string')
      return this.store.delete(this.resource(a), namespace ? `${namespace}/${name}` : name!);
    const r = resourceOf(a);
    const ns = r.namespaced ? (a.metadata.namespace ?? 'default') : undefined;
    return this.store.delete(r, ns ? `${ns}/${a.metadata.name}` : a.metadata.name!);
  }

  get(kind: string, namespace: string | undefined, name: string): KubeObject | undefined {
    return this.store.get(this.resource(kind), namespace ? `${namespace}/${name}` : name);
  }

  private resource(kindOrPlural: string): ResourceDef {
    const r = BY_KIND.get(kindOrPlural) ?? BY_PLURAL.get(kindOrPlural);
    if (!r) throw new Error(`unknown kind ${kindOrPlural}`);
    return r;
  }

  // ---------------------------------------------------------------- HTTP

  private send(res: http.ServerResponse, code: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  private fail(
    res: http.ServerResponse,
    code: number,
    message: string,
    details?: Record<string, unknown>,
  ): void {
    this.send(res, code, status(code, REASONS[code] ?? 'Unknown', message, details));
  }

  private authenticate(req: http.IncomingMessage): boolean {
    if (this.tokens === null) return true;
    const auth = req.headers.authorization;
    if (auth?.startsWith('Bearer ') && this.tokens.includes(auth.slice(7).trim())) return true;
    if (this.opts.clientCertAuth) {
      const sock = req.socket as TLSSocket;
      if (sock.authorized && sock.getPeerCertificate?.()?.subject) return true;
    }
    return false;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse) {
    const url = new URL(req.url ?? '/', 'http://x');
    const sock = req.socket as TLSSocket;
    const peer = sock.getPeerCertificate?.();
    this.requests.push({
      time: Date.now(),
      method: req.method ?? 'GET',
      path: `${url.pathname}${url.search}`,
      authorization: req.headers.authorization,
      clientCert: peer?.subject?.CN as string | undefined,
    });
    if (this.requests.length > 10_000) this.requests.splice(0, 5000);
    this.onRequest?.(this.requests[this.requests.length - 1]);
    if (this.stalled) {
      this.held.add(res);
      res.on('close', () => this.held.delete(res));
      return;
    }
    const path = `${url.pathname}${url.search}`;
    if (this.failures && this.failures.count > 0 && (!this.failures.match || this.failures.match(path))) {
      this.failures.count--;
      const { code, message, retryAfterSeconds } = this.failures;
      if (this.failures.count === 0) this.failures = null;
      if (retryAfterSeconds !== undefined) res.setHeader('retry-after', String(retryAfterSeconds));
      return this.fail(
        res,
        code,
        message,
        retryAfterSeconds !== undefined ? { retryAfterSeconds } : undefined,
      );
    }
    if (!this.authenticate(req)) return this.fail(res, 401, 'Unauthorized');
    try {
      this.route(req, url, res);
    } catch (err) {
      if (err instanceof StoreError) return this.fail(res, err.code, err.message);
      if (err instanceof SelectorError) return this.fail(res, 400, err.message);
      this.fail(res, 500, (err as Error).message);
    }
  }

  private route(req: http.IncomingMessage, url: URL, res: http.ServerResponse) {
    const p = url.pathname.replace(/\/+$/, '') || '/';
    if (p === '/version') {
      return this.send(res, 200, {
        major: '1',
        minor: '32',
        gitVersion: 'v1.32.0-wharf-fake',
        gitCommit: '0000000000000000000000000000000000000000',
        gitTreeState: 'clean',
        buildDate: '2026-01-01T00:00:00Z',
        goVersion: 'go1.23.0',
        compiler: 'gc',
        platform: 'linux/amd64',
      });
    }
    if (p === '/healthz' || p === '/readyz' || p === '/livez') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      return void res.end('ok');
    }
    if (p === '/api') {
      const host = req.headers.host ?? '127.0.0.1';
      return this.send(res, 200, {
        kind: 'APIVersions',
        versions: ['v1'],
        serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: host }],
      });
    }
    if (p === '/apis') {
      const groups = [...new Set(RESOURCES.filter((r) => r.group).map((r) => apiVersionOf(r)))].map((gv) => {
        const [name, version] = gv.split('/');
        const v = { groupVersion: gv, version };
        return { name, versions: [v], preferredVersion: v };
      });
      return this.send(res, 200, { kind: 'APIGroupList', apiVersion: 'v1', groups });
    }
    const m = /^\/(?:api\/(v1)|apis\/([^/]+)\/([^/]+))(?:\/(.*))?$/.exec(p);
    if (!m) return this.fail(res, 404, 'the server could not find the requested resource');
    const group = m[1] ? '' : m[2];
    const version = m[1] ?? m[3];
    const inGroup = RESOURCES.filter((r) => r.group === group && r.version === version);
    if (inGroup.length === 0) return this.fail(res, 404, 'the server could not find the requested resource');
    if (m[4] === undefined) {
      return this.send(res, 200, {
        kind: 'APIResourceList',
        apiVersion: 'v1',
        groupVersion: group ? `${group}/${version}` : version,
        resources: inGroup.map((r) => ({
          name: r.plural,
          singularName: r.singular,
          namespaced: r.namespaced,
          kind: r.kind,
          verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
          ...(r.shortNames.length ? { shortNames: r.shortNames } : {}),
        })),
      });
    }
    const segs = m[4].split('/').map(decodeURIComponent);
    let plural: string;
    let namespace: string | undefined;
    let name: string | undefined;
    if (segs[0] === 'namespaces' && segs.length >= 3) {
      [, namespace, plural, name] = segs;
      if (segs.length > 4) return this.fail(res, 404, 'the server could not find the requested resource');
    } else {
      [plural, name] = segs;
      if (segs.length > 2) return this.fail(res, 404, 'the server could not find the requested resource');
    }
    const r = inGroup.find((x) => x.plural === plural);
    if (!r) return this.fail(res, 404, 'the server could not find the requested resource');
    if (namespace !== undefined && !r.namespaced)
      return this.fail(res, 404, 'the server could not find the requested resource');
    if (name !== undefined && namespace === undefined && r.namespaced)
      return this.fail(res, 404, 'the server could not find the requested resource');
    if (req.method !== 'GET')
      return this.fail(res, 405, `${req.method} is not supported by the fake apiserver`);
    const q = url.searchParams;
    const verb =
      name !== undefined ? 'get' : q.get('watch') === 'true' || q.get('watch') === '1' ? 'watch' : 'list';
    if (this.forbidden.has(r.plural)) {
      const scope = namespace ? `in the namespace "${namespace}"` : 'at the cluster scope';
      return this.fail(
        res,
        403,
        `${r.plural} is forbidden: User "system:serviceaccount:wharf:wharf" cannot ${verb} resource "${r.plural}" in API group "${r.group}" ${scope}`,
        { kind: r.plural, group: r.group },
      );
    }
    const named = this.named.get(r.plural);
    if (named) {
      // Like the apiserver's RequestInfo: a list/watch with metadata.name=<n> is a request for <n>.
      const target = name ?? selectedName(q.get('fieldSelector'));
      const key = namespace ? `${namespace}/${target}` : target;
      if (target === undefined || !named.has(key!)) {
        const scope = namespace ? `in the namespace "${namespace}"` : 'at the cluster scope';
        return this.fail(
          res,
          403,
          `${r.plural}${target ? ` "${target}"` : ''} is forbidden: User "system:serviceaccount:wharf:wharf" cannot ${verb} resource "${r.plural}" in API group "${r.group}" ${scope}`,
          { kind: r.plural, group: r.group, ...(target ? { name: target } : {}) },
        );
      }
    }
    if (verb === 'get') {
      const key = namespace ? `${namespace}/${name}` : name!;
      const obj = this.store.get(r, key);
      if (!obj) return this.fail(res, 404, `${r.plural} "${name}" not found`, { name, kind: r.plural });
      return this.send(res, 200, this.wire(r, obj, true));
    }
    const label = parseLabelSelector(q.get('labelSelector'));
    const field = parseFieldSelector(q.get('fieldSelector'), r.fields);
    const matches = (o: KubeObject) =>
      (namespace === undefined || o.metadata.namespace === namespace) &&
      label(o.metadata.labels) &&
      field({ name: o.metadata.name ?? '', namespace: o.metadata.namespace, fields: fieldsOf(r, o) });
    if (verb === 'list') return this.list(r, q, matches, res);
    return this.watch(r, namespace, q, matches, res);
  }

  /** JSON of a stored object: list items carry no kind/apiVersion, watch and GET objects do. */
  private wire(r: ResourceDef, obj: KubeObject, withKind: boolean): KubeObject {
    let o = obj;
    if (this.nullEmptyLists && r.plural === 'endpointslices') {
      const eps = o.endpoints as unknown[] | null | undefined;
      const ports = o.ports as unknown[] | null | undefined;
      if (
        (eps && eps.length === 0) ||
        eps === undefined ||
        (ports && ports.length === 0) ||
        ports === undefined
      ) {
        o = { ...o };
        if (!eps || eps.length === 0) o.endpoints = null;
        if (!ports || ports.length === 0) o.ports = null;
      }
    }
    return withKind ? { kind: r.kind, apiVersion: apiVersionOf(r), ...o } : o;
  }

  private list(
    r: ResourceDef,
    q: URLSearchParams,
    matches: (o: KubeObject) => boolean,
    res: http.ServerResponse,
  ) {
    const limit = Number(q.get('limit') ?? 0);
    const token = q.get('continue');
    let snap: Snapshot;
    let offset = 0;
    if (token) {
      let parsed: { id: string; off: number };
      try {
        parsed = JSON.parse(Buffer.from(token, 'base64url').toString());
      } catch {
        return this.fail(res, 400, 'continue key is not valid');
      }
      const s = this.snapshots.get(parsed.id);
      if (!s)
        return this.fail(
          res,
          410,
          'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.',
        );
      snap = s;
      offset = parsed.off;
    } else {
      const items = [...this.store.objects.get(r.plural)!.values()].filter(matches);
      items.sort((a, b) => (objectKey(a) < objectKey(b) ? -1 : 1));
      snap = { rv: this.store.rv, items };
    }
    const end = limit > 0 ? Math.min(offset + limit, snap.items.length) : snap.items.length;
    const metadata: Record<string, unknown> = { resourceVersion: String(snap.rv) };
    if (end < snap.items.length) {
      let id = token ? JSON.parse(Buffer.from(token, 'base64url').toString()).id : undefined;
      if (!id) {
        id = randomBytes(8).toString('hex');
        this.snapshots.set(id, snap);
        // Bounded: the oldest paging snapshots expire first, as etcd compaction would expire them.
        if (this.snapshots.size > 64) this.snapshots.delete(this.snapshots.keys().next().value!);
      }
      metadata.continue = Buffer.from(JSON.stringify({ id, off: end })).toString('base64url');
      metadata.remainingItemCount = snap.items.length - end;
    }
    let items: unknown[] = snap.items.slice(offset, end).map((o) => this.wire(r, o, false));
    if (this.listHook) items = this.listHook(r.plural, items);
    this.send(res, 200, { kind: `${r.kind}List`, apiVersion: apiVersionOf(r), metadata, items });
  }

  private watch(
    r: ResourceDef,
    namespace: string | undefined,
    q: URLSearchParams,
    matches: (o: KubeObject) => boolean,
    res: http.ServerResponse,
  ) {
    const rvParam = q.get('resourceVersion') ?? '';
    const bookmarks = q.get('allowWatchBookmarks') === 'true';
    const sendInitial = q.get('sendInitialEvents');
    const rvMatch = q.get('resourceVersionMatch');
    if (sendInitial !== null) {
      if (rvMatch !== 'NotOlderThan')
        return this.fail(
          res,
          422,
          'resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan',
        );
      if (!bookmarks && sendInitial === 'true')
        return this.fail(
          res,
          422,
          'allowWatchBookmarks: Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true',
        );
    } else if (rvMatch) {
      return this.fail(
        res,
        422,
        'resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch',
      );
    }
    let from: number | null = null;
    if (rvParam !== '' && rvParam !== '0') {
      if (!/^\d+$/.test(rvParam)) return this.fail(res, 400, `invalid resource version "${rvParam}"`);
      from = Number(rvParam);
    }
    if (from !== null && from > this.store.rv) {
      // The real watch cache waits up to 3 s for a version it has not seen, then gives up like this.
      res.setHeader('retry-after', '1');
      return this.send(res, 504, {
        ...status(504, 'Timeout', `Too large resource version: ${from}, current: ${this.store.rv}`, {
          causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }],
          retryAfterSeconds: 1,
        }),
      });
    }
    const initial = sendInitial === 'true' || (sendInitial === null && from === null);
    const tooOld = !initial && from !== null && from < this.store.historyStart;
    const goneMessage = `too old resource version: ${from} (${this.store.historyStart})`;
    if (tooOld && this.goneAsHttp) return this.fail(res, 410, goneMessage);

    res.writeHead(200, {
      'content-type': 'application/json',
      'transfer-encoding': 'chunked',
      'cache-control': 'no-cache',
    });
    res.flushHeaders();
    const w: Watcher = { resource: r, namespace, matches, res, timers: [], bookmarks, closed: false };
    if (tooOld) {
      res.end(`${JSON.stringify({ type: 'ERROR', object: status(410, 'Expired', goneMessage) })}\n`);
      return;
    }
    this.watchers.add(w);
    res.on('close', () => this.closeWatcher(w, false));
    const timeoutS = q.get('timeoutSeconds');
    // Without timeoutSeconds the real server picks minRequestTimeout*(1+rand), 30-60 min.
    const timeoutMs = timeoutS ? Number(timeoutS) * 1000 : 1_800_000 * (1 + Math.random());
    w.timers.push(setTimeout(() => this.closeWatcher(w, true), timeoutMs).unref());
    if (bookmarks) w.timers.push(setInterval(() => this.bookmark(w), this.bookmarkIntervalMs).unref());

    if (initial) {
      for (const o of this.store.objects.get(r.plural)!.values())
        if (matches(o)) this.write(w, { type: 'ADDED', object: this.wire(r, o, true) });
      if (sendInitial === 'true') this.bookmark(w, true);
    } else {
      for (const c of this.store.since(from!)) if (c.resource === r) this.deliver(w, c);
    }
  }

  private write(w: Watcher, ev: { type: string; object: unknown }): void {
    if (w.closed || this.stalled) return;
    w.res.write(`${JSON.stringify(ev)}\n`);
  }

  private bookmark(w: Watcher, initialEnd = false): void {
    const metadata: Record<string, unknown> = { resourceVersion: String(this.store.rv) };
    if (initialEnd) metadata.annotations = { 'k8s.io/initial-events-end': 'true' };
    this.write(w, {
      type: 'BOOKMARK',
      object: { kind: w.resource.kind, apiVersion: apiVersionOf(w.resource), metadata },
    });
  }

  /** Selector-filtered delivery as the watch cache does it: leaving the selection is a DELETED. */
  private deliver(w: Watcher, c: Change): void {
    const r = c.resource;
    const now = c.type !== 'DELETED' && w.matches(c.obj);
    const before = c.type === 'DELETED' ? w.matches(c.obj) : c.prev !== undefined && w.matches(c.prev);
    if (c.type === 'DELETED') {
      if (before) this.write(w, { type: 'DELETED', object: this.wire(r, c.obj, true) });
    } else if (now && before) this.write(w, { type: 'MODIFIED', object: this.wire(r, c.obj, true) });
    else if (now) this.write(w, { type: 'ADDED', object: this.wire(r, c.obj, true) });
    else if (before) {
      const gone = {
        ...c.prev!,
        metadata: { ...c.prev!.metadata, resourceVersion: c.obj.metadata.resourceVersion },
      };
      this.write(w, { type: 'DELETED', object: this.wire(r, gone, true) });
    }
  }

  private dispatch(c: Change): void {
    for (const w of this.watchers) if (w.resource === c.resource) this.deliver(w, c);
  }

  private closeWatcher(w: Watcher, clean: boolean): void {
    if (w.closed) return;
    w.closed = true;
    this.watchers.delete(w);
    for (const t of w.timers) clearTimeout(t);
    if (clean) w.res.end();
    else w.res.destroy();
  }
}
