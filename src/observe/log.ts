// JSON-lines logs for filebeat: the access log (one line per request), the health log (health
// transitions, route changes, Problems, source state, optionally failed probes) and the general
// application log. Each goes to stdout or to a file in a configured directory (`access.log`,
// `health.log`, `wharf.log`), through a BoundedSink so a slow disk drops lines instead of slowing
// requests. `reopen()` (wired to SIGUSR1) lets logrotate rename the files.
//
// A log directory Wharf cannot write never stops it: the lines of a file that cannot be opened go to
// stdout instead, the file is tried again every `retryMs` (and on SIGUSR1), and the failure is a
// Problem (`onProblems`) until the file opens.

import { basename, join } from 'node:path';
import { type Logger, pino } from 'pino';
import type { WharfEvent } from '../model/events.ts';
import type { Problem } from '../model/problem.ts';
import type { AccessRecord } from './access-log.ts';
import { LogFile } from './log-file.ts';
import { BoundedSink } from './sink.ts';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface LogOptions {
  /** Directory for access.log, health.log and wharf.log; undefined => all to stdout. */
  readonly dir?: string;
  readonly access: boolean;
  readonly health: boolean;
  /** Also log every failed active probe (chatty; off by default). */
  readonly probeFailures?: boolean;
  /** Cap per sink on bytes waiting for the disk. Default 4 MiB. */
  readonly bufferBytes?: number;
  /** Minimum level of the application log. Default `info`. */
  readonly level?: LogLevel;
  /** Tests: a descriptor instead of stdout (when `dir` is undefined, or a file cannot be opened). */
  readonly fd?: number;
  /** How often a log file that could not be opened is tried again. Default 30 s. */
  readonly retryMs?: number;
}

export interface Logs {
  access(rec: AccessRecord): void;
  event(e: WharfEvent): void;
  app(level: LogLevel, msg: string, fields?: Record<string, unknown>): void;
  reopen(): void;
  dropped(): number;
  flush(): Promise<void>;
  close(): Promise<void>;
  /**
   * Problems of the log destination (files that cannot be opened): `cb` is called at once when
   * there are any, then on every change (an empty list when the files are writable again).
   * Returns the unsubscriber.
   */
  onProblems(cb: (problems: readonly Problem[]) => void): () => void;
}

export const DEFAULT_LOG_RETRY_MS = 30_000;

export function problemKey(p: Problem): string {
  return `${p.object}\u0000${p.code}\u0000${p.field ?? ''}`;
}

/**
 * A JSON string literal. Most values (names, methods, addresses, ids, most paths) are printable
 * ASCII without a quote or backslash: those are quoted as they are, which is several times cheaper than
 * JSON.stringify's fixed cost per call; anything else goes through JSON.stringify for escaping.
 */
function jsonString(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x22 /* " */ || c === 0x5c /* \ */ || c > 0x7e) return JSON.stringify(s);
  }
  return `"${s}"`;
}

/**
 * Milliseconds rounded to microseconds, as a JSON number. Integer arithmetic: formatting the double
 * `Math.round(x * 1000) / 1000` (shortest round-trip digits) costs more than the rest of the line.
 */
export function jsonMs(x: number): string {
  if (!Number.isFinite(x)) return 'null';
  const us = Math.round(x * 1000);
  const whole = Math.trunc(us / 1000);
  const frac = Math.abs(us - whole * 1000);
  const sign = us < 0 && whole === 0 ? '-' : '';
  if (frac === 0) return `${sign}${whole}`;
  return `${sign}${whole}.${frac < 10 ? '00' : frac < 100 ? '0' : ''}${frac}`;
}

/** The last request time printed, and its digits: about ten requests share each millisecond. */
let lastTime = Number.NaN;
let lastTimeText = '';

/**
 * One access-log line, built by hand: the same JSON pino would write for `accessLog.info(rec)`, at
 * a fraction of its cost (this runs once per request).
 */
