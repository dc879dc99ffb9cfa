// The demo control API, mounted on the admin port next to the dashboard (same origin, same token):
//   GET  /api/demo                               -> { pid, instances, projects, apiserver }
//   POST /api/demo/<project>/<instance>/<action> -> action: kill | freeze | revive
//   POST /api/demo/<project>/<scale-up|scale-down>
//   POST /api/demo/apiserver/<down|up>            (fake apiserver outage, when there is one)
// Every POST answers with the new GET document.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { DemoError, type Fleet } from './fleet.ts';

function json(res: ServerResponse, status: number, body: unknown): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(payload);
}

export interface ApiserverControl {
  /** `{ url, up }` when the demo runs a fake apiserver. */
  state(): { url: string; up: boolean } | undefined;
  outage(down: boolean): Promise<void>;
}

export function demoView(fleet: Fleet, apiserver?: { url: string; up: boolean }): unknown {
  return {
    /** The demo process (its instances' pids are in `instances`). */
    pid: process.pid,
    instances: fleet.list(),
    projects: fleet.projectList(),
    apiserver: apiserver ?? null,
  };
}

/** Returns an admin route: true when it handled the request. */
export function demoControl(
  fleet: Fleet,
  apiserver?: ApiserverControl,
): (req: IncomingMessage, res: ServerResponse) => Promise<boolean> {
  const view = () => demoView(fleet, apiserver?.state());
  return async (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/api/demo' && !path.startsWith('/api/demo/')) return false;
    const parts = path.split('/').slice(3).map(decodeURIComponent);
    try {
      if (req.method === 'GET' && parts.length === 0) {
        json(res, 200, view());
        return true;
      }
      if (req.method !== 'POST') {
        json(res, 405, { error: 'method not allowed' });
        return true;
      }
      req.resume();
      if (parts.length === 2 && parts[0] === 'apiserver' && apiserver) {
        if (parts[1] === 'down') await apiserver.outage(true);
        else if (parts[1] === 'up') await apiserver.outage(false);
        else throw new DemoError(404, 'expected /api/demo/apiserver/down or /up');
      } else if (parts.length === 2) {
        const [project, action] = parts;
        if (action === 'scale-up') await fleet.scaleUp(project);
        else if (action === 'scale-down') fleet.scaleDown(project);
        else throw new DemoError(404, `unknown action ${action}`);
      } else if (parts.length === 3) {
        const [project, instance, action] = parts;
        if (action === 'kill') fleet.kill(project, instance);
        else if (action === 'freeze') fleet.freeze(project, instance);
        else if (action === 'revive') await fleet.revive(project, instance);
        else throw new DemoError(404, `unknown action ${action}`);
      } else throw new DemoError(404, 'expected /api/demo/<project>/<instance>/<action>');
      json(res, 200, view());
    } catch (err) {
      const status = err instanceof DemoError ? err.status : 500;
      json(res, status, { error: (err as Error).message });
    }
    return true;
  };
}
