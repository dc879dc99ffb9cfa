// Equality of plain data (what JSON would write: objects, arrays, strings, numbers, booleans, null),
// without building the JSON. Discovery compares every re-translated record with the previous one
// to keep the old object when nothing changed; two JSON.stringify calls per record allocate two
// strings the size of the record each time, this allocates nothing.

/** True when `a` and `b` would serialize to the same JSON, key order aside. */
export function sameData(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameData(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  let n = 0;
  for (const k in x) {
    if (x[k] === undefined) continue; // JSON leaves it out
    if (!sameData(x[k], y[k])) return false;
    n++;
  }
  for (const k in y) if (y[k] !== undefined) n--;
  return n === 0;
}
