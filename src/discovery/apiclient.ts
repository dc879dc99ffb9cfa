// HTTP to the apiserver over undici: one Pool per apiserver URL, failover between them, a silence
// watchdog on every request (a stalled server is a failed server), Status bodies turned into errors.
// A watch's watchdog is fed by its events, not its bytes (the reflector kicks it per event): a
// server that trickles a newline now and then is as good as silent. Other requests (list pages) have
// a deadline as a whole, as the apiserver's own 60 s request timeout gives them.

import { Pool } from 'undici';
import { clip } from '../util/strings.ts';
import { type Clock, systemClock, Watchdog } from './clock.ts';
import type { ApiServerTarget } from './credentials.ts';
import type { Status } from './k8s-types.ts';

export class ApiError extends Error {
  constructor(
    message: string,
    /** HTTP status (or the Status `code` of an in-band ERROR); 0 for transport failures. */
    readonly code: number,
    readonly server: string,
    readonly reason?: string,
    /** A `Retry-After` the server sent (429, 503), in ms. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }

  /** Transport failures and 5xx make the client try the next apiserver. */
  get serverFault(): boolean {
    return this.code === 0 || this.code >= 500;
  }
}

export interface OpenResponse {
  readonly server: string;
  /**
   * Chunks of the 200 body; throws ApiError on silence or reset. Iterating kicks the watchdog, except
   * for a watch (`events: true`), whose reader calls `kick()` per event instead.
   */
  readonly body: AsyncIterable<Buffer>;
  /** The stream is alive: restarts the silence countdown. */
  kick(): void;
  /** Releases the request (aborts it if still streaming). */
  close(): void;
}

export interface ApiClientOptions {
  clock?: Clock;
  /** A request (headers or body; a watch's events) silent for longer than this is aborted. */
  silenceMs?: number;
  /** A request that is not a watch (a list page) must end within this. Default max(silenceMs, 60 s). */
  requestDeadlineMs?: number;
  /** A response body that is not a watch (a list page) larger than this is refused. Default 512 MiB. */
  maxBodyBytes?: number;
  userAgent?: string;
}

export class ApiClient {
  private index = 0;
  private readonly pools = new Map<string, Pool>();
  private readonly failed = new Set<number>();
  private readonly clock: Clock;
  private readonly silenceMs: number;
  private readonly deadlineMs: number;
  private readonly maxBodyBytes: number;
  private readonly userAgent: string;
  private closed = false;

  constructor(
    readonly targets: readonly ApiServerTarget[],
    opts: ApiClientOptions = {},
  ) {
    if (targets.length === 0) throw new Error('no apiserver URL configured');
    this.clock = opts.clock ?? systemClock;
    this.silenceMs = opts.silenceMs ?? 90_000;
    this.deadlineMs = opts.requestDeadlineMs ?? Math.max(this.silenceMs, 60_000);
    this.maxBodyBytes = opts.maxBodyBytes ?? 512 * 1024 * 1024;
    this.userAgent = opts.userAgent ?? 'wharf/0.1';
  }

  get current(): ApiServerTarget {
    return this.targets[this.index];
  }

  private pool(t: ApiServerTarget): Pool {
    let p = this.pools.get(t.url);
    if (!p) {
      const tls = t.credentials.tls;
      p = new Pool(t.url, {
        // Our watchdog replaces undici's timeouts: a watch may legitimately be quiet for minutes.
        headersTimeout: 0,
        bodyTimeout: 0,
        keepAliveTimeout: 30_000,
        connect: {
          timeout: Math.min(this.silenceMs, 10_000),
          ...(tls?.ca ? { ca: tls.ca } : {}),
          ...(tls?.cert ? { cert: tls.cert } : {}),
          ...(tls?.key ? { key: tls.key } : {}),
          ...(tls?.servername ? { servername: tls.servername } : {}),
          rejectUnauthorized: tls?.rejectUnauthorized ?? true,
        },
      });
      this.pools.set(t.url, p);
    }
    return p;
  }

  /**
   * Reports a failure on `target`. When it is the current one, move to the next URL. Returns true
   * when the (new) current URL has not failed since the last success, so it is worth trying at once.
   */
  fail(target: ApiServerTarget): boolean {
    const i = this.targets.indexOf(target);
    if (i >= 0) this.failed.add(i);
    if (i === this.index && this.targets.length > 1) this.index = (this.index + 1) % this.targets.length;
    return !this.failed.has(this.index);
  }

  succeed(target: ApiServerTarget): void {
    this.failed.clear();
    const i = this.targets.indexOf(target);
    if (i >= 0) this.index = i;
  }

