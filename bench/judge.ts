import { execFile } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { buildJudgePrompt } from "../src/cat/rubric/prompt.js";
import { judgeItems, type RubricSettings } from "../src/cat/rubric-rewards.js";
import { openLlamaEngine } from "../src/engine/llama-engine.js";
import { hostInfo, versions } from "../src/run/provenance.js";
import { sha256File } from "../src/util/hash.js";
import { packageRoot } from "../src/util/version.js";
import { ensureBatchedBench, parseBatchedBenchTable } from "./rollouts/batched-bench.js";

/**
 * Judge verdicts two ways on the same (response, criterion) pairs, side by side in one process:
 * `logprob` reads P(yes) vs P(no) from one forward pass per pair (all pairs batched); `generate` lets
 * the judge write a short answer and parses it. Prints pairs/s for each and their ratio.
 */
export type JudgeBenchOptions = {
  model: string;
  threads: number;
  pairs: number;
  repeats: number;
  /** Compare with llama-batched-bench's S_PP when it is built (default true). */
  llamaCpp?: boolean;
};

/** Sequences the engine evaluates in one context (its default maxSequences). */
const JUDGE_BATCH = 64;

/** llama-batched-bench at its defaults, prompt evaluation only (-ntg 1), or null when it is not built. */
async function batchedBenchSpp(model: string, threads: number, npp: number, npl: number) {
  const bin = await ensureBatchedBench({ build: false });
  if (!bin) return null;
  // llama.cpp logs from a thread that can lose the last line at exit: a cheap 1-sequence case goes last.
  const args = ["-m", model, "-npp", String(npp), "-ntg", "1", "-npl", `${npl},1`];
  args.push("-t", String(threads), "-tb", String(threads), "-c", String(npl * (npp + 1) + 16));
  args.push("--output-format", "md");
  // Retried as bench/rollouts/batched-bench.ts does, should even that line be lost.
  for (let attempt = 0; attempt < 3; attempt++) {
    const { stdout, stderr } = await promisify(execFile)(bin, args, { maxBuffer: 64 << 20 });
    const row = parseBatchedBenchTable(`${stdout}\n${stderr}`).find((r) => r.b === npl);
    if (row) return { args, sPp: row.sPp, tPp: row.tPp };
  }
  return null;
}

export async function benchJudge(o: JudgeBenchOptions) {
  const engine = await openLlamaEngine({ modelPath: o.model, threads: o.threads, gpu: "cpu" });
  const criteria = [
    "The response mentions a dog.",
    "The response names a child.",
    "The response says where the story happens.",
    "The response ends happily.",
  ];
  const responses = Array.from(
    { length: Math.max(1, Math.round(o.pairs / criteria.length)) },
    (_, i) =>
      `Once upon a time, a little girl named Lily ${i % 2 ? "saw a big dog in the park" : "played with her ball at home"}. She was very happy.`,
  );
  const items = [{ criteria, responses, responseTokens: responses.map(() => 0) }];
  const n = criteria.length * responses.length;
  const base: RubricSettings = {
    rubricMaxTokens: 1,
    retries: 0,
    sampling: { temperature: 0, topK: 0, topP: 1, minP: 0 },
    judgeMode: "logprob",
    threshold: 0.5,
  };
  // What the judge reads in logprob mode: one prompt per pair (a response's criteria share its prefix).
  const promptTokens = responses.flatMap((response) =>
    criteria.map((criterion) => engine.tokenizePrompt(buildJudgePrompt({ criterion, response })).length),
  );
  const meanPromptTokens = Math.round(promptTokens.reduce((a, b) => a + b, 0) / promptTokens.length);
  const rows: Record<string, { seconds: number[]; pairs_per_s: number; unparsed: number }> = {};
  try {
    for (let r = 0; r < o.repeats; r++) {
      // Interleaved so that both modes see the same machine load.
      for (const mode of ["logprob", "generate"] as const) {
        const t0 = performance.now();
        const out = await judgeItems(engine, items, { ...base, judgeMode: mode }, 1);
        const s = (performance.now() - t0) / 1000;
        rows[mode] ??= { seconds: [], pairs_per_s: 0, unparsed: 0 };
        const row = rows[mode];
        row.seconds.push(s);
        row.unparsed = out[0].verdicts.flat().filter((v) => v.pYes == null).length;
      }
    }
  } finally {
    await engine.dispose();
  }
  for (const row of Object.values(rows)) {
    const best = Math.min(...row.seconds);
    row.pairs_per_s = n / best;
  }
  // Prompt tokens the judge turns into verdicts per second (shared prefixes count for every pair, as a
  // judge without sharing would evaluate them), next to llama-batched-bench's S_PP for the same prompt
  // length and batch (as many sequences as the engine puts in one context).
  const prefillTokensPerSec = (promptTokens.reduce((a, b) => a + b, 0) / n) * rows.logprob.pairs_per_s;
  const batch = Math.min(n, JUDGE_BATCH);
  const llama =
    o.llamaCpp === false ? null : await batchedBenchSpp(o.model, o.threads, meanPromptTokens, batch);
  const result = {
    bench: "judge",
    model: { path: o.model, sha256: await sha256File(o.model) },
    threads: o.threads,
    pairs: n,
    modes: rows,
    ratio_logprob_over_generate: rows.logprob.pairs_per_s / rows.generate.pairs_per_s,
    prompt_tokens_mean: meanPromptTokens,
    prefill_tokens_per_s: prefillTokensPerSec,
    llama_batched_bench: llama,
    prefill_over_s_pp: llama ? prefillTokensPerSec / llama.sPp : null,
    loadavg: os.loadavg(),
    host: hostInfo(),
    versions: versions(),
    date: new Date().toISOString(),
  };
  const dir = path.join(packageRoot(), "bench", "results");
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `judge-${os.hostname()}.json`);
  await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(
    `judge verdicts on ${n} (response, criterion) pairs, ${o.threads} thread(s), best of ${o.repeats}\n` +
      `mode       pairs/s   unparsed\n` +
      Object.entries(rows)
        .map(([m, r]) => `${m.padEnd(10)} ${r.pairs_per_s.toFixed(1).padStart(7)}   ${r.unparsed}`)
        .join("\n") +
      `\nlogprob / generate: ${result.ratio_logprob_over_generate.toFixed(2)}x\n` +
      `judge prefill ${prefillTokensPerSec.toFixed(1)} tok/s (${meanPromptTokens}-token prompts)` +
      (llama
        ? `; llama-batched-bench S_PP ${llama.sPp.toFixed(1)} tok/s at -npp ${meanPromptTokens} -npl ${batch}: ${(prefillTokensPerSec / llama.sPp).toFixed(2)}x`
        : "; llama-batched-bench not run") +
      `\nload average ${os
        .loadavg()
        .map((x) => x.toFixed(2))
        .join(" ")}\nwritten to ${file}\n`,
  );
  return result;
}
