import { spawnSync } from "node:child_process";
import path from "node:path";
import { z } from "zod";
import type { ResolvedModelShape } from "../../src/modelgen/index.js";
import { packageRoot } from "../../src/util/version.js";
import { runJsonChild } from "../child-json.js";

/**
 * The PyTorch + PEFT anchor of `catrl bench train --anchor peft`: finds a Python with torch,
 * transformers and peft (they are not dependencies of the project) and runs bench/anchors/peft_step.py
 * for one case in its own process.
 */

export const PEFT_SCRIPT_RELATIVE = path.join("bench", "anchors", "peft_step.py");

/** `--python` first, then CATRL_PYTHON, then python3 on PATH. */
export function resolvePython(explicit?: string): string {
  return explicit ?? process.env.CATRL_PYTHON ?? "python3";
}

const PROBE =
  "import json, torch, transformers, peft; print(json.dumps({'torch': torch.__version__, 'transformers': transformers.__version__, 'peft': peft.__version__, 'cuda': torch.cuda.is_available()}))";
const ProbeSchema = z.object({
  torch: z.string(),
  transformers: z.string(),
  peft: z.string(),
  cuda: z.boolean(),
});
export type PeftVersions = z.infer<typeof ProbeSchema>;

/** Whether `python` imports torch, transformers and peft; `reason` is one line when it does not. */
export function peftAvailability(
  python: string,
): { ok: true; versions: PeftVersions } | { ok: false; reason: string } {
  const r = spawnSync(python, ["-c", PROBE], { encoding: "utf8", timeout: 180_000 });
  if (r.error) return { ok: false, reason: `${python}: ${r.error.message}` };
  if (r.status !== 0) {
    const last =
      r.stderr
        .split("\n")
        .map((l) => l.trim())
        .filter(Boolean)
        .at(-1) ?? `exited with ${r.status}`;
    return { ok: false, reason: `${python} cannot import torch, transformers and peft (${last})` };
  }
  const parsed = ProbeSchema.safeParse(JSON.parse(r.stdout.trim().split("\n").at(-1) ?? "{}"));
  return parsed.success
    ? { ok: true, versions: parsed.data }
    : { ok: false, reason: `${python}: unexpected probe output` };
}

export const PeftCaseResultSchema = z.object({
  anchor: z.literal("peft"),
  device: z.enum(["cpu", "cuda"]),
  deviceName: z.string(),
  dtype: z.string(),
  threads: z.number().int(),
  attnImplementation: z.string().nullable(),
  gradientCheckpointing: z.boolean(),
  trainableParams: z.number().int(),
  loadMs: z.number(),
  tokensPerPass: z.number().int(),
  forwardMs: z.array(z.number()),
  forwardTokPerS: z.number(),
  stepMs: z.array(z.number()),
  stepTokPerS: z.number(),
  peakRssBytes: z.number(),
  cudaPeakBytes: z.number().nullable(),
  versions: z.object({ python: z.string(), torch: z.string(), transformers: z.string(), peft: z.string() }),
});
export type PeftCaseResult = z.infer<typeof PeftCaseResultSchema>;

export type PeftCaseInput = {
  python: string;
  shape: ResolvedModelShape;
  device: "cpu" | "cuda";
  threads: number;
  seqs: number;
  promptTokens: number;
  completionTokens: number;
  rank: number;
  alpha: number;
  targets: readonly string[];
  repeats: number;
  warmup: number;
  step: { lr: number; beta: number; clipEps: number; maxGradNorm: number; weightDecay: number };
};

export async function runPeftCase(
  i: PeftCaseInput,
  log?: (line: string) => void,
): Promise<{ ok: true; result: PeftCaseResult } | { ok: false; error: string }> {
  const args = [
    path.join(packageRoot(), PEFT_SCRIPT_RELATIVE),
    "--shape",
    JSON.stringify(i.shape),
    "--device",
    i.device,
    "--threads",
    String(i.threads),
    "--seqs",
    String(i.seqs),
    "--prompt-tokens",
    String(i.promptTokens),
    "--completion-tokens",
    String(i.completionTokens),
    "--rank",
    String(i.rank),
    "--alpha",
    String(i.alpha),
    "--targets",
    i.targets.join(","),
    "--repeats",
    String(i.repeats),
    "--warmup",
    String(i.warmup),
    "--lr",
    String(i.step.lr),
    "--beta",
    String(i.step.beta),
    "--clip-eps",
    String(i.step.clipEps),
    "--max-grad-norm",
    String(i.step.maxGradNorm),
    "--weight-decay",
    String(i.step.weightDecay),
  ];
  // torch's own thread pools follow these too; the script also calls torch.set_num_threads
  const env = { ...process.env, OMP_NUM_THREADS: String(i.threads), MKL_NUM_THREADS: String(i.threads) };
  const r = await runJsonChild(i.python, args, { env, log });
  if (!r.ok) return r;
  const parsed = PeftCaseResultSchema.safeParse(r.value);
  return parsed.success
    ? { ok: true, result: parsed.data }
    : { ok: false, error: `peft_step.py printed an unexpected result (${parsed.error.issues[0]?.message})` };
}
