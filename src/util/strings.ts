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
