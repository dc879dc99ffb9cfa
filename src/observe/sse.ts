// GET /events: Server-Sent Events for the dashboard and for anyone with curl. On connect the client
// gets the current state (`state`, from the admin server's replay callback), the recent timeline
// (`timeline`) and the last 5 minutes of traffic (`history`, left out with `?history=0`: the
// dashboard fetches only the projects it shows from /api/traffic); then live `health`, `routes`,
// `problems`, `source`, per-second `traffic` and `upstream` events. `upstream` is a timeline entry
// for a burst of retries and rescues on one port, updated while the burst lasts (same `id`).
// Every event is serialised once for all clients. A client that cannot keep up is disconnected
// (EventSource reconnects and gets a fresh replay), so a slow reader never makes us buffer without
// bound.

import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { WharfEvent } from '../model/events.ts';
import { clientAddress } from '../util/client-address.ts';
import type { Unsubscribe } from './event-bus.ts';
import type { TrafficAggregator, TrafficSummaryEvent } from './traffic.ts';

export interface SseOptions {
  readonly bus: { on(listener: (e: WharfEvent) => void): Unsubscribe };
  readonly traffic?: TrafficAggregator;
  /** Current state, sent as the `state` event on connect: projects with instances, problems, sources. */
  readonly replay: () => unknown | Promise<unknown>;
  /** Comment line sent to every client this often, so proxies and browsers keep the stream. Default 15 s. */
  readonly heartbeatMs?: number;
  /** Bytes queued on one client's socket before it is disconnected as too slow. Default 1 MiB. */
  readonly maxBufferedBytes?: number;
  /** Concurrent clients at most; more get 503. Default 64. */
  readonly maxClients?: number;
  /**
   * Concurrent clients from one address at most (more get 429), so a few addresses cannot take
   * every place. Default 8 (a browser's tabs).
   */
  readonly maxClientsPerAddress?: number;
  /**
   * The admin token, when one is configured: a client presenting it is held to neither bound above
   * (the hub still stops at four times maxClients), so the operator always gets the dashboard.
   */
  readonly token?: string;
  /** Timeline events kept for new clients. Default 200. */
  readonly timelineSize?: number;
}

interface Client {
  readonly res: ServerResponse;
  readonly address: string;
  /** Messages that arrived while the replay was being built, sent right after it. */
  pending: string[] | null;
}

/**
 * Retries and rescues on one port, one timeline entry per burst: seconds with any of them less than
 * BURST_GAP_MS apart extend the same entry.
 */
export interface UpstreamBurst {
  readonly type: 'upstream';
  /** Stable while the burst grows, so a client replaces the entry it has. */
  readonly id: string;
  readonly time: number;
  until: number;
  readonly project: string;
  readonly port: string;
  retries: number;
  rescues: number;
}

const BURST_GAP_MS = 10_000;

type TimelineEvent = Exclude<WharfEvent, { type: 'probe' }> | UpstreamBurst;

export class SseHub {
  private readonly opts: SseOptions;
  private readonly clients = new Set<Client>();
  private readonly perAddress = new Map<string, number>();
  private readonly unsubscribe: Unsubscribe[] = [];
  private readonly timer: NodeJS.Timeout;
  private readonly timeline: TimelineEvent[] = [];
  private readonly maxBuffered: number;
  private nextId = 1;
  private closed = false;
  private slowDisconnects = 0;
  /** The open burst per `project/port`. */
  private readonly bursts = new Map<string, UpstreamBurst>();

  constructor(opts: SseOptions) {
    this.opts = opts;
    this.maxBuffered = opts.maxBufferedBytes ?? 1024 * 1024;
    this.unsubscribe.push(opts.bus.on((e) => this.onEvent(e)));
    if (opts.traffic) this.unsubscribe.push(opts.traffic.on((e) => this.onTraffic(e)));
    this.timer = setInterval(() => this.broadcast(': hb\n\n'), opts.heartbeatMs ?? 15_000);
    this.timer.unref();
  }

