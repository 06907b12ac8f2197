import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { readConfigFile } from "../src/rl/train-config.js";
import { UserError } from "../src/util/errors.js";
import { CLI, SHIPPED_STORIES } from "./helpers/shared.js";

const exec = promisify(execFile);

function configFile(body: unknown): string {
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), "catrl-config-")), "train.json");
  writeFileSync(file, JSON.stringify(body));
  return file;
}

describe("train --config is strict", () => {
  it("returns the known keys as given", () => {
    const file = configFile({ loraRank: 8, lr: 3e-3 });
    expect(readConfigFile(file, ["loraRank", "lr", "steps"])).toEqual({ loraRank: 8, lr: 3e-3 });
  });

  it("refuses a key that is not a flag, naming the key and the file", () => {
    const file = configFile({ loraRank: 8, lora_rank: 4 });
    expect(() => readConfigFile(file, ["loraRank"])).toThrow(UserError);
    expect(() => readConfigFile(file, ["loraRank"])).toThrow(`${file}: Unrecognized key: "lora_rank"`);
  });

  it("catrl train stops with one line before creating the run directory", async () => {
    const file = configFile({ promptsPerStep: 2, loraRnak: 8 });
    const out = path.join(path.dirname(file), "run");
    const data = path.join(path.dirname(file), "p.jsonl");
    writeFileSync(data, `${JSON.stringify({ prompt: "hi" })}\n`);
    const err = await exec(
      "node",
      [CLI, "train", "--model", SHIPPED_STORIES, "--data", data, "--out", out, "--config", file],
      {
        env: { ...process.env, CATRL_THREADS: "1" },
      },
    ).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    expect(err?.code).toBe(1);
    const lines = (err?.stderr ?? "").trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(file);
    expect(lines[0]).toContain('"loraRnak"');
    expect(existsSync(out)).toBe(false);
  });
});
