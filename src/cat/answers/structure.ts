import { closingBrace, splitTopLevel } from "./latex-groups.js";

/**
 * The shape of a normalised answer. Equivalence is decided per shape: tuples and intervals are ordered
 * and keep their bracket kinds, sets and bare "all solutions" lists are unordered, equations compare as
 * `lhs - rhs` up to a constant factor, scalars go to the symbolic/numeric check.
 */
export type AnswerShape =
  | { kind: "scalar"; text: string }
  | { kind: "sequence"; open: string; close: string; items: string[] }
  | { kind: "set"; items: string[] }
  | { kind: "union"; parts: AnswerShape[] }
  | { kind: "matrix"; rows: string[][] }
  | { kind: "equation"; lhs: string; rhs: string };

const MATRIX = /^\\begin\{([pbvBV]?matrix|array)\}(?:\{[^}]*\})?([\s\S]*)\\end\{\1\}$/;

export function answerShape(s: string): AnswerShape {
  const union = splitTopLevel(s, "\\cup");
  if (union.length > 1) return { kind: "union", parts: union.map((p) => answerShape(p.trim())) };
  const matrix = MATRIX.exec(s);
  if (matrix) {
    const rows = matrix[2]
      .split("\\\\")
      .map((r) => r.trim())
      .filter((r) => r !== "")
      .map((r) => r.split("&").map((c) => c.trim()));
    return { kind: "matrix", rows };
  }
  if (s.startsWith("\\{") && s.endsWith("\\}") && escapedSetCloses(s)) {
    return { kind: "set", items: expandPlusMinus(splitTopLevel(s.slice(2, -2), ",")) };
  }
  if (/^[([]/.test(s) && /[)\]]$/.test(s) && bracketClosesAtEnd(s)) {
    const items = splitTopLevel(s.slice(1, -1), ",").map((x) => x.trim());
    if (items.length >= 2) return { kind: "sequence", open: s[0], close: s[s.length - 1], items };
  }
  const list = splitTopLevel(s, ",").map((x) => x.trim());
  if (list.length >= 2 && list.every((x) => x !== "")) return { kind: "set", items: expandPlusMinus(list) };
  const pm = expandPlusMinus([s]);
  if (pm.length > 1) return { kind: "set", items: pm };
  const eq = splitTopLevel(s, "=");
  if (eq.length === 2 && eq[0].trim() !== "" && eq[1].trim() !== "") {
    return { kind: "equation", lhs: eq[0].trim(), rhs: eq[1].trim() };
  }
  return { kind: "scalar", text: s };
}

/** True when the `(`/`[` at 0 is closed only by the last character, so `(a+5)(b+2)` is not a tuple. */
function bracketClosesAtEnd(s: string): boolean {
  let depth = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === "\\") {
      i++;
      continue;
    }
    if (c === "(" || c === "[" || c === "{") depth++;
    else if (c === ")" || c === "]" || c === "}") {
      depth--;
      if (depth === 0 && i !== s.length - 1) return false;
    }
  }
  return depth === 0;
}

function escapedSetCloses(s: string): boolean {
  let depth = 0;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === "\\" && (s[i + 1] === "{" || s[i + 1] === "}")) {
      depth += s[i + 1] === "{" ? 1 : -1;
      if (depth === 0 && i + 2 !== s.length) return false;
      i++;
    } else if (s[i] === "{") {
      const end = closingBrace(s, i);
      if (end < 0) return false;
      i = end - 1;
    }
  }
  return depth === 0;
}

/** `1 \pm \sqrt{19}` stands for two answers; one `\pm`/`\mp` per item is expanded, more is left alone. */
function expandPlusMinus(items: string[]): string[] {
  const out: string[] = [];
  for (const item of items.map((x) => x.trim())) {
    const pm = /\\(pm|mp)(?![a-zA-Z])/g;
    const hits = [...item.matchAll(pm)];
    if (hits.length !== 1) {
      out.push(item);
      continue;
    }
    const at = hits[0].index;
    const before = item.slice(0, at);
    const after = item.slice(at + hits[0][0].length);
    out.push(`${before}+${after}`.replace(/^\+/, ""), `${before}-${after}`);
  }
  return out;
}
