// Admin routes for what observe/ serves: GET /events (SSE) and GET /metrics (Prometheus). Each is a
// function (req, res, url) => handled?, the shape of the admin server's `AdminRoute`, so main.ts
// mounts them with `adminRoutes: observeRoutes(obs)` (plus serveDashboard for `/`).

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Metrics } from './metrics.ts';
import type { SseHub } from './sse.ts';

export type Route = (req: IncomingMessage, res: ServerResponse, url: URL) => boolean | Promise<boolean>;

export function eventsRoute(sse: SseHub): Route {
  return (req, res, url) => {
    if (url.pathname !== '/events' || req.method !== 'GET') return false;
    sse.handle(req, res);
    return true;
  };
}

export function metricsRoute(metrics: Metrics): Route {
  return async (req, res, url) => {
    if (url.pathname !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) return false;
    const body = await metrics.render();
    res.writeHead(200, { 'content-type': metrics.contentType, 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : body);
    return true;
  };
}

export function observeRoutes(o: { sse: SseHub; metrics: Metrics }): Route[] {
  return [eventsRoute(o.sse), metricsRoute(o.metrics)];
}
