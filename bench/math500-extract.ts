/**
 * How well the final-answer extractor and matcher reproduce MATH-500's gold answers from its reference
 * solutions: `node dist/bench/math500-extract.js [path/to/math500.jsonl]`. Prints the exact- and
 * math-mode rates and writes bench/results/math500-extract.json with every miss.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { z } from "zod";
import { extractFinalAnswer } from "../src/cat/answers/extract.js";
import { answersMatch } from "../src/cat/answers/match.js";
import { createAnswerChecker } from "../src/cat/answers/pool.js";
import { readJsonl } from "../src/data/jsonl.js";
import { packageRoot } from "../src/util/version.js";

const Row = z.object({
  problem: z.string(),
  solution: z.string(),
  answer: z.string(),
  unique_id: z.string(),
});

export type Math500ExtractReport = {
  file: string;
  total: number;
  exact: { matched: number; rate: number };
  math: { matched: number; rate: number; timedOut: number };
  misses: Array<{
    id: string;
    line: number;
    extracted: string | null;
    answer: string;
    exact: boolean;
    math: boolean;
  }>;
};

export async function runMath500Extract(file: string): Promise<Math500ExtractReport> {
  const { rows, errors } = await readJsonl(file, Row);
  if (errors.length > 0) {
    const e = errors[0];
    throw new Error(`${file}:${e.line}: ${e.field}: ${e.message}`);
  }
  const extracted = rows.map((r) => extractFinalAnswer(r.value.solution));
  const exact = rows.map((r, i) => answersMatch(extracted[i], r.value.answer, { mode: "exact" }));
  const checker = createAnswerChecker({ threads: 1, timeoutMs: 5000 });
  let math: Array<{ match: boolean; timedOut?: boolean }>;
  try {
    math = await checker.check(
      rows.map((r, i) => ({ a: extracted[i], b: r.value.answer })),
      "math",
    );
  } finally {
    await checker.close();
  }
  const count = (xs: boolean[]) => xs.filter(Boolean).length;
  const mathOk = math.map((m) => m.match);
  return {
    file,
    total: rows.length,
    exact: { matched: count(exact), rate: count(exact) / rows.length },
    math: {
      matched: count(mathOk),
      rate: count(mathOk) / rows.length,
      timedOut: math.filter((m) => m.timedOut).length,
    },
    misses: rows.flatMap((r, i) =>
      exact[i] && mathOk[i]
        ? []
        : [
            {
              id: r.value.unique_id,
              line: r.line,
              extracted: extracted[i],
              answer: r.value.answer,
              exact: exact[i],
              math: mathOk[i],
            },
          ],
    ),
  };
}

async function main() {
  const root = packageRoot();
  const file = process.argv[2] ?? path.join(root, "..", "shared", "data", "math500.jsonl");
  const report = await runMath500Extract(file);
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  console.log(`MATH-500 answer extraction from reference solutions (${report.total} problems)`);
  console.log(`  exact mode: ${report.exact.matched}/${report.total} = ${pct(report.exact.rate)}`);
  console.log(
    `  math mode:  ${report.math.matched}/${report.total} = ${pct(report.math.rate)} (timeouts: ${report.math.timedOut})`,
  );
  for (const m of report.misses) {
    console.log(
      `  miss ${m.id}: extracted ${JSON.stringify(m.extracted)} vs ${JSON.stringify(m.answer)} (exact ${m.exact}, math ${m.math})`,
    );
  }
  const out = path.join(root, "bench", "results", "math500-extract.json");
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`wrote ${out}`);
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  await main();
}
