// Admin routes for what observe/ serves: GET /events (SSE), GET /metrics (Prometheus) and
// GET /api/traffic (the dashboard's history). Each is a function (req, res, url) => handled?, the
// shape of the admin server's `AdminRoute`, so main.ts mounts them with
// `adminRoutes: observeRoutes(obs)` (plus serveDashboard for `/`).

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Metrics } from '../observe/metrics.ts';
import type { SseHub } from '../observe/sse.ts';
import type { TrafficAggregator } from '../observe/traffic.ts';

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

/**
 * GET /api/traffic?range=SECONDS[&project=a,b]: the kept history (5 minutes at 1 s, up to an hour
 * at 10 s), for the projects named or all.
 */
export function trafficRoute(traffic: TrafficAggregator): Route {
  return (req, res, url) => {
    if (url.pathname !== '/api/traffic' || req.method !== 'GET') return false;
    const range = Number(url.searchParams.get('range') ?? 300);
    if (!Number.isInteger(range) || range < 1 || range > 3600) {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({ error: 'bad request', reason: 'range: expected whole seconds from 1 to 3600' }),
      );
      return true;
    }
    const list = url.searchParams.get('project');
    const projects = list ? new Set(list.split(',').filter(Boolean)) : undefined;
    const body = JSON.stringify(traffic.history(range, projects));
    res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
    });
    res.end(body);
    return true;
  };
}

export function observeRoutes(o: { sse: SseHub; metrics: Metrics; traffic?: TrafficAggregator }): Route[] {
  return [eventsRoute(o.sse), metricsRoute(o.metrics), ...(o.traffic ? [trafficRoute(o.traffic)] : [])];
}
