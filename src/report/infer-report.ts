import { existsSync } from "node:fs";
import path from "node:path";
import { z } from "zod";
import { answersMatch } from "../cat/answers/match.js";
import { InferManifestSchema, readResults } from "../cat/infer-run.js";
import type { PromptResult } from "../cat/pipeline.js";
import { readJsonFile } from "../util/json-file.js";
import { COLORS, type Figure } from "./charts.js";
import { bytes, CSP, card, figureHtml, flatten, keyValues, table } from "./page.js";
import { PAGE_SCRIPT } from "./page-script.js";
import { formatValue } from "./scale.js";
import { PAGE_CSS } from "./style.js";
import { esc } from "./svg.js";

/**
 * The page for a `catrl infer` directory: accuracy per estimator, accuracy vs G and the distribution of
 * rollout rewards. Accuracy is against gold answers when `catrl eval DIR --gold FILE` has written
 * eval.json (its numbers, as printed there); without it, the page shows each estimator's agreement with
 * the synthesized reference instead, and says so.
 */
const EvalJsonSchema = z.object({
  kind: z.enum(["answers", "healthbench"]),
  gold: z.string(),
  n: z.number().int(),
  accuracy: z.record(z.string(), z.number()),
  by_g: z.record(z.string(), z.record(z.string(), z.number())),
});
type EvalJson = z.infer<typeof EvalJsonSchema>;

export type InferRunData = {
  dir: string;
  run: z.infer<typeof InferManifestSchema>;
  results: PromptResult[];
  evalJson?: EvalJson;
};

export async function loadInferRun(dir: string): Promise<InferRunData> {
  const run = await readJsonFile(path.join(dir, "run.json"), InferManifestSchema, "a catrl infer run");
  const results = existsSync(path.join(dir, "results.jsonl")) ? await readResults(dir) : [];
  const evalFile = path.join(dir, "eval.json");
  const evalJson = existsSync(evalFile)
    ? await readJsonFile(evalFile, EvalJsonSchema, "`catrl eval` output")
    : undefined;
  return { dir, run, results, evalJson };
}

type Scores = {
  label: string;
  note: string;
  byEstimator: Record<string, number>;
  byG: Record<string, number>;
};

/** Accuracy from eval.json, else agreement with each prompt's synthesized reference (normalised match). */
export function inferScores(data: InferRunData): Scores {
  const ev = data.evalJson;
  if (ev) {
    return {
      label: ev.kind === "healthbench" ? "HealthBench score" : "accuracy",
      note: `against ${ev.gold} (catrl eval), ${ev.n} prompts`,
      byEstimator: ev.accuracy,
      byG: ev.by_g.synthesis ?? {},
    };
  }
  const rs = data.results.filter((r) => r.reference.answer != null);
  const agree = (pick: (r: PromptResult) => string | null | undefined) =>
    rs.length === 0
      ? Number.NaN
      : rs.filter((r) => answersMatch(pick(r), r.reference.answer)).length / rs.length;
  const names = [...new Set(rs.flatMap((r) => Object.keys(r.estimators)))].filter((n) => n !== "synthesis");
  const gs = [...new Set(rs.flatMap((r) => Object.keys(r.g_sweep ?? {})))].sort(
    (a, b) => Number(a) - Number(b),
  );
  return {
    label: "agreement with the synthesized reference",
    note: `no eval.json: agreement with each prompt's synthesized reference over all G (${rs.length} prompts with an answer); \`catrl eval ${data.dir} --gold FILE\` gives accuracy`,
    byEstimator: Object.fromEntries(
      names.map((n) => [n, agree((r) => r.estimators[n as keyof typeof r.estimators]?.answer)]),
    ),
    byG: Object.fromEntries(gs.map((g) => [g, agree((r) => r.g_sweep?.[g]?.synthesis_answer)])),
  };
}

const REWARD_BINS = 10;

function rewardFigure(results: PromptResult[]): Figure {
  const id = "rewards";
  const title = "Reward distribution";
  const rewards = results.flatMap((r) => r.rewards).filter((x): x is number => typeof x === "number");
  if (rewards.length === 0) return { id, title, legend: [], empty: "no rewards recorded" };
  const counts = new Array<number>(REWARD_BINS).fill(0);
  for (const x of rewards) counts[Math.min(REWARD_BINS - 1, Math.max(0, Math.floor(x * REWARD_BINS)))]++;
  const xs = counts.map((_, i) => (i + 0.5) / REWARD_BINS);
  return {
    id,
    title,
    subtitle: `${rewards.length} rollouts of ${results.length} prompts, in bins of ${1 / REWARD_BINS}`,
    legend: [{ name: "rollouts", color: COLORS.blue, style: "bar" }],
    chart: {
      kind: "stacked",
      xs,
      x: { label: "reward", domain: [0, 1] },
      y: { label: "rollouts" },
      layers: [{ name: "rollouts", color: COLORS.blue, values: counts }],
    },
  };
}

