import type { EvalRecord, StepRecord } from "../rl/records.js";
import type { Domain } from "./scale.js";
import type { Chart, LineSeries, Value } from "./svg.js";

/**
 * Which plots the report shows and what goes into each, from the parsed run records. Pure data: the
 * drawing is in svg.ts and the page in page.ts.
 */

// Okabe-Ito: distinguishable with the common colour-vision deficiencies, and in greyscale print.
export const COLORS = {
  blue: "#0072B2",
  orange: "#E69F00",
  green: "#009E73",
  vermillion: "#D55E00",
  purple: "#CC79A7",
  sky: "#56B4E9",
  grey: "#A0A4AA",
} as const;

export type LegendEntry = {
  name: string;
  color: string;
  style: "line" | "faint" | "dashed" | "band" | "bar" | "dot" | "hollow" | "mark";
};

export type Figure = {
  id: string;
  title: string;
  subtitle?: string;
  /** Absent: nothing to draw yet; `empty` says why. */
  chart?: Chart;
  empty?: string;
  legend: LegendEntry[];
  /** Per x: an extra line in the hover read-out (e.g. why a step was skipped). */
  notes?: Array<string | null>;
};

const finite = (v: Value): v is number => typeof v === "number" && Number.isFinite(v);

function stepDomain(steps: StepRecord[], evals: EvalRecord[]): Domain {
  const all = [...steps.map((s) => s.step), ...evals.map((e) => e.step)];
  const lo = Math.min(...all);
  const hi = Math.max(...all);
  return hi > lo ? [lo, hi] : [Math.max(0, lo - 1), lo + 1];
}

function hasAny(values: Value[]): boolean {
  return values.some(finite);
}

function stepLine(
  id: string,
  title: string,
  steps: StepRecord[],
  domain: Domain,
  series: LineSeries[],
  yLabel: string,
  opts: { subtitle?: string; includeZero?: boolean; yDomain?: Domain; field: string },
): Figure {
  if (!series.some((s) => hasAny(s.values))) {
    return { id, title, legend: [], empty: `no ${opts.field} values in steps.jsonl yet` };
  }
  series = withMovingAverage(series);
  const legend: LegendEntry[] = series.map((s) => ({
    name: s.name,
    color: s.color,
    style: s.dashed ? "dashed" : s.faint ? "faint" : "line",
  }));
  return {
    id,
    title,
    subtitle: opts.subtitle,
    legend,
    chart: {
      kind: "line",
      xs: steps.map((s) => s.step),
      x: { label: "step", domain, integer: true },
      y: { label: yLabel, includeZero: opts.includeZero, domain: opts.yDomain },
      series,
    },
  };
}

/** Past this many steps, per-step noise hides the trend: draw the raw values faint plus a moving average. */
export const SMOOTH_ABOVE = 60;

/** Centred moving average over the finite values in the window; gaps stay gaps. */
export function movingAverage(values: Value[], window: number): Value[] {
  const half = Math.floor(window / 2);
  return values.map((v, i) => {
    if (!finite(v)) return null;
    let sum = 0;
    let k = 0;
    for (let j = Math.max(0, i - half); j <= Math.min(values.length - 1, i + half); j++) {
      const w = values[j];
      if (finite(w)) {
        sum += w;
        k++;
      }
    }
    return sum / k;
  });
}

function withMovingAverage(series: LineSeries[]): LineSeries[] {
  const n = series[0]?.values.length ?? 0;
  if (n <= SMOOTH_ABOVE) return series;
  // About 2% of the run, odd so the window is centred.
  const window = 2 * Math.max(2, Math.min(25, Math.round(n / 100))) + 1;
  return series.flatMap((s) => [
    { ...s, faint: true, name: `${s.name} (per step)` },
    {
      name: `${s.name}, moving average of ${window}`,
      color: s.color,
      values: movingAverage(s.values, window),
    },
  ]);
}

