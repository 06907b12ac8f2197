import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { CLI, REPO_ROOT, readJsonlFile, SHIPPED_STORIES } from "./helpers/shared.js";

const exec = promisify(execFile);
// Each case is seconds; the budget is for a machine loaded many times over (CI must not flake).
const BUDGET_MS = 300_000;
const TASK = path.join(REPO_ROOT, "examples/first-word-task.mjs");

async function catrl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec("node", [CLI, ...args], {
      env: { ...process.env, CATRL_THREADS: "1" },
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

const inferArgs = (data: string, out: string) => [
  "infer",
  "--model",
  SHIPPED_STORIES,
  "--data",
  data,
  "--task",
  TASK,
  "-G",
  "2",
  "--max-tokens",
  "6",
  "--estimators",
  "single,majority",
  "--out",
  out,
];

const writeRows = (file: string, rows: object[]) =>
  writeFileSync(file, `${rows.map((r) => JSON.stringify(r)).join("\n")}\n`);

/** Bad input around `catrl infer`, on the model shipped in models/ (G=2, 6 tokens: about a second a run). */
describe("catrl infer: changed data, unusable rows, foreign directories", { timeout: BUDGET_MS }, () => {
  let dir: string;
  let data: string;
  let out: string;
  let first: { code: number; stderr: string };
  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "catrl-infer-inputs-"));
    data = path.join(dir, "data.jsonl");
    writeRows(data, [
      { id: "p0", prompt: "Tom went to the park." },
      { id: "p1", prompt: "The sun was hot." },
    ]);
    out = path.join(dir, "run");
    first = await catrl(inferArgs(data, out));
  }, BUDGET_MS);

  it("keys finished prompts by their row's content, and refuses rows changed under the same id", async () => {
    expect(first.code, first.stderr).toBe(0);
    const results = readJsonlFile(path.join(out, "results.jsonl"));
    // Results are written as each prompt completes: compare as sets.
    expect(results.map((r) => r.id).sort()).toEqual(["p0", "p1"]);
    for (const r of results) expect(r.row_sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(results[0].row_sha256).not.toBe(results[1].row_sha256);
    const created = JSON.parse(readFileSync(path.join(out, "run.json"), "utf8")).created;

    // Unchanged: a resume with nothing to do, and run.json keeps the date the run began; temporaries a
    // kill left are removed.
    const tmps = ["run.json.tmp-99999", "bad-rows.jsonl.tmp-12"].map((f) => path.join(out, f));
    for (const f of tmps) writeFileSync(f, "{");
    const again = await catrl(inferArgs(data, out));
    for (const f of tmps) expect(existsSync(f), f).toBe(false);
    expect(again.stderr).toMatch(/2 prompts already done, 0 to go/);
    expect(JSON.parse(readFileSync(path.join(out, "run.json"), "utf8")).created).toBe(created);

    // The same path and ids, another prompt in p1: its stored result is stale.
    writeRows(data, [
      { id: "p0", prompt: "Tom went to the park." },
      { id: "p1", prompt: "A cat sat on a mat." },
    ]);
    const changed = await catrl(inferArgs(data, out));
    expect(changed.code).not.toBe(0);
    expect(changed.stderr.trim()).toBe(
      `catrl: ${data}: 1 finished prompt changed since ${out} ran it: p1 (line 2); use another --out to run the new data`,
    );
    expect(readJsonlFile(path.join(out, "results.jsonl"))).toEqual(results);
  });

  it("with no usable rows, gives the reason for each row", async () => {
    const bad = path.join(dir, "bad.jsonl");
    writeFileSync(
      bad,
      [
        '{"id": "torn", "prompt": ',
        JSON.stringify({ id: "noprompt", text: "x" }),
        JSON.stringify({ id: "long", prompt: "Once upon a time ".repeat(700) }),
      ].join("\n"),
    );
    const r = await catrl(inferArgs(bad, path.join(dir, "bad-run")));
    expect(r.code).not.toBe(0);
    const lines = r.stderr.trim().split("\n");
    expect(lines[0]).toMatch(new RegExp(`^${bad}:1: \\(json\\): `));
    expect(lines[1]).toMatch(new RegExp(`^${bad}:2: \\(row\\): no prompt field`));
    expect(lines[2]).toMatch(new RegExp(`^${bad}:3: prompt: too long for the model: \\d+ prompt tokens`));
    expect(lines[3]).toBe(`catrl: ${bad}: no usable prompt rows (3 bad rows, listed above)`);
    expect(lines).toHaveLength(4);
  });

  it("into a training run's directory, says so plainly", async () => {
    const train = path.join(dir, "a-train-run");
    mkdirSync(train);
    writeFileSync(path.join(train, "run.json"), JSON.stringify({ kind: "catrl-train", config: {} }, null, 2));
    const r = await catrl(inferArgs(data, train));
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim()).toBe(
      `catrl: ${train}: holds a \`catrl train\` run, not an infer run; give \`catrl infer\` its own --out`,
    );
  });

  it("a corrupt run.json is one line naming it", async () => {
    const broken = path.join(dir, "broken");
    mkdirSync(broken);
    const runFile = path.join(broken, "run.json");
    writeFileSync(runFile, '{"kind": "catrl-infer",\n  "created": oops\n}\n');
    const r = await catrl(inferArgs(data, broken));
    expect(r.code).not.toBe(0);
    const lines = r.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^catrl: ${runFile}: corrupt: not valid JSON`));
  });
});
