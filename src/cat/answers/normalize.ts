import { closingBrace, readArgument } from "./latex-groups.js";

/**
 * The normalisation behind `exact` mode: the paper's "normalised string match", in the style of the
 * MATH benchmark's `strip_string` (Hendrycks et al.) with fixes for cases that function gets wrong
 * (`\frac{\sqrt3}2`, units after text answers, `\cot x` losing its space). Two answers that normalise to
 * the same string are treated as equal in every mode.
 */
export function normalizeAnswer(raw: string): string {
  let s = raw.replace(/\s+/g, " ").trim();
  s = unwrapMath(s);
  s = s.replace(/\\(?:displaystyle|textstyle|quad|qquad)(?![a-zA-Z])/g, " ");
  // Thin spaces and negative spaces are typography only (`10,\!080`).
  // The lookbehind keeps a matrix row break (`\\ -14`) from reading as a control space.
  s = s
    .replace(/(?<!\\)\\[!,;:>]/g, "")
    .replace(/(?<!\\)\\ /g, " ")
    .replace(/~/g, " ");
  s = s.replace(/\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big)(?![a-zA-Z])\.?/g, "");
  s = s.replace(/\\[dtc]frac(?![a-zA-Z])/g, "\\frac");
  s = s.replace(/\\lbrace(?![a-zA-Z])/g, "\\{").replace(/\\rbrace(?![a-zA-Z])/g, "\\}");
  s = s.replace(/\\(?:mathbf|textbf|boldsymbol|bm)(?![a-zA-Z])/g, "");
  s = s.replace(/\^\s*\{\s*\\circ\s*\}|\^\s*\\circ(?![a-zA-Z])|°|\\degree(?![a-zA-Z])/g, "");
  s = s.replace(/\\\$|\$/g, "");
  s = s.replace(/\\%|%/g, "");
  s = unwrapLeftoverBox(s);
  s = stripTextUnits(s);
  s = stripUnitWords(s);
  s = compactSpaces(s);
  s = s.replace(/(^|[^\d])\.(\d)/g, "$10.$2");
  s = stripVariablePrefix(s);
  s = fixSqrt(s);
  s = fixFracs(s);
  s = s.replace(/_\{(\w)\}/g, "_$1");
  const slash = /^(-?\d+)\/(\d+)$/.exec(s);
  if (slash) s = `\\frac{${slash[1]}}{${slash[2]}}`;
  if (/^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$/.test(s)) s = s.replace(/,/g, "");
  s = trimTrailingPunctuation(s);
  s = stripWrappingBraces(s);
  const choice = /^\(([A-Ea-e])\)$/.exec(s);
  if (choice) s = choice[1].toUpperCase();
  return s;
}

/**
 * `{{5}}` -> `5`: drops the brace pairs that wrap the whole answer. One pass that matches every leading
 * `{` to its `}`: unwrapping one pair at a time and rescanning was quadratic (seconds at 64k characters,
 * which a model's output can reach).
 */
export function stripWrappingBraces(s: string): string {
  let lead = 0;
  while (s[lead] === "{") lead++;
  if (lead === 0) return s;
  const close = new Array<number>(lead).fill(-1);
  const open: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    // An escaped brace is content, as in closingBrace.
    if (c === "\\" && (s[i + 1] === "{" || s[i + 1] === "}")) {
      i++;
      continue;
    }
    if (c === "{") open.push(i);
    else if (c === "}") {
      const o = open.pop();
      if (o !== undefined && o < lead) close[o] = i;
    }
  }
  let k = 0;
  while (k < lead && close[k] === s.length - 1 - k) k++;
  return s.slice(k, s.length - k);
}

/** `5.` -> `5`; a loop, not `/[.,;]+$/`, which backtracks quadratically over a long run of dots. */
function trimTrailingPunctuation(s: string): string {
  let end = s.length;
  while (end > 0 && (s[end - 1] === "." || s[end - 1] === "," || s[end - 1] === ";")) end--;
  return s.slice(0, end);
}

function unwrapMath(s: string): string {
  const m =
    /^\$\$?([\s\S]*?)\$\$?$/.exec(s) ?? /^\\\(([\s\S]*)\\\)$/.exec(s) ?? /^\\\[([\s\S]*)\\\]$/.exec(s);
  return m ? m[1].trim() : s;
}

