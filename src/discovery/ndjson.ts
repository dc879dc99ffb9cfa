// Splits a byte stream into lines. Watch events are one JSON object per line, but chunks cut
// anywhere: mid-line and mid-UTF-8 character.
//
// Linear and bounded: each byte is scanned for the newline once (a long line arriving in many chunks
// is kept as a list of chunks and joined once, when its newline comes), and a line longer than
// `maxLineBytes` throws LineTooLong instead of growing memory without limit. Splitting bytes, not
// text, is safe for UTF-8: no byte of a multi-byte character is ever 0x0A.

/** The apiserver's own limits (etcd's request size, the 3 MiB default object size) are far below. */
export const DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024;

export class LineTooLong extends Error {
  constructor(readonly limit: number) {
    super(`a watch line is longer than ${limit} bytes`);
  }
}

const NL = 0x0a;

export class LineSplitter {
  /** Pieces of the line not yet ended (in order). */
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly maxLineBytes = DEFAULT_MAX_LINE_BYTES) {}

  /** Bytes held for the current unfinished line. */
  get buffered(): number {
    return this.pendingBytes;
  }

  /**
   * Hands each complete line in `chunk` (with what was left over before it) to `onLine`, without
   * the newline; blank lines are skipped. Throws LineTooLong once a line passes the limit, after the
   * lines before it were handed on (the stream is then unusable); whatever `onLine` throws ends the
   * push too.
   */
  push(chunk: Buffer | string, onLine: (line: string) => void): void {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    let start = 0;
    for (let nl = buf.indexOf(NL); nl !== -1; nl = buf.indexOf(NL, start)) {
      const len = this.pendingBytes + (nl - start);
      if (len > this.maxLineBytes) throw new LineTooLong(this.maxLineBytes);
      let line: string;
      if (this.pendingBytes === 0) line = buf.toString('utf8', start, nl);
      else {
        this.pending.push(buf.subarray(start, nl));
        line = Buffer.concat(this.pending, len).toString('utf8');
        this.pending = [];
        this.pendingBytes = 0;
      }
      start = nl + 1;
      if (!blank(line)) onLine(line);
    }
    if (start < buf.length) {
      this.pendingBytes += buf.length - start;
      if (this.pendingBytes > this.maxLineBytes) throw new LineTooLong(this.maxLineBytes);
      // A view would pin the whole chunk; a copy holds only the tail (usually short).
      this.pending.push(start === 0 ? buf : Buffer.from(buf.subarray(start)));
    }
  }

  /** Hands on what remains at the end of the stream (a last line without a newline). */
  end(onLine: (line: string) => void): void {
    if (this.pendingBytes === 0) return;
    const tail = Buffer.concat(this.pending, this.pendingBytes).toString('utf8');
    this.pending = [];
    this.pendingBytes = 0;
    if (!blank(tail)) onLine(tail);
  }
}

/** Only whitespace (what `trim()` would empty), without allocating the trimmed copy. */
function blank(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c !== 32 && c !== 9 && c !== 13 && c !== 10) return false;
  }
  return true;
}
