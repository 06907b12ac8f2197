/**
 * Fast 32-bit PRNG (mulberry32) and seed mixing. 32-bit state keeps everything in Math.imul land (no
 * BigInt); each tensor gets its own stream, so its period (2^32) exceeds any one tensor's size and the
 * value of a tensor does not depend on how the file is chunked.
 */
export function mix32(a: number, b: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ b;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}

export class Mulberry32 {
  constructor(private state: number) {}

  /** Fills `out` with uniform values in [-a, a). */
  fillUniform(out: Float32Array, a: number): void {
    let s = this.state;
    const scale = (2 * a) / 4294967296;
    for (let i = 0; i < out.length; i++) {
      s = (s + 0x6d2b79f5) | 0;
      let t = Math.imul(s ^ (s >>> 15), 1 | s);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      out[i] = ((t ^ (t >>> 14)) >>> 0) * scale - a;
    }
    this.state = s;
  }

  /** The next uniform 32-bit unsigned integer (the same step as fillUniform). */
  nextU32(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    const s = this.state;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** A uniform float in [0, 1). */
  float(): number {
    return this.nextU32() / 4294967296;
  }

  /** A uniform integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.float() * (hi - lo + 1));
  }
}
