// Framing of one HTTP/1.1 response on a kept-alive probe connection. Pure: bytes in (latin1
// strings, one character per byte), what is known out. The verdict of a probe is its final status
// line; the rest is read only to know where the response ends, so the connection can carry the next
// probe. Anything this reader does not follow exactly (no length, a body over MAX_BODY, bytes after
// the end) makes the connection single-use: closing it is always safe, reusing it must be certain.

/** A status line (after any 1xx interim responses) and its headers must fit in this many bytes. */
export const MAX_HEAD = 8192;
/** A health response body larger than this is not read to the end: the connection is closed instead. */
export const MAX_BODY = 65_536;

const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?:[ \t\r]|$)/;

/** feed() results, a bit set. */
export const NEED = 0;
/** The final status is known (`status`); the body may still follow. */
export const STATUS = 1;
/** The response ended; `reusable` says whether the connection may carry another request. */
export const DONE = 2;
/** Not HTTP: the connection is useless. */
export const INVALID = 4;

const M_STATUS = 0;
const M_HEADERS = 1;
const M_BODY = 2;
const M_CHUNK_SIZE = 3;
const M_CHUNK_DATA = 4;
const M_TRAILERS = 5;
/** Until the peer closes (no length), or a body too big to skip: the connection is not reused. */
const M_DISCARD = 6;
const M_DONE = 7;

export class ResponseReader {
  /** The final status, once STATUS was returned. */
  status = 0;
  /** The connection may carry another request (meaningful once DONE was returned). */
  reusable = true;
  private mode: number = M_STATUS;
  private buf = '';
  /** Bytes left in the body (M_BODY) or in the chunk, its CRLF included (M_CHUNK_DATA). */
  private left = 0;
  private body = 0;
  private interim = false;

  /** Ready for the next response on the same connection. */
  reset(): void {
    this.status = 0;
    this.reusable = true;
    this.mode = M_STATUS;
    this.buf = '';
    this.left = 0;
    this.body = 0;
    this.interim = false;
  }

  /** Reads one chunk; returns what became known (NEED, or STATUS and/or DONE, or INVALID). */
  feed(chunk: string): number {
    let out = NEED;
    let pos = 0;
    while (pos < chunk.length) {
      switch (this.mode) {
        case M_STATUS:
        case M_HEADERS:
        case M_CHUNK_SIZE:
        case M_TRAILERS: {
          // Line-oriented modes: buffer (bounded) until a line or the header block is complete.
          this.buf += pos === 0 ? chunk : chunk.slice(pos);
          pos = chunk.length;
          const r = this.lines();
          if (r === INVALID) return out | INVALID;
          out |= r;
          // lines() may have moved into a byte-counted mode with bytes left in buf: count them.
          const mode = this.mode as number;
          if (this.buf.length > 0 && (mode === M_BODY || mode === M_CHUNK_DATA)) {
            const rest = this.buf;
            this.buf = '';
            out |= this.feed(rest);
          }
          if ((this.mode as number) === M_DONE && this.buf.length > 0) this.reusable = false;
          return out;
        }
        case M_BODY:
        case M_CHUNK_DATA: {
          const n = Math.min(this.left, chunk.length - pos);
          this.left -= n;
          pos += n;
          if (this.countBody(n)) return out;
          if (this.left > 0) break;
          if (this.mode === M_BODY) {
            this.mode = M_DONE;
            out |= DONE;
          } else this.mode = M_CHUNK_SIZE;
          break;
        }
        case M_DISCARD:
          return out;
        case M_DONE:
          // Bytes after the end of the response (a second response we never asked for): not reused.
          this.reusable = false;
          return out;
      }
    }
    return out;
  }

  /** True once the response ended. */
  get done(): boolean {
    return this.mode === M_DONE;
  }

  /** Counts body bytes; past MAX_BODY the rest is not read (returns true). */
  private countBody(n: number): boolean {
    this.body += n;
    if (this.body <= MAX_BODY) return false;
    this.mode = M_DISCARD;
    this.reusable = false;
    this.buf = '';
    return true;
  }

