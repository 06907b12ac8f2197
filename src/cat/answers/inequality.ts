/**
 * An inequality in one variable as the interval it describes, so `3 < x \le 4` matches `(3,4]` and
 * `x \ge -2` matches `[-2,\infty)` (MATH answers are written both ways). Works on normalised text;
 * returns null for anything that is not one or two comparisons around a single-letter variable.
 */
// `(?![a-zA-Z])`: `\left` is not `\le`.
const LESS = String.raw`<|\\leq?(?:slant)?(?![a-zA-Z])|≤`;
const MORE = String.raw`>|\\geq?(?:slant)?(?![a-zA-Z])|≥`;
const OP = new RegExp(`^(${LESS}|${MORE})`);
const VAR = /^\s*[a-zA-Z]\s*$/;

type Cmp = { less: boolean; strict: boolean };

function op(s: string): Cmp | null {
  const m = OP.exec(s);
  if (!m) return null;
  const less = new RegExp(`^(?:${LESS})$`).test(m[1]);
  return { less, strict: m[1] === "<" || m[1] === ">" };
}

/** Splits `a < x \le b` into operands and operators (a bound may not itself contain a comparison). */
function split(text: string): { parts: string[]; ops: Cmp[] } | null {
  const re = new RegExp(`(${LESS}|${MORE})`, "g");
  const parts: string[] = [];
  const ops: Cmp[] = [];
  let last = 0;
  for (const m of text.matchAll(re)) {
    parts.push(text.slice(last, m.index));
    const c = op(m[1]);
    if (!c) return null;
    ops.push(c);
    last = m.index + m[0].length;
  }
  parts.push(text.slice(last));
  if (ops.length === 0 || ops.length > 2 || parts.some((p) => p.trim() === "")) return null;
  return { parts: parts.map((p) => p.trim()), ops };
}

const interval = (lo: string | null, loStrict: boolean, hi: string | null, hiStrict: boolean) =>
  `${lo == null || loStrict ? "(" : "["}${lo ?? String.raw`-\infty`},${hi ?? String.raw`\infty`}${hi == null || hiStrict ? ")" : "]"}`;

export function inequalityAsInterval(text: string): string | null {
  const s = split(text);
  if (!s) return null;
  const { parts, ops } = s;
  if (ops.length === 2) {
    if (!VAR.test(parts[1]) || ops[0].less !== ops[1].less) return null;
    // a < x <= b, or b > x >= a
    return ops[0].less
      ? interval(parts[0], ops[0].strict, parts[2], ops[1].strict)
      : interval(parts[2], ops[1].strict, parts[0], ops[0].strict);
  }
  const [c] = ops;
  if (VAR.test(parts[0]) && !VAR.test(parts[1])) {
    // x < b  |  x > a
    return c.less ? interval(null, true, parts[1], c.strict) : interval(parts[1], c.strict, null, true);
  }
  if (VAR.test(parts[1]) && !VAR.test(parts[0])) {
    // a < x  |  b > x
    return c.less ? interval(parts[0], c.strict, null, true) : interval(null, true, parts[0], c.strict);
  }
  return null;
}