function byGFigure(s: Scores): Figure {
  const id = "by-g";
  const title = "Synthesis vs G";
  const entries = Object.entries(s.byG)
    .map(([g, v]) => [Number(g), v] as const)
    .filter(([, v]) => Number.isFinite(v))
    .sort((a, b) => a[0] - b[0]);
  if (entries.length === 0)
    return { id, title, legend: [], empty: "no syntheses over fewer rollouts recorded" };
  const gs = entries.map(([g]) => g);
  const lo = gs[0];
  const hi = gs[gs.length - 1];
  return {
    id,
    title,
    subtitle: s.note,
    legend: [{ name: "synthesis over the first G rollouts", color: COLORS.orange, style: "dot" }],
    chart: {
      kind: "line",
      xs: gs,
      x: {
        label: "G (rollouts synthesized, log scale)",
        domain: hi > lo ? [lo, hi] : [Math.max(1, lo / 2), lo * 2],
        scale: "log2",
        tickValues: gs,
      },
      y: { label: s.label, clamp: [0, 1] },
      series: [
        {
          name: "synthesis over the first G rollouts",
          color: COLORS.orange,
          values: entries.map(([, v]) => v),
          markers: true,
        },
      ],
    },
  };
}

function estimatorTable(s: Scores): string {
  const rows = Object.entries(s.byEstimator)
    .sort((a, b) => b[1] - a[1])
    .map(([name, v]) => {
      const pct = Number.isFinite(v) ? Math.round(v * 100) : 0;
      const bar = `<div style="background:${COLORS.blue};height:10px;width:${pct}%"></div>`;
      return [`<code>${esc(name)}</code>`, esc(formatValue(v)), bar];
    });
  return table(["estimator", s.label, ""], rows, [1]);
}

export function renderInferReport(data: InferRunData, generated: string): string {
  const { run, results } = data;
  const name = path.basename(path.resolve(data.dir));
  const scores = inferScores(data);
  const rewards = results.flatMap((r) => r.rewards).filter((x): x is number => typeof x === "number");
  const meanReward = rewards.length ? rewards.reduce((a, b) => a + b, 0) / rewards.length : undefined;
  const flat = results.filter((r) => {
    const xs = r.rewards.filter((x): x is number => typeof x === "number");
    return xs.length > 1 && xs.every((x) => x === xs[0]);
  }).length;
  const best = Object.entries(scores.byEstimator).sort((a, b) => b[1] - a[1])[0];
  const cards = [
    card("Prompts done", String(results.length), `G = ${String(run.config.G ?? "?")}`),
    card("Mean reward", formatValue(meanReward), `${rewards.length} rollouts`),
    card("Zero-variance prompts", String(flat), "all G rewards equal"),
    card("Best estimator", best ? best[0] : "–", best ? `${formatValue(best[1])} ${scores.label}` : ""),
  ];
  const models = Array.isArray(run.models)
    ? table(
        ["role", "file", "size", "sha256"],
        (run.models as Array<{ role: string; path: string; bytes: number; sha256: string }>).map((m) => [
          esc(m.role),
          `<code>${esc(m.path)}</code>`,
          esc(bytes(m.bytes)),
          `<code>${esc(m.sha256)}</code>`,
        ]),
        [2],
      )
    : "";
  const kv = (v: unknown) => keyValues(flatten(v).map(([k, x]) => [k, `<code>${esc(x)}</code>`]));
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>catrl report · ${esc(name)}</title>
<style>${PAGE_CSS}</style>
</head>
<body data-rendered="pending">
<main>
<header><h1>CaT inference run <code>${esc(name)}</code></h1>
<div class="meta">started ${esc(run.created)} · report generated ${esc(generated)} from <code>${esc(path.resolve(data.dir))}</code></div></header>
<div class="notice errors" id="script-errors" hidden><strong>The page script failed; plots may be incomplete.</strong><ul></ul></div>
<div class="cards">${cards.join("")}</div>
<h2>Estimators</h2>
<div class="sub">${esc(scores.note)}</div>
<div class="tables"><section id="table-estimators" class="wide">${estimatorTable(scores)}</section></div>
<div class="plots">
${[byGFigure(scores), rewardFigure(results)].map(figureHtml).join("\n")}
</div>
<h2>Provenance</h2>
<div class="tables">
<section id="table-versions"><h3>Versions</h3>${kv(run.versions ?? {})}</section>
<section id="table-host"><h3>Host</h3>${kv(run.host ?? {})}</section>
<section id="table-models" class="wide"><h3>Models</h3>${models}</section>
<section id="table-config" class="wide"><h3>Config</h3>${kv(run.config)}</section>
</div>
<footer>Generated by catrl report. Self-contained: no network access; hover a chart for values.</footer>
</main>
<script>${PAGE_SCRIPT}</script>
</body>
</html>
`;
}
