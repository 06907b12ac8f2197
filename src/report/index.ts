import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { INFER_KIND } from "../cat/infer-run.js";
import { RUN_FILES } from "../rl/records.js";
import { commandOfKind } from "../run/run-kind.js";
import { UserError } from "../util/errors.js";
import { buildFigures } from "./charts.js";
import { loadInferRun, renderInferReport } from "./infer-report.js";
import { formatProblem, loadRun, type Problem, type RunData } from "./load.js";
import { pageHtml } from "./page.js";

export { formatProblem, loadRun, type Problem, type RunData };

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

/** Which command wrote `dir`, from run.json's `kind`; undefined when there is no readable kind. */
async function runKind(dir: string): Promise<string | undefined> {
  const file = path.join(dir, RUN_FILES.run);
  if (!existsSync(file)) return undefined;
  try {
    const kind = JSON.parse(await readFile(file, "utf8"))?.kind;
    return typeof kind === "string" ? kind : undefined;
  } catch {
    // Unreadable: the training report lists it as a problem.
    return undefined;
  }
}

/**
 * `catrl report`: a training run's page, or an infer run's (accuracy per estimator, vs G, rewards). A
 * directory another command wrote is refused rather than given an empty training report.
 */
export async function writeAnyReport(
  dir: string,
  out: string | undefined,
  options: ReportOptions = {},
): Promise<{ file: string; problems: Problem[] }> {
  const kind = await runKind(dir);
  if (kind === INFER_KIND) {
    const data = await loadInferRun(dir);
    const file = out ?? path.join(dir, "report.html");
    try {
      await writeFile(file, renderInferReport(data, options.generated ?? new Date().toISOString()));
    } catch (e) {
      throw new UserError(`${file}: cannot write the report (${(e as Error).message})`, 1, { cause: e });
    }
    return { file, problems: [] };
  }
  if (kind !== undefined && kind !== "catrl-train")
    throw new UserError(
      `${dir}: holds a \`${commandOfKind(kind)}\` run; catrl report renders training and infer runs`,
    );
  const { file, data } = await writeReport(dir, out, options);
  return { file, problems: data.problems };
}
