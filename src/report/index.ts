import { writeFile } from "node:fs/promises";
import path from "node:path";
import { UserError } from "../util/errors.js";
import { buildFigures } from "./charts.js";
import { loadRun, type RunData } from "./load.js";
import { pageHtml } from "./page.js";

export { formatProblem, loadRun, type Problem, type RunData } from "./load.js";

export type ReportOptions = {
  /** Throw a UserError on the first unreadable line instead of leaving it out. */
  strict?: boolean;
  /** Timestamp printed in the page; fixed in tests. */
  generated?: string;
};

// Shown only when the run records them; the core plots show a placeholder instead of disappearing.
const OPTIONAL_FIGURES = new Set(["clip", "throughput"]);

export function renderRunData(data: RunData, options: ReportOptions = {}): string {
  const figures = buildFigures(data.steps, data.evals).filter((f) => f.chart || !OPTIONAL_FIGURES.has(f.id));
  return pageHtml(data, figures, options.generated ?? new Date().toISOString());
}

/** One self-contained HTML page (inline CSS, SVG and script; no network) for the run in `dir`. */
export async function renderReport(dir: string, options: ReportOptions = {}): Promise<string> {
  return renderRunData(await loadRun(dir, options), options);
}

/** Writes the report (default DIR/report.html) and returns its path and what was read. */
export async function writeReport(
  dir: string,
  out: string | undefined,
  options: ReportOptions = {},
): Promise<{ file: string; data: RunData }> {
  const data = await loadRun(dir, options);
  const file = out ?? path.join(dir, "report.html");
  try {
    await writeFile(file, renderRunData(data, options));
  } catch (e) {
    throw new UserError(`${file}: cannot write the report (${(e as Error).message})`, 1, { cause: e });
  }
  return { file, data };
}
