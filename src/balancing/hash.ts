// Stable 32-bit hashing in pure JS. Replicas must agree on every key, so nothing here may depend on
// the process (no Math.random, no per-process seed, no object identity).

/**
 * MurmurHash3's 32-bit finaliser: full avalanche, so a one-bit change in the input flips about half
 * of the output bits. FNV-1a alone mixes its low bits poorly, and rendezvous hashing compares whole
 * 32-bit scores, so every hash leaves through this.
 */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** 32-bit FNV-1a over UTF-16 code units (equal to the byte-wise FNV-1a for ASCII). */
export function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** FNV-1a then fmix32. Stable across processes, Node versions and machines. */
export function hashString(s: string): number {
  return fmix32(fnv1a32(s));
}

/**
 * Score of (key, node) for rendezvous hashing. Two finaliser rounds with the node seed folded in
 * twice, so scores of one key against different nodes behave as independent draws (a single
 * `fmix32(key ^ seed)` is a bijection of the XOR and keeps some structure between related seeds).
 */
export function pairScore(keyHash: number, nodeSeed: number): number {
  return fmix32(fmix32(keyHash ^ nodeSeed) + Math.imul(nodeSeed, 0x9e3779b1));
}
