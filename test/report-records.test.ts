import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadRun, parseRunRecords } from "../src/report/load.js";
import { EvalRecordSchema, RunManifestSchema, StepRecordSchema } from "../src/rl/records.js";
import { UserError } from "../src/util/errors.js";
import { FIXTURE, tmpDir, writeRun } from "./report-helpers.js";

const fixtureLines = (name: string): unknown[] =>
  readFileSync(path.join(FIXTURE, name), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));

describe("run record schemas", () => {
  it("accepts every fixture record", () => {
    for (const s of fixtureLines("steps.jsonl")) expect(StepRecordSchema.safeParse(s).success).toBe(true);
    for (const e of fixtureLines("evals.jsonl")) expect(EvalRecordSchema.safeParse(e).success).toBe(true);
    const run = RunManifestSchema.parse(JSON.parse(readFileSync(path.join(FIXTURE, "run.json"), "utf8")));
    expect(run.models.map((m) => m.role)).toEqual(["policy", "anchor"]);
  });

  it("is lenient on presence: a bare step parses; null metrics (NaN written by JSON) are absent", () => {
    expect(StepRecordSchema.parse({ step: 0 })).toEqual({ step: 0 });
    expect(StepRecordSchema.parse({ step: 3, loss: null, kl: null }).loss).toBeNull();
  });

  it.each([
    [{ step: 1.5 }, "step"],
    [{ step: -1 }, "step"],
    [{ step: 1, kl: "0.1" }, "kl"],
    [{ step: 1, zero_variance_share: 1.2 }, "zero_variance_share"],
    [{ step: 1, zero_variance_groups: 2.5 }, "zero_variance_groups"],
    [{ step: 1, skipped: "no" }, "skipped"],
    [{ step: 1, time: { rollouts_s: -3 } }, "time.rollouts_s"],
    [{ step: 1, timestamp: "yesterday" }, "timestamp"],
  ])("is strict on types: %j fails at %s", (record, field) => {
    const r = StepRecordSchema.safeParse(record);
    expect(r.success).toBe(false);
    expect(r.error?.issues[0].path.join(".")).toBe(field);
  });

  it("checks evals: accuracies in [0,1], G keys positive integers, gold_available required", () => {
    const ok = {
      step: 0,
      n_prompts: 10,
      policy_single_accuracy: 0.5,
      synthesis_accuracy: 0.6,
      gold_available: false,
    };
    expect(EvalRecordSchema.safeParse(ok).success).toBe(true);
    expect(EvalRecordSchema.safeParse({ ...ok, accuracy_by_g: { "1": 0.5, "8": 0.7 } }).success).toBe(true);
    expect(EvalRecordSchema.safeParse({ ...ok, accuracy_by_g: { "0": 0.5 } }).success).toBe(false);
    expect(EvalRecordSchema.safeParse({ ...ok, accuracy_by_g: { eight: 0.5 } }).success).toBe(false);
    expect(EvalRecordSchema.safeParse({ ...ok, synthesis_accuracy: 1.5 }).success).toBe(false);
    const { gold_available: _, ...noGold } = ok;
    expect(EvalRecordSchema.safeParse(noGold).success).toBe(false);
  });

  it("checks run.json: kind, sha256, versions", () => {
    const run = JSON.parse(readFileSync(path.join(FIXTURE, "run.json"), "utf8"));
    expect(RunManifestSchema.safeParse({ ...run, kind: "catrl-eval" }).success).toBe(false);
    const badSha = { ...run, models: [{ ...run.models[0], sha256: "ABC" }] };
    expect(RunManifestSchema.safeParse(badSha).success).toBe(false);
    expect(RunManifestSchema.safeParse({ ...run, versions: { catrl: "0.1.0" } }).success).toBe(false);
    // The config belongs to the training loop: anything goes.
    expect(RunManifestSchema.safeParse({ ...run, config: { anything: [1, { a: null }] } }).success).toBe(
      true,
    );
  });
});

describe("reading a run directory", () => {
  it("names file and line for bad JSON and bad fields, keeps the rest", () => {
    const text = '{"step":1}\n{"step":2,\n\n{"step":3,"kl":"x"}\n{"step":4}\n';
    const { records, problems } = parseRunRecords(text, "steps.jsonl", StepRecordSchema);
    expect(records.map((r) => r.value.step)).toEqual([1, 4]);
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatchObject({ file: "steps.jsonl", line: 2, severity: "error" });
    expect(problems[0].message).toMatch(/not valid JSON/);
    expect(problems[1]).toMatchObject({ line: 4, severity: "error" });
    expect(problems[1].message).toMatch(/^kl: /);
  });

  it("treats an unterminated unparsable last line as a note (the loop may be writing it)", () => {
    const { records, problems } = parseRunRecords(
      '{"step":1}\n{"step":2,"re',
      "steps.jsonl",
      StepRecordSchema,
    );
    expect(records).toHaveLength(1);
    expect(problems).toEqual([expect.objectContaining({ line: 2, severity: "note" })]);
  });

  it("keeps the later record of a repeated step and sorts by step", async () => {
    const dir = writeRun({ steps: '{"step":2,"kl":0.1}\n{"step":1}\n{"step":2,"kl":0.2}\n' });
    const data = await loadRun(dir);
    expect(data.steps.map((s) => [s.step, s.kl])).toEqual([
      [1, undefined],
      [2, 0.2],
    ]);
    expect(
      data.problems.some((p) => p.line === 3 && p.severity === "note" && /also on line 1/.test(p.message)),
    ).toBe(true);
  });

  it("reports a malformed line with its path and line; --strict turns it into a UserError", async () => {
    const dir = writeRun({ steps: '{"step":1}\n{"step":"two"}\n', evals: "" });
    const data = await loadRun(dir);
    expect(data.steps).toHaveLength(1);
    const err = data.problems.find((p) => p.severity === "error");
    expect(err).toMatchObject({ file: path.join(dir, "steps.jsonl"), line: 2 });
    await expect(loadRun(dir, { strict: true })).rejects.toThrow(UserError);
    await expect(loadRun(dir, { strict: true })).rejects.toThrow(`${path.join(dir, "steps.jsonl")}:2: step:`);
  });

  it("reports an unreadable run.json without failing the report", async () => {
    const data = await loadRun(writeRun({ steps: "", run: '{\n  "kind": "catrl-train",\n  oops\n}\n' }));
    expect(data.run).toBeUndefined();
    expect(data.problems).toEqual([expect.objectContaining({ severity: "error", line: 3 })]);
    const wrong = await loadRun(writeRun({ steps: "", run: '{"kind":"other"}' }));
    expect(wrong.problems[0].message).toMatch(/^kind: /);
  });

  it("refuses a missing directory and a directory with none of the run files", async () => {
    await expect(loadRun(path.join(tmpDir(), "nope"))).rejects.toThrow(/no such run directory/);
    await expect(loadRun(tmpDir())).rejects.toThrow(/not a catrl run directory/);
  });
});
