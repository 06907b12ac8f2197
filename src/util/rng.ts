/**
 * The project's seeded PRNG (mulberry32) and seed mixing, one copy for every caller: random-weight models,
 * the prompt schedule, mutual predictability's orders and HealthBench's bootstrap. 32-bit state keeps
 * everything in Math.imul land (no BigInt), so a seed gives the same stream on every machine and Node
 * version. The trainer's resumable xoshiro128** lives in `rl/trainer/rng.ts`: its state goes into
 * checkpoints.
 */

/** Mixes two 32-bit words into one well-spread seed (a stream per tensor, per bootstrap, ...). */
export function mix32(a: number, b: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ b;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * mulberry32: period 2^32, which exceeds any one tensor's size, so each tensor gets its own stream and
 * the value of a tensor does not depend on how the file is chunked.
 */
export class Mulberry32 {
  constructor(private state: number) {}

  /** The next 32-bit output. */
  nextU32(): number {
    const s = (this.state + 0x6d2b79f5) | 0;
    this.state = s;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  /** A uniform integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** Fills `out` with uniform values in [-a, a). */
  fillUniform(out: Float32Array, a: number): void {
    const scale = (2 * a) / 4294967296;
    for (let i = 0; i < out.length; i++) out[i] = this.nextU32() * scale - a;
  }
}

/** Fisher-Yates with mulberry32: the same permutation of 0..n-1 for a seed on every machine. */
export function permutation(n: number, seed: number): number[] {
  const rng = new Mulberry32(seed >>> 0);
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}
