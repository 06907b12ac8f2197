import type { Command } from "commander";
import { formatProblem, writeAnyReport } from "../../report/index.js";

/**
 * `catrl report DIR [--out FILE] [--strict]`: renders a training or infer run directory as one HTML file
 * and prints its path. Unreadable lines are left out and listed on stderr (and in the page) unless --strict.
 */
export function register(program: Command): void {
  program
    .command("report")
    .description("render a training or infer run directory as one self-contained HTML file")
    .argument("<dir>", "run directory written by `catrl train --out DIR` or `catrl infer --out DIR`")
    .option("--out <file>", "where to write the report (default DIR/report.html)")
    .option("--strict", "fail on the first unreadable line instead of leaving it out")
    .action(async (dir: string, opts: { out?: string; strict?: boolean }) => {
      const { file, problems } = await writeAnyReport(dir, opts.out, { strict: opts.strict });
      for (const p of problems) process.stderr.write(`catrl report: ${p.severity}: ${formatProblem(p)}\n`);
      process.stdout.write(`${file}\n`);
    });
}
