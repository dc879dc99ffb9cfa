// Reads a request body into memory, up to a bound, before any upstream connection is taken (nginx's
// `proxy_request_buffering`, in memory only). A client that trickles its upload then holds nothing
// but its own socket: no pooled connection of an instance waits on it. A body that ends within the
// bound is sent in one piece (and, being in memory, may be sent again on a retry); a longer one is
// put back in front of the rest of the stream and streamed as before, so memory stays bounded.
//
// Not spooled to disk: in a pod, disk is ephemeral storage that counts towards eviction, a spool
// would be a second way to fill it, and a file per large upload adds cleanup paths and I/O to every
// such request. Larger uploads stream instead, and the per-client cap on streaming uploads
// (Upstream.uploadsFrom) keeps one address from holding an instance's connections with them.

import type { Readable } from 'node:stream';

export type BufferOutcome =
  /** The whole body is in `body`. */
  | 'complete'
  /** The body is longer than the bound: what was read is back in the stream, which is paused. */
  | 'over'
  /** The stream failed or closed before its end (the client went away or broke the framing). */
  | 'failed';

export interface BufferOwner {
  bodyBuffered(outcome: BufferOutcome): void;
}

export class BodyBuffer {
  private chunks: Buffer[] = [];
  /** Bytes read so far. */
  size = 0;
  /** The whole body, once the outcome is `complete`. */
  body?: Buffer;
  private settled = false;

  constructor(
    private readonly stream: Readable,
    private readonly max: number,
    private readonly owner: BufferOwner,
  ) {
    stream.on('data', this.onData);
    stream.on('end', this.onEnd);
    stream.on('error', this.onFailed);
    stream.on('close', this.onFailed);
  }

  private readonly onData = (chunk: Buffer): void => {
    this.size += chunk.length;
    this.chunks.push(chunk);
    if (this.size <= this.max) return;
    // Over the bound: stop here and give the stream back with what was read in front of it, for
    // undici to read (and resume) like any body stream.
    this.stream.pause();
    this.detach();
    const head = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.size);
    this.chunks = [];
    this.stream.unshift(head);
    this.settle('over');
  };

  private readonly onEnd = (): void => {
    this.detach();
    this.body = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.size);
    this.chunks = [];
    this.settle('complete');
  };

  private readonly onFailed = (): void => {
    this.detach();
    this.chunks = [];
    this.settle('failed');
  };

  private detach(): void {
    this.stream.off('data', this.onData);
    this.stream.off('end', this.onEnd);
    this.stream.off('error', this.onFailed);
    this.stream.off('close', this.onFailed);
  }

  private settle(outcome: BufferOutcome): void {
    if (this.settled) return;
    this.settled = true;
    this.owner.bodyBuffered(outcome);
  }
}
