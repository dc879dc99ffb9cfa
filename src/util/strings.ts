// Strings and arrays kept for a long time (endpoint ids, addresses, endpoint lists) are built once
// and read for hours: keep them compact.

/**
 * Returns `s` flattened. V8 keeps a string made by `+` or a template literal as a tree of pieces
 * (a "cons string", 32 bytes per piece) until something reads its characters; 50,000 endpoint ids
 * held as trees cost about five times their flat size. Reading one character makes V8 flatten the
 * string in place, and the garbage collector then drops the tree. Call it on derived strings that
 * are stored, never on the hot path.
 */
export function flat(s: string): string {
  s.charCodeAt(0);
  return s;
}

/**
 * `a` without spare room. An array grown by push() from empty reserves room for 17 elements (152
 * bytes) however few it holds; 100,000 lists of one to five items waste over 10 MB that way.
 */
export function exact<T>(a: T[]): T[] {
  return a.length === 0 ? [] : a.slice();
}

/** The longest user value a message embeds (Problems, errors, log lines). */
export const CLIP_CHARS = 120;

/**
 * `value` as a message may quote it: at most `max` characters, the rest replaced by a note of how
 * long it was, so a 1 MB annotation makes a short Problem and a short log line. Control characters
 * are escaped so a value cannot forge lines in a log. Every message that embeds a user value uses it.
 */
export function clip(value: string, max = CLIP_CHARS): string {
  const s = value.length > max ? `${value.slice(0, max)}... (${value.length} characters)` : value;
  let out = '';
  let from = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 32 && c !== 127) continue;
    out += `${s.slice(from, i)}\\u${c.toString(16).padStart(4, '0')}`;
    from = i + 1;
  }
  return from === 0 ? s : out + s.slice(from);
}
