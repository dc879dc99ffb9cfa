// Maps keyed by user data (port names, setting keys) as plain objects that cannot be confused with
// Object.prototype: `constructor`, `toString`, `hasOwnProperty` or `__proto__` are ordinary keys
// there, read as undefined when unset and stored as own properties when set.

/** The prototype of every bare record: empty, frozen, with no prototype of its own. */
const BARE: object = Object.freeze(Object.create(null));

/**
 * An empty record whose prototype chain holds nothing. Not `Object.create(null)` itself: V8 keeps a
 * null-prototype object in dictionary mode, about twice the memory of a fast object, and 50,000
 * instances keep one each.
 */
export function bareRecord<T>(): Record<string, T> {
  return Object.create(BARE) as Record<string, T>;
}

/** `rec[key]` only when it is the record's own property (any record, bare or not). */
export function own<T>(rec: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(rec, key) ? rec[key] : undefined;
}
