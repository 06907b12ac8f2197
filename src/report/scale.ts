/**
 * Axis arithmetic for the report's charts: "nice" domains and ticks (1, 2, 5 x 10^k) and tick labels
 * with just enough decimals to tell neighbouring ticks apart.
 */

export type Domain = [number, number];

function niceStep(span: number, count: number): number {
  const raw = span / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  const nice = norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10;
  return nice * mag;
}

/** Widens a degenerate (single-value) domain so it can be drawn. */
function widen([lo, hi]: Domain): Domain {
  if (hi > lo) return [lo, hi];
  const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
  return [lo - pad, hi + pad];
}

/** Rounds the domain outward to tick multiples. */
export function niceDomain(domain: Domain, count = 5): Domain {
  const [lo, hi] = widen(domain);
  const step = niceStep(hi - lo, count);
  const round = (v: number): number => Number(v.toPrecision(12));
  return [round(Math.floor(lo / step) * step), round(Math.ceil(hi / step) * step)];
}

export type Ticks = { values: number[]; step: number };

export function ticks(domain: Domain, count = 5, integer = false): Ticks {
  const [lo, hi] = widen(domain);
  let step = niceStep(hi - lo, count);
  if (integer) step = Math.max(1, Math.round(step));
  const values: number[] = [];
  // Multiplying (not accumulating) and rounding keep 0.1 + 0.2-style drift out of tick positions.
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k++)
    values.push(Number((k * step).toPrecision(12)));
  return { values, step };
}

/** Tick label: decimals follow the tick step; tiny or huge magnitudes switch to exponent form. */
export function formatTick(v: number, step: number): string {
  if (v === 0) return "0";
  const abs = Math.abs(v);
  if (abs >= 1e6 || step < 1e-4) return v.toExponential(Math.max(0, Math.min(3, exponentDigits(step, v))));
  const decimals = Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9)));
  return v.toFixed(decimals);
}

function exponentDigits(step: number, v: number): number {
  return Math.max(0, Math.floor(Math.log10(Math.abs(v))) - Math.floor(Math.log10(step)));
}

/** A value for tables and tooltips: 4 significant digits, no trailing zeros, exponent when tiny. */
export function formatValue(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  if (v === 0) return "0";
  const abs = Math.abs(v);
  if (abs < 1e-3 || abs >= 1e7) return v.toExponential(2);
  if (Number.isInteger(v)) return String(v);
  return String(Number(v.toPrecision(4)));
}

export function linear(domain: Domain, range: [number, number]): (v: number) => number {
  const [d0, d1] = domain;
  const [r0, r1] = range;
  const k = d1 === d0 ? 0 : (r1 - r0) / (d1 - d0);
  return (v) => r0 + (v - d0) * k;
}

export function log2Scale(domain: Domain, range: [number, number]): (v: number) => number {
  const inner = linear([Math.log2(domain[0]), Math.log2(domain[1])], range);
  return (v) => inner(Math.log2(v));
}
