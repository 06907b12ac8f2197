import { permutation } from "../util/rng.js";

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
