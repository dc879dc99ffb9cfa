// A bounded, asynchronous line sink for log files (or stdout). Requests must never wait for the
// disk: `write()` only appends to an in-memory queue and returns; one fs.write at a time drains the
// queue on the libuv thread pool, taking everything queued meanwhile as one batch. When the queue
// is over its cap the line is dropped and counted, so a stalled disk costs lines, never latency
// or memory.
//
// Our own instead of pino.destination (sonic-boom): we need exact drop accounting, buffering while
// the file is (re)opening (pino#2326: sonic-boom writes before 'ready' fail), and a reopen that
// waits for the in-flight write, all of which is simpler to guarantee in ~150 lines of our own.

import * as fs from 'node:fs';

type WriteFn = (
  fd: number,
  buf: Buffer,
  offset: number,
  length: number,
  position: null,
  cb: (err: NodeJS.ErrnoException | null, written: number) => void,
) => void;

export interface SinkOptions {
  /** File to append to; reopened by `reopen()` (logrotate). */
  readonly path?: string;
  /** Or an already open descriptor (1 for stdout); never closed or reopened. */
  readonly fd?: number;
  /** Cap on queued + in-flight bytes (UTF-16 units, close enough for a cap). Default 4 MiB. */
  readonly maxBufferBytes?: number;
  /** Called once per failure kind, e.g. ENOSPC; the failed batch counts as dropped. */
  readonly onError?: (err: Error) => void;
  /**
   * Gather lines for up to this long before a write (unless 64 KiB are waiting): fewer, larger
   * writes cost less CPU per line. 0 = next turn of the event loop. Default 10 ms.
   */
  readonly batchMs?: number;
  /** Injected for tests (a slow disk). */
  readonly write?: WriteFn;
}

const RETRY_MS = 20;
const BATCH_BYTES = 64 * 1024;

export class BoundedSink {
  readonly path: string | undefined;
  private fd: number | null;
  private readonly ownsFd: boolean;
  private readonly max: number;
  private readonly writeFn: WriteFn;
  private readonly onError?: (err: Error) => void;
  private queue: string[] = [];
  private queuedBytes = 0;
  private inFlightBytes = 0;
  private writing = false;
  private scheduled: NodeJS.Timeout | NodeJS.Immediate | null = null;
  private scheduledUrgent = false;
  private readonly batchMs: number;
  private reopenPending = false;
  private closed = false;
  private droppedLines = 0;
  private waiters: (() => void)[] = [];
  private readonly reportedErrors = new Set<string>();

  constructor(opts: SinkOptions) {
    this.path = opts.path;
    this.max = opts.maxBufferBytes ?? 4 * 1024 * 1024;
    this.writeFn = opts.write ?? (fs.write as unknown as WriteFn);
    this.onError = opts.onError;
    this.batchMs = opts.batchMs ?? 10;
    if (opts.path !== undefined) {
      // Synchronous at startup on purpose: a log directory we cannot write is a startup error.
      this.fd = fs.openSync(opts.path, 'a');
      this.ownsFd = true;
    } else {
      this.fd = opts.fd ?? 1;
      this.ownsFd = false;
    }
  }

  /** Queue one line (must end with '\n'). False if it was dropped. Never blocks. */
  write(line: string): boolean {
    if (this.closed || this.queuedBytes + this.inFlightBytes + line.length > this.max) {
      this.droppedLines++;
      return false;
    }
    this.queue.push(line);
    this.queuedBytes += line.length;
    if (!this.writing) this.schedule();
    return true;
  }

  dropped(): number {
    return this.droppedLines;
  }

  buffered(): number {
    return this.queuedBytes + this.inFlightBytes;
  }

  /** Close and reopen the path (after logrotate renamed it); lines queued meanwhile are kept. */
  reopen(): void {
    if (this.path === undefined || this.closed) return;
    this.reopenPending = true;
    if (!this.writing) this.drain();
  }

