import { execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { CLI, STORIES } from "./helpers/shared.js";

const run = promisify(execFile);

async function catrl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run("node", [CLI, ...args], {
      env: { ...process.env, CATRL_THREADS: "1" },
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

/** The error contract: non-zero exit, one line that names the file and the problem, no stack trace. */
function expectOneLineError(r: { code: number; stderr: string }, file: string, problem: RegExp) {
  expect(r.code).not.toBe(0);
  const lines = r.stderr.trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toContain(file);
  expect(lines[0]).toMatch(problem);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

describe("catrl rollout: bad input", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "catrl-bad-"));
  });
  const rollout = (model: string, extra: string[] = []) =>
    catrl(["rollout", "--model", model, "--prompt", "Once", "-G", "1", "--max-tokens", "4", ...extra]);

  it("a missing path", async () => {
    const f = path.join(dir, "missing.gguf");
    expectOneLineError(await rollout(f), f, /no such file/);
  });

  it("a file that is not GGUF", async () => {
    const f = path.join(dir, "notes.gguf");
    writeFileSync(f, "these are not weights\n");
    expectOneLineError(await rollout(f), f, /not a GGUF file/);
  });

  it("a GGUF v1 file", async () => {
    const f = path.join(dir, "v1.gguf");
    const b = Buffer.alloc(64);
    b.write("GGUF", 0, "latin1");
    b.writeUInt32LE(1, 4);
    writeFileSync(f, b);
    expectOneLineError(await rollout(f), f, /version 1 is not supported/);
  });

  it("a truncated GGUF", async () => {
    const f = path.join(dir, "truncated.gguf");
    writeFileSync(f, readFileSync(STORIES).subarray(0, 700_000));
    expectOneLineError(await rollout(f), f, /truncated/);
  });

  it("an architecture llama.cpp does not know", async () => {
    const f = path.join(dir, "alien.gguf");
    const b = Buffer.from(readFileSync(STORIES));
    // general.architecture is a GGUF string (u64 length, bytes) right after its key and type tag.
    const key = b.indexOf("general.architecture");
    const value = key + "general.architecture".length + 4 + 8;
    expect(b.toString("latin1", value, value + 5)).toBe("llama");
    b.write("alien", value, "latin1");
    writeFileSync(f, b);
    expectOneLineError(await rollout(f), f, /architecture 'alien' is not known/);
  });

  it("a context that cannot fit", async () => {
    expectOneLineError(await rollout(STORIES, ["--max-tokens", "5000"]), STORIES, /context too small/);
  });

  it("an hf: model that is not in the local cache, offline", async () => {
    const spec = "hf:nobody/no-model-GGUF/no-model.Q8_0.gguf";
    const r = await run("node", [CLI, "rollout", "--model", spec, "--prompt", "x"], {
      env: { ...process.env, CATRL_OFFLINE: "1", HOME: dir },
    }).catch((e) => e as { code: number; stderr: string });
    expectOneLineError(r as { code: number; stderr: string }, spec, /not available locally/);
  });

  it("a bad option value names the option", async () => {
    const r = await rollout(STORIES, ["--threads", "zero"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--threads must be an integer/);
  });

  it("prints the stack with --verbose", async () => {
    const r = await catrl([
      "--verbose",
      "rollout",
      "--model",
      path.join(dir, "missing.gguf"),
      "--prompt",
      "x",
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/\n\s+at /);
  });
});

describe("catrl rollout: output and Ctrl-C", () => {
  it("writes one JSON object per rollout with the documented fields", async () => {
    const r = await catrl([
      "rollout",
      "--model",
      STORIES,
      "--prompt",
      "Once upon a time",
      "-G",
      "3",
      "--max-tokens",
      "16",
      "--seed",
      "40",
      "--json",
    ]);
    expect(r.code).toBe(0);
    const rows = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(rows).toHaveLength(3);
    expect(rows.map((x) => x.seed).sort()).toEqual([40, 41, 42]);
    for (const x of rows) {
      expect(x.prompt_index).toBe(0);
      expect(x.tokens).toHaveLength(16);
      expect(x.logprobs).toHaveLength(16);
      expect(x.finish_reason).toBe("max_tokens");
      expect(typeof x.text).toBe("string");
    }
    expect(r.stderr).toMatch(/rollouts\/s/);
  });

  it("stops cleanly on Ctrl-C and keeps the finished rollouts", async () => {
    // One sequence at a time so that rollouts finish one after another.
    const child = spawn(
      "node",
      [
        CLI,
        "rollout",
        "--model",
        STORIES,
        "--prompt",
        "Once",
        "-G",
        "6",
        "--max-tokens",
        "1500",
        "--json",
      ].concat(["--max-sequences", "1", "--seed", "1"]),
      { env: { ...process.env, CATRL_THREADS: "1" } },
    );
    let stdout = "";
    let stderr = "";
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    const exit = new Promise<number | null>((res) => child.on("close", (code) => res(code)));
    await new Promise<void>((res) => {
      child.stdout.on("data", (d) => {
        stdout += d;
        if (stdout.includes("\n")) res();
      });
    });
    child.kill("SIGINT");
    const code = await exit;
    expect(code).toBe(130);
    const lines = stdout.trim().split("\n");
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(lines.length).toBeLessThan(6);
    for (const l of lines) expect(JSON.parse(l).tokens).toHaveLength(1500);
    expect(stderr).toMatch(new RegExp(`interrupted: kept ${lines.length} finished rollouts`));
  });
});
