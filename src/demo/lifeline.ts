// The demo stops when whatever started it goes away, however that happens. Ctrl-C reaches the whole
// process group, but `kill <npm pid>` does not: npm exits (SIGTERM) or dies (SIGKILL) without
// passing anything on, the `sh -c` it ran may linger, and the demo with its instance processes kept
// running under init. Node has no parent-death signal (prctl), so the demo watches: its parent and,
// when npm or npx started it, the npm process itself, each by pid and start time from /proc (so a
// reused pid is not mistaken for it). The instance processes follow the demo through their IPC
// channel (instance.mjs exits on `disconnect`), so the demo ending takes everything with it.

import { readFileSync } from 'node:fs';

export interface Watched {
  readonly pid: number;
  /** Clock ticks since boot when it started (/proc/<pid>/stat field 22); a reused pid has another. */
  readonly started: string;
  readonly what: string;
}

export interface LifelineOptions {
  /** How often to look. Default 500 ms. */
  readonly intervalMs?: number;
  /** Where /proc is (tests). */
  readonly proc?: string;
}

/** `{ ppid, started, cmdline }` of a process from /proc, or undefined when it is gone. */
function stat(proc: string, pid: number): { ppid: number; started: string; cmdline: string } | undefined {
  try {
    const raw = readFileSync(`${proc}/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: parse after its last ')'.
    const rest = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
    let cmdline = '';
    try {
      cmdline = readFileSync(`${proc}/${pid}/cmdline`, 'utf8').split('\0').join(' ');
    } catch {}
    return { ppid: Number(rest[1]), started: rest[19], cmdline };
  } catch {
    return undefined;
  }
}

/**
 * The processes whose end should end this one: the parent, and the npm (or npx) process among the
 * nearest ancestors when npm started it. Empty where /proc is missing (not Linux).
 */
export function lifelines(proc = '/proc', self: number | 'self' = 'self'): Watched[] {
  const me = stat(proc, self as number);
  if (!me) return [];
  const out: Watched[] = [];
  let pid = me.ppid;
  for (let depth = 0; depth < 4 && pid > 1; depth++) {
    const s = stat(proc, pid);
    if (!s) break;
    if (depth === 0) out.push({ pid, started: s.started, what: `its parent process (pid ${pid})` });
    if (/(^|[/\s])(npm|npx)(-cli\.js)?(\s|$)/.test(s.cmdline)) {
      if (depth > 0) out.push({ pid, started: s.started, what: `npm (pid ${pid})` });
      break;
    }
    pid = s.ppid;
  }
  return out;
}

/**
 * Calls `onGone(why)` once when the parent process, or the npm process that started this one, is
 * gone. Returns a function that stops watching. The timer does not keep the process alive.
 */
export function watchLifeline(onGone: (why: string) => void, opts: LifelineOptions = {}): () => void {
  const proc = opts.proc ?? '/proc';
  const watched = lifelines(proc);
  // Without /proc, the parent pid alone: process.ppid is read once at start, and a signal 0 to it
  // fails once it is gone.
  const alive =
    watched.length > 0
      ? (w: Watched) => stat(proc, w.pid)?.started === w.started
      : (w: Watched) => {
          try {
            process.kill(w.pid, 0);
            return true;
          } catch (err) {
            return (err as NodeJS.ErrnoException).code === 'EPERM';
          }
        };
  const list =
    watched.length > 0
      ? watched
      : [{ pid: process.ppid, started: '', what: `its parent process (pid ${process.ppid})` }];
  let done = false;
  const timer = setInterval(() => {
    if (done) return;
    const gone = list.find((w) => !alive(w));
    if (!gone) return;
    done = true;
    clearInterval(timer);
    onGone(`${gone.what} is gone`);
  }, opts.intervalMs ?? 500);
  timer.unref();
  return () => {
    done = true;
    clearInterval(timer);
  };
}
