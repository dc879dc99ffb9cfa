// One log file that never stops Wharf. When the file cannot be opened (a node log directory the
// kubelet created for root, a read-only or missing mount), its lines go to a fallback sink (stdout,
// which the container runtime keeps) and the file is tried again every `retryMs`; once it opens,
// lines go to the file again. The owner hears about each change through `onChange` and turns the
// failures into a Problem.

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { BoundedSink, type SinkOptions } from './sink.ts';

export interface LogFileOptions {
  readonly path: string;
  /** Where lines go while the file cannot be opened; created on first use and shared. */
  readonly fallback: () => BoundedSink;
  /** How often a file that could not be opened is tried again. */
  readonly retryMs: number;
  /** Called after the file failed to open, or opened after failing. */
  readonly onChange: () => void;
  readonly sink?: Omit<SinkOptions, 'path' | 'fd'>;
}

export class LogFile {
  readonly path: string;
  private file: BoundedSink | null = null;
  private failed: Error | null = null;
  private timer?: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly opts: LogFileOptions) {
    this.path = opts.path;
    this.tryOpen();
  }

  /** The error that keeps the file closed, or null while lines go to the file. */
  get failure(): Error | null {
    return this.failed;
  }

  /** The sink lines go to now: the file, or the fallback while it cannot be opened. */
  get sink(): BoundedSink {
    return this.file ?? this.opts.fallback();
  }

  write(line: string): boolean {
    return (this.file ?? this.opts.fallback()).write(line);
  }

  /** SIGUSR1 (logrotate): reopen the file, or try it at once if it is not open. */
  reopen(): void {
    if (this.file) this.file.reopen();
    else this.tryOpen();
  }

  dropped(): number {
    return this.file?.dropped() ?? 0;
  }

  flush(): Promise<void> {
    return this.file?.flush() ?? Promise.resolve();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.file?.close();
  }

  private tryOpen(): void {
    if (this.closed || this.file) return;
    clearTimeout(this.timer);
    const wasFailing = this.failed !== null;
    try {
      mkdirSync(dirname(this.path), { recursive: true });
      this.file = new BoundedSink({ ...this.opts.sink, path: this.path });
      this.failed = null;
      if (wasFailing) this.opts.onChange();
    } catch (err) {
      const first = this.failed === null || this.failed.message !== (err as Error).message;
      this.failed = err as Error;
      this.timer = setTimeout(() => this.tryOpen(), this.opts.retryMs);
      this.timer.unref();
      if (first) this.opts.onChange();
    }
  }
}
