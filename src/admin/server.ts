// The admin listener: separate port, loopback by default. Read-only views of the current state plus
// whatever routes are mounted (observed.ts mounts metrics, events, the dashboard). Optional bearer
// token for all of it.

import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { HealthView } from '../model/health.ts';
import type { Problem } from '../model/problem.ts';
import type { RouteTable } from '../model/routes.ts';
import type { Readiness } from '../model/source.ts';
import { checkAdminAuth } from '../observe/sse.ts';
import { listen } from '../util/listen.ts';
import { uniformSocketShape } from '../util/socket-shape.ts';
import { adminRefusal } from './guard.ts';

/** Returns true when it handled the request. */
export type AdminRoute = (req: IncomingMessage, res: ServerResponse, url: URL) => boolean | Promise<boolean>;

/** What the admin API shows: the running Wharf. */
export interface AdminView {
  table(): RouteTable;
  /** Every owner's Problems (sources, name conflicts, routing, certificates). */
  problems(): readonly Problem[];
  readiness(): Readiness;
  readonly health: HealthView;
}

export interface AdminOptions {
  readonly token?: string;
  /** Host names answered besides the listener's address and `localhost` (see guard.ts). */
  readonly hosts?: readonly string[];
  readonly view: AdminView;
  readonly routes?: readonly AdminRoute[];
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(payload),
    'cache-control': 'no-store',
  });
  res.end(payload);
}

/** The `/api/projects` document: every project, port and instance with its state and why. */
export function projectsView(table: RouteTable, health: HealthView) {
  const projects = [...table.projects.values()]
    .sort((a, b) => (a.name < b.name ? -1 : 1))
    .map((p) => ({
      name: p.name,
      origin: p.origin,
      defaultPort: p.defaultPort,
      affinity: p.settings.affinity.kind,
      ports: [...p.ports.values()].map((r) => ({
        name: r.port,
        /** What Wharf speaks to the instances: `http1`, `h2c`, or `auto` (the client's protocol). */
        protocol: r.protocol,
        instances: r.endpoints.map((e) => {
          const s = health.status(e.id);
          const state = e.draining && health.state(e.id) !== 'unhealthy' ? 'draining' : health.state(e.id);
          return {
            name: e.instance,
            address: e.address,
            state,
            reason: s?.reason ?? (state === 'pending' ? 'not probed yet' : ''),
            ejected: s?.ejected ?? false,
            draining: e.draining,
            since: s?.since ?? null,
          };
        }),
      })),
    }));
  return { version: table.version, projects };
}

/** The JSON `/api/projects` answers (also what clients and tests parse). */
export type ProjectsDocument = ReturnType<typeof projectsView>;

export class AdminServer {
  readonly server: http.Server;

  constructor(private readonly opts: AdminOptions) {
    this.server = http.createServer({ headersTimeout: 10_000, requestTimeout: 0 }, (req, res) => {
      this.handle(req, res).catch((err: Error) => {
        if (!res.headersSent) sendJson(res, 500, { error: 'internal error', reason: err.message });
        else res.destroy();
      });
    });
    // Scrapes must not deoptimise the data plane's HTTP code (see socket-shape.ts).
    uniformSocketShape(this.server);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    // Liveness and readiness depend on no token and no name: kubelet, load balancers and the edge
    // tier probe them by address or by a project's host name. They change nothing and carry status only.
    if (url.pathname === '/healthz') return sendJson(res, 200, { status: 'ok' });
    if (url.pathname === '/readyz') {
      const r = this.opts.view.readiness();
      return sendJson(res, r.ready ? 200 : 503, r);
    }
    // Everything else only for requests that name this listener, and state changes only when made
    // on purpose (guard.ts).
    const refused = adminRefusal(req, this.opts.hosts ?? []);
    if (refused) {
      const error = refused.status === 421 ? 'misdirected request' : 'forbidden';
      return sendJson(res, refused.status, { error, reason: refused.reason });
    }
    // EventSource cannot send headers, so the dashboard's stream passes the token as ?token=.
    if (!checkAdminAuth(req, this.opts.token)) {
      res.setHeader('www-authenticate', 'Bearer realm="wharf-admin"');
      return sendJson(res, 401, { error: 'unauthorized', reason: 'missing or wrong bearer token' });
    }
    if (req.method === 'GET' && url.pathname === '/api/projects') {
      return sendJson(res, 200, projectsView(this.opts.view.table(), this.opts.view.health));
    }
    if (req.method === 'GET' && url.pathname === '/api/problems') {
      return sendJson(res, 200, { problems: this.opts.view.problems() });
    }
    for (const route of this.opts.routes ?? []) if (await route(req, res, url)) return;
    sendJson(res, 404, { error: 'not found', reason: `no admin endpoint ${url.pathname}` });
  }

  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    return listen(this.server, host, port);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
