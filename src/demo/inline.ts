// A demo instance served inside the demo process: for the generated projects of `--projects N`,
// where one process per instance (about 40 MB each) would not fit 400 instances on a laptop. It
// answers like instance.mjs (same handler) and imitates the same failures: `freeze` holds every
// request and probe unanswered (a hung pod), `kill` closes the port (connections refused), `revive`
// undoes either on the same port.

import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { createHandler } from './handler.mjs';

export interface InlineConfig {
  readonly project: string;
  readonly instance: string;
  readonly healthPath: string;
  /** Port name -> port (0: any free port, fixed after the first start). */
  readonly ports: Record<string, number>;
}

export class InlineInstance {
  private servers: http.Server[] = [];
  private readonly sockets = new Set<Socket>();
  private frozen = false;
  /** Requests held while frozen, answered (late) on revive. */
  private held: (() => void)[] = [];
  private readonly counters = { served: 0, started: Date.now() };

  constructor(private readonly cfg: InlineConfig) {}

  /** Listens on every port; resolves with the ports bound. */
  async start(): Promise<Record<string, number>> {
    const bound: Record<string, number> = {};
    this.frozen = false;
    await Promise.all(
      Object.entries(this.cfg.ports).map(async ([name, port]) => {
        const handle = createHandler(this.cfg, name, this.counters);
        const server = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
          if (this.frozen) this.held.push(() => handle(req, res));
          else handle(req, res);
        });
        server.on('connection', (s: Socket) => {
          this.sockets.add(s);
          s.once('close', () => this.sockets.delete(s));
        });
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(port, '127.0.0.1', () => resolve());
        });
        this.servers.push(server);
        bound[name] = (server.address() as AddressInfo).port;
      }),
    );
    Object.assign(this.cfg.ports, bound);
    return bound;
  }

  freeze(): void {
    this.frozen = true;
  }

  thaw(): void {
    this.frozen = false;
    const held = this.held;
    this.held = [];
    for (const h of held) h();
  }

  /** Closes every port and drops every connection, like a killed process. */
  async stop(): Promise<void> {
    this.held = [];
    const servers = this.servers;
    this.servers = [];
    for (const s of this.sockets) s.destroy();
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}