export function accessLine(r: AccessRecord): string {
  if (r.time !== lastTime) {
    lastTime = r.time;
    lastTimeText = `${r.time}`;
  }
  let line = `{"level":"info","log":"access","time":${lastTimeText},"requestId":${jsonString(r.requestId)},"client":${jsonString(r.client)},"host":${jsonString(r.host)},"method":${jsonString(r.method)},"path":${jsonString(r.path)},"status":${r.status},"bytesIn":${r.bytesIn},"bytesOut":${r.bytesOut},"durationMs":${jsonMs(r.durationMs)}`;
  if (r.upstreamMs !== undefined) line += `,"upstreamMs":${jsonMs(r.upstreamMs)}`;
  if (r.project !== undefined) line += `,"project":${jsonString(r.project)}`;
  if (r.port !== undefined) line += `,"port":${jsonString(r.port)}`;
  if (r.instance !== undefined) line += `,"instance":${jsonString(r.instance)}`;
  line += `,"attempts":${r.attempts}`;
  if (r.error !== undefined) line += `,"error":${jsonString(r.error)}`;
  // Our own constants (http/1.1, h2, ...+upgrade): nothing to escape.
  if (r.protocol !== undefined) line += `,"protocol":"${r.protocol}"`;
  return `${line}}\n`;
}

