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

function cleanPhraseAnswer(raw: string): string | null {
  let s = raw.trim();
  s = s.replace(/^[*_]+|[*_]+$/g, "").trim();
  // An inline math span holds the answer; prose after it ("..., which is ...") is not part of it.
  const math = /^\$\$?([^$]+)\$\$?/.exec(s) ?? /^\\\(([\s\S]+?)\\\)/.exec(s) ?? /^\\\[([\s\S]+?)\\\]/.exec(s);
  if (math) s = math[1];
  s = s
    .trim()
    .replace(/[.;,]+$/, "")
    .trim();
  s = s.replace(/^[*_]+|[*_]+$/g, "").trim();
  return s === "" ? null : s;
}

/**
 * The final answer of a model response: the last complete `\boxed{}` (nested braces handled), else the
 * last "final answer is ..." / "answer: ..." phrase. Text after the last `</think>` is preferred, so a
 * reasoning model's scratch boxes never override its visible answer. Returns null when nothing is found
 * (the caller decides what a missing answer means: the paper leaves that open).
 */
export function extractFinalAnswer(text: string): string | null {
  const thinkEnd = text.lastIndexOf("</think>");
  if (thinkEnd >= 0) {
    const visible = fromText(text.slice(thinkEnd + "</think>".length));
    if (visible !== null) return visible;
  }
  return fromText(text);
}

function fromText(text: string): string | null {
  const boxes = boxedContents(text);
  if (boxes.length > 0) return boxes[boxes.length - 1];
  for (const re of PHRASES) {
    const matches = [...text.matchAll(re)];
    for (let k = matches.length - 1; k >= 0; k--) {
      const ans = cleanPhraseAnswer(matches[k][1]);
      if (ans !== null) return ans;
    }
  }
  return null;
}
