// Strings kept for a long time (endpoint ids, addresses) are built once and read for hours.

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
