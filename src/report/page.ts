import path from "node:path";
import type { RunManifest, StepRecord } from "../rl/records.js";
import { evalMeasure, type Figure, type LegendEntry } from "./charts.js";
import { formatProblem, type RunData } from "./load.js";
import { PAGE_SCRIPT } from "./page-script.js";
import { formatValue } from "./scale.js";
import { PAGE_CSS } from "./style.js";
import { chartSvg, esc, hoverData } from "./svg.js";

/** Assembles the one-file HTML page: summary, problems, charts, then the run's provenance tables. */

// Forbids every fetch: the page must work offline, and this makes any accidental external reference
// fail visibly instead of silently phoning out.
export const CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:";

/** JSON inside <script>: `<` escaped so no value can close the element. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, "\\u003c");
}

function legendHtml(entries: LegendEntry[]): string {
  if (entries.length === 0) return "";
  const items = entries.map((e) => {
    const style =
      e.style === "band" || e.style === "bar" || e.style === "dot"
        ? `background:${e.color}`
        : e.style === "mark"
          ? `border-bottom-color:${e.color}`
          : `border-top-color:${e.color}`;
    return `<span><i class="${e.style}" style="${style}"></i>${esc(e.name)}</span>`;
  });
  return `<div class="legend">${items.join("")}</div>`;
}

export function figureHtml(f: Figure): string {
  const head = `<h3>${esc(f.title)}</h3><div class="sub">${esc(f.subtitle ?? "")}</div>`;
  if (!f.chart) {
    return `<figure class="plot empty" id="plot-${f.id}">${head}<div class="placeholder">${esc(f.empty ?? "no data")}</div></figure>`;
  }
  return (
    `<figure class="plot" id="plot-${f.id}">${head}${legendHtml(f.legend)}${chartSvg(f.chart, f.title)}` +
    `<script type="application/json" class="hover-data">${scriptJson(hoverData(f.chart, f.notes))}</script></figure>`
  );
}

const finite = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

function mean(values: Array<number | null | undefined>): number | undefined {
  const xs = values.filter(finite);
  return xs.length === 0 ? undefined : xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** A duration given in seconds, spelt out for the report page: `2.35 s`, `3 min 5 s`, `2 h 7 min`. */
