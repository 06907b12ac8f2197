import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { HEALTHBENCH_GRADER_ID } from "../src/cat/rubric/healthbench-grader.js";
import { healthBenchOverall } from "../src/data/healthbench.js";
import { CLI, HEALTHBENCH, hasStories, noStoriesReason, readJsonlFile, STORIES } from "./helpers/shared.js";

const run = promisify(execFile);
const hasData = hasStories && existsSync(HEALTHBENCH);
if (!hasData) console.warn(`${noStoriesReason}; or ${HEALTHBENCH} is absent`);
const env = { ...process.env, CATRL_THREADS: "1" };

/**
 * The free-form path on real llama.cpp: rubric proposed by the anchor under the rubric JSON grammar,
 * every (rollout, criterion) verdict read from the judge's next-token probabilities, then the HealthBench
 * score against the physician rubrics. stories260K writes stories, so the content is nonsense; what is
 * checked is that every step runs, is recorded for audit, and is consistent.
 */
describe.skipIf(!hasData)(
  "catrl infer --task freeform + catrl eval on HealthBench rows (stories260K)",
  () => {
    it("records rubric, verdicts with probabilities and rewards, and scores the physician rubrics", async () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), "catrl-hb-"));
      const lines = readFileSync(HEALTHBENCH, "utf8").split("\n").filter(Boolean);
      // The two shortest conversations: they fit stories260K's 2048-token context with room to spare.
      const short = lines
        .map((l) => ({
          l,
          n: JSON.parse(l).prompt.reduce((s: number, t: { content: string }) => s + t.content.length, 0),
        }))
        .sort((a, b) => a.n - b.n)
        .slice(0, 2);
      const data = path.join(dir, "hb.jsonl");
      writeFileSync(data, `${short.map((x) => x.l).join("\n")}\n`);
      const out = path.join(dir, "run");
      await run(
        "node",
        [
          CLI,
          "infer",
          "--model",
          STORIES,
          "--data",
          data,
          "--task",
          "freeform",
          "-G",
          "3",
          "--max-tokens",
          "16",
        ]
          .concat(["--synthesis-max-tokens", "32", "--rubric-retries", "1", "--out", out])
          .concat(
            // Two estimators keep eval's grading (the official grader prompt is long) within the time budget.
            ["--estimators", "synthesis,single"],
          ),
        { env },
      );
      const results = readJsonlFile(path.join(out, "results.jsonl"));
      expect(results).toHaveLength(2);
      let judged = 0;
      for (const r of results) {
        expect(r.rollouts).toHaveLength(3);
        expect(r.estimators.majority).toBeUndefined();
        if ("criteria" in r.rubric) {
          judged++;
          expect(r.rubric.criteria.length).toBeGreaterThanOrEqual(5);
          expect(r.verdicts).toHaveLength(3);
          r.verdicts.forEach((vs: { pYes: number | null; met: boolean | null }[], i: number) => {
            expect(vs).toHaveLength(r.rubric.criteria.length);
            const usable = vs.filter((v) => v.pYes != null);
            for (const v of usable) expect(v.met).toBe((v.pYes as number) >= 0.5);
            expect(r.rewards[i]).toBeCloseTo(usable.filter((v) => v.met).length / usable.length, 10);
          });
        } else {
          // A rubric that never parsed is reported, and its rollouts get no reward rather than a made-up one.
          expect(r.rubric.error).toMatch(/rubric/);
          expect(r.reward_note).toMatch(/rubric failed/);
          expect(r.rewards.every((x: number | null) => x === null)).toBe(true);
        }
      }
      expect(judged).toBeGreaterThan(0);

      await run("node", [CLI, "eval", out, "--gold", data, "--judge", STORIES], { env });
      const ev = JSON.parse(readFileSync(path.join(out, "eval.json"), "utf8"));
      expect(ev.kind).toBe("healthbench");
      expect(ev.n).toBe(2);
      for (const v of Object.values(ev.accuracy) as number[]) {
        expect(v).toBeGreaterThanOrEqual(0);
        expect(v).toBeLessThanOrEqual(1);
      }
      // The audit trail: every (response, criterion) verdict with P(yes), the grader prompt's version and
      // the judge's sha256; the eval score is the official aggregation of exactly these verdicts.
      const hb = ev.healthbench;
      expect(hb.grader_prompt).toBe(HEALTHBENCH_GRADER_ID);
      expect(hb.judge.sha256).toBe(createHash("sha256").update(readFileSync(STORIES)).digest("hex"));
      expect(hb.bootstrap_samples).toBe(1000);
      const recs = readJsonlFile(path.join(out, hb.verdicts_file));
      const gold = short.map((x) => JSON.parse(x.l));
      expect(recs).toHaveLength(2 * Object.keys(ev.accuracy).length);
      for (const est of Object.keys(ev.accuracy)) {
        const mine = gold.map((g) => recs.find((x) => x.prompt_id === g.prompt_id && x.estimator === est));
        mine.forEach((rec, i) => {
          expect(rec.grader_prompt).toBe(HEALTHBENCH_GRADER_ID);
          expect(rec.judge_sha256).toBe(hb.judge.sha256);
          expect(rec.verdicts.map((v: { criterion: string }) => v.criterion)).toEqual(
            gold[i].rubrics.map((c: { criterion: string }) => c.criterion),
          );
          for (const v of rec.verdicts) if (v.p_yes != null) expect(v.met).toBe(v.p_yes >= 0.5);
        });
        const again = healthBenchOverall(
          mine.map((rec, i) => ({
            rubrics: gold[i].rubrics,
            met: rec.verdicts.map((v: { met: boolean | null }) => v.met),
            exampleTags: gold[i].example_tags,
          })),
          { seed: 1 },
        );
        expect(ev.accuracy[est]).toBeCloseTo(again.overall, 12);
        expect(hb.estimators[est].bootstrap_std).toBeCloseTo(again.bootstrapStd, 12);
        expect(mine.map((rec) => rec.score)).toEqual(again.perExample);
      }
    });
  },
);
