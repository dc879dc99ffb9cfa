// WebSocket (and any HTTP/1.1 Upgrade) tunnelling: the handshake is routed like a request, then the
// two sockets are piped as raw bytes; when either side closes, both close.

import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { pickEndpoint, readCookie } from '../balancing/index.ts';
import type { Endpoint } from '../model/routes.ts';
import { resolve } from '../routing/match.ts';
import { newRequestId } from '../util/request-id.ts';
import { errorTitle } from './errors.ts';
import { clientAddress, type Forwarder } from './forward.ts';
import { rawHeader, upstreamRequestHeaders } from './headers.ts';

function rejectRaw(socket: Duplex, status: number, body: object): void {
  const payload = JSON.stringify({ error: errorTitle(status), ...body });
  socket.end(
    `HTTP/1.1 ${status} ${errorTitle(status)}\r\ncontent-type: application/json\r\n` +
      `content-length: ${Buffer.byteLength(payload)}\r\nconnection: close\r\n\r\n${payload}`,
  );
}

export function handleUpgrade(fw: Forwarder, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  const opts = fw.opts;
  socket.on('error', () => socket.destroy());
  const clientIp = clientAddress(req);
  const trusted = opts.trusted(clientIp);
  const host = rawHeader(req.rawHeaders, 'host');
  const pin = rawHeader(req.rawHeaders, 'x-wharf-instance')?.trim().toLowerCase();
  const r = resolve(
    opts.table(),
    opts.domain,
    host,
    pin && (trusted || opts.tier === 'internal') ? pin : undefined,
  );
  if (!r.ok) return rejectRaw(socket, r.status, { reason: r.reason, project: r.project, port: r.port });
  let endpoint: Endpoint | undefined;
  if (r.instance !== undefined) {
    endpoint = r.route.byInstance.get(r.instance);
    if (!endpoint || opts.health.state(endpoint.id) === 'unhealthy') {
      return rejectRaw(socket, 503, {
        reason: `instance "${r.instance}" is ${endpoint ? 'unhealthy' : 'gone'}`,
        project: r.project.name,
        port: r.route.port,
        instance: r.instance,
      });
    }
  } else {
    const aff = r.route.settings.affinity;
    const pick = pickEndpoint({
      route: r.route,
      health: opts.health,
      inflight: fw.inflight,
      stickyToken:
        aff.kind === 'cookie' ? readCookie(rawHeader(req.rawHeaders, 'cookie'), fw.cookie) : undefined,
      hashKey:
        aff.kind === 'ip'
          ? clientIp
          : aff.kind === 'header'
            ? rawHeader(req.rawHeaders, aff.header)
            : undefined,
    });
    endpoint = pick?.endpoint;
  }
  if (!endpoint) {
    return rejectRaw(socket, 503, {
      reason: 'no healthy instance',
      project: r.project.name,
      port: r.route.port,
    });
  }
  const ep = endpoint;
  const protocol = rawHeader(req.rawHeaders, 'upgrade') ?? 'websocket';
  const headers = upstreamRequestHeaders(req.rawHeaders, {
    clientIp,
    proto: opts.proto,
    host: host ?? '',
    requestId: (trusted && rawHeader(req.rawHeaders, 'x-request-id')) || newRequestId(),
    untrusted: !trusted,
  });
  let clientClosed = false;
  socket.once('close', () => {
    clientClosed = true;
  });
  opts.pools
    .get(ep.address)
    .upgrade({ path: req.url ?? '/', method: req.method, headers, protocol })
    .then(({ headers: upHeaders, socket: upstream }) => {
      if (clientClosed) return upstream.destroy();
      let head101 = 'HTTP/1.1 101 Switching Protocols\r\n';
      for (const [k, v] of Object.entries(upHeaders)) {
        if (v === undefined) continue;
        for (const one of Array.isArray(v) ? v : [v]) head101 += `${k}: ${one}\r\n`;
      }
      if (opts.instanceHeader) head101 += `x-wharf-instance: ${ep.instance}\r\n`;
      socket.write(`${head101}\r\n`);
      if (head.length > 0) upstream.write(head);
      // Upgraded connections live as long as the peers want; the server's idle timers no longer apply.
      (socket as Duplex & { setTimeout?: (ms: number) => void }).setTimeout?.(0);
      upstream.on('error', () => socket.destroy());
      socket.on('error', () => upstream.destroy());
      upstream.on('close', () => socket.destroy());
      socket.on('close', () => upstream.destroy());
      upstream.pipe(socket);
      socket.pipe(upstream);
    })
    .catch((err: Error & { code?: string }) => {
      if (err.code === 'ECONNREFUSED')
        opts.health.report({ endpoint: ep.id, error: 'connect-refused', durationMs: 0 });
      if (!clientClosed) {
        rejectRaw(socket, 502, {
          reason: `upgrade failed: ${err.code === 'ECONNREFUSED' ? 'connection refused' : 'the upstream did not switch protocols'}`,
          project: r.project.name,
          port: r.route.port,
          ...(opts.instanceHeader ? { instance: ep.instance } : {}),
        });
      }
    });
}
