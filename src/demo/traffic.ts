// Light background traffic through the proxy so the dashboard's charts move: a few simulated users
// per project, cookie-carrying for projects with cookie affinity. Loopback only, a fixed rate, and
// a cap on requests in flight so a frozen instance cannot pile requests up.

import http from 'node:http';

export interface TrafficOptions {
  readonly proxyPort: number;
  readonly hosts: readonly string[];
  /** Requests per second over all hosts. */
  readonly rps: number;
  readonly maxInFlight?: number;
  readonly usersPerHost?: number;
  /** Wait this long before the first request, so first probes have run. Default 0. */
  readonly startDelayMs?: number;
}

export class DemoTraffic {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  private timer: NodeJS.Timeout;
  private inFlight = 0;
  private tick = 0;
  private readonly cookies = new Map<string, string>();
  sent = 0;

  constructor(private readonly opts: TrafficOptions) {
    // 10 ticks a second; spread the rate over them.
    this.timer = setTimeout(() => {
      this.timer = setInterval(() => this.burst(), 100);
      this.timer.unref();
    }, opts.startDelayMs ?? 0);
    this.timer.unref();
  }

  private burst(): void {
    const perTick = this.opts.rps / 10;
    // Carry fractions over ticks so 5 rps means 5 rps, not 0.
    const n = Math.floor((this.tick + 1) * perTick) - Math.floor(this.tick * perTick);
    this.tick++;
    for (let i = 0; i < n; i++) {
      if (this.inFlight >= (this.opts.maxInFlight ?? 24)) return;
      const host = this.opts.hosts[this.sent % this.opts.hosts.length];
      const user = `${host}#${Math.floor(Math.random() * (this.opts.usersPerHost ?? 4))}`;
      this.send(host, user);
    }
  }

  private send(host: string, user: string): void {
    this.inFlight++;
    this.sent++;
    let finished = false;
    const done = (): void => {
      if (finished) return;
      finished = true;
      this.inFlight--;
    };
    const cookie = this.cookies.get(user);
    const req = http.request(
      {
        host: '127.0.0.1',
        port: this.opts.proxyPort,
        path: `/demo/${user.split('#')[1]}`,
        agent: this.agent,
        headers: { host, ...(cookie ? { cookie } : {}) },
        timeout: 5000,
      },
      (res) => {
        const set = res.headers['set-cookie'];
        if (set?.length) this.cookies.set(user, set.map((c) => c.split(';')[0]).join('; '));
        res.resume();
        res.on('end', done);
        res.on('close', done);
      },
    );
    req.on('timeout', () => req.destroy());
    req.on('error', done);
    req.end();
  }

  stop(): void {
    clearTimeout(this.timer);
    clearInterval(this.timer);
    this.agent.destroy();
  }
}
