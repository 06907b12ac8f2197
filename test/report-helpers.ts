import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

export const FIXTURE = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures", "report-run");

export function tmpDir(prefix = "catrl-report-"): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A run dir in a fresh temp folder; `undefined` leaves that file out. */
export function writeRun(files: { steps?: string; evals?: string; run?: string }): string {
  const dir = tmpDir();
  if (files.steps !== undefined) writeFileSync(path.join(dir, "steps.jsonl"), files.steps);
  if (files.evals !== undefined) writeFileSync(path.join(dir, "evals.jsonl"), files.evals);
  if (files.run !== undefined) writeFileSync(path.join(dir, "run.json"), files.run);
  return dir;
}

/** `n` plausible step lines, for size and layout tests (hundreds of steps). */
export function syntheticSteps(n: number): string {
  const lines: string[] = [];
  for (let step = 1; step <= n; step++) {
    const reward = 0.4 + 0.3 * (1 - Math.exp(-step / 80)) + 0.03 * Math.sin(step);
    lines.push(
      JSON.stringify({
        step,
        reward_mean: reward,
        reward_std: 0.3,
        zero_variance_groups: step % 5,
        zero_variance_share: (step % 5) / 8,
        kl: 0.0001 * step,
        loss: -0.02 + 0.01 * Math.cos(step),
        grad_norm: 0.8 + 0.2 * Math.sin(step / 3),
        clip_fraction: 0.01,
        skipped: step % 97 === 0,
        tokens_generated: 25_000,
        time: { rollouts_s: 30, synthesis_s: 8, judging_s: 2, training_s: 20, total_s: 61 },
        rollouts_per_s: 2,
        timestamp: new Date(Date.UTC(2026, 10, 30, 9, 0, step)).toISOString(),
      }),
    );
  }
  return `${lines.join("\n")}\n`;
}

export const CHROMIUM = process.env.CATRL_CHROMIUM ?? "/usr/bin/chromium";
export const haveChromium = existsSync(CHROMIUM);
export const inCI = process.env.CI === "true";
export const skipReason = `chromium not found at ${CHROMIUM} (apt-get install -y chromium, or set CATRL_CHROMIUM)`;

/** Headless Debian Chromium with the flags this offline machine needs; returns its stdout. */
export async function chromium(args: string[]): Promise<string> {
  const flags = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    `--user-data-dir=${tmpDir("catrl-chromium-")}`,
  ];
  const { stdout } = await promisify(execFile)(CHROMIUM, [...flags, ...args], {
    timeout: 90_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout;
}
