import { readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { renderReport } from "../src/report/index.js";
import {
  chromium,
  FIXTURE,
  haveChromium,
  inCI,
  skipReason,
  syntheticSteps,
  tmpDir,
  writeRun,
} from "./report-helpers.js";

/**
 * Opens generated reports in headless Chromium (Debian's package, never a downloaded browser) and checks
 * what the page itself reports after its script ran: data-rendered="ok" on <body>, and on every chart a
 * data-drawn count of marks with a non-empty bounding box as laid out by the browser.
 * CI installs it with `apt-get install -y chromium`; there, a missing browser fails the test.
 */

async function renderAndOpen(dir: string): Promise<{ file: string; dom: string }> {
  const file = path.join(tmpDir(), "report.html");
  writeFileSync(file, await renderReport(dir, { generated: "2026-11-30T10:00:00.000Z" }));
  const dom = await chromium(["--dump-dom", pathToFileURL(file).href]);
  return { file, dom };
}

/** The opening tag of each chart, as serialised after the page script ran. */
function chartTags(dom: string): string[] {
  return dom.match(/<svg class="chart"[^>]*>/g) ?? [];
}

function drawn(tag: string): number {
  return Number(/data-drawn="(\d+)"/.exec(tag)?.[1] ?? Number.NaN);
}

function scriptErrors(dom: string): string {
  const box = /<div class="notice errors" id="script-errors"([^>]*)>([\s\S]*?)<\/div>/.exec(dom);
  if (!box) return "script-errors box missing";
  return box[1].includes("hidden") ? "" : box[2];
}

describe("report in a browser", () => {
  it("chromium is available in CI", () => {
    if (inCI) expect(haveChromium, skipReason).toBe(true);
  });

  it.skipIf(!haveChromium)(
    `renders every plot of the fixture run${haveChromium ? "" : ` (skipped: ${skipReason})`}`,
    async () => {
      const { file, dom } = await renderAndOpen(FIXTURE);
      expect(dom).toContain('data-rendered="ok"');
      expect(scriptErrors(dom)).toBe("");
      const tags = chartTags(dom);
      expect(tags).toHaveLength(10);
      for (const tag of tags) expect(drawn(tag), tag).toBeGreaterThan(0);
      // 30 steps, 5 layers (rollouts, synthesis, training, other; judging is 0 in this run) -> bars.
      const time = tags.find((t) => t.includes('aria-label="Time per step"')) ?? "";
      expect(drawn(time)).toBeGreaterThanOrEqual(90);
      // The eval chart: 3 evals x 3 series of markers plus 3 lines.
      const evalChart = tags.find((t) => t.includes('aria-label="Evaluation"')) ?? "";
      expect(drawn(evalChart)).toBe(12);

      const png = path.join(path.dirname(file), "report.png");
      await chromium([`--screenshot=${png}`, "--window-size=1400,2400", pathToFileURL(file).href]);
      const header = readFileSync(png).subarray(0, 24);
      expect(header.subarray(1, 4).toString()).toBe("PNG");
      expect([header.readUInt32BE(16), header.readUInt32BE(20)]).toEqual([1400, 2400]);
      // A blank page compresses to a few KB; charts and tables do not.
      expect(statSync(png).size).toBeGreaterThan(100_000);
    },
  );

  it.skipIf(!haveChromium)(
    `renders hundreds of steps with a malformed line and no evals${haveChromium ? "" : ` (skipped: ${skipReason})`}`,
    async () => {
      const dir = writeRun({ steps: `${syntheticSteps(400)}{"step": "x"}\n` });
      const { dom } = await renderAndOpen(dir);
      expect(dom).toContain('data-rendered="ok"');
      expect(scriptErrors(dom)).toBe("");
      expect(dom).toContain('id="problems"');
      expect(dom).toContain("steps.jsonl:401:");
      expect(dom).toContain("no evaluations yet");
      const tags = chartTags(dom);
      expect(tags).toHaveLength(8);
      for (const tag of tags) expect(drawn(tag), tag).toBeGreaterThan(0);
    },
  );

  it.skipIf(!haveChromium)(
    `shows a script failure in the page${haveChromium ? "" : ` (skipped: ${skipReason})`}`,
    async () => {
      // Guards the guard: a chart whose marks have no geometry must flip the page to data-rendered="error".
      const html = (await renderReport(FIXTURE)).replace(/ d="M[^"]*"/g, ' d=""');
      const file = path.join(tmpDir(), "broken.html");
      writeFileSync(file, html);
      const dom = await chromium(["--dump-dom", pathToFileURL(file).href]);
      expect(dom).toContain('data-rendered="error"');
      expect(scriptErrors(dom)).toMatch(/drew nothing/);
    },
  );

  it.skipIf(!haveChromium)(
    `shows values on hover${haveChromium ? "" : ` (skipped: ${skipReason})`}`,
    async () => {
      // Moves the mouse to the right end of the reward chart; the read-out must name the last step.
      const probe = `<script>
      var svg = document.querySelector("#plot-reward svg.chart");
      var r = svg.getBoundingClientRect();
      svg.dispatchEvent(new MouseEvent("mousemove", { clientX: r.right - 5, clientY: r.top + r.height / 2, bubbles: true }));
      document.body.setAttribute("data-hover", document.querySelector(".tooltip").textContent);
    </script></body>`;
      const html = (await renderReport(FIXTURE)).replace("</body>", probe);
      const file = path.join(tmpDir(), "hover.html");
      writeFileSync(file, html);
      const dom = await chromium(["--window-size=1400,1200", "--dump-dom", pathToFileURL(file).href]);
      const hover = /data-hover="([^"]*)"/.exec(dom)?.[1] ?? "";
      expect(hover).toMatch(/^step 30mean reward: 0\.6909/);
      expect(hover).toContain("± std: 0.2433");
    },
  );
});
