import { mkdtempSync, rmSync } from "node:fs";
import { mkdir, rename, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { z } from "zod";
import { resolveTokenizerPath, writeRandomModel } from "../../src/modelgen/index.js";
import { openTrainer, type StepOptions, type Trainer } from "../../src/rl/trainer/index.js";

/**
 * The trainer's correctness on a device before any speed figure from it: on a small random F32 qwen3
 * model (tied output head, Qwen's 151,936-token vocabulary), the device's log-probs and gradients
 * against the CPU trainer's (whose parity with llama.cpp and finite differences the test suite checks),
 * and central differences of the loss on the device itself. Writes JSON; exits 1 when a check fails.
 *
 *   node dist/bench/gpu/trainer-check.js --backend cuda --out check.json
 */

const ALL = ["q", "k", "v", "o", "gate", "up", "down"] as const;
const RANK = 4;
const OPTS: StepOptions = { lr: 0, beta: 0.1, clipEps: 0.2, microBatch: 2, maxGradNorm: 0, weightDecay: 0 };
/** Tolerances: the CPU and CUDA kernels sum in different orders (F32 throughout). */
export const TOLERANCE = { logprobAbs: 1e-3, gradRel: 1e-3, fdRel: 0.01, fdAbs: 1e-4 };

/** Deterministic pseudo-random floats in [-scale, scale) (xorshift). */
function noise(n: number, seed: number, scale: number): Float32Array {
  const a = new Float32Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    a[i] = ((x / 4294967296) * 2 - 1) * scale;
  }
  return a;
}

