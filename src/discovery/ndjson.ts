// Splits a byte stream into lines. Watch events are one JSON object per line, but chunks cut
// anywhere: mid-line and mid-UTF-8 character.

import { StringDecoder } from 'node:string_decoder';

export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private rest = '';

  /** The complete lines in `chunk` (plus what was left over), without the newline; blank lines dropped. */
  push(chunk: Buffer | string): string[] {
    const text = this.rest + (typeof chunk === 'string' ? chunk : this.decoder.write(chunk));
    const lines = text.split('\n');
    this.rest = lines.pop()!;
    return lines.filter((l) => l.trim() !== '');
  }

  /** What remains at the end of the stream (a last line without a newline). */
  end(): string[] {
    const tail = this.rest + this.decoder.end();
    this.rest = '';
    return tail.trim() ? [tail] : [];
  }
}
