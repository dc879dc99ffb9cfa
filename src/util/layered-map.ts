// An immutable map that is cheap to derive from: `with(changes)` returns a new map and leaves this
// one untouched, at a cost proportional to the changes, not to the size. Route tables use it so
// that a table swap after one changed project does not copy 10,000 entries.
//
// Layout: a frozen `base` Map shared by many versions, plus a small `top` Map of the entries
// changed since the base was made (a deleted key maps to GONE). `with()` copies only `top`; when
// `top` grows past a few times the square root of the size, the next version folds everything into
// a new base (so each change costs O(sqrt(n)) amortized, lookups two Map.get at most). Nothing is
// ever written into a Map that a published version can see.

const GONE: unique symbol = Symbol('gone');
type Slot<V> = V | typeof GONE;

const EMPTY: ReadonlyMap<unknown, unknown> = new Map();

export class LayeredMap<K, V> implements ReadonlyMap<K, V> {
  private constructor(
    private readonly base: ReadonlyMap<K, V>,
    private readonly top: ReadonlyMap<K, Slot<V>>,
    readonly size: number,
  ) {}

  static empty<K, V>(): LayeredMap<K, V> {
    return new LayeredMap<K, V>(EMPTY as ReadonlyMap<K, V>, EMPTY as ReadonlyMap<K, Slot<V>>, 0);
  }

  static from<K, V>(entries: Iterable<readonly [K, V]>): LayeredMap<K, V> {
    const base = new Map<K, V>();
    for (const [k, v] of entries) base.set(k, v);
    return new LayeredMap<K, V>(base, EMPTY as ReadonlyMap<K, Slot<V>>, base.size);
  }

  get(key: K): V | undefined {
    if (this.top.size > 0) {
      const v = this.top.get(key);
      if (v !== undefined) return v === GONE ? undefined : v;
    }
    return this.base.get(key);
  }

  has(key: K): boolean {
    if (this.top.size > 0) {
      const v = this.top.get(key);
      if (v !== undefined) return v !== GONE;
    }
    return this.base.has(key);
  }

  /**
   * A new map with `changes` applied in order: `[key, value]` sets, `[key, undefined]` deletes.
   * `this` is not modified. Values must not be `undefined`.
   */
  with(changes: Iterable<readonly [K, V | undefined]>): LayeredMap<K, V> {
    const top = new Map<K, Slot<V>>(this.top);
    let size = this.size;
    for (const [k, v] of changes) {
      const had = top.has(k) ? top.get(k) !== GONE : this.base.has(k);
      if (v === undefined) {
        if (!had) continue;
        size--;
        if (this.base.has(k)) top.set(k, GONE);
        else top.delete(k);
      } else {
        if (!had) size++;
        top.set(k, v);
      }
    }
    // Fold into a new base once the layer is large next to the whole: at 4 sqrt(n) entries, so both
    // the per-change copy of `top` and the amortized cost of folding stay O(sqrt(n)), and a base
    // (the one large allocation, which lives long enough to reach the old generation) is replaced
    // only every few hundred changes at 10,000 entries.
    if (top.size > 64 && top.size * top.size > 16 * this.base.size) {
      const base = new Map<K, V>();
      for (const [k, v] of this.base) {
        const t = top.get(k);
        if (t === undefined) base.set(k, v);
        else if (t !== GONE) base.set(k, t);
      }
      for (const [k, v] of top) if (v !== GONE && !this.base.has(k)) base.set(k, v);
      return new LayeredMap<K, V>(base, EMPTY as ReadonlyMap<K, Slot<V>>, size);
    }
    return new LayeredMap<K, V>(this.base, top, size);
  }

  *entries(): MapIterator<[K, V]> {
    const top = this.top;
    if (top.size === 0) {
      yield* this.base.entries();
      return;
    }
    for (const [k, v] of this.base) {
      const t = top.get(k);
      if (t === undefined) yield [k, v];
      else if (t !== GONE) yield [k, t];
    }
    for (const [k, v] of top) if (v !== GONE && !this.base.has(k)) yield [k, v];
  }

  *keys(): MapIterator<K> {
    for (const [k] of this.entries()) yield k;
  }

  *values(): MapIterator<V> {
    for (const [, v] of this.entries()) yield v;
  }

  [Symbol.iterator](): MapIterator<[K, V]> {
    return this.entries();
  }

  forEach(fn: (value: V, key: K, map: ReadonlyMap<K, V>) => void, thisArg?: unknown): void {
    for (const [k, v] of this.entries()) fn.call(thisArg, v, k, this);
  }
}