const ArgsSchema = z.object({ backend: z.enum(["cpu", "cuda"]), out: z.string().min(1) });

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const get = (flag: string) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const args = ArgsSchema.parse({ backend: get("--backend") ?? "cuda", out: get("--out") });
  const dir = mkdtempSync(path.join(os.tmpdir(), "catrl-trainer-check-"));
  try {
    const model = path.join(dir, "qwen3-small-f32.gguf");
    await writeRandomModel({
      shape: {
        arch: "qwen3",
        n_embd: 128,
        n_layer: 2,
        n_head: 4,
        n_head_kv: 2,
        head_dim: 32,
        n_ff: 256,
        rope_freq_base: 1e6,
        rms_eps: 1e-6,
        context_length: 512,
        tied_embeddings: true,
      },
      type: "f32",
      seed: 5,
      tokenizerFrom: await resolveTokenizerPath({ kind: "llama.cpp-vocab", name: "qwen2" }),
      out: model,
    });
    const open = (backend: "cpu" | "cuda") =>
      openTrainer({
        modelPath: model,
        backend,
        threads: 1,
        seed: 3,
        lora: { rank: RANK, alpha: 8, targets: [...ALL] },
      });
    const cpu = await open("cpu");
    const dev = await open(args.backend);
    try {
      return await check(cpu, dev, args);
    } finally {
      cpu.dispose();
      dev.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function check(cpu: Trainer, dev: Trainer, args: z.infer<typeof ArgsSchema>): Promise<number> {
  const b = cpu.info.lora.map((x, i) => noise(x.nOut * RANK, 50 + i, 0.3));
  const a = cpu.getState().a;
  cpu.setState({ b });
  dev.setState({ a, b });
  // three sequences in two micro-batches; one long enough that attention spans more than a tile
  const nV = cpu.info.nVocab;
  const base = [
    { prompt: [1, 5, 9], completion: [20, 33, 47, 8, 100] },
    { prompt: [1, 7], completion: [300, 2, 71] },
    {
      prompt: Array.from({ length: 40 }, (_, j) => (7919 * (j + 1)) % nV),
      completion: Array.from({ length: 90 }, (_, j) => (104729 * (j + 3)) % nV),
    },
  ];
  const lpCpu = await cpu.logprobs(base, { lora: true });
  const lpDev = await dev.logprobs(base, { lora: true });
  let logprobMaxAbsDiff = 0;
  lpCpu.forEach((row, i) => {
    for (let j = 0; j < row.length; j++)
      logprobMaxAbsDiff = Math.max(logprobMaxAbsDiff, Math.abs(row[j] - lpDev[i][j]));
  });
  const adv = [1.3, -0.7, 0.4];
  const seqs = base.map((s, i) => ({
    ...s,
    advantage: adv[i],
    oldLogprobs: lpCpu[i].map((v, j) => v + noise(s.completion.length, 100 + i, 0.3)[j]),
    refLogprobs: lpCpu[i].map((v, j) => v + noise(s.completion.length, 200 + i, 0.3)[j]),
  }));
  const gCpu = await cpu.lossAndGradient(seqs, OPTS);
  const gDev = await dev.lossAndGradient(seqs, OPTS);
  let gradMaxDiff = 0;
  let gradMaxAbs = 0;
  for (const k of ["a", "b"] as const)
    gCpu.grads[k].forEach((arr, i) => {
      for (let j = 0; j < arr.length; j++) {
        gradMaxDiff = Math.max(gradMaxDiff, Math.abs(arr[j] - gDev.grads[k][i][j]));
        gradMaxAbs = Math.max(gradMaxAbs, Math.abs(arr[j]));
      }
    });

  // central differences on the device, on its 8 largest-gradient coordinates of A and of B
  const state = dev.getState();
  const h = 1e-3;
  const fd: { tensor: string; index: number; analytic: number; numeric: number }[] = [];
  for (const k of ["a", "b"] as const) {
    const coords: { i: number; j: number; v: number }[] = [];
    gDev.grads[k].forEach((arr, i) => {
      for (let j = 0; j < arr.length; j++) coords.push({ i, j, v: Math.abs(arr[j]) });
    });
    coords.sort((x, y) => y.v - x.v);
    for (const c of coords.slice(0, 8)) {
      const at = async (v: number) => {
        const arrs = state[k].map((x) => x.slice());
        arrs[c.i][c.j] = v;
        dev.setState({ [k]: arrs });
        return (await dev.lossAndGradient(seqs, OPTS)).loss;
      };
      const orig = state[k][c.i][c.j];
      const numeric = ((await at(orig + h)) - (await at(orig - h))) / (2 * h);
      fd.push({
        tensor: `${k}[${dev.info.lora[c.i].base}]`,
        index: c.j,
        analytic: gDev.grads[k][c.i][c.j],
        numeric,
      });
    }
    dev.setState({ [k]: state[k] });
  }
  const fdOk = fd.every(
    (c) => Math.abs(c.analytic - c.numeric) < TOLERANCE.fdRel * Math.abs(c.numeric) + TOLERANCE.fdAbs,
  );
  const checks = {
    logprobParity: logprobMaxAbsDiff < TOLERANCE.logprobAbs,
    gradientParity: gradMaxDiff / gradMaxAbs < TOLERANCE.gradRel,
    lossParity: Math.abs(gCpu.loss - gDev.loss) < 1e-4 * Math.max(1, Math.abs(gCpu.loss)),
    finiteDifferences: fdOk,
  };
  const ok = Object.values(checks).every(Boolean);
  const result = {
    check: "trainer",
    date: new Date().toISOString(),
    backend: args.backend,
    deviceBackend: dev.info.backend,
    model: { arch: "qwen3", type: "f32", nEmbd: cpu.info.nEmbd, nLayer: cpu.info.nLayer, nVocab: nV },
    tolerance: TOLERANCE,
    logprobMaxAbsDiff,
    loss: { cpu: gCpu.loss, device: gDev.loss },
    gradient: { maxAbsDiff: gradMaxDiff, maxAbs: gradMaxAbs, relative: gradMaxDiff / gradMaxAbs },
    finiteDifferences: fd,
    checks,
    ok,
  };
  await mkdir(path.dirname(path.resolve(args.out)), { recursive: true });
  await writeFile(`${args.out}.tmp`, `${JSON.stringify(result, null, 2)}\n`);
  await rename(`${args.out}.tmp`, args.out);
  process.stdout.write(
    `trainer check on ${dev.info.backend}: log-prob max |diff| ${logprobMaxAbsDiff.toExponential(2)}, gradient rel. diff ${(gradMaxDiff / gradMaxAbs).toExponential(2)}, finite differences ${fdOk ? "ok" : "FAILED"}: ${ok ? "ok" : "FAILED"}\n`,
  );
  return ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`trainer check failed: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(2);
  },
);
