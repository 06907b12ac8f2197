import { describe, expect, it } from "vitest";
import { promptsForStep } from "../src/rl/prompt-schedule.js";
import { Mulberry32, mix32, permutation } from "../src/util/rng.js";

// Values pinned from the two copies this module replaced (modelgen/rng.ts and the prompt schedule's own
// mulberry32): random-weight models, resumed runs' prompt order and HealthBench's bootstrap std depend on
// the streams staying bit-identical.
describe("util/rng", () => {
  it("keeps the streams of the copies it replaced", () => {
    expect(mix32(1, 2)).toBe(3566807365);
    const a = new Float32Array(4);
    new Mulberry32(mix32(1, 2)).fillUniform(a, 1);
    expect(Array.from(a)).toEqual([
      -0.8117474317550659, 0.7684507369995117, -0.7948662042617798, -0.6061134338378906,
    ]);
    expect(permutation(10, 42)).toEqual([0, 7, 3, 5, 2, 1, 8, 9, 4, 6]);
  });

  it("continues one stream across fills, so a tensor does not depend on chunking", () => {
    const whole = new Float32Array(10);
    new Mulberry32(5).fillUniform(whole, 0.5);
    const rng = new Mulberry32(5);
    const parts = new Float32Array(10);
    rng.fillUniform(parts.subarray(0, 3), 0.5);
    rng.fillUniform(parts.subarray(3), 0.5);
    expect(parts).toEqual(whole);
    for (const v of whole) expect(Math.abs(v)).toBeLessThanOrEqual(0.5);
  });

  it("draws next() from the same stream as fillUniform", () => {
    const u = new Float32Array(3);
    new Mulberry32(9).fillUniform(u, 0.5);
    const rng = new Mulberry32(9);
    for (const v of u) expect(rng.next() - 0.5).toBeCloseTo(v, 6);
  });

  it("permutes 0..n-1, the same for a seed and differently for another", () => {
    const p = permutation(50, 3);
    expect([...p].sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(permutation(50, 3)).toEqual(p);
    expect(permutation(50, 4)).not.toEqual(p);
  });

  it("the prompt schedule still draws from it: epoch e is the permutation seeded seed + e x 7919", () => {
    const n = 6;
    const epoch1 = [0, 1, 2].flatMap((s) => promptsForStep(n, 2, 11, s + 3));
    expect(epoch1).toEqual(permutation(n, 11 + 7919));
  });
});
