// Process bookkeeping for the benchmarks: every child the harness starts is registered here so that
// it is killed on normal exit, on error and on Ctrl-C. Also per-process CPU time and peak RSS from
// /proc, summed over a process tree (nginx = master + worker).

import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';

const CLK_TCK = 100; // getconf CLK_TCK on Linux x86_64; /proc times are in these ticks.

export interface Managed {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Resolves with the exit code (or signal name) once the process is gone. */
  readonly exited: Promise<number | string>;
  /** Lines the process printed on stdout, when `captureStdout` was asked for. */
  readonly stdoutLines: string[];
}

const live = new Set<Managed>();
let hooksInstalled = false;

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  const hardKill = () => {
    for (const m of live) {
      // The whole tree: a SIGKILLed nginx master leaves its workers running otherwise.
      for (const pid of processTree(m.pid).reverse()) {
        try {
          // SIGCONT first: a SIGSTOPped child would otherwise not die until continued.
          process.kill(pid, 'SIGCONT');
          process.kill(pid, 'SIGKILL');
        } catch {}
      }
    }
  };
  process.on('exit', hardKill);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      process.stderr.write(`\n[bench] ${sig}: stopping every process the harness started\n`);
      hardKill();
      process.exit(130);
    });
  }
  process.on('uncaughtException', (err) => {
    process.stderr.write(`[bench] uncaught: ${err?.stack ?? err}\n`);
    hardKill();
    process.exit(1);
  });
  process.on('unhandledRejection', (err) => {
    process.stderr.write(`[bench] unhandled rejection: ${(err as Error)?.stack ?? err}\n`);
    hardKill();
    process.exit(1);
  });
}

export interface StartOptions {
  /** Pin to these CPUs with taskset (e.g. '0'). */
  cpus?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** stdout (unless captured) and stderr go to this file (appended); default: discarded. */
  logFile?: string;
  /** Keep stdout lines in memory (for the upstreams' arrival logs). stderr still goes to logFile. */
  captureStdout?: boolean;
}

export function start(name: string, cmd: string, args: string[], opts: StartOptions = {}): Managed {
  installHooks();
  const [file, argv] = opts.cpus ? ['taskset', ['-c', opts.cpus, cmd, ...args]] : [cmd, args];
  // The log file is handed to the child as its own fd, so the harness relays nothing per line.
  const fd = opts.logFile ? openSync(opts.logFile, 'a') : 'ignore';
  const child = spawn(file, argv, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ['ignore', opts.captureStdout ? 'pipe' : fd, fd],
  });
  if (typeof fd === 'number') closeSync(fd);
  if (child.pid === undefined) throw new Error(`could not start ${name}: ${file} ${argv.join(' ')}`);
  const stdoutLines: string[] = [];
  if (opts.captureStdout && child.stdout) {
    let buf = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      buf += d;
      let i = buf.indexOf('\n');
      while (i >= 0) {
        stdoutLines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
        i = buf.indexOf('\n');
      }
    });
  }
  const exited = new Promise<number | string>((resolve) => {
    child.once('close', (code, sig) => {
      live.delete(m);
      resolve(code ?? sig ?? 'unknown');
    });
    child.once('error', (err) => {
      live.delete(m);
      resolve(`spawn error: ${err.message}`);
    });
  });
  const m: Managed = { name, child, pid: child.pid, exited, stdoutLines };
  live.add(m);
  return m;
}

/** SIGTERM, then SIGKILL after `graceMs`. Always resolves. */
export async function stop(m: Managed | undefined, graceMs = 3000): Promise<void> {
  if (!m || !live.has(m)) return;
  try {
    process.kill(m.pid, 'SIGCONT');
    process.kill(m.pid, 'SIGTERM');
  } catch {}
  const t = setTimeout(() => {
    for (const pid of processTree(m.pid).reverse()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
  }, graceMs);
  await m.exited;
  clearTimeout(t);
}

export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((m) => stop(m)));
}

