import { stripThinking } from "../prompts/think.js";
import { closingBrace } from "./latex-groups.js";

const BOX_COMMAND = /\\(?:boxed|fbox)(?![a-zA-Z])/g;

/**
 * Contents of every complete `\boxed{...}` / `\fbox{...}` / `\boxed 5` in order. An unclosed box
 * (generation cut off by max tokens) is skipped, so an earlier complete one can still count.
 */
export function boxedContents(text: string): string[] {
  const found: string[] = [];
  for (const m of text.matchAll(BOX_COMMAND)) {
    let i = m.index + m[0].length;
    while (i < text.length && (text[i] === " " || text[i] === "\t")) i++;
    if (text[i] === "{") {
      const end = closingBrace(text, i);
      if (end > 0) found.push(text.slice(i + 1, end - 1).trim());
    } else if (i > m.index + m[0].length) {
      // `\boxed 5`: TeX takes one token; answers written this way are a bare number or word, ended by
      // `$`, whitespace or a closing sentence mark.
      const token = /^[^\s$]+/.exec(text.slice(i));
      if (token) found.push(token[0].replace(/[.,;]+$/, ""));
    }
  }
  return found.filter((s) => s !== "");
}

// "The final answer is $x$." / "Final Answer: 5" / "**Answer:** 5" / "answer is 5": the fallbacks a model
// uses when it forgets to box. Anchored on the phrase, the answer runs to the end of that line.
const PHRASES = [/final answer\s*(?:is|:)\s*:?\s*(.+)/gi, /\banswer\s*(?:is|:)\s*:?\s*(.+)/gi];

// GSM8K's gold solutions (and models trained on them) end with `#### 72`.
const HASH_ANSWER = /^[ \t]*####[ \t]*(.+?)[ \t]*$/gm;

// The phrase repeated inside its own answer: Minerva's "Final Answer: The final answer is $18$. I hope
// it is correct."
const PHRASE_LEAD = /^(?:the\s+)?(?:final\s+)?answer\s*(?:is|:)\s*:?\s*/i;
// A number followed only by words is a number with its unit ("18 apples", "5 dollars").
const NUMBER_WITH_UNIT = /^([-+]?\$?\d[\d,]*(?:\.\d+)?)\s+[a-zA-Z][a-zA-Z\s]*$/;

function cleanPhraseAnswer(raw: string): string | null {
  let s = raw.trim();
  s = s.replace(/^[*_]+|[*_]+$/g, "").trim();
  for (let lead = PHRASE_LEAD.exec(s); lead && lead[0] !== ""; lead = PHRASE_LEAD.exec(s)) {
    s = s
      .slice(lead[0].length)
      .replace(/^[*_]+/, "")
      .trim();
  }
  // An inline math span holds the answer; prose after it ("..., which is ...") is not part of it.
  const math = /^\$\$?([^$]+)\$\$?/.exec(s) ?? /^\\\(([\s\S]+?)\\\)/.exec(s) ?? /^\\\[([\s\S]+?)\\\]/.exec(s);
  if (math) s = math[1];
  // Outside math, the answer ends with its sentence ("18. I hope it is correct.").
  else s = s.split(/[.;!?]\s+(?=[A-Z])/)[0];
  s = s
    .trim()
    .replace(/[.;,]+$/, "")
    .trim();
  const unit = NUMBER_WITH_UNIT.exec(s);
  if (unit) s = unit[1];
  s = s.replace(/^[*_]+|[*_]+$/g, "").trim();
  return s === "" ? null : s;
}

/**
 * The final answer of a model response: the last complete `\boxed{}` (nested braces handled), else the
 * last `#### N` line (GSM8K), else the last "final answer is ..." / "answer: ..." phrase. Only the visible
 * text counts, the text the anchor reads: thinking (`<think>...</think>`, or an unterminated `<think>`
 * cut off by the token limit) is removed first, so a box inside the thinking is never the answer.
 * Returns null when nothing is found (the caller decides what a missing answer means: the paper leaves
 * that open).
 */
export function extractFinalAnswer(text: string): string | null {
  return fromText(stripThinking(text));
}

/**
 * A gold answer as a bare answer: a worked solution (GSM8K's `... #### 72`, a boxed MATH solution, "The
 * answer is 5") goes through the same extraction as responses; a gold that already is a bare answer
 * (nothing to extract) is kept as it is.
 */
export function extractGoldAnswer(gold: string): string {
  return fromText(gold) ?? gold.trim();
}

function fromText(text: string): string | null {
  const boxes = boxedContents(text);
  if (boxes.length > 0) return boxes[boxes.length - 1];
  const hashes = [...text.matchAll(HASH_ANSWER)];
  for (let k = hashes.length - 1; k >= 0; k--) {
    const ans = cleanPhraseAnswer(hashes[k][1]);
    if (ans !== null) return ans;
  }
  for (const re of PHRASES) {
    const matches = [...text.matchAll(re)];
    for (let k = matches.length - 1; k >= 0; k--) {
      const ans = cleanPhraseAnswer(matches[k][1]);
      if (ans !== null) return ans;
    }
  }
  return null;
}
