/**
 * Which prompts step t trains on: epochs of seeded permutations of the dataset, B prompts a step. A pure
 * function of (n, B, seed, step), so a resumed run needs no saved cursor and picks the same prompts.
 */
export function promptsForStep(n: number, batch: number, seed: number, step: number): number[] {
  const out: number[] = [];
  let pos = step * batch;
  while (out.length < batch) {
    const epoch = Math.floor(pos / n);
    const perm = permutation(n, seed + epoch * 7919);
    out.push(perm[pos % n]);
    pos++;
  }
  return out;
}

/** Fisher-Yates with a small seeded PRNG (mulberry32): identical across machines and Node versions. */
export function permutation(n: number, seed: number): number[] {
  let a = seed >>> 0;
  const rand = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}