  /**
   * GET `path` on the current apiserver. Resolves once 200 headers arrive; non-200 rejects with
   * ApiError. `events`: a watch, whose reader kicks the watchdog per event (see OpenResponse.body);
   * anything else has a deadline as a whole.
   */
  async open(
    path: string,
    outer?: AbortSignal,
    o: { events?: boolean } = {},
  ): Promise<OpenResponse & { target: ApiServerTarget }> {
    if (this.closed) throw new ApiError('client closed', 0, '');
    const target = this.current;
    const server = target.url;
    const ac = new AbortController();
    const onOuter = () => ac.abort(new ApiError('stopped', 0, server, 'Stopped'));
    if (outer?.aborted) onOuter();
    outer?.addEventListener('abort', onOuter, { once: true });
    const dog = new Watchdog(this.clock, this.silenceMs, () =>
      ac.abort(new ApiError(`no data from ${server} for ${this.silenceMs} ms`, 0, server, 'Silent')),
    );
    const deadline = o.events
      ? null
      : this.clock.setTimeout(
          () =>
            ac.abort(
              new ApiError(`${server}: no complete answer in ${this.deadlineMs} ms`, 0, server, 'Deadline'),
            ),
          this.deadlineMs,
        );
    const cleanup = () => {
      dog.stop();
      deadline?.cancel();
      outer?.removeEventListener('abort', onOuter);
    };
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': this.userAgent };
    try {
      const auth = await target.credentials.authorization();
      if (auth) headers.authorization = auth;
    } catch (err) {
      cleanup();
      throw new ApiError(`credentials: ${(err as Error).message}`, 0, server, 'Credentials');
    }
    let res: Awaited<ReturnType<Pool['request']>>;
    try {
      res = await this.pool(target).request({ path, method: 'GET', headers, signal: ac.signal });
    } catch (err) {
      cleanup();
      throw toApiError(err, ac.signal, server);
    }
    dog.kick();
    if (res.statusCode !== 200) {
      let text = '';
      try {
        text = await res.body.text();
      } catch {
        // The status line is enough.
      }
      cleanup();
      let st: Partial<Status> = {};
      try {
        st = JSON.parse(text);
      } catch {
        // Not a Status body (a proxy in the way, say).
      }
      if (res.statusCode === 401) target.credentials.invalidate?.();
      throw new ApiError(
        `${server}${path.split('?')[0]}: HTTP ${res.statusCode}${st.message ? `: ${clip(String(st.message))}` : ''}`,
        res.statusCode,
        server,
        typeof st.reason === 'string' ? clip(st.reason) : undefined,
        retryAfter(res.headers['retry-after']),
      );
    }
    const body = res.body;
    const kickPerChunk = !o.events;
    async function* chunks(): AsyncGenerator<Buffer> {
      try {
        for await (const chunk of body) {
          if (kickPerChunk) dog.kick();
          yield chunk as Buffer;
        }
      } catch (err) {
        throw toApiError(err, ac.signal, server);
      } finally {
        cleanup();
      }
    }
    return {
      server,
      target,
      body: chunks(),
      kick: () => dog.kick(),
      close: () => {
        cleanup();
        if (!body.destroyed) ac.abort(new ApiError('closed', 0, server, 'Closed'));
      },
    };
  }

  /** GET and parse a JSON document. */
  async getJson<T>(path: string, signal?: AbortSignal): Promise<{ value: T; target: ApiServerTarget }> {
    const r = await this.open(path, signal);
    const parts: Buffer[] = [];
    let bytes = 0;
    try {
      for await (const c of r.body) {
        bytes += c.length;
        if (bytes > this.maxBodyBytes)
          throw new ApiError(
            `${r.server}${path.split('?')[0]}: answer larger than ${this.maxBodyBytes} bytes`,
            0,
            r.server,
            'TooLarge',
          );
        parts.push(c);
      }
    } catch (err) {
      r.close();
      throw err;
    }
    try {
      return { value: JSON.parse(Buffer.concat(parts).toString('utf8')) as T, target: r.target };
    } catch (err) {
      throw new ApiError(`bad JSON from ${r.server}: ${(err as Error).message}`, 0, r.server, 'BadJSON');
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.pools.values()].map((p) => p.destroy().catch(() => {})));
    this.pools.clear();
  }
}

/** `Retry-After` in seconds (the apiserver's form) -> ms; an HTTP date or garbage -> undefined. */
function retryAfter(h: string | string[] | undefined): number | undefined {
  const v = Array.isArray(h) ? h[0] : h;
  if (v === undefined || !/^\s*\d{1,9}\s*$/.test(v)) return undefined;
  return Number(v) * 1000;
}

function toApiError(err: unknown, signal: AbortSignal, server: string): ApiError {
  if (err instanceof ApiError) return err;
  if (signal.aborted && signal.reason instanceof ApiError) return signal.reason;
  const e = err as Error & { code?: string; cause?: { code?: string } };
  const code = e.code ?? e.cause?.code;
  return new ApiError(`${server}: ${code ? `${code} ` : ''}${e.message}`, 0, server, code ?? 'Transport');
}
