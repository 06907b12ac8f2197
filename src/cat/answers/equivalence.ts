import { ComputeEngine } from "@cortex-js/compute-engine";
import { inequalityAsInterval } from "./inequality.js";
import { normalizeAnswer } from "./normalize.js";
import { type AnswerShape, answerShape } from "./structure.js";

// The package's public types do not re-export the boxed-expression interface; derive it.
type BoxedExpression = ReturnType<ComputeEngine["box"]>;

let engine: ComputeEngine | null = null;
function ce(): ComputeEngine {
  engine ??= new ComputeEngine();
  return engine;
}

/**
 * Symbolic/numeric equivalence of two answers (`math` mode). Both are normalised, split into a shape
 * (tuple, interval, set, union, matrix, equation, scalar) and compared per shape; scalars are parsed by
 * the Compute Engine and compared exactly when both are integers, numerically (relative 1e-9) when
 * closed-form, and at fixed sample points when they have free variables (the same variables on both
 * sides). Anything that does not parse is compared as a string only, so a parse failure never makes two
 * answers equal. Runs synchronously; a pathological input can still take long, which is why the pool
 * runs this with a timeout.
 */
export function mathEquivalent(a: string, b: string): boolean {
  const na = asInterval(normalizeAnswer(a));
  const nb = asInterval(normalizeAnswer(b));
  if (na === nb) return true;
  if (na === "" || nb === "") return false;
  return shapesEquivalent(answerShape(na), answerShape(nb));
}

/** An inequality in one variable compares as its interval (`3<x\\le4` as `(3,4]`). */
function asInterval(normalized: string): string {
  return inequalityAsInterval(normalized) ?? normalized;
}

function shapesEquivalent(x: AnswerShape, y: AnswerShape): boolean {
  if (x.kind === "union" || y.kind === "union") {
    const xs = x.kind === "union" ? x.parts : [x];
    const ys = y.kind === "union" ? y.parts : [y];
    return unorderedMatch(xs, ys, shapesEquivalent);
  }
  if (x.kind === "scalar" && y.kind === "scalar") return scalarsEquivalent(x.text, y.text);
  if (x.kind === "sequence" && y.kind === "sequence") {
    return (
      x.open === y.open &&
      x.close === y.close &&
      x.items.length === y.items.length &&
      x.items.every((it, i) => itemsEquivalent(it, y.items[i]))
    );
  }
  if (x.kind === "set" && y.kind === "set") return unorderedMatch(x.items, y.items, itemsEquivalent);
  if (x.kind === "matrix" && y.kind === "matrix") {
    return (
      x.rows.length === y.rows.length &&
      x.rows.every(
        (r, i) => r.length === y.rows[i].length && r.every((c, j) => itemsEquivalent(c, y.rows[i][j])),
      )
    );
  }
  if (x.kind === "equation" && y.kind === "equation") return equationsEquivalent(x, y);
  return false;
}

function itemsEquivalent(a: string, b: string): boolean {
  const na = normalizeAnswer(a);
  const nb = normalizeAnswer(b);
  if (na === nb) return true;
  return shapesEquivalent(answerShape(na), answerShape(nb));
}

/** Multiset match; greedy is enough because equivalence is transitive. */
function unorderedMatch<T>(xs: T[], ys: T[], eq: (a: T, b: T) => boolean): boolean {
  if (xs.length !== ys.length) return false;
  const used = new Array<boolean>(ys.length).fill(false);
  for (const x of xs) {
    const k = ys.findIndex((y, j) => !used[j] && eq(x, y));
    if (k < 0) return false;
    used[k] = true;
  }
  return true;
}