  private lines(): number {
    let out = NEED;
    for (;;) {
      switch (this.mode) {
        case M_STATUS: {
          const eol = this.buf.indexOf('\n');
          if (eol === -1) return this.buf.length > MAX_HEAD ? INVALID : out;
          const m = STATUS_LINE.exec(this.buf);
          if (!m) return INVALID;
          const status = Number(m[2]);
          if (status < 100) return INVALID;
          // HTTP/1.0 closes after the response unless told otherwise: never reuse it.
          if (m[1] === '0') this.reusable = false;
          this.interim = status < 200 && status !== 101;
          if (!this.interim) {
            this.status = status;
            out |= STATUS;
            // After 101 the connection speaks another protocol.
            if (status === 101) {
              this.reusable = false;
              this.mode = M_DISCARD;
              this.buf = '';
              return out;
            }
          }
          this.mode = M_HEADERS;
          this.buf = this.buf.slice(eol + 1);
          break;
        }
        case M_HEADERS: {
          const split = splitHead(this.buf);
          if (!split) {
            if (this.buf.length <= MAX_HEAD) return out;
            // The verdict is in, the head is just too long to follow: give up on the connection.
            this.reusable = false;
            this.mode = M_DISCARD;
            this.buf = '';
            return out;
          }
          const head = split[0];
          this.buf = split[1];
          if (this.interim) {
            this.mode = M_STATUS;
            break;
          }
          this.headers(head);
          const framed = this.mode as number;
          if (framed === M_DISCARD) {
            this.buf = '';
            return out;
          }
          if (framed === M_DONE) return out | DONE;
          break;
        }
        case M_CHUNK_SIZE: {
          const eol = this.buf.indexOf('\n');
          if (eol === -1) {
            if (this.buf.length > 1024) return this.giveUp(out);
            return out;
          }
          const line = this.buf.slice(0, eol);
          this.buf = this.buf.slice(eol + 1);
          const size = Number.parseInt(line, 16);
          if (!/^[0-9a-fA-F]+/.test(line) || !Number.isSafeInteger(size)) return this.giveUp(out);
          if (size === 0) {
            this.mode = M_TRAILERS;
            break;
          }
          this.mode = M_CHUNK_DATA;
          this.left = size + 2;
          return out;
        }
        case M_TRAILERS: {
          const eol = this.buf.indexOf('\n');
          if (eol === -1) {
            if (this.buf.length > MAX_HEAD) return this.giveUp(out);
            return out;
          }
          const line = this.buf.slice(0, eol);
          this.buf = this.buf.slice(eol + 1);
          if (line === '' || line === '\r') {
            this.mode = M_DONE;
            return out | DONE;
          }
          break;
        }
        default:
          return out;
      }
    }
  }

  private giveUp(out: number): number {
    this.reusable = false;
    this.mode = M_DISCARD;
    this.buf = '';
    return out;
  }

  /** How the body is framed (RFC 9112 §6.3), from the final response's header block. */
  private headers(head: string): void {
    let length = -1;
    let chunked = false;
    let lengths = 0;
    for (const raw of head.split('\n')) {
      const colon = raw.indexOf(':');
      if (colon <= 0) continue;
      const name = raw.slice(0, colon).trim().toLowerCase();
      const value = raw
        .slice(colon + 1)
        .trim()
        .toLowerCase();
      if (name === 'content-length') {
        lengths++;
        length = /^\d{1,15}$/.test(value) ? Number(value) : -2;
      } else if (name === 'transfer-encoding') {
        chunked = value.split(',').pop()?.trim() === 'chunked';
        if (!chunked) length = -2;
      } else if (name === 'connection' && /(^|,)\s*close\s*(,|$)/.test(value)) {
        this.reusable = false;
      }
    }
    const s = this.status;
    if (s === 204 || s === 304) {
      this.mode = M_DONE;
    } else if (chunked) {
      this.mode = M_CHUNK_SIZE;
    } else if (length >= 0 && lengths === 1) {
      if (length > MAX_BODY) {
        this.reusable = false;
        this.mode = M_DISCARD;
      } else if (length === 0) this.mode = M_DONE;
      else {
        this.mode = M_BODY;
        this.left = length;
      }
    } else {
      // No length, or one that cannot be trusted: the body runs until the peer closes.
      this.reusable = false;
      this.mode = M_DISCARD;
    }
  }
}

/** A header block and what follows its empty line (CRLF or bare LF), or undefined if incomplete. */
function splitHead(s: string): [string, string] | undefined {
  if (s.startsWith('\r\n')) return ['', s.slice(2)];
  if (s.startsWith('\n')) return ['', s.slice(1)];
  const crlf = s.indexOf('\r\n\r\n');
  const lf = s.indexOf('\n\n');
  if (crlf !== -1 && (lf === -1 || crlf + 1 <= lf)) return [s.slice(0, crlf), s.slice(crlf + 4)];
  if (lf !== -1) return [s.slice(0, lf), s.slice(lf + 2)];
  return undefined;
}
