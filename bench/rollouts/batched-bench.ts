import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { packageRoot } from "../../src/util/version.js";
import type { BenchCase, Measurement, Variant } from "./types.js";

const run = promisify(execFile);

export const BUILD_SCRIPT = "bench/llama-cpp/build-batched-bench.sh";

export type BatchedBenchRow = {
  pp: number;
  tg: number;
  b: number;
  nKv: number;
  tPp: number;
  sPp: number;
  tTg: number;
  sTg: number;
  t: number;
  s: number;
};

/** Parses the markdown table llama-batched-bench prints (| PP | TG | B | N_KV | T_PP s | ... | S t/s |). */
export function parseBatchedBenchTable(text: string): BatchedBenchRow[] {
  const rows: BatchedBenchRow[] = [];
  for (const line of text.split("\n")) {
    const cells = line
      .trim()
      .replace(/^\||\|$/g, "")
      .split("|")
      .map((c) => c.trim());
    if (cells.length !== 10 || !cells.every((c) => /^-?[0-9.]+$/.test(c))) continue;
    const [pp, tg, b, nKv, tPp, sPp, tTg, sTg, t, s] = cells.map(Number);
    rows.push({ pp, tg, b, nKv, tPp, sPp, tTg, sTg, t, s });
  }
  return rows;
}

/** Builds (once, into ~/.cache/catrl) or finds llama-batched-bench; returns its path. */
export async function ensureBatchedBench(opts: { build: boolean }): Promise<string | null> {
  if (process.env.CATRL_BATCHED_BENCH) return process.env.CATRL_BATCHED_BENCH;
  const cache = process.env.CATRL_CACHE ?? path.join(process.env.HOME ?? "", ".cache", "catrl");
  const bin = path.join(cache, "llama.cpp-build", "bin", "llama-batched-bench");
  if (existsSync(bin)) return bin;
  if (!opts.build) return null;
  process.stderr.write(
    "building llama-batched-bench from node-llama-cpp's bundled llama.cpp (minutes, once)\n",
  );
  const { stdout } = await run("bash", [path.join(packageRoot(), BUILD_SCRIPT)], {
    maxBuffer: 64 << 20,
    env: { ...process.env, CATRL_CACHE: cache },
  });
  return stdout.trim().split("\n").at(-1) ?? null;
}

export type BatchedBenchMode = "defaults" | "fa-off" | "pps";
const NAMES = { defaults: "llama.cpp", "fa-off": "llama.cpp-fa-off", pps: "llama.cpp-pps" } as const;

/**
 * llama.cpp's own batched decoding with no sampling and no JS: the anchor, at its defaults (flash attention
 * `auto`) unless `fa-off`. Run once per case with `-npl <prompts x G>`, so it interleaves with the other
 * variants instead of running all sizes at once. Without `-pps` every sequence evaluates its own copy of
 * the prompt; `pps` evaluates it once and shares it (what the engine does for a group).
 */
export class BatchedBenchVariant implements Variant {
  readonly name: (typeof NAMES)[BatchedBenchMode];
  constructor(
    readonly bin: string,
    private readonly modelPath: string,
    private readonly threads: number,
    readonly mode: BatchedBenchMode = "defaults",
  ) {
    this.name = NAMES[mode];
  }

  applies(c: BenchCase): boolean {
    return this.mode !== "pps" || c.prompts.length === 1;
  }

  args(c: BenchCase): string[] {
    const b = c.prompts.length * c.G;
    const ctx = b * (c.promptTokens + c.maxTokens) + 16;
    return [
      ...["-m", this.modelPath, "-npp", String(c.promptTokens), "-ntg", String(c.maxTokens)],
      // llama.cpp logs from a thread that can drop the last table line at exit (seen on a loaded machine):
      // for batches, a one-sequence case (1/b of the cost) goes last and is not read.
      ...["-npl", b > 1 ? `${b},1` : String(b), "-t", String(this.threads), "-tb", String(this.threads)],
      ...["-c", String(ctx)],
      ...(this.mode === "fa-off" ? ["-fa", "off"] : []),
      ...(this.mode === "pps" ? ["-pps"] : []),
      ...["--output-format", "md"],
    ];
  }

  /** One llama-batched-bench process; null when it printed no table (seen now and then on a loaded machine). */
  private async once(c: BenchCase): Promise<{ row: BatchedBenchRow | null; tail: string }> {
    let out: { stdout: string; stderr: string };
    try {
      out = await run(this.bin, this.args(c), { maxBuffer: 64 << 20 });
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      throw new Error(`llama-batched-bench failed: ${(err.stderr ?? err.message).trim().split("\n").at(-1)}`);
    }
    const text = `${out.stdout}\n${out.stderr}`;
    return {
      row: parseBatchedBenchTable(text).find((r) => r.b === c.prompts.length * c.G) ?? null,
      tail: text.trim().split("\n").slice(-3).join(" / "),
    };
  }

  async run(c: BenchCase, repeat: number): Promise<Measurement> {
    let got = await this.once(c);
    for (let attempt = 1; !got.row && attempt < 3; attempt++) got = await this.once(c);
    const row = got.row;
    if (!row) {
      throw new Error(
        `llama-batched-bench ${this.args(c).join(" ")} printed no result table (3 tries): ${got.tail}`,
      );
    }
    const rollouts = row.b;
    const tokens = row.b * row.tg;
    return {
      variant: this.name,
      prompts: c.prompts.length,
      G: c.G,
      maxTokens: c.maxTokens,
      promptTokens: c.promptTokens,
      repeat,
      rollouts,
      tokens,
      seconds: row.t,
      rolloutsPerSec: rollouts / row.t,
      tokensPerSec: tokens / row.t,
      decodeTokensPerSec: row.sTg,
      prefillTokensPerSec: row.sPp,
    };
  }

  async dispose(): Promise<void> {}
}
