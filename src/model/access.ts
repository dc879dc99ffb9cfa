// One access-log record per client request, produced by proxy/, consumed by observe/.

export interface AccessRecord {
  /** Epoch ms when the request arrived. */
  readonly time: number;
  readonly requestId: string;
  readonly client: string;
  readonly host: string;
  readonly method: string;
  readonly path: string;
  readonly status: number;
  /** Request bytes read from the client socket while the request lasted (body, approximately). */
  readonly bytesIn: number;
  /** Response body bytes sent. */
  readonly bytesOut: number;
  readonly durationMs: number;
  /** Time from sending the (last) upstream attempt to its response headers. */
  readonly upstreamMs?: number;
  readonly project?: string;
  readonly port?: string;
  readonly instance?: string;
  readonly attempts: number;
  /** Why the request failed or was retried (`connect-refused`, `no-healthy-instance`, ...). */
  readonly error?: string;
  /** The client's protocol: `http/1.1`, `h2`, with `+upgrade` for a tunnel (WebSocket). */
  readonly protocol?: string;
}