export function formatSeconds(s: number | undefined): string {
  if (s === undefined) return "–";
  if (s < 60) return `${formatValue(Number(s.toFixed(s < 10 ? 2 : 1)))} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s - m * 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function card(k: string, v: string, s = ""): string {
  // Long values (file names) would wrap the big figure font over several lines.
  const cls = v.length > 14 ? "v small" : "v";
  return `<div class="card"><div class="k">${esc(k)}</div><div class="${cls}">${esc(v)}</div><div class="s">${esc(s)}</div></div>`;
}

function summaryCards(data: RunData): string {
  const { steps, evals } = data;
  const last = steps[steps.length - 1] as StepRecord | undefined;
  const skipped = steps.filter((s) => s.skipped).length;
  const lastReward = [...steps].reverse().find((s) => finite(s.reward_mean));
  const totals = steps.map((s) => s.time?.total_s);
  const meanStep = mean(totals);
  const wall = totals.filter(finite).reduce((a, b) => a + b, 0);
  const tokens = steps.map((s) => s.tokens_generated).filter(finite);
  const ev = evals[evals.length - 1];
  const lastAdapter = [...steps].reverse().find((s) => s.adapter);
  const cards = [
    card(
      "Steps done",
      String(steps.length),
      last ? `last step ${last.step}${skipped ? `, ${skipped} skipped` : ""}` : "no steps yet",
    ),
    card(
      "Last reward",
      lastReward ? formatValue(lastReward.reward_mean) : "–",
      lastReward ? `step ${lastReward.step}, std ${formatValue(lastReward.reward_std)}` : "",
    ),
    card("Mean time / step", formatSeconds(meanStep), wall > 0 ? `${formatSeconds(wall)} in all` : ""),
    card(
      "Latest eval",
      ev ? `${formatValue(ev.policy_single_accuracy)} → ${formatValue(ev.synthesis_accuracy)}` : "–",
      ev ? `step ${ev.step}: single → synthesis (${evalMeasure([ev]).label})` : "no evaluations yet",
    ),
    card(
      "Tokens generated",
      tokens.length ? formatValue(tokens.reduce((a, b) => a + b, 0)) : "–",
      tokens.length ? `mean ${formatValue(mean(tokens))} / step` : "",
    ),
    card("Latest adapter", lastAdapter?.adapter ?? "–", lastAdapter ? `step ${lastAdapter.step}` : ""),
  ];
  return `<div class="cards">${cards.join("")}</div>`;
}

function problemsHtml(data: RunData): string {
  if (data.problems.length === 0) return "";
  const errors = data.problems.filter((p) => p.severity === "error").length;
  const head =
    errors > 0
      ? `${errors} line${errors === 1 ? "" : "s"} could not be read and ${errors === 1 ? "is" : "are"} left out of the plots below.`
      : "Notes on reading the run:";
  const shown = data.problems.slice(0, 50);
  const more = data.problems.length - shown.length;
  const items = shown.map((p) => `<li>${esc(`${p.severity}: ${formatProblem(p)}`)}</li>`);
  if (more > 0) items.push(`<li>… and ${more} more</li>`);
  return `<div class="notice problems" id="problems"><strong>${esc(head)}</strong><ul>${items.join("")}</ul></div>`;
}

export function table(head: string[], rows: string[][], numeric: number[] = []): string {
  const th = head.map((h, i) => `<th${numeric.includes(i) ? ` class="num"` : ""}>${esc(h)}</th>`).join("");
  const trs = rows.map(
    (r) =>
      `<tr>${r.map((c, i) => `<td${numeric.includes(i) ? ` class="num"` : ""}>${c}</td>`).join("")}</tr>`,
  );
  return `<table><thead><tr>${th}</tr></thead><tbody>${trs.join("")}</tbody></table>`;
}

export function keyValues(rows: Array<[string, string]>): string {
  const trs = rows.map(([k, v]) => `<tr><td class="key">${esc(k)}</td><td class="break">${v}</td></tr>`);
  return `<table><tbody>${trs.join("")}</tbody></table>`;
}

/** Nested config as dotted keys, so a deep config stays one scannable two-column table. */
export function flatten(
  value: unknown,
  prefix = "",
  out: Array<[string, string]> = [],
): Array<[string, string]> {
  if (value !== null && typeof value === "object" && !Array.isArray(value) && Object.keys(value).length > 0) {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else {
    out.push([prefix || "(value)", typeof value === "string" ? value : JSON.stringify(value)]);
  }
  return out;
}

export function bytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  return `${n} B`;
}

function provenance(run: RunManifest | undefined, data: RunData): string {
  if (!run) {
    const why = data.present.run
      ? "run.json could not be read (see the notes above)"
      : "no run.json in this directory";
    return `<div class="notice empty">${esc(why)}: config, models and versions unknown.</div>`;
  }
  const mono = (s: string): string => `<code>${esc(s)}</code>`;
  const models = table(
    ["role", "file", "size", "sha256"],
    run.models.map((m) =>
      "path" in m
        ? [esc(m.role), mono(m.path), esc(bytes(m.bytes)), mono(m.sha256)]
        : [esc(m.role), mono(m.url), esc(m.server), mono(`${m.model_id} @ ${m.version}`)],
    ),
    [2],
  );
  const versions = keyValues(
    Object.entries(run.versions)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => [k, mono(String(v))]),
  );
  const runRows: Array<[string, string]> = [
    ["kind", esc(run.kind)],
    ["format version", esc(String(run.version))],
    ["created", esc(run.created)],
    ["directory", mono(path.resolve(data.dir))],
    ...Object.entries(run.seeds).map(([k, v]): [string, string] => [`seed ${k}`, mono(String(v))]),
  ];
  const host = keyValues(flatten(run.host).map(([k, v]) => [k, esc(v)]));
  const config = keyValues(flatten(run.config).map(([k, v]) => [k, mono(v)]));
  return (
    `<div class="tables">` +
    `<section id="table-run"><h3>Run</h3>${keyValues(runRows)}</section>` +
    `<section id="table-versions"><h3>Versions</h3>${versions}</section>` +
    `<section id="table-host"><h3>Host</h3>${host}</section>` +
    `<section id="table-models" class="wide"><h3>Models</h3>${models}</section>` +
    `<section id="table-config" class="wide"><h3>Config</h3>${config}</section>` +
    `</div>`
  );
}

function skippedTable(steps: StepRecord[]): string {
  const skipped = steps.filter((s) => s.skipped);
  if (skipped.length === 0) return "";
  const rows = skipped.slice(-100).map((s) => [String(s.step), esc(s.skip_reason ?? "–")]);
  const note = skipped.length > 100 ? ` (last 100 of ${skipped.length})` : "";
  return `<div class="tables" style="margin-top:16px"><section id="table-skipped" class="wide"><h3>Skipped steps${note}</h3>${table(["step", "reason"], rows)}</section></div>`;
}

export function pageHtml(data: RunData, figures: Figure[], generated: string): string {
  const name = path.basename(path.resolve(data.dir));
  const created = data.run ? `started ${data.run.created} · ` : "";
  const emptyRun =
    data.steps.length === 0
      ? `<div class="notice empty" id="no-steps">No steps yet${data.present.steps ? " (steps.jsonl has no valid records)" : " (no steps.jsonl)"}: the training loop has not finished its first step.</div>`
      : "";
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
<header><h1>CaT-RL run <code>${esc(name)}</code></h1>
<div class="meta">${esc(created)}report generated ${esc(generated)} from <code>${esc(path.resolve(data.dir))}</code></div></header>
<div class="notice errors" id="script-errors" hidden><strong>The page script failed; plots may be incomplete.</strong><ul></ul></div>
${problemsHtml(data)}
${summaryCards(data)}
${emptyRun}
<h2>Training</h2>
<div class="plots">
${figures.map(figureHtml).join("\n")}
</div>
${skippedTable(data.steps)}
<h2>Provenance</h2>
${provenance(data.run, data)}
<footer>Generated by catrl report. Self-contained: no network access; hover a chart for values.</footer>
</main>
<script>${PAGE_SCRIPT}</script>
</body>
</html>
`;
}
