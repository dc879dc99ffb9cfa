// A bounded, asynchronous line sink for log files (or stdout). Requests must never wait for the
// disk: `write()` only appends to an in-memory queue and returns; one fs.write at a time drains the
// queue on the libuv thread pool, taking everything queued meanwhile as one batch. When the queue
// is over its cap the line is dropped and counted, so a stalled disk costs lines, never latency
// or memory.
//
// The queue is bytes, not strings: each line is encoded into a 64 KiB chunk as it arrives. The line
// string then dies young; kept as strings until the batch was written, thousands of them (and the
// pieces they are concatenated from) would survive a scavenge or two and be copied by the GC.
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
  /** Cap on queued + in-flight bytes. Default 4 MiB. */
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
const CHUNK_BYTES = 64 * 1024;

export class BoundedSink {
  readonly path: string | undefined;
  private fd: number | null;
  private readonly ownsFd: boolean;
  private readonly max: number;
  private readonly writeFn: WriteFn;
  private readonly onError?: (err: Error) => void;
  /** Full chunks waiting for the next write, then the one being filled. */
  private chunks: Buffer[] = [];
  private chunk: Buffer | null = null;
  private chunkUsed = 0;
  private queuedLines = 0;
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
    // A UTF-16 unit is at most 3 bytes of UTF-8 (a surrogate pair, 2 units, is 4).
    if (this.chunk === null || this.chunkUsed + line.length * 3 > this.chunk.length)
      this.newChunk(line.length * 3);
    const n = (this.chunk as Buffer).write(line, this.chunkUsed);
    this.chunkUsed += n;
    this.queuedBytes += n;
    this.queuedLines++;
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
    if (this.scheduled !== null && this.queuedLines > 0 && this.fd !== null) return false;
    // With no descriptor (a failed reopen) nothing can be written now: do not hang flush/close.
    return !this.writing && !this.reopenPending && (this.queuedLines === 0 || this.fd === null);
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
    if (this.queuedLines === 0 || this.fd === null) {
      this.settle();
      return;
    }
    const lines = this.queuedLines;
    this.sealChunk();
    const data = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    // The written chunk is not reused: the next line starts a fresh one.
    this.chunks = [];
    this.chunk = null;
    this.queuedLines = 0;
    this.inFlightBytes = this.queuedBytes;
    this.queuedBytes = 0;
    this.writing = true;
    this.writeAll(this.fd, data, 0, lines);
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
    else if (this.queuedLines > 0) this.schedule();
    else this.settle();
  }

  /** Starts a new chunk of at least `need` bytes; the filled part of the current one joins `chunks`. */
  private newChunk(need: number): void {
    this.sealChunk();
    this.chunk = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, need));
  }

  /** Moves the filled part of the current chunk to `chunks`; the caller replaces or drops the chunk. */
  private sealChunk(): void {
    if (this.chunk !== null && this.chunkUsed > 0) this.chunks.push(this.chunk.subarray(0, this.chunkUsed));
    this.chunkUsed = 0;
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
