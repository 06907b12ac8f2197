import { existsSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { writeFileAtomic } from "../util/atomic-write.js";
import { UserError } from "../util/errors.js";
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
  let manifest: z.infer<typeof RunManifestSchema>;
  try {
    manifest = RunManifestSchema.parse(JSON.parse(await readFile(runFile, "utf8")));
  } catch (e) {
    const msg =
      e instanceof z.ZodError
        ? `${e.issues[0].path.join(".")}: ${e.issues[0].message}`
        : (e as Error).message;
    throw new UserError(`${runFile}: not a catrl training run or corrupt (${msg})`);
  }
  const stateFile = path.join(dir, STATE_FILE);
  let state = initialState();
  if (existsSync(stateFile)) {
    const parsed = TrainStateSchema.safeParse(
      JSON.parse(await readFile(stateFile, "utf8").catch(() => "null")),
    );
    if (!parsed.success)
      throw new UserError(`${stateFile}: corrupt training state (${parsed.error.issues[0].message})`);
    state = parsed.data;
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
export async function prepareNewRun(dir: string): Promise<void> {
  if (existsSync(path.join(dir, RUN_FILES.run)) || existsSync(path.join(dir, STATE_FILE))) {
    throw new UserError(
      `${dir}: already holds a run; continue it with \`catrl train --resume ${dir}\` or pick another --out`,
    );
  }
  await mkdir(path.join(dir, "adapters"), { recursive: true });
  await mkdir(path.join(dir, "checkpoints"), { recursive: true });
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
    const kept = lines.filter((l) => {
      try {
        return ok(JSON.parse(l));
      } catch {
        return false;
      }
    });
    if (kept.length !== lines.length) await writeFileAtomic(f, kept.map((l) => `${l}\n`).join(""));
  };
  await keep(RUN_FILES.steps, (r) => (r.step ?? 0) <= state.steps_done)();
  await keep(RUN_FILES.evals, (r) => state.evals_done.includes(r.step ?? -1))();
}