function unwrapLeftoverBox(s: string): string {
  const m = /^\\(?:boxed|fbox)\s*\{/.exec(s);
  if (m && closingBrace(s, m[0].length - 1) === s.length) return s.slice(m[0].length, -1).trim();
  return s;
}

const TEXT_CMD = /\\(?:text|textrm|textit|mbox|mathrm|mathit|operatorname\*?|textnormal)\s*\{/g;

/**
 * `\text{...}` after a value is a unit (`5.4 \text{ cents}`, `15\mbox{ cm}^2`) and is dropped; `\text{ and }`
 * between values separates them; a text group that is the whole answer (`\text{Evelyn}`) is unwrapped.
 */
function stripTextUnits(input: string): string {
  let s = input.replace(/\\(?:text|mbox)\s*\{\s*(?:and|or)\s*\}/g, ",");
  for (;;) {
    const m = /\\(?:text|textrm|mbox|mathrm)\s*\{([^{}]*)\}\s*(?:\^\s*\{?\s*[23]\s*\}?)?\s*$/.exec(s);
    if (!m || s.slice(0, m.index).trim() === "") break;
    // `\mathrm{i}` or `\mathrm{d}x` is not a unit: keep single letters that could be symbols.
    if (/^\s*[a-zA-Z]\s*$/.test(m[1])) break;
    s = s.slice(0, m.index).trim();
  }
  let out = "";
  let last = 0;
  for (const m of s.matchAll(TEXT_CMD)) {
    if (m.index < last) continue;
    const open = m.index + m[0].length - 1;
    const end = closingBrace(s, open);
    if (end < 0) break;
    const keepCommand = m[0].startsWith("\\operatorname");
    out += s.slice(last, m.index) + (keepCommand ? s.slice(m.index, end) : s.slice(open + 1, end - 1).trim());
    last = end;
  }
  return (out + s.slice(last)).trim();
}

const UNIT_WORDS =
  "units?|square units|sq\\.? units|cm|centimeters?|mm|millimeters?|km|kilometers?|meters?|inches|inch|" +
  "feet|foot|ft|yards?|miles?|degrees?|dollars?|cents?|seconds?|minutes?|hours?|days?|weeks?|years?|" +
  "pounds?|ounces?|grams?|kg|liters?|mph|percent";
const TRAILING_UNIT = new RegExp(
  `^(.*[\\d}])\\s+(?:square\\s+|cubic\\s+)?(?:${UNIT_WORDS})(?:\\^\\{?[23]\\}?)?$`,
  "i",
);

/** Plain unit words after a number ("18 inches"); only after a space, so `2m` or `5in` keep their variable. */
function stripUnitWords(s: string): string {
  const m = TRAILING_UNIT.exec(s);
  return m ? m[1].trim() : s;
}

/**
 * Drops spaces (as `strip_string` does) except one after a control word followed by a letter (`\cot x`
 * must not become the undefined `\cotx`) and after a one-character sub/superscript (`\log_2 8` is not
 * `\log_28`).
 */
function compactSpaces(s: string): string {
  return s
    .replace(/(\\[a-zA-Z]+) +(?=[a-zA-Z])/g, "$1\u0000")
    .replace(/([_^]\w) +(?=\w)/g, "$1\u0000")
    .replace(/ /g, "")
    .replace(/\u0000/g, " ");
}

/** `x=3`, `k = 5`, `x \in [-2,7]`: a one- or two-letter name in front of the value is not part of it. */
function stripVariablePrefix(s: string): string {
  const inSet = /^[a-zA-Z]\\in(?![a-zA-Z])/.exec(s);
  if (inSet) return s.slice(inSet[0].length).trim();
  const parts = s.split("=");
  if (parts.length === 2 && /^[a-zA-Z]{1,2}$/.test(parts[0].trim()) && parts[1].trim() !== "") {
    return parts[1].trim();
  }
  return s;
}

function fixSqrt(s: string): string {
  return s.replace(/\\sqrt(?![a-zA-Z])\s*(?![{[])(\\[a-zA-Z]+|[^\s\\])/g, "\\sqrt{$1}");
}

// Real answers nest fractions a few levels deep; past this, the rest is left as written so that a model's
// runaway `\frac{\frac{...` costs linear time and cannot overflow the stack.
const MAX_FRAC_NESTING = 32;

/** `\frac12`, `\frac1{2}`, `\frac{\sqrt3}2`, `\frac\pi4` all become `\frac{a}{b}`. */
export function fixFracs(s: string): string {
  return fixFracsNested(s, 0);
}

function fixFracsNested(s: string, nesting: number): string {
  if (nesting >= MAX_FRAC_NESTING) return s;
  let out = "";
  let i = 0;
  for (;;) {
    const at = s.indexOf("\\frac", i);
    if (at < 0 || /[a-zA-Z]/.test(s[at + 5] ?? "")) {
      if (at < 0) return out + s.slice(i);
      out += s.slice(i, at + 5);
      i = at + 5;
      continue;
    }
    out += s.slice(i, at);
    const num = readArgument(s, at + 5);
    const den = num ? readArgument(s, num.end) : null;
    if (!num || !den) return out + s.slice(at);
    out += `\\frac{${fixFracsNested(num.arg, nesting + 1)}}{${fixFracsNested(den.arg, nesting + 1)}}`;
    i = den.end;
  }
}
