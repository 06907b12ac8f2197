import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import type { z } from "zod";
import { parseJsonlLine } from "../data/jsonl.js";
import {
  type EvalRecord,
  EvalRecordSchema,
  RUN_FILES,
  type RunManifest,
  RunManifestSchema,
  type StepRecord,
  StepRecordSchema,
} from "../rl/records.js";
import { UserError } from "../util/errors.js";
import { describeZodError } from "../util/zod-error.js";

/**
 * Reads a run directory for the report. A report is most useful while a run is going or after it broke,
 * so it is tolerant: lines that fail to parse are left out and listed as problems (file and line), and
 * the rest is still shown. `strict` turns the first error into a UserError instead (for scripts that
 * must not publish a report over bad data). An unterminated, unparsable last line is a note, not an
 * error: the training loop may be writing it right now.
 */

export type Problem = {
  file: string;
  /** 1-based; absent for whole-file problems. */
  line?: number;
  message: string;
  severity: "error" | "note";
};

export type RunData = {
  dir: string;
  steps: StepRecord[];
  evals: EvalRecord[];
  run?: RunManifest;
  /** Which of the three files exist at all (a missing evals.jsonl is normal early on). */
  present: { steps: boolean; evals: boolean; run: boolean };
  problems: Problem[];
};

export function formatProblem(p: Problem): string {
  return `${p.file}${p.line === undefined ? "" : `:${p.line}`}: ${p.message}`;
}

async function readIfPresent(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new UserError(`${file}: cannot read (${(e as Error).message})`, 1, { cause: e });
  }
}

/**
 * Parses a run's JSONL records (each line through data/jsonl's parseJsonlLine); keeps the valid ones with
 * their line numbers. Unlike a dataset, a record lists up to three faults, and an unterminated last line
 * is a note: the run may still be writing it.
 */
export function parseRunRecords<T>(
  text: string,
  file: string,
  schema: z.ZodType<T>,
): { records: Array<{ line: number; value: T }>; problems: Problem[] } {
  const records: Array<{ line: number; value: T }> = [];
  const problems: Problem[] = [];
  const lines = text.split("\n");
  const unterminated = !text.endsWith("\n");
  lines.forEach((raw, i) => {
    const line = i + 1;
    if (raw.trim() === "") return;
    const item = parseJsonlLine(raw, line);
    if (item.error) {
      const isLast = i === lines.length - 1 && unterminated;
      problems.push(
        isLast
          ? { file, line, severity: "note", message: "incomplete last line, left out (still being written?)" }
          : { file, line, severity: "error", message: `not valid JSON (${item.error.message})` },
      );
      return;
    }
    const parsed = schema.safeParse(item.value);
    if (parsed.success) records.push({ line, value: parsed.data });
    else problems.push({ file, line, severity: "error", message: describeZodError(parsed.error) });
  });
  return { records, problems };
}

/**
 * Sorts by step and keeps one record per step: a resumed run may write a step again, and the later
 * line is the one the run continued from.
 */
function byStep<T extends { step: number }>(
  records: Array<{ line: number; value: T }>,
  file: string,
  problems: Problem[],
): T[] {
  const seen = new Map<number, { line: number; value: T }>();
  for (const r of records) {
    const earlier = seen.get(r.value.step);
    if (earlier) {
      problems.push({
        file,
        line: r.line,
        severity: "note",
        message: `step ${r.value.step} also on line ${earlier.line}; showing this later one`,
      });
    }
    seen.set(r.value.step, r);
  }
  return [...seen.values()].sort((a, b) => a.value.step - b.value.step).map((r) => r.value);
}

export async function loadRun(dir: string, options: { strict?: boolean } = {}): Promise<RunData> {
  const st = await stat(dir).catch(() => undefined);
  if (!st?.isDirectory()) throw new UserError(`${dir}: no such run directory`);

  const [stepsText, evalsText, runText] = await Promise.all(
    [RUN_FILES.steps, RUN_FILES.evals, RUN_FILES.run].map((f) => readIfPresent(path.join(dir, f))),
  );
  if (stepsText === undefined && evalsText === undefined && runText === undefined) {
    throw new UserError(
      `${dir}: not a catrl run directory (none of ${RUN_FILES.run}, ${RUN_FILES.steps}, ${RUN_FILES.evals})`,
    );
  }

  const problems: Problem[] = [];
  const stepsFile = path.join(dir, RUN_FILES.steps);
  const evalsFile = path.join(dir, RUN_FILES.evals);
  const runFile = path.join(dir, RUN_FILES.run);

  const stepsParsed = parseRunRecords(stepsText ?? "", stepsFile, StepRecordSchema);
  const evalsParsed = parseRunRecords(evalsText ?? "", evalsFile, EvalRecordSchema);
  problems.push(...stepsParsed.problems, ...evalsParsed.problems);
  const steps = byStep(stepsParsed.records, stepsFile, problems);
  const evals = byStep(evalsParsed.records, evalsFile, problems);

  let run: RunManifest | undefined;
  if (runText === undefined) {
    problems.push({
      file: runFile,
      severity: "note",
      message: "missing; config, models and versions unknown",
    });
  } else {
    run = parseRunManifest(runText, runFile, problems);
  }

  if (options.strict) {
    const first = problems.find((p) => p.severity === "error");
    if (first) throw new UserError(formatProblem(first));
  }
  return {
    dir,
    steps,
    evals,
    run,
    present: { steps: stepsText !== undefined, evals: evalsText !== undefined, run: runText !== undefined },
    problems,
  };
}

function parseRunManifest(text: string, file: string, problems: Problem[]): RunManifest | undefined {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    const message = (e as Error).message;
    problems.push({
      file,
      line: lineOfPosition(text, message),
      severity: "error",
      message: `not valid JSON (${message})`,
    });
    return undefined;
  }
  const parsed = RunManifestSchema.safeParse(json);
  if (parsed.success) return parsed.data;
  problems.push({ file, severity: "error", message: describeZodError(parsed.error) });
  return undefined;
}

/** V8's JSON.parse errors give a character position; turn it into the line a person can open. */
function lineOfPosition(text: string, message: string): number | undefined {
  const m = /position (\d+)/.exec(message);
  if (!m) return undefined;
  return text.slice(0, Number(m[1])).split("\n").length;
}