  /** Resolves when everything queued so far has been written (or dropped). */
  flush(): Promise<void> {
    if (this.idle()) return Promise.resolve();
    if (this.scheduled && !this.writing) this.runNow();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    if (this.ownsFd && this.fd !== null) {
      const fd = this.fd;
      this.fd = null;
      await new Promise<void>((resolve) => fs.close(fd, () => resolve()));
    }
  }

  private idle(): boolean {
    if (this.scheduled !== null && this.queue.length > 0 && this.fd !== null) return false;
    // With no descriptor (a failed reopen) nothing can be written now: do not hang flush/close.
    return !this.writing && !this.reopenPending && (this.queue.length === 0 || this.fd === null);
  }

  private settle(): void {
    if (!this.idle()) return;
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Start a write soon: at once when a batch is full, else after batchMs to gather more lines. */
  private schedule(): void {
    const urgent = this.queuedBytes >= BATCH_BYTES || this.batchMs === 0;
    if (this.scheduled === null) {
      this.scheduledUrgent = urgent;
      this.scheduled = urgent ? setImmediate(() => this.fire()) : setTimeout(() => this.fire(), this.batchMs);
    } else if (urgent && !this.scheduledUrgent) {
      this.cancel();
      this.schedule();
    }
  }

  private runNow(): void {
    this.cancel();
    this.drain();
  }

  private cancel(): void {
    const s = this.scheduled;
    if (s === null) return;
    this.scheduled = null;
    if (this.scheduledUrgent) clearImmediate(s as NodeJS.Immediate);
    else clearTimeout(s as NodeJS.Timeout);
  }

  private fire(): void {
    this.scheduled = null;
    this.drain();
  }

  private drain(): void {
    if (this.writing) return;
    if (this.reopenPending) {
      this.doReopen();
      return;
    }
    if (this.queue.length === 0 || this.fd === null) {
      this.settle();
      return;
    }
    const lines = this.queue.length;
    const data = this.queue.length === 1 ? this.queue[0] : this.queue.join('');
    this.queue = [];
    this.inFlightBytes = this.queuedBytes;
    this.queuedBytes = 0;
    this.writing = true;
    this.writeAll(this.fd, Buffer.from(data), 0, lines);
  }

  private writeAll(fd: number, buf: Buffer, offset: number, lines: number): void {
    this.writeFn(fd, buf, offset, buf.length - offset, null, (err, written) => {
      if (err) {
        if (err.code === 'EAGAIN') {
          // A non-blocking pipe (stdout) is full: try again shortly; the cap bounds what waits.
          setTimeout(() => this.writeAll(fd, buf, offset, lines), RETRY_MS).unref();
          return;
        }
        this.droppedLines += lines;
        this.report(err);
        this.finishWrite();
        return;
      }
      if (offset + written < buf.length) {
        this.writeAll(fd, buf, offset + written, lines);
        return;
      }
      this.finishWrite();
    });
  }

  private finishWrite(): void {
    this.writing = false;
    this.inFlightBytes = 0;
    // Under load lines gathered during the write; wait for a full batch or the interval, unless
    // someone is waiting for a flush.
    if (this.waiters.length > 0 || this.reopenPending) this.drain();
    else if (this.queue.length > 0) this.schedule();
    else this.settle();
  }

  private doReopen(): void {
    const path = this.path as string;
    this.writing = true;
    const old = this.fd;
    this.fd = null;
    const openNew = (): void => {
      fs.open(path, 'a', (err, fd) => {
        this.reopenPending = false;
        this.writing = false;
        if (err) {
          // Keep queueing (bounded) and try again on the next reopen or write; lines are not lost
          // until the cap is reached.
          this.report(err);
          setTimeout(() => this.reopen(), 1000).unref();
          return;
        }
        if (this.closed) {
          fs.close(fd, () => {});
          return;
        }
        this.fd = fd;
        this.drain();
      });
    };
    if (old !== null) fs.close(old, openNew);
    else openNew();
  }

  private report(err: NodeJS.ErrnoException): void {
    const key = err.code ?? err.message;
    if (this.reportedErrors.has(key)) return;
    this.reportedErrors.add(key);
    this.onError?.(err);
  }
}
