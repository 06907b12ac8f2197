import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rm } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { parseJsonlLine } from "../data/jsonl.js";
import { commandOfKind, RunKindSchema } from "../run/run-kind.js";
import { TMP_FILE, writeFileAtomic } from "../util/atomic-write.js";
import { UserError } from "../util/errors.js";
import { readJsonFile } from "../util/json-file.js";
import { RUN_FILES, RunManifestSchema } from "./records.js";

/**
 * A training run directory: run.json (the resolved options, seeds, model hashes, versions), state.json
 * (how many steps are done and where their adapter and checkpoint are; replaced atomically after each
 * step), steps.jsonl and evals.jsonl (one line per step / evaluation), adapters/, checkpoints/.
 */
export const STATE_FILE = "state.json";

export const TrainStateSchema = z.object({
  kind: z.literal("catrl-train-state"),
  steps_done: z.number().int().min(0),
  adapter: z.string().nullable(),
  checkpoint: z.string().nullable(),
  evals_done: z.array(z.number().int()),
  updated: z.string(),
});
export type TrainState = z.infer<typeof TrainStateSchema>;

export const initialState = (): TrainState => ({
  kind: "catrl-train-state",
  steps_done: 0,
  adapter: null,
  checkpoint: null,
  evals_done: [],
  updated: new Date().toISOString(),
});

export async function writeState(dir: string, s: TrainState): Promise<void> {
  await writeFileAtomic(
    path.join(dir, STATE_FILE),
    `${JSON.stringify({ ...s, updated: new Date().toISOString() }, null, 2)}\n`,
  );
}

/** Reads a run to resume; anything that is not a catrl training run is refused with the reason. */
export async function readRunForResume(
  dir: string,
): Promise<{ options: Record<string, unknown>; state: TrainState }> {
  const runFile = path.join(dir, RUN_FILES.run);
  if (!existsSync(dir)) throw new UserError(`${dir}: no such run directory`);
  if (!existsSync(runFile)) throw new UserError(`${dir}: not a catrl training run (no run.json)`);
  const kind = (await readJsonFile(runFile, RunKindSchema, "a catrl run's run.json")).kind;
  if (kind !== "catrl-train")
    throw new UserError(
      `${dir}: holds a \`${commandOfKind(kind)}\` run, not a catrl training run; \`--resume\` continues training runs only`,
    );
  const manifest = await readJsonFile(runFile, RunManifestSchema, "a catrl training run");
  const stateFile = path.join(dir, STATE_FILE);
  let state = initialState();
  if (existsSync(stateFile)) {
    state = await readJsonFile(stateFile, TrainStateSchema, "a catrl training state");
    for (const f of [state.adapter, state.checkpoint]) {
      if (f && !existsSync(path.join(dir, f)))
        throw new UserError(`${stateFile}: names ${f}, which is missing from ${dir}`);
    }
  }
  const options = (manifest.config as { options?: Record<string, unknown> }).options;
  if (!options) throw new UserError(`${runFile}: has no config.options to resume from`);
  return { options, state };
}

/** A fresh run may not overwrite another run's files. */
export function refuseExistingRun(dir: string): void {
  if (existsSync(path.join(dir, RUN_FILES.run)) || existsSync(path.join(dir, STATE_FILE))) {
    throw new UserError(
      `${dir}: already holds a run; continue it with \`catrl train --resume ${dir}\` or pick another --out`,
    );
  }
}

/** Creates a fresh run's directories (after refuseExistingRun and every input check passed). */
export async function prepareNewRun(dir: string): Promise<void> {
  refuseExistingRun(dir);
  await mkdir(path.join(dir, "adapters"), { recursive: true });
  await mkdir(path.join(dir, "checkpoints"), { recursive: true });
}

export const BAD_ROWS_FILE = "bad-rows.jsonl";

/** DIR/bad-rows.jsonl: every input row left out (file, line, field, why), rewritten at each start. */
export async function writeBadRows(
  dir: string,
  bad: Array<{ file: string; line: number; field: string; message: string }>,
): Promise<void> {
  await writeFileAtomic(path.join(dir, BAD_ROWS_FILE), bad.map((b) => `${JSON.stringify(b)}\n`).join(""));
}

/**
 * Drops lines of steps.jsonl / evals.jsonl beyond what state.json says is done: a kill between a step's
 * record and its state update must not leave a record of a step that will run again.
 */
export async function trimRecords(dir: string, state: TrainState): Promise<void> {
  const keep = (file: string, ok: (rec: { step?: number }) => boolean) => async () => {
    const f = path.join(dir, file);
    if (!existsSync(f)) return;
    const lines = (await readFile(f, "utf8")).split("\n").filter((l) => l.trim());
    const kept = lines.filter((l, i) => {
      const item = parseJsonlLine<{ step?: number }>(l, i + 1);
      return !item.error && ok(item.value);
    });
    if (kept.length !== lines.length) await writeFileAtomic(f, kept.map((l) => `${l}\n`).join(""));
  };
  await keep(RUN_FILES.steps, (r) => (r.step ?? 0) <= state.steps_done)();
  await keep(RUN_FILES.evals, (r) => state.evals_done.includes(r.step ?? -1))();
}

/**
 * What a kill leaves behind, removed on the next start: temporaries of atomic writes (`state.json.tmp-PID`,
 * `adapters/*.tmp-PID`, `checkpoints/NAME/state.bin.tmp`) and checkpoints other than the one state.json
 * names (a kill right after the state.json rename leaves the previous one: gigabytes on real models).
 */
export async function removeLeftovers(dir: string, state: TrainState): Promise<string[]> {
  const removed: string[] = [];
  const drop = async (rel: string) => {
    await rm(path.join(dir, rel), { recursive: true, force: true });
    removed.push(rel);
  };
  const list = async (rel: string) =>
    readdir(path.join(dir, rel), { withFileTypes: true }).catch(() => [] as import("node:fs").Dirent[]);
  for (const sub of ["", "adapters"]) {
    for (const e of await list(sub))
      if (e.isFile() && TMP_FILE.test(e.name)) await drop(path.join(sub, e.name));
  }
  for (const e of await list("checkpoints")) {
    const rel = path.join("checkpoints", e.name);
    if (rel !== state.checkpoint) await drop(rel);
    else for (const f of await list(rel)) if (TMP_FILE.test(f.name)) await drop(path.join(rel, f.name));
  }
  return removed;
}