  /** Serve GET /events (auth is the caller's business: see checkAdminAuth). */
  handle(req: IncomingMessage, res: ServerResponse): void {
    const address = clientAddress(req.socket);
    const token = this.opts.token;
    const privileged = token !== undefined && checkAdminAuth(req, token);
    const max = this.opts.maxClients ?? 64;
    const fromAddress = this.perAddress.get(address) ?? 0;
    if (!privileged && fromAddress >= (this.opts.maxClientsPerAddress ?? 8)) {
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '5' });
      res.end(JSON.stringify({ error: 'too many event stream clients from this address' }));
      return;
    }
    if (this.closed || this.clients.size >= (privileged ? max * 4 : max)) {
      res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '5' });
      res.end(JSON.stringify({ error: 'too many event stream clients' }));
      return;
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.flushHeaders();
    req.socket.setNoDelay(true);
    const client: Client = { res, address, pending: [] };
    this.clients.add(client);
    this.perAddress.set(address, fromAddress + 1);
    const drop = (): void => {
      if (!this.clients.delete(client)) return;
      this.leave(address);
    };
    res.on('close', drop);
    res.write('retry: 1000\n\n');
    const q = req.url?.indexOf('?') ?? -1;
    const withHistory = q < 0 || new URLSearchParams(req.url!.slice(q + 1)).get('history') !== '0';
    void Promise.resolve()
      .then(() => this.opts.replay())
      .then(
        (state) => {
          if (!this.clients.has(client)) return;
          this.send(client, this.format('state', state));
          this.send(client, this.format('timeline', { events: this.timeline }));
          if (this.opts.traffic && withHistory)
            this.send(client, this.format('history', this.opts.traffic.history()));
          const pending = client.pending ?? [];
          client.pending = null;
          for (const m of pending) this.send(client, m);
        },
        (err: unknown) => {
          this.send(client, this.format('error', { error: `replay failed: ${String(err)}` }));
          client.pending = null;
        },
      );
  }

  /**
   * Send an application event to every client (not kept for replay): e.g. the demo's instance
   * statuses, so every open dashboard shows a freeze at once.
   */
  publish(event: string, data: unknown): void {
    if (!/^[a-z][a-z0-9-]*$/.test(event)) throw new Error(`bad SSE event name ${event}`);
    this.broadcast(this.format(event, data));
  }

  clientCount(): number {
    return this.clients.size;
  }

  /** Clients disconnected because they could not keep up. */
  slowClientsDropped(): number {
    return this.slowDisconnects;
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    for (const u of this.unsubscribe) u();
    for (const c of this.clients) c.res.end();
    this.clients.clear();
    this.perAddress.clear();
  }

  private onEvent(e: WharfEvent): void {
    if (e.type === 'probe') return; // per-probe noise stays in the log and metrics
    this.remember(e);
    this.broadcast(this.format(e.type, e));
  }

  private remember(e: TimelineEvent): void {
    this.timeline.push(e);
    const max = this.opts.timelineSize ?? 200;
    if (this.timeline.length > max) {
      for (const old of this.timeline.splice(0, this.timeline.length - max))
        if (old.type === 'upstream' && this.bursts.get(`${old.project}/${old.port}`) === old)
          this.bursts.delete(`${old.project}/${old.port}`);
    }
  }

  private onTraffic(e: TrafficSummaryEvent): void {
    this.broadcast(this.format('traffic', e));
    for (const p of e.ports) {
      if (p.retries === 0 && p.rescues === 0) continue;
      const key = `${p.project}/${p.port}`;
      let b = this.bursts.get(key);
      if (b && e.time - b.until <= BURST_GAP_MS) {
        b.until = e.time;
        b.retries += p.retries;
        b.rescues += p.rescues;
      } else {
        b = {
          type: 'upstream',
          id: `${key}@${e.time}`,
          time: e.time,
          until: e.time,
          project: p.project,
          port: p.port,
          retries: p.retries,
          rescues: p.rescues,
        };
        this.bursts.set(key, b);
        this.remember(b);
      }
      this.broadcast(this.format('upstream', b));
    }
  }

  private format(event: string, data: unknown): string {
    return `id: ${this.nextId++}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
  }

  private broadcast(msg: string): void {
    for (const c of this.clients) {
      if (c.pending) c.pending.push(msg);
      else this.send(c, msg);
    }
  }

  private leave(address: string): void {
    const n = (this.perAddress.get(address) ?? 1) - 1;
    if (n > 0) this.perAddress.set(address, n);
    else this.perAddress.delete(address);
  }

  private send(c: Client, msg: string): void {
    if (c.res.writableLength > this.maxBuffered) {
      this.slowDisconnects++;
      if (this.clients.delete(c)) this.leave(c.address);
      c.res.destroy();
      return;
    }
    c.res.write(msg);
  }
}

/**
 * True when the request may use the admin API: no token configured, or the token given as
 * `Authorization: Bearer <token>` or, for EventSource and browser navigation (which cannot set
 * headers), as the `token` query parameter.
 */
export function checkAdminAuth(req: IncomingMessage, token: string | undefined): boolean {
  if (!token) return true;
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ') && safeEqual(auth.slice(7).trim(), token)) return true;
  const q = req.url?.indexOf('?') ?? -1;
  if (q >= 0) {
    const given = new URLSearchParams(req.url!.slice(q + 1)).get('token');
    if (given !== null && safeEqual(given, token)) return true;
  }
  return false;
}

/** Answer 401 for a request that failed checkAdminAuth. */
export function denyAdmin(res: ServerResponse): void {
  res.writeHead(401, {
    'content-type': 'application/json',
    'www-authenticate': 'Bearer realm="wharf-admin"',
  });
  res.end(JSON.stringify({ error: 'admin token required' }));
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
