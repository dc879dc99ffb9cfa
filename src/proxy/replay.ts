// The start of a request body, kept so that an attempt an instance refused before processing it
// (HTTP/2 REFUSED_STREAM, a stream above a GOAWAY) can go to another instance with the same body.
// gRPC calls are POSTs whose small body is usually all sent before the refusal arrives: without this
// they could not be retried, and an instance shutting down gracefully would fail calls.

import { PassThrough, type Readable } from 'node:stream';

/** Bodies kept for replay at most: gRPC unary messages and small uploads; larger ones stream once. */
export const REPLAY_MAX_BYTES = 64 * 1024;

export class ReplayableBody {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  /** More than the bound went by: the body can no longer be sent again. */
  overflow = false;
  private ended = false;
  private current?: PassThrough;

  constructor(
    private readonly source: Readable,
    private readonly max = REPLAY_MAX_BYTES,
  ) {}

  /** A stream of the whole body for the next attempt, or undefined when it was not all kept. */
  next(): Readable | undefined {
    if (this.overflow) return undefined;
    const first = this.current === undefined;
    if (this.current) {
      this.source.unpipe(this.current);
      this.current.destroy();
    }
    const out = new PassThrough();
    for (const c of this.chunks) out.write(c);
    if (this.ended) out.end();
    else this.source.pipe(out);
    if (first) {
      // In the same tick as the pipe: the source starts flowing only after this, so both see every chunk.
      this.source.on('data', this.record);
      this.source.once('end', () => {
        this.ended = true;
      });
    }
    this.current = out;
    return out;
  }

  private readonly record = (chunk: Buffer): void => {
    this.size += chunk.length;
    if (this.size > this.max) {
      this.overflow = true;
      this.chunks.length = 0;
      this.source.off('data', this.record);
      return;
    }
    this.chunks.push(chunk);
  };
}