// Towers (`10^{10^{10}}`), huge exponents and factorials make the engine allocate until the heap dies;
// such answers are compared as strings only.
const UNSAFE = /\^\s*\{[^{}]*\^|\^\s*\{?\s*-?\d{4,}|\d{4,}\s*!|\\underbrace|\\cdots|\\ldots|\\dots/;

const BASE_NUMERAL = /^[0-9A-Z]+_\{?\d+\}?$/;

// Several letters in a row with no command are words (`east`, `Evelyn`, `odd`), not a product of
// variables: the engine would find `east` equal to `seat`.
function isWord(s: string): boolean {
  return /^[a-zA-Z][a-zA-Z ]{2,}$/.test(s);
}

function toCeLatex(s: string): string {
  const mixed = /^(-?)(\d+)\\frac\{(\d+)\}\{(\d+)\}$/.exec(s);
  if (mixed) {
    const [, sign, whole, num, den] = mixed;
    return `${sign}\\frac{${BigInt(whole) * BigInt(den) + BigInt(num)}}{${den}}`;
  }
  return s;
}

function scalarsEquivalent(a: string, b: string): boolean {
  if (a === b) return true;
  if (isWord(a) || isWord(b)) return a.toLowerCase() === b.toLowerCase();
  if (/^-?\d+$/.test(a) && /^-?\d+$/.test(b)) return BigInt(a) === BigInt(b);
  // Base-n numerals (`52_8`) have no value the engine knows; their digits and base must agree exactly.
  if (BASE_NUMERAL.test(a) || BASE_NUMERAL.test(b)) return false;
  if (UNSAFE.test(a) || UNSAFE.test(b)) return false;
  return withScope((c) => {
    const x = c.parse(toCeLatex(a));
    const y = c.parse(toCeLatex(b));
    if (!x.isValid || !y.isValid) return false;
    // Identical canonical forms settle it where sampling cannot (`a_1 b` has no numeric value); not
    // when both are undefined (1/0 and 2/0 both box to NaN).
    if (x.isSame(y) && !/NaN|ComplexInfinity/.test(JSON.stringify(x.json))) return true;
    const vars = sameUnknowns(x, y);
    if (vars === null) return false;
    if (vars.length === 0) return constantsEqual(x, y);
    return agreeAtPoints(c, x, y, vars, (p, q) => close(p, q));
  });
}

function equationsEquivalent(x: { lhs: string; rhs: string }, y: { lhs: string; rhs: string }): boolean {
  const parts = [x.lhs, x.rhs, y.lhs, y.rhs].map(normalizeAnswer);
  if (parts.some((p) => UNSAFE.test(p) || isWord(p))) return false;
  return withScope((c) => {
    const f = c.parse(`(${toCeLatex(parts[0])})-(${toCeLatex(parts[1])})`);
    const g = c.parse(`(${toCeLatex(parts[2])})-(${toCeLatex(parts[3])})`);
    if (!f.isValid || !g.isValid) return false;
    const vars = sameUnknowns(f, g);
    if (vars === null || vars.length === 0) return false;
    // `5x-7y+11z+4=0` and `-10x+14y-22z-8=0` are the same plane: f/g must be one nonzero constant.
    let ratio: Complex | null = null;
    return agreeAtPoints(c, f, g, vars, (p, q) => {
      if (Math.hypot(q.re, q.im) < 1e-12) return Math.hypot(p.re, p.im) < 1e-12;
      const d = q.re * q.re + q.im * q.im;
      const r = { re: (p.re * q.re + p.im * q.im) / d, im: (p.im * q.re - p.re * q.im) / d };
      if (Math.hypot(r.re, r.im) < 1e-12) return false;
      if (ratio === null) {
        ratio = r;
        return true;
      }
      return close(r, ratio);
    });
  });
}

function withScope(fn: (c: ComputeEngine) => boolean): boolean {
  const c = ce();
  // The engine infers symbol types across parses (after `x_1`, `x` is a list and `0.5x` a tuple), so
  // each comparison gets a fresh scope.
  c.pushScope();
  try {
    return fn(c);
  } catch {
    return false;
  } finally {
    c.popScope();
  }
}

function sameUnknowns(x: BoxedExpression, y: BoxedExpression): string[] | null {
  const ux = [...new Set<string>(x.unknowns)].sort();
  const uy = [...new Set<string>(y.unknowns)].sort();
  if (ux.length !== uy.length || ux.some((v, i) => v !== uy[i])) return null;
  return ux;
}

type Complex = { re: number; im: number };

function value(e: BoxedExpression): Complex | null {
  const n = e.N();
  const re = n.re;
  const im = n.im;
  if (Number.isNaN(re) || Number.isNaN(im)) return null;
  return { re, im };
}

function close(p: Complex, q: Complex): boolean {
  if (!Number.isFinite(p.re) || !Number.isFinite(q.re)) return p.re === q.re && p.im === q.im;
  const scale = Math.max(1, Math.hypot(p.re, p.im), Math.hypot(q.re, q.im));
  return Math.hypot(p.re - q.re, p.im - q.im) <= 1e-9 * scale;
}

function constantsEqual(x: BoxedExpression, y: BoxedExpression): boolean {
  const p = value(x);
  const q = value(y);
  if (!p || !q || !close(p, q)) return false;
  // Doubles cannot tell 10^20 from 10^20+1; above 2^53 the engine's exact digits decide.
  if (Math.max(Math.abs(p.re), Math.abs(q.re)) > 2 ** 53) {
    return JSON.stringify(x.N().json) === JSON.stringify(y.N().json);
  }
  return true;
}

// Points of both signs so `|x|x` and `x^2` differ; irrational-looking values avoid accidental roots.
const SAMPLES = [0.3719, 1.6127, -0.8263, 2.2917, -1.4731, 0.9137];

function agreeAtPoints(
  c: ComputeEngine,
  x: BoxedExpression,
  y: BoxedExpression,
  vars: string[],
  same: (p: Complex, q: Complex) => boolean,
): boolean {
  let compared = 0;
  for (let k = 0; k < SAMPLES.length; k++) {
    const sub: Record<string, BoxedExpression> = {};
    vars.forEach((v, j) => {
      sub[v] = c.number(SAMPLES[(k + 2 * j) % SAMPLES.length] + 0.137 * j);
    });
    const p = value(x.subs(sub));
    const q = value(y.subs(sub));
    if (p === null && q === null) continue;
    if (p === null || q === null) return false;
    if (!same(p, q)) return false;
    compared++;
  }
  return compared >= 3;
}
