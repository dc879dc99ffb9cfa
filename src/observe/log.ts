// JSON-lines logs for filebeat: the access log (one line per request), the health log (health
// transitions, route changes, Problems, source state, optionally failed probes) and the general
// application log. Each goes to stdout or to a file in a configured directory (`access.log`,
// `health.log`, `wharf.log`), through a BoundedSink so a slow disk drops lines instead of slowing
// requests. `reopen()` (wired to SIGUSR1) lets logrotate rename the files.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Logger, pino } from 'pino';
import type { WharfEvent } from '../model/events.ts';
import type { Problem } from '../model/problem.ts';
import type { AccessRecord } from './access-log.ts';
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
  /** Tests: a descriptor instead of stdout when `dir` is undefined. */
  readonly fd?: number;
}

export interface Logs {
  access(rec: AccessRecord): void;
  event(e: WharfEvent): void;
  app(level: LogLevel, msg: string, fields?: Record<string, unknown>): void;
  reopen(): void;
  dropped(): number;
  flush(): Promise<void>;
  close(): Promise<void>;
}

export function problemKey(p: Problem): string {
  return `${p.object}\u0000${p.code}\u0000${p.field ?? ''}`;
}

const str = JSON.stringify;

/**
 * One access-log line, built by hand: the same JSON pino would write for `accessLog.info(rec)`, at
 * about half its cost (this runs once per request). Strings go through JSON.stringify for escaping.
 */
export function accessLine(r: AccessRecord): string {
  let line = `{"level":"info","log":"access","time":${r.time},"requestId":${str(r.requestId)},"client":${str(r.client)},"host":${str(r.host)},"method":${str(r.method)},"path":${str(r.path)},"status":${r.status},"bytesIn":${r.bytesIn},"bytesOut":${r.bytesOut},"durationMs":${Math.round(r.durationMs * 1000) / 1000}`;
  if (r.upstreamMs !== undefined) line += `,"upstreamMs":${Math.round(r.upstreamMs * 1000) / 1000}`;
  if (r.project !== undefined) line += `,"project":${str(r.project)}`;
  if (r.port !== undefined) line += `,"port":${str(r.port)}`;
  if (r.instance !== undefined) line += `,"instance":${str(r.instance)}`;
  line += `,"attempts":${r.attempts}`;
  if (r.error !== undefined) line += `,"error":${str(r.error)}`;
  return `${line}}\n`;
}

export function createLogs(opts: LogOptions): Logs {
  const sinks: BoundedSink[] = [];
  const onError = (err: Error): void => {
    // The app log may be the sink that failed; stderr is the last resort (once per error kind).
    process.stderr.write(`wharf: log write failed: ${err.message}\n`);
  };
  const sink = (file: string): BoundedSink => {
    const s = opts.dir
      ? new BoundedSink({ path: join(opts.dir, file), maxBufferBytes: opts.bufferBytes, onError })
      : new BoundedSink({ fd: opts.fd ?? 1, maxBufferBytes: opts.bufferBytes, onError });
    sinks.push(s);
    return s;
  };
  if (opts.dir) mkdirSync(opts.dir, { recursive: true });
  // On stdout all three logs share one sink so lines never interleave mid-line and share one cap.
  const shared = opts.dir ? undefined : sink('');
  const accessSink = shared ?? sink('access.log');
  const healthSink = shared ?? sink('health.log');
  const appSink = shared ?? sink('wharf.log');

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
      for (const s of sinks) s.reopen();
    },
    dropped() {
      let n = 0;
      for (const s of sinks) n += s.dropped();
      return n;
    },
    async flush() {
      await Promise.all(sinks.map((s) => s.flush()));
    },
    async close() {
      await Promise.all(sinks.map((s) => s.close()));
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