export function createLogs(opts: LogOptions): Logs {
  const onError = (err: Error): void => {
    // The app log may be the sink that failed; stderr is the last resort (once per error kind).
    process.stderr.write(`wharf: log write failed: ${err.message}\n`);
  };
  const sinkOptions = { maxBufferBytes: opts.bufferBytes, onError };
  // stdout: one sink for everything written there, so lines never interleave mid-line.
  let stdout: BoundedSink | undefined;
  const stdoutSink = (): BoundedSink => {
    stdout ??= new BoundedSink({ ...sinkOptions, fd: opts.fd ?? 1 });
    return stdout;
  };
  const retryMs = opts.retryMs ?? DEFAULT_LOG_RETRY_MS;
  const files: LogFile[] = [];
  let started = false;
  const file = (name: string): LogFile => {
    const f = new LogFile({
      path: join(opts.dir as string, name),
      fallback: stdoutSink,
      retryMs,
      sink: sinkOptions,
      onChange: () => {
        if (started) problemsChanged();
      },
    });
    files.push(f);
    return f;
  };
  // Each target is a LogFile (its file, or stdout while the file cannot be opened) or stdout itself;
  // pino needs only `write`.
  const accessSink = opts.dir ? file('access.log') : stdoutSink();
  const healthSink = opts.dir ? file('health.log') : stdoutSink();
  const appSink = opts.dir ? file('wharf.log') : stdoutSink();

  const formatters = { level: (label: string) => ({ level: label }) };
  // `log` names the stream so the three can be told apart when they share stdout.
  const healthLog = pino({ base: { log: 'health' }, timestamp: false, formatters }, healthSink);
  const appLog: Logger = pino(
    {
      base: { log: 'wharf' },
      timestamp: pino.stdTimeFunctions.epochTime,
      level: opts.level ?? 'info',
      formatters,
    },
    appSink,
  );

  const problemListeners = new Set<(problems: readonly Problem[]) => void>();
  let currentProblems: readonly Problem[] = [];
  function fileProblems(): Problem[] {
    const failing = files.filter((f) => f.failure);
    if (failing.length === 0) return [];
    const reasons = [...new Set(failing.map((f) => (f.failure as Error).message))].join('; ');
    return [
      {
        object: 'logs',
        field: 'logs.dir',
        severity: 'error',
        code: 'log-dir-unwritable',
        message: `cannot write ${failing.map((f) => basename(f.path)).join(', ')} in ${opts.dir} (${reasons}); their lines go to stdout, and the files are tried again every ${retryMs / 1000}s`,
      },
    ];
  }
  function problemsChanged(): void {
    const next = fileProblems();
    if (next.length === 0 && currentProblems.length === 0) return;
    if (next.length > 0) appLog.error({ dir: opts.dir, reason: next[0].message }, 'log files not writable');
    else appLog.info({ dir: opts.dir }, 'log files writable again');
    currentProblems = next;
    for (const cb of problemListeners) cb(next);
  }
  started = true;
  problemsChanged();

  const activeProblems = new Map<string, Problem>();
  const sourceStates = new Map<string, string>();

  function logProblems(problems: readonly Problem[], time: number): void {
    const now = new Map<string, Problem>();
    for (const p of problems) now.set(problemKey(p), p);
    for (const [k, p] of now) {
      if (activeProblems.has(k)) continue;
      const level = p.severity === 'error' ? 'error' : 'warn';
      healthLog[level](
        {
          time,
          type: 'problem',
          severity: p.severity,
          object: p.object,
          field: p.field,
          code: p.code,
          message: p.message,
        },
        `${p.object}: ${p.message}`,
      );
    }
    for (const [k, p] of activeProblems) {
      if (now.has(k)) continue;
      healthLog.info(
        { time, type: 'problem-resolved', object: p.object, field: p.field, code: p.code },
        `${p.object}: resolved ${p.code}`,
      );
    }
    activeProblems.clear();
    for (const [k, p] of now) activeProblems.set(k, p);
  }

  return {
    access(rec) {
      if (opts.access) accessSink.write(accessLine(rec));
    },
    event(e) {
      if (!opts.health) return;
      switch (e.type) {
        case 'health':
          healthLog[e.to === 'unhealthy' ? 'warn' : 'info'](
            {
              time: e.time,
              type: 'health',
              project: e.project,
              port: e.port,
              instance: e.instance,
              address: e.address,
              from: e.from,
              to: e.to,
              ejected: e.ejected,
              reason: e.reason,
              probeLatencyMs: e.probeLatencyMs,
            },
            `${e.project}/${e.port}/${e.instance} ${e.from} -> ${e.to}: ${e.reason}`,
          );
          break;
        case 'probe':
          if (opts.probeFailures) {
            healthLog.info(
              {
                time: e.time,
                type: 'probe-failed',
                project: e.project,
                port: e.port,
                instance: e.instance,
                address: e.address,
                reason: e.reason,
                probeLatencyMs: e.latencyMs,
              },
              `${e.project}/${e.port}/${e.instance} probe failed: ${e.reason}`,
            );
          }
          break;
        case 'routes':
          healthLog.info(
            {
              time: e.time,
              type: 'routes',
              version: e.version,
              projects: e.projects,
              endpoints: e.endpoints,
              added: e.added,
              removed: e.removed,
            },
            `route table v${e.version}: ${e.projects} projects, ${e.endpoints} endpoints`,
          );
          break;
        case 'problems':
          logProblems(e.problems, e.time);
          break;
        case 'source': {
          const state = `${e.state}\u0000${e.reason ?? ''}`;
          if (sourceStates.get(e.source) === state) break;
          sourceStates.set(e.source, state);
          healthLog[e.state === 'degraded' ? 'warn' : 'info'](
            { time: e.time, type: 'source', source: e.source, state: e.state, reason: e.reason },
            `source ${e.source} ${e.state}${e.reason ? `: ${e.reason}` : ''}`,
          );
          break;
        }
      }
    },
    app(level, msg, fields) {
      appLog[level](fields ?? {}, msg);
    },
    reopen() {
      for (const f of files) f.reopen();
    },
    dropped() {
      let n = stdout?.dropped() ?? 0;
      for (const f of files) n += f.dropped();
      return n;
    },
    async flush() {
      await Promise.all([...files.map((f) => f.flush()), stdout?.flush()]);
    },
    async close() {
      await Promise.all([...files.map((f) => f.close()), stdout?.close()]);
    },
    onProblems(cb) {
      problemListeners.add(cb);
      if (currentProblems.length > 0) cb(currentProblems);
      return () => {
        problemListeners.delete(cb);
      };
    },
  };
}

/** Reopen the log files on SIGUSR1 (logrotate's postrotate). Returns the uninstaller. */
export function reopenOnSignal(logs: Pick<Logs, 'reopen'>, signal: NodeJS.Signals = 'SIGUSR1'): () => void {
  const handler = (): void => logs.reopen();
  process.on(signal, handler);
  return () => {
    process.off(signal, handler);
  };
}
