/**
 * Seeded, serialisable RNG (xoshiro128**, seeded by splitmix32) for LoRA initialisation. Its state
 * goes into checkpoints so that anything drawn after a resume matches an uninterrupted run.
 */
export class TrainerRng {
  private s: Uint32Array;

  constructor(seedOrState: number | number[]) {
    if (Array.isArray(seedOrState)) {
      if (seedOrState.length !== 4) throw new Error("RNG state must have 4 words");
      this.s = Uint32Array.from(seedOrState);
      return;
    }
    let x = seedOrState >>> 0;
    const next = () => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s = Uint32Array.from([next(), next(), next(), next()]);
  }

  state(): number[] {
    return Array.from(this.s);
  }

  nextU32(): number {
    const s = this.s;
    const r = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return r;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextU32() / 4294967296;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/**
 * PEFT's LoRA A initialisation: torch.nn.init.kaiming_uniform_(A, a=sqrt(5)) on A of shape (r, n_in):
 * gain = sqrt(2 / (1 + 5)), bound = gain * sqrt(3 / fan_in) = 1 / sqrt(n_in). B starts at zero, so
 * the adapter is a no-op until the first update.
 */
export function kaimingUniformA(rng: TrainerRng, nIn: number, rank: number): Float32Array {
  const bound = 1 / Math.sqrt(nIn);
  const a = new Float32Array(nIn * rank);
  for (let i = 0; i < a.length; i++) a[i] = (rng.next() * 2 - 1) * bound;
  return a;
}