export function signal(m: Managed, sig: NodeJS.Signals): void {
  process.kill(m.pid, sig);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Waits until something accepts TCP connections on 127.0.0.1:port. */
export async function waitForPort(port: number, timeoutMs = 15_000, died?: Promise<unknown>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let dead = false;
  died?.then(() => {
    dead = true;
  });
  while (Date.now() < deadline) {
    if (dead) throw new Error(`process exited before listening on ${port}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
      s.setTimeout(1000, () => {
        s.destroy();
        resolve(false);
      });
    });
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`nothing listening on 127.0.0.1:${port} after ${timeoutMs} ms`);
}

/** Fails if the port is taken, so a stray old process does not get benchmarked by mistake. */
export async function assertPortFree(port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', () => reject(new Error(`127.0.0.1:${port} is already in use (a leftover process?)`)));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve()));
  });
}

// ---- /proc readings ------------------------------------------------------------------------------

interface Stat {
  ppid: number;
  ticks: number; // utime + stime
}

function readStat(pid: number): Stat | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may contain spaces and parentheses: fields start after the last ')'.
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // rest[0] = state (field 3); ppid = field 4; utime = 14; stime = 15.
    return { ppid: Number(rest[1]), ticks: Number(rest[11]) + Number(rest[12]) };
  } catch {
    return undefined;
  }
}

/** pid and all its live descendants. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const st = readStat(Number(e));
    if (!st) continue;
    const list = children.get(st.ppid) ?? [];
    list.push(Number(e));
    children.set(st.ppid, list);
  }
  const out: number[] = [];
  const todo = [pid];
  while (todo.length > 0 && out.length < 10_000) {
    const p = todo.pop()!;
    out.push(p);
    todo.push(...(children.get(p) ?? []));
  }
  return out;
}

/**
 * SIGSTOP or SIGCONT to every process of a tree. Frozen, a proxy that is not being measured cannot run
 * its timers, health probes or garbage collection on the CPU the measured one is pinned to.
 */
export function signalTree(pid: number, sig: 'SIGSTOP' | 'SIGCONT'): void {
  for (const p of processTree(pid)) {
    try {
      process.kill(p, sig);
    } catch {}
  }
}

/**
 * CPU seconds (user+system) used so far by a process tree. The proxies run under `taskset`, which
 * execs, so the managed pid is the proxy itself; nginx's worker is its child and is summed in.
 */
export function treeCpuSeconds(pid: number): number {
  let ticks = 0;
  for (const p of processTree(pid)) ticks += readStat(p)?.ticks ?? 0;
  return ticks / CLK_TCK;
}

/** Peak resident set (VmHWM) in MiB, summed over the tree. */
export function treePeakRssMiB(pid: number): number {
  let kb = 0;
  for (const p of processTree(pid)) {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m) kb += Number(m[1]);
    } catch {}
  }
  return kb / 1024;
}

/** Busy (non-idle) CPU ticks of the whole machine, from /proc/stat. */
export function machineBusyTicks(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal ...
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return total - idle;
}

/**
 * CPU used by processes that are not ours (fraction of one core) over `sampleMs`: machine busy time
 * minus the harness's own process tree.
 */
export async function foreignCpu(sampleMs = 1000): Promise<number> {
  const b0 = machineBusyTicks();
  const o0 = treeCpuSeconds(process.pid);
  const t0 = performance.now();
  await sleep(sampleMs);
  const b1 = machineBusyTicks();
  const o1 = treeCpuSeconds(process.pid);
  const secs = (performance.now() - t0) / 1000;
  return Math.max(0, (b1 - b0) / CLK_TCK - (o1 - o0)) / secs;
}

/**
 * Waits (bounded) until foreign CPU use is below `threshold` of one core, as the reference harness
 * did. Returns the last measured foreign CPU so each run can record it.
 */
export async function waitQuiet(threshold: number, maxWaitMs: number): Promise<number> {
  const deadline = Date.now() + maxWaitMs;
  let f = await foreignCpu(1000);
  while (f >= threshold && Date.now() < deadline) f = await foreignCpu(1000);
  return f;
}

/**
 * waitQuiet with a total budget: on a machine that never gets quiet, each run would otherwise wait
 * its full maximum. Once the budget is spent, every wait is a single 1 s sample (still recorded).
 */
export class QuietWaiter {
  private spentMs = 0;
  constructor(
    private readonly threshold: number,
    private readonly perRunMaxMs: number,
    private readonly budgetMs: number,
  ) {}

  async wait(): Promise<number> {
    const t0 = Date.now();
    const max = Math.max(0, Math.min(this.perRunMaxMs, this.budgetMs - this.spentMs));
    const f = await waitQuiet(this.threshold, max);
    this.spentMs += Date.now() - t0;
    return f;
  }

  get exhausted(): boolean {
    return this.spentMs >= this.budgetMs;
  }
}
