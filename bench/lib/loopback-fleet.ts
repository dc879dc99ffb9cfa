// The upstream fleet of the health benchmark: any number of endpoints on loopback addresses,
// served by one nginx worker. Linux routes all of 127.0.0.0/8 to the loopback device, so one socket
// listening on the wildcard address answers every 127.a.b.c: no `ip addr`, no listener per address
// (nginx refuses non-loopback clients). A few instances the benchmark kills or freezes get their own
// small nginx, listening on their own address only.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { type Managed, processTree, sleep, start } from './procs.ts';

/** The port every bulk endpoint listens on (the wildcard nginx). */
export const FLEET_PORT = 18600;
/** The port of the instances that are killed or frozen (their own nginx each). */
export const VICTIM_PORT = 18601;
/** nginx stub_status of the fleet (its request and connection counters). */
export const STATUS_PORT = 18609;

/** Endpoint i of the fleet: 127.10.0.1 ... 127.10.254.254, then 127.11.x.y, ... (never x or y = 255). */
export function fleetAddress(i: number): string {
  const per = 254 * 254;
  const a = 10 + Math.floor(i / per);
  const r = i % per;
  return `127.${a}.${1 + Math.floor(r / 254)}.${1 + (r % 254)}:${FLEET_PORT}`;
}

/** The soft limit of open files a process started from here gets (Linux), which nginx and Wharf inherit. */
export function openFilesLimit(): number {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (m) return Number(m[1]);
  } catch {}
  return 1024;
}

function nginxArgs(prefix: string, conf: string): string[] {
  return ['-p', prefix, '-e', join(prefix, 'error.log'), '-c', conf, '-g', 'daemon off; worker_processes 1;'];
}

/**
 * The fleet's nginx: one worker, pinned, every loopback address on FLEET_PORT, a small /healthz
 * answer. `keepAliveS` is how long it keeps an idle connection (nginx's default is 75 s).
 */
export function startFleet(runDir: string, cpus: string, keepAliveS: number): Nginx {
  const prefix = join(runDir, 'fleet-nginx');
  mkdirSync(join(prefix, 'logs'), { recursive: true });
  const conf = join(prefix, 'nginx.conf');
  writeFileSync(
    conf,
    `pid ${join(prefix, 'nginx.pid')};
events { worker_connections ${Math.max(1024, openFilesLimit() - 200)}; multi_accept on; }
http {
  access_log off;
  error_log ${join(prefix, 'error.log')} crit;
  keepalive_timeout ${keepAliveS}s;
  keepalive_requests 1000000;
  server {
    listen 0.0.0.0:${FLEET_PORT} backlog=65535;
    allow 127.0.0.0/8;
    deny all;
    location /healthz { return 200 "ok\\n"; }
    location / { return 200 "fleet\\n"; }
  }
  server {
    listen 127.0.0.1:${STATUS_PORT};
    location / { stub_status; }
  }
}
`,
  );
  const m = start('fleet nginx', 'taskset', ['-c', cpus, 'nginx', ...nginxArgs(prefix, conf)], {
    logFile: join(prefix, 'stdout.log'),
  });
  return new Nginx(m, `127.0.0.1:${STATUS_PORT}`);
}

/**
 * An nginx master and its workers, by pid. Killed with SIGKILL to every pid it ever had: a master
 * killed alone leaves its workers running, still listening.
 */
export class Nginx {
  private readonly pids = new Set<number>();

  constructor(
    readonly m: Managed,
    readonly address: string,
  ) {
    this.pids.add(m.pid);
  }

  /** Waits until it accepts connections on its address, and notes its workers. */
  async ready(timeoutMs = 10_000): Promise<void> {
    const [host, port] = [
      this.address.slice(0, this.address.lastIndexOf(':')),
      Number(this.address.split(':').at(-1)),
    ];
    const end = Date.now() + timeoutMs;
    for (;;) {
      const ok = await new Promise<boolean>((resolve) => {
        const s = net.connect({ host, port }, () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      });
      if (ok) break;
      if (Date.now() > end) throw new Error(`${this.m.name} not listening on ${this.address}`);
      await sleep(20);
    }
    this.note();
  }

  /** Records the current workers (call again after a reload). */
  note(): void {
    for (const p of processTree(this.m.pid)) this.pids.add(p);
  }

  signal(sig: 'SIGSTOP' | 'SIGCONT'): void {
    this.note();
    for (const p of this.pids) {
      try {
        process.kill(p, sig);
      } catch {}
    }
  }

  kill(): void {
    this.note();
    for (const p of this.pids) {
      try {
        process.kill(p, 'SIGCONT');
        process.kill(p, 'SIGKILL');
      } catch {}
    }
  }
}

/** One instance on its own address (127.10.255.n), in its own nginx, so it can be killed or frozen alone. */
export function startVictim(runDir: string, cpus: string, n: number): Nginx {
  const address = `127.10.255.${n}:${VICTIM_PORT}`;
  const prefix = join(runDir, `victim-${n}`);
  mkdirSync(join(prefix, 'logs'), { recursive: true });
  const conf = join(prefix, 'nginx.conf');
  writeFileSync(
    conf,
    `pid ${join(prefix, 'nginx.pid')};
events { worker_connections 1024; }
http {
  access_log off;
  error_log ${join(prefix, 'error.log')} crit;
  keepalive_timeout 75s;
  server {
    listen ${address};
    location /healthz { return 200 "ok\\n"; }
    location / { return 200 "victim ${n}\\n"; }
  }
}
`,
  );
  const m = start(`victim ${n}`, 'taskset', ['-c', cpus, 'nginx', ...nginxArgs(prefix, conf)], {
    logFile: join(prefix, 'stdout.log'),
  });
  return new Nginx(m, address);
}

export interface StubStatus {
  readonly active: number;
  readonly accepts: number;
  readonly requests: number;
}

/** The fleet's counters (each read is one request of its own, on another port). */
export async function stubStatus(): Promise<StubStatus> {
  const text = await (await fetch(`http://127.0.0.1:${STATUS_PORT}/`)).text();
  const active = Number(/Active connections:\s*(\d+)/.exec(text)?.[1]);
  const m = /\n\s*(\d+)\s+(\d+)\s+(\d+)\s*\n/.exec(text);
  return { active, accepts: Number(m?.[1]), requests: Number(m?.[3]) };
}
