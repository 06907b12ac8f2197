import { getSynthesisTemplate, type SynthesisTemplate } from "./templates.js";
import { stripThinking } from "./think.js";

export type ParsedSynthesis = {
  summary?: string;
  /** The pseudo-reference s. */
  unified: string;
  /** No "UNIFIED RESPONSE" heading was found, so `unified` is the whole output (minus thinking). */
  usedWholeText: boolean;
};

type Heading = { start: number; contentStart: number };

/**
 * Finds section headings however a model writes them: `# UNIFIED RESPONSE`, `## Unified Response:`,
 * `**UNIFIED RESPONSE**`, `**Unified response:** text...`, or a bare `UNIFIED RESPONSE:` line. A bare
 * line without `#`, bold or a colon is ignored so prose that happens to start with the words is not cut.
 */
function findHeadings(text: string, name: string): Heading[] {
  const words = name.split(" ").join("[ \\t_-]*");
  const re = new RegExp(
    `^[ \\t]*(#{1,6}[ \\t]*)?(\\*\\*|__)?[ \\t]*${words}[ \\t]*(\\*\\*|__)?[ \\t]*(:)?[ \\t]*(\\*\\*|__)?[ \\t]*(.*)$`,
    "gim",
  );
  const found: Heading[] = [];
  for (const m of text.matchAll(re)) {
    const [, hash, bold1, bold2, colon, bold3, rest] = m;
    const marked = Boolean(hash || bold1 || bold2 || bold3 || colon);
    if (!marked && rest.trim() !== "") continue;
    found.push({ start: m.index, contentStart: m.index + m[0].length - rest.length });
  }
  return found;
}

/**
 * Splits the anchor's output into summary and unified response. The last "UNIFIED RESPONSE" heading
 * with content after it wins (a model may mention the heading while planning); the summary is the text
 * between the last "SUMMARY" heading before it and it. Without a heading the whole text is the unified
 * response and `usedWholeText` is true, so a run can count how often the format was ignored.
 */
export function parseSynthesis(text: string, template?: SynthesisTemplate | string): ParsedSynthesis {
  const t = typeof template === "string" ? getSynthesisTemplate(template) : template;
  const body = stripThinking(text);
  const unifiedHeads = findHeadings(body, "unified response");
  for (let k = unifiedHeads.length - 1; k >= 0; k--) {
    const head = unifiedHeads[k];
    // Later headings had nothing after them (a dangling repeat): they are not part of the answer.
    const unified = body.slice(head.contentStart, unifiedHeads[k + 1]?.start).trim();
    if (unified === "") continue;
    const result: ParsedSynthesis = { unified, usedWholeText: false };
    if (t?.hasSummary !== false) {
      const summaryHead = findHeadings(body.slice(0, head.start), "summary").at(-1);
      if (summaryHead) {
        const summary = body.slice(summaryHead.contentStart, head.start).trim();
        if (summary !== "") result.summary = summary;
      }
    }
    return result;
  }
  return { unified: body.trim(), usedWholeText: true };
}
