// A simulated prober for the health-check simulation: instances that are up, dead (refused), hung
// (accepted, never answered) or behind a dead node (SYN dropped), and the connection accounting of
// the real prober (src/health/prober.ts): a kept connection per HTTP target, retired after
// CONN_MAX_AGE_MS, closed by the server after its keep-alive timeout (the prober then learns to close
// it itself, with a reset, when the next probe is further away), closed with a reset after any
// failure; a new connection per TCP check, closed with a reset.

import {
  CONN_MAX_AGE_MS,
  learnServerIdle,
  ProbeCancel,
  type ProbeResult,
  type Prober,
  type ProbeSession,
  type ProbeSignal,
  type ProbeTarget,
  STAGE_CONNECTED,
  STAGE_CONNECTING,
  worthKeeping,
} from '../../src/health/prober.ts';
import type { SimTime } from './sim-time.ts';

export type Condition = 'up' | 'dead' | 'hung' | 'blackhole';

export interface SimProberOptions {
  /** Time to a good answer. */
  readonly latencyMs: number;
  /** Share of probes that are slow (a GC pause, a busy instance) and how slow. */
  readonly slowShare: number;
  readonly slowMs: number;
  /** How long the upstream server keeps an idle connection open (nginx 75 s, Node 5 s). */
  readonly serverKeepAliveMs: number;
  readonly random: () => number;
}

interface Conn {
  readonly openedAt: number;
  idleSince: number;
  /** A probe waits on it: a parallel (early) probe opens its own. */
  busy: boolean;
}

/** A thenable the simulated time resolves synchronously: no promise has to settle between events. */
class SyncAnswer {
  private onOk: ((r: ProbeResult) => void) | undefined;
  private done = false;
  // A thenable on purpose: the probe loop calls then() on what the prober returns.
  // biome-ignore lint/suspicious/noThenProperty: see above
  then(onOk: (r: ProbeResult) => void): void {
    this.onOk = onOk;
  }
  resolve(r: ProbeResult): void {
    if (this.done) return;
    this.done = true;
    this.onOk?.(r);
  }
}

const OK: ProbeResult = Object.freeze({ ok: true, reason: 'ok (200)', status: 200 });
const TCP_OK: ProbeResult = Object.freeze({ ok: true, reason: 'ok (tcp)' });
const REFUSED: ProbeResult = Object.freeze({ ok: false, reason: 'connect refused' });
const RESET: ProbeResult = Object.freeze({ ok: false, reason: 'reset' });

export class SimProber implements Prober {
  /** Probes started, connections opened, TIME_WAIT left by a server's close of an idle probe connection. */
  probes = 0;
  connections = 0;
  serverTimeWait = 0;
  readonly condition = new Map<string, Condition>();

  constructor(
    private readonly time: SimTime,
    private readonly opts: SimProberOptions,
  ) {}

  probe(target: ProbeTarget, signal: ProbeSignal): Promise<ProbeResult> {
    this.probes++;
    const answer = new SyncAnswer();
    const cond = this.condition.get(target.address) ?? 'up';
    const session = target.session;
    const now = this.time.now();
    let conn = session ? (session.conn as Conn | undefined) : undefined;
    if (conn && session) {
      if (now - conn.idleSince >= this.opts.serverKeepAliveMs) {
        // The server closed it while idle: its TIME_WAIT; the prober learns how long it waits.
        learnServerIdle(session, this.opts.serverKeepAliveMs, now);
        this.serverTimeWait++;
        conn = undefined;
      } else if (now - conn.openedAt > CONN_MAX_AGE_MS || cond === 'dead') {
        // Retired (a reset), or gone with its process (the kernel reset it).
        conn = undefined;
      }
      session.conn = conn;
      if (conn?.busy) conn = undefined; // a spare connection for this probe, closed after it
    }
    const stage = (s: number) => {
      if (signal instanceof ProbeCancel) signal.stage = s;
    };
    if (!conn) this.connections++;
    else conn.busy = true;
    const own = conn;
    stage(conn || cond !== 'blackhole' ? STAGE_CONNECTED : STAGE_CONNECTING);
    let timer: unknown;
    signal.addEventListener('abort', () => {
      this.time.clearTimeout(timer);
      if (session && (own === undefined || session.conn === own)) session.conn = undefined;
      answer.resolve({ ok: false, reason: 'aborted' });
    });
    if (cond === 'dead') {
      timer = this.time.setTimeout(() => answer.resolve(conn ? RESET : REFUSED), 0.2);
    } else if (cond === 'up') {
      const slow = this.opts.random() < this.opts.slowShare;
      const ms = session ? this.opts.latencyMs : this.opts.latencyMs / 2;
      timer = this.time.setTimeout(
        () => {
          if (session) this.keep(session, own);
          answer.resolve(session ? OK : TCP_OK);
        },
        slow ? this.opts.slowMs : ms,
      );
    }
    // hung and blackhole: no answer; the loop's deadline aborts.
    return answer as unknown as Promise<ProbeResult>;
  }

  forget(target: ProbeTarget): void {
    if (target.session) target.session.conn = undefined;
  }

  /** After a good answer: keep the connection unless the server would close it before the next probe. */
  private keep(session: ProbeSession, conn: Conn | undefined): void {
    const now = this.time.now();
    if (conn) conn.busy = false;
    // A spare connection closes after its answer when the session already keeps one.
    if (!worthKeeping(session, now) || (conn === undefined && session.conn !== undefined)) {
      if (conn && session.conn === conn) session.conn = undefined;
      return;
    }
    const c = conn ?? { openedAt: now, idleSince: now, busy: false };
    c.idleSince = now;
    session.conn = c;
  }
}
