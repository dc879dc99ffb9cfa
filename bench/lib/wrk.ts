// Runs wrk pinned to the load CPU and parses its `--latency` report.

import { start } from './procs.ts';

export interface WrkResult {
  rps: number;
  requests: number;
  seconds: number;
  p50ms: number;
  p75ms: number;
  p90ms: number;
  p99ms: number;
  maxMs: number;
  socketErrors: { connect: number; read: number; write: number; timeout: number };
  non2xx: number;
  raw: string;
}

/** wrk prints durations as e.g. `812.00us`, `3.44ms`, `1.20s`, `2.00m`. */
export function parseDurationMs(s: string): number {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(s.trim());
  if (!m) throw new Error(`unparsable wrk duration: ${s}`);
  const v = Number(m[1]);
  const unit = m[2];
  return unit === 'us'
    ? v / 1000
    : unit === 'ms'
      ? v
      : unit === 's'
        ? v * 1000
        : unit === 'm'
          ? v * 60_000
          : v * 3_600_000;
}

export function parseWrk(out: string): WrkResult {
  const num = (re: RegExp, what: string): string => {
    const m = re.exec(out);
    if (!m) throw new Error(`wrk output has no ${what}:\n${out}`);
    return m[1]!;
  };
  // Percentiles exist only with --latency (the warm-up runs without it).
  const pct = (p: string) => {
    const m = new RegExp(`^\\s*${p}%\\s+(\\S+)`, 'm').exec(out);
    return m ? parseDurationMs(m[1]!) : Number.NaN;
  };
  const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const reqLine = /(\d+) requests in ([\d.]+)(us|ms|s|m),/.exec(out);
  if (!reqLine) throw new Error(`wrk output has no request count:\n${out}`);
  return {
    rps: Number(num(/Requests\/sec:\s+([\d.]+)/, 'Requests/sec')),
    requests: Number(reqLine[1]),
    seconds: parseDurationMs(`${reqLine[2]}${reqLine[3]}`) / 1000,
    p50ms: pct('50'),
    p75ms: pct('75'),
    p90ms: pct('90'),
    p99ms: pct('99'),
    maxMs: parseDurationMs(num(/^\s*Latency\s+\S+\s+\S+\s+(\S+)/m, 'max latency')),
    socketErrors: se
      ? { connect: +se[1]!, read: +se[2]!, write: +se[3]!, timeout: +se[4]! }
      : { connect: 0, read: 0, write: 0, timeout: 0 },
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0),
    raw: out,
  };
}

export interface WrkOptions {
  url: string;
  durationS: number;
  connections?: number;
  threads?: number;
  latency?: boolean;
  host?: string;
  cpus?: string;
}

export function wrkArgs(o: WrkOptions): string[] {
  const args = [`-t${o.threads ?? 1}`, `-c${o.connections ?? 64}`, `-d${o.durationS}s`];
  if (o.latency !== false) args.push('--latency');
  if (o.host) args.push('-H', `Host: ${o.host}`);
  args.push(o.url);
  return o.cpus ? ['taskset', '-c', o.cpus, 'wrk', ...args] : ['wrk', ...args];
}

/** Runs wrk (registered with procs, so it dies with the harness); bounded to duration + 30 s. */
export async function runWrk(o: WrkOptions): Promise<WrkResult> {
  const [cmd, ...args] = wrkArgs(o);
  const m = start('wrk', cmd!, args, { captureStdout: true });
  const killer = setTimeout(
    () => {
      try {
        process.kill(m.pid, 'SIGKILL');
      } catch {}
    },
    (o.durationS + 30) * 1000,
  );
  const code = await m.exited;
  clearTimeout(killer);
  const out = `${m.stdoutLines.join('\n')}\n`;
  if (code !== 0) throw new Error(`wrk exited ${code}: ${out}`);
  return parseWrk(out);
}
