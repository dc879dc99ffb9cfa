// "Did you mean": the closest of a few known words to a typo, by edit distance. Pure; used for
// unknown CLI commands and options and unknown config keys.

/** Levenshtein distance with adjacent transpositions counted as one edit (`sevre` -> `serve`). */
export function editDistance(a: string, b: string): number {
  const m = a.length;
  const n = b.length;
  const d: number[][] = Array.from({ length: m + 1 }, (_, i) => [i, ...new Array<number>(n).fill(0)]);
  for (let j = 1; j <= n; j++) d[0][j] = j;
  for (let i = 1; i <= m; i++) {
    for (let j = 1; j <= n; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[m][n];
}

/**
 * The candidate closest to `word`, if it is close enough to be a typo of it: at most a third of
 * its length in edits (at least one), up to three edits after a shared start of four characters
 * (`retry` -> `retries`), or a candidate that starts with it (`serv` -> `serve`).
 */
export function closest(word: string, candidates: Iterable<string>): string | undefined {
  const w = word.toLowerCase();
  let best: string | undefined;
  let bestD = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const d = editDistance(w, c.toLowerCase());
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  if (best === undefined) return undefined;
  if (bestD <= Math.max(1, Math.floor(w.length / 3))) return best;
  let shared = 0;
  while (shared < w.length && w[shared] === best.toLowerCase()[shared]) shared++;
  if (shared >= 4 && bestD <= 3) return best;
  if (w.length >= 3) for (const c of candidates) if (c.startsWith(w)) return c;
  return undefined;
}