function rewardFigure(steps: StepRecord[], domain: Domain): Figure {
  const mean = steps.map((s) => s.reward_mean);
  const lo = steps.map((s) =>
    finite(s.reward_mean) && finite(s.reward_std) ? s.reward_mean - s.reward_std : null,
  );
  const hi = steps.map((s) =>
    finite(s.reward_mean) && finite(s.reward_std) ? s.reward_mean + s.reward_std : null,
  );
  const skipped = steps.filter((s) => s.skipped);
  const fig = stepLine(
    "reward",
    "Reward",
    steps,
    domain,
    [{ name: "mean reward", color: COLORS.blue, values: mean, band: { lo, hi, name: "± std" } }],
    "reward",
    { subtitle: "mean over the step's rollouts, band ± one standard deviation", field: "reward_mean" },
  );
  if (fig.chart?.kind !== "line") return fig;
  fig.legend.push({ name: "± std", color: COLORS.blue, style: "band" });
  if (skipped.length > 0) {
    fig.chart.marks = {
      xs: skipped.map((s) => s.step),
      labels: skipped.map((s) => s.skip_reason ?? "skipped"),
      name: "skipped step",
      color: COLORS.vermillion,
    };
    fig.legend.push({ name: `skipped step (${skipped.length})`, color: COLORS.vermillion, style: "mark" });
  }
  fig.notes = steps.map((s) => (s.skipped ? `skipped${s.skip_reason ? `: ${s.skip_reason}` : ""}` : null));
  return fig;
}

function timeFigure(steps: StepRecord[], domain: Domain): Figure {
  const parts = [
    { key: "rollouts_s", name: "rollouts", color: COLORS.blue },
    { key: "synthesis_s", name: "synthesis", color: COLORS.orange },
    { key: "judging_s", name: "judging", color: COLORS.purple },
    { key: "training_s", name: "training", color: COLORS.green },
  ] as const;
  const layers: Array<{ name: string; color: string; values: Value[] }> = parts.map((p) => ({
    name: p.name,
    color: p.color,
    values: steps.map((s) => s.time?.[p.key]),
  }));
  // Whatever the total has beyond the four parts (checkpointing, evals, bookkeeping) gets its own layer
  // so the bar height is the real wall time of the step.
  const other = steps.map((s, i) => {
    const total = s.time?.total_s;
    if (!finite(total)) return null;
    const sum = layers.reduce((acc, l) => acc + (finite(l.values[i]) ? (l.values[i] as number) : 0), 0);
    return total - sum > 1e-9 ? total - sum : null;
  });
  if (hasAny(other)) layers.push({ name: "other", color: COLORS.grey, values: other });
  if (!layers.some((l) => hasAny(l.values))) {
    return { id: "time", title: "Time per step", legend: [], empty: "no timings in steps.jsonl yet" };
  }
  return {
    id: "time",
    title: "Time per step",
    subtitle: steps.length > 120 ? "stacked areas, seconds" : "stacked, seconds",
    legend: layers.map((l) => ({ name: l.name, color: l.color, style: "bar" })),
    chart: {
      kind: "stacked",
      xs: steps.map((s) => s.step),
      x: { label: "step", domain, integer: true },
      y: { label: "seconds" },
      layers,
    },
  };
}

/** "accuracy" with gold answers; "agreement" with the synthesized reference otherwise. */
export function evalMeasure(evals: EvalRecord[]): { label: string; note?: string } {
  const gold = evals.filter((e) => e.gold_available).length;
  if (gold === evals.length) return { label: "accuracy" };
  if (gold === 0) {
    return {
      label: "agreement with synthesized reference",
      note: "no gold answers: the y axis is agreement with the synthesized reference, not accuracy",
    };
  }
  return {
    label: "accuracy / agreement",
    note: "filled markers: accuracy against gold answers; hollow: agreement with the synthesized reference (no gold)",
  };
}

function evalFigure(evals: EvalRecord[], domain: Domain): Figure {
  const id = "eval";
  const title = "Evaluation";
  if (evals.length === 0)
    return { id, title, legend: [], empty: "no evaluations yet (evals.jsonl missing or empty)" };
  const measure = evalMeasure(evals);
  const hollow = evals.map((e) => !e.gold_available);
  const series: LineSeries[] = [
    { name: "policy, single sample", color: COLORS.blue, values: evals.map((e) => e.policy_single_accuracy) },
    { name: "synthesis over G", color: COLORS.orange, values: evals.map((e) => e.synthesis_accuracy) },
  ];
  const majority = evals.map((e) => e.majority_accuracy);
  if (hasAny(majority))
    series.push({ name: "majority vote", color: COLORS.green, values: majority, dashed: true });
  for (const s of series) Object.assign(s, { markers: true, hollow });
  return {
    id,
    title,
    subtitle: `${measure.note ?? `${measure.label} on the eval prompts`}; ${evals[evals.length - 1].n_prompts} prompts in the latest`,
    legend: series.map((s) => ({ name: s.name, color: s.color, style: s.dashed ? "dashed" : "dot" })),
    chart: {
      kind: "line",
      xs: evals.map((e) => e.step),
      x: { label: "step", domain, integer: true },
      y: { label: measure.label, clamp: [0, 1] },
      series,
    },
    notes: evals.map((e) => `${e.n_prompts} prompts${e.gold_available ? "" : ", no gold (agreement)"}`),
  };
}

