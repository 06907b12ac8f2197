import { mkdir, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { openLlamaEngine, type PrefixShare } from "../src/engine/llama-engine.js";
import { SAMPLING_PRESETS } from "../src/engine/sampling-presets.js";
import { hostInfo, versions } from "../src/run/provenance.js";
import { sha256File } from "../src/util/hash.js";
import { packageRoot } from "../src/util/version.js";

/**
 * Whether evaluating a prompt once and copying its KV state into the G sequences beats letting every
 * sequence evaluate the prompt in the shared batch, by prompt length. Both variants run interleaved in
 * one process on the same model; the engine's `auto` threshold comes from this table.
 */
export type PrefixBenchOptions = {
  model: string;
  threads: number;
  g: number;
  promptTokens: number[];
  maxTokens: number;
  repeats: number;
};

export async function benchPrefixShare(o: PrefixBenchOptions) {
  const engines = Object.fromEntries(
    await Promise.all(
      (["copy", "none"] as PrefixShare[]).map(
        async (m) =>
          [
            m,
            await openLlamaEngine({ modelPath: o.model, threads: o.threads, gpu: "cpu", prefixShare: m }),
          ] as const,
      ),
    ),
  );
  const rows: { prompt_tokens: number; copy_s: number; none_s: number; speedup: number }[] = [];
  try {
    for (const n of o.promptTokens) {
      const words = "Once upon a time there was a little girl who liked to play in the park with her dog ";
      let prompt = "";
      while (engines.copy.countTokens(prompt) < n) prompt += words;
      const times: Record<string, number[]> = { copy: [], none: [] };
      for (let r = 0; r < o.repeats; r++) {
        for (const m of ["copy", "none"] as const) {
          const t0 = performance.now();
          await engines[m].generate([
            { prompt, n: o.g, maxTokens: o.maxTokens, sampling: SAMPLING_PRESETS.raw, seed: r },
          ]);
          times[m].push((performance.now() - t0) / 1000);
        }
      }
      const copy = Math.min(...times.copy);
      const none = Math.min(...times.none);
      rows.push({
        prompt_tokens: engines.copy.tokenizePrompt(prompt).length,
        copy_s: copy,
        none_s: none,
        speedup: none / copy,
      });
    }
  } finally {
    for (const e of Object.values(engines)) await e.dispose();
  }
  const result = {
    bench: "prefix-share",
    model: { path: o.model, sha256: await sha256File(o.model) },
    threads: o.threads,
    g: o.g,
    max_tokens: o.maxTokens,
    rows,
    host: hostInfo(),
    versions: versions(),
    date: new Date().toISOString(),
  };
  const dir = path.join(packageRoot(), "bench", "results");
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `prefix-share-${os.hostname()}.json`);
  await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(
    `prompt KV copied into G=${o.g} sequences vs re-evaluated in the batch (${o.maxTokens} new tokens, ${o.threads} thread(s), best of ${o.repeats})\n` +
      "prompt tokens   copy s   re-eval s   copy speedup\n" +
      rows
        .map(
          (r) =>
            `${String(r.prompt_tokens).padStart(13)}   ${r.copy_s.toFixed(3).padStart(6)}   ${r.none_s.toFixed(3).padStart(9)}   ${r.speedup.toFixed(2).padStart(11)}x`,
        )
        .join("\n") +
      `\nwritten to ${file}\n`,
  );
  return result;
}
