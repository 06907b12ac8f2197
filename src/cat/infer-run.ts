import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rm, truncate } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { parseJsonl } from "../data/jsonl.js";
import type { PromptRow } from "../data/prompt-rows.js";
import { commandOfKind, RunKindSchema } from "../run/run-kind.js";
import { appendLineDurable, TMP_FILE, writeFileAtomic } from "../util/atomic-write.js";
import { UserError } from "../util/errors.js";
import { readJsonFile } from "../util/json-file.js";
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
  const runFile = path.join(dir, "run.json");
  let created = manifest.created;
  if (existsSync(runFile)) {
    const kind = (await readJsonFile(runFile, RunKindSchema, "a catrl run's run.json")).kind;
    if (kind !== INFER_KIND)
      throw new UserError(
        `${dir}: holds a \`${commandOfKind(kind)}\` run, not an infer run; give \`catrl infer\` its own --out`,
      );
    const old = await readJsonFile(runFile, InferManifestSchema, "a catrl infer run");
    const differs = IDENTITY_FIELDS.filter(
      (k) => JSON.stringify(old.config[k]) !== JSON.stringify(manifest.config[k]),
    );
    if (differs.length > 0) {
      throw new UserError(
        `${runFile}: this directory holds a run with other settings (${differs.join(", ")}); use another --out`,
      );
    }
    // A resume is the same run: it keeps the date the run began.
    created = old.created;
    // Temporaries of writes a kill interrupted (`run.json.tmp-PID`).
    for (const f of await readdir(dir)) if (TMP_FILE.test(f)) await rm(path.join(dir, f), { force: true });
  }
  await mkdir(dir, { recursive: true });
  await writeFileAtomic(runFile, `${JSON.stringify({ ...manifest, created }, null, 2)}\n`);
  return { dir, results: path.join(dir, "results.jsonl"), badRows: path.join(dir, "bad-rows.jsonl") };
}

/**
 * A row's content, hashed: what its finished result was computed from. A data file edited under the same
 * path and ids must not be served stale results.
 */
export function rowHash(row: PromptRow): string {
  return createHash("sha256")
    .update(JSON.stringify({ prompt: row.prompt, gold: row.gold ?? null }))
    .digest("hex");
}

export type FinishedRow = { id: string; line: number; row_sha256?: string };

/**
 * Finished prompts by id, with the content hash each was computed from; a torn last line (killed
 * mid-write) is cut off so the file stays valid JSONL.
 */
export async function finishedRows(resultsFile: string): Promise<Map<string, FinishedRow>> {
  const done = new Map<string, FinishedRow>();
  if (!existsSync(resultsFile)) return done;
  const text = await readFile(resultsFile, "utf8");
  const end = text.lastIndexOf("\n") + 1;
  if (end < text.length) await truncate(resultsFile, Buffer.byteLength(text.slice(0, end)));
  for (const item of parseJsonl<Record<string, unknown>>(text.slice(0, end))) {
    // A corrupt middle line: its prompt simply runs again.
    if (item.error) continue;
    const r = item.value as { id: unknown; line: number; row_sha256?: string };
    done.set(String(r.id), { id: String(r.id), line: r.line, row_sha256: r.row_sha256 });
  }
  return done;
}

/**
 * The rows still to run. A finished prompt whose row changed since (another prompt or gold answer under
 * the same id) is refused, naming the rows: its result would be served stale. Results written before
 * rows were hashed carry no hash and are taken as they are.
 */
export function rowsToRun(
  dataFile: string,
  dir: string,
  rows: PromptRow[],
  done: Map<string, FinishedRow>,
): PromptRow[] {
  const changed = rows.filter((r) => {
    const d = done.get(r.id);
    return d?.row_sha256 !== undefined && d.row_sha256 !== rowHash(r);
  });
  if (changed.length > 0) {
    const list = changed
      .slice(0, 5)
      .map((r) => `${r.id} (line ${r.line})`)
      .join(", ");
    throw new UserError(
      `${dataFile}: ${changed.length} finished prompt${changed.length > 1 ? "s" : ""} changed since ${dir} ran ${changed.length > 1 ? "them" : "it"}: ${list}${changed.length > 5 ? ", ..." : ""}; use another --out to run the new data`,
    );
  }
  return rows.filter((r) => !done.has(r.id));
}

export async function appendResult(resultsFile: string, r: PromptResult, row: PromptRow): Promise<void> {
  await appendLineDurable(resultsFile, JSON.stringify({ ...r, row_sha256: rowHash(row) }));
}

export async function readResults(dir: string): Promise<PromptResult[]> {
  const file = path.join(dir, "results.jsonl");
  if (!existsSync(file)) throw new UserError(`${file}: no results (run \`catrl infer --out ${dir}\` first)`);
  const out: PromptResult[] = [];
  const text = await readFile(file, "utf8");
  const lastLine = text.split("\n").length;
  for (const item of parseJsonl<PromptResult>(text)) {
    if (!item.error) out.push(item.value);
    // An unterminated last line is a write cut short by a kill: skipped without a word.
    else if (item.line < lastLine) process.stderr.write(`${file}:${item.line}: not JSON (line skipped)\n`);
  }
  return out;
}