function byGFigure(evals: EvalRecord[]): Figure {
  const id = "by-g";
  const title = "Synthesis accuracy vs G";
  const latest = [...evals].reverse().find((e) => e.accuracy_by_g && Object.keys(e.accuracy_by_g).length > 0);
  if (!latest?.accuracy_by_g) return { id, title, legend: [], empty: "no evaluation with accuracy_by_g yet" };
  const entries = Object.entries(latest.accuracy_by_g)
    .map(([g, v]) => [Number(g), v] as const)
    .sort((a, b) => a[0] - b[0]);
  const gs = entries.map(([g]) => g);
  const measure = evalMeasure([latest]);
  const flat = (v: Value): Value[] => gs.map(() => v);
  const series: LineSeries[] = [
    { name: "synthesis over G", color: COLORS.orange, values: entries.map(([, v]) => v), markers: true },
    {
      name: "policy, single sample",
      color: COLORS.blue,
      values: flat(latest.policy_single_accuracy),
      dashed: true,
    },
  ];
  if (finite(latest.majority_accuracy)) {
    series.push({
      name: "majority vote",
      color: COLORS.green,
      values: flat(latest.majority_accuracy),
      dashed: true,
    });
  }
  const lo = gs[0];
  const hi = gs[gs.length - 1];
  // A single G cannot span a log axis; pad it by one octave each side.
  const domain: Domain = hi > lo ? [lo, hi] : [Math.max(1, lo / 2), lo * 2];
  return {
    id,
    title,
    subtitle: `evaluation at step ${latest.step}, ${latest.n_prompts} prompts${measure.note ? `; ${measure.note}` : ""}`,
    legend: series.map((s) => ({ name: s.name, color: s.color, style: s.dashed ? "dashed" : "dot" })),
    chart: {
      kind: "line",
      xs: gs,
      x: { label: "G (rollouts synthesized, log scale)", domain, scale: "log2", tickValues: gs },
      y: { label: measure.label, clamp: [0, 1] },
      series,
    },
  };
}

export function buildFigures(steps: StepRecord[], evals: EvalRecord[]): Figure[] {
  const haveSteps = steps.length > 0;
  const domain = haveSteps || evals.length > 0 ? stepDomain(steps, evals) : ([0, 1] as Domain);
  const line = (
    id: string,
    title: string,
    field: "kl" | "loss" | "grad_norm" | "clip_fraction" | "rollouts_per_s",
    color: string,
    yLabel: string,
    subtitle?: string,
    yDomain?: Domain,
  ): Figure =>
    stepLine(id, title, steps, domain, [{ name: field, color, values: steps.map((s) => s[field]) }], yLabel, {
      subtitle,
      field,
      yDomain,
    });
  const noSteps = (id: string, title: string): Figure => ({ id, title, legend: [], empty: "no steps yet" });
  const stepFigures = haveSteps
    ? [
        rewardFigure(steps, domain),
        line(
          "kl",
          "KL to the initial policy",
          "kl",
          COLORS.vermillion,
          "KL",
          "per token, policy vs frozen initial model",
        ),
        line("loss", "Loss", "loss", COLORS.purple, "loss"),
        line("grad-norm", "Gradient norm", "grad_norm", COLORS.green, "‖g‖"),
        stepLine(
          "zero-variance",
          "Zero-variance groups",
          steps,
          domain,
          [{ name: "share of groups", color: COLORS.sky, values: steps.map((s) => s.zero_variance_share) }],
          "share of groups",
          {
            subtitle: "groups whose G rewards were all equal (zero advantage, no learning signal)",
            field: "zero_variance_share",
            yDomain: [0, 1],
          },
        ),
        line(
          "clip",
          "Clip fraction",
          "clip_fraction",
          COLORS.orange,
          "fraction of tokens",
          "ratio outside the clip range",
        ),
        timeFigure(steps, domain),
        line("throughput", "Throughput", "rollouts_per_s", COLORS.blue, "rollouts / s"),
      ]
    : [
        noSteps("reward", "Reward"),
        noSteps("kl", "KL to the initial policy"),
        noSteps("loss", "Loss"),
        noSteps("time", "Time per step"),
      ];
  const zv = stepFigures.find((f) => f.id === "zero-variance");
  if (zv?.chart)
    zv.notes = steps.map((s) => (finite(s.zero_variance_groups) ? `${s.zero_variance_groups} groups` : null));
  return [stepFigures[0], evalFigure(evals, domain), byGFigure(evals), ...stepFigures.slice(1)];
}
