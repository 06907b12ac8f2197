import { existsSync } from "node:fs";
import { mkdir, readFile, truncate } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { appendLineDurable, writeFileAtomic } from "../util/atomic-write.js";
import { UserError } from "../util/errors.js";
import type { PromptResult } from "./pipeline.js";

/**
 * The run directory of `catrl infer`: run.json (resolved config, seeds, model hashes, versions),
 * results.jsonl (one line per finished prompt, appended and synced), bad-rows.jsonl. Re-running on the
 * same directory resumes: finished prompts are skipped, a line torn by a kill is dropped.
 */
export const INFER_KIND = "catrl-infer";

export const InferManifestSchema = z.looseObject({
  kind: z.literal(INFER_KIND),
  created: z.string(),
  config: z.record(z.string(), z.unknown()),
});

/** Config fields that change what a prompt's result means: a resume must not mix two of them. */
const IDENTITY_FIELDS = [
  "data",
  "task",
  "G",
  "maxTokens",
  "seed",
  "sampling",
  "synthesis",
  "model_sha256",
  "anchor_sha256",
];

export async function openInferRun(
  dir: string,
  manifest: Record<string, unknown> & { config: Record<string, unknown> },
) {
  await mkdir(dir, { recursive: true });
  const runFile = path.join(dir, "run.json");
  if (existsSync(runFile)) {
    let old: z.infer<typeof InferManifestSchema>;
    try {
      old = InferManifestSchema.parse(JSON.parse(await readFile(runFile, "utf8")));
    } catch (e) {
      throw new UserError(
        `${runFile}: not a catrl infer run (${(e as Error).message.split("\n")[0]}); use another --out`,
      );
    }
    const differs = IDENTITY_FIELDS.filter(
      (k) => JSON.stringify(old.config[k]) !== JSON.stringify(manifest.config[k]),
    );
    if (differs.length > 0) {
      throw new UserError(
        `${runFile}: this directory holds a run with other settings (${differs.join(", ")}); use another --out`,
      );
    }
  }
  await writeFileAtomic(runFile, `${JSON.stringify(manifest, null, 2)}\n`);
  return { dir, results: path.join(dir, "results.jsonl"), badRows: path.join(dir, "bad-rows.jsonl") };
}

/** Ids of finished prompts; a torn last line (killed mid-write) is cut off so the file stays valid JSONL. */
export async function finishedIds(resultsFile: string): Promise<Set<string>> {
  const done = new Set<string>();
  if (!existsSync(resultsFile)) return done;
  const text = await readFile(resultsFile, "utf8");
  const end = text.lastIndexOf("\n") + 1;
  if (end < text.length) await truncate(resultsFile, Buffer.byteLength(text.slice(0, end)));
  for (const line of text.slice(0, end).split("\n")) {
    if (!line.trim()) continue;
    try {
      done.add(String(JSON.parse(line).id));
    } catch {
      // A corrupt middle line: its prompt simply runs again.
    }
  }
  return done;
}

export async function appendResult(resultsFile: string, r: PromptResult): Promise<void> {
  await appendLineDurable(resultsFile, JSON.stringify(r));
}

export async function readResults(dir: string): Promise<PromptResult[]> {
  const file = path.join(dir, "results.jsonl");
  if (!existsSync(file)) throw new UserError(`${file}: no results (run \`catrl infer --out ${dir}\` first)`);
  const out: PromptResult[] = [];
  const lines = (await readFile(file, "utf8")).split("\n");
  lines.forEach((l, i) => {
    if (!l.trim()) return;
    try {
      out.push(JSON.parse(l));
    } catch {
      if (i < lines.length - 1) process.stderr.write(`${file}:${i + 1}: not JSON (line skipped)\n`);
    }
  });
  return out;
}
