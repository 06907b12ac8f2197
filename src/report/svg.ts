import { type Domain, formatTick, linear, log2Scale, niceDomain, ticks } from "./scale.js";

/**
 * Charts as inline SVG strings. Drawn here rather than by a plotting library in the page: the report
 * must be one self-contained file, readable without JavaScript, and this keeps it dependency-free and
 * unit-testable. The page script (page.ts) only adds hover read-outs and checks that marks were drawn.
 */

export const WIDTH = 640;
export const HEIGHT = 280;
const M = { left: 64, right: 18, top: 14, bottom: 44 };
const PLOT = { x0: M.left, x1: WIDTH - M.right, y0: HEIGHT - M.bottom, y1: M.top };

export type Value = number | null | undefined;

export type LineSeries = {
  name: string;
  color: string;
  values: Value[];
  dashed?: boolean;
  /** Thin and pale: raw per-step values drawn under their moving average. */
  faint?: boolean;
  /** A dot on every point (few points, e.g. evals). */
  markers?: boolean;
  /** Per point: draw the marker hollow (e.g. agreement instead of gold accuracy). */
  hollow?: boolean[];
  /** Shaded band around the line, e.g. mean ± std. */
  band?: { lo: Value[]; hi: Value[]; name: string };
};

export type XAxis = {
  label: string;
  domain: Domain;
  scale?: "linear" | "log2";
  /** Exact tick positions (log2 axes: the G values). */
  tickValues?: number[];
  integer?: boolean;
};

export type YAxis = {
  label: string;
  /** Fixed domain; otherwise from the data, rounded to nice ticks. */
  domain?: Domain;
  includeZero?: boolean;
  clamp?: Domain;
};

/** Ticks along the x axis for steps the loop skipped. */
export type XMarks = { xs: number[]; labels: string[]; name: string; color: string };

export type LineChart = {
  kind: "line";
  xs: number[];
  x: XAxis;
  y: YAxis;
  series: LineSeries[];
  marks?: XMarks;
};

export type StackedChart = {
  kind: "stacked";
  xs: number[];
  x: XAxis;
  y: YAxis;
  layers: Array<{ name: string; color: string; values: Value[] }>;
};

export type Chart = LineChart | StackedChart;

/** What the page script needs for hover read-outs. */
export type HoverData = {
  xLabel: string;
  xs: number[];
  rows: Array<{ name: string; color: string; values: Array<number | null> }>;
  notes?: Array<string | null>;
};

export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const n = (v: number): string => (Math.round(v * 10) / 10).toString();
const finite = (v: Value): v is number => typeof v === "number" && Number.isFinite(v);

function xScale(x: XAxis): (v: number) => number {
  const range: [number, number] = [PLOT.x0, PLOT.x1];
  return x.scale === "log2" ? log2Scale(x.domain, range) : linear(x.domain, range);
}

function yDomainOf(values: number[], y: YAxis): Domain {
  if (y.domain) return y.domain;
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (values.length === 0) [lo, hi] = [0, 1];
  if (y.includeZero) [lo, hi] = [Math.min(0, lo), Math.max(0, hi)];
  let d = niceDomain([lo, hi]);
  if (y.clamp) d = [Math.max(y.clamp[0], d[0]), Math.min(y.clamp[1], d[1])];
  return d;
}

function axes(x: XAxis, yDomain: Domain, yLabel: string): string {
  const sx = xScale(x);
  const sy = linear(yDomain, [PLOT.y0, PLOT.y1]);
  const out: string[] = [];
  const yt = ticks(yDomain, 5);
  for (const v of yt.values) {
    const py = n(sy(v));
    out.push(`<line class="grid" x1="${PLOT.x0}" x2="${PLOT.x1}" y1="${py}" y2="${py}"/>`);
    out.push(
      `<text class="tick" x="${PLOT.x0 - 6}" y="${py}" text-anchor="end" dy="0.32em">${esc(formatTick(v, yt.step))}</text>`,
    );
  }
  const xt =
    x.tickValues !== undefined
      ? { values: x.tickValues, step: 1 }
      : ticks(x.domain, Math.min(8, Math.max(2, Math.ceil(x.domain[1] - x.domain[0]))), x.integer);
  for (const v of xt.values) {
    const px = n(sx(v));
    out.push(`<line class="tickmark" x1="${px}" x2="${px}" y1="${PLOT.y0}" y2="${PLOT.y0 + 5}"/>`);
    out.push(
      `<text class="tick" x="${px}" y="${PLOT.y0 + 17}" text-anchor="middle">${esc(formatTick(v, xt.step))}</text>`,
    );
  }
  out.push(`<line class="axis" x1="${PLOT.x0}" x2="${PLOT.x1}" y1="${PLOT.y0}" y2="${PLOT.y0}"/>`);
  out.push(`<line class="axis" x1="${PLOT.x0}" x2="${PLOT.x0}" y1="${PLOT.y0}" y2="${PLOT.y1}"/>`);
  out.push(
    `<text class="label" x="${(PLOT.x0 + PLOT.x1) / 2}" y="${HEIGHT - 6}" text-anchor="middle">${esc(x.label)}</text>`,
  );
  const cy = (PLOT.y0 + PLOT.y1) / 2;
  out.push(
    `<text class="label" transform="translate(14 ${cy}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`,
  );
  return out.join("");
}

/** Index runs of consecutive finite values: a missing value breaks the line instead of bridging it. */
function runs(ys: Value[]): number[][] {
  const out: number[][] = [];
  let cur: number[] = [];
  ys.forEach((y, i) => {
    if (finite(y)) cur.push(i);
    else if (cur.length > 0) {
      out.push(cur);
      cur = [];
    }
  });
  if (cur.length > 0) out.push(cur);
  return out;
}

function svgOpen(x: XAxis, title: string): string {
  const [d0, d1] = x.domain;
  return (
    `<svg class="chart" viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-label="${esc(title)}"` +
    ` data-x-scale="${x.scale ?? "linear"}" data-x0="${d0}" data-x1="${d1}" data-px0="${PLOT.x0}" data-px1="${PLOT.x1}"` +
    ` data-py0="${PLOT.y1}" data-py1="${PLOT.y0}">`
  );
}

function hoverLine(): string {
  return `<line class="hover-line" x1="0" x2="0" y1="${PLOT.y1}" y2="${PLOT.y0}" visibility="hidden"/>`;
}

export function lineChartSvg(c: LineChart, title: string): string {
  const all: number[] = [];
  for (const s of c.series) {
    for (const v of [...s.values, ...(s.band?.lo ?? []), ...(s.band?.hi ?? [])]) if (finite(v)) all.push(v);
  }
  const yDomain = yDomainOf(all, c.y);
  const sx = xScale(c.x);
  const sy = linear(yDomain, [PLOT.y0, PLOT.y1]);
  const body: string[] = [svgOpen(c.x, title), axes(c.x, yDomain, c.y.label)];
  for (const s of c.series) {
    if (!s.band) continue;
    const { lo, hi } = s.band;
    const both = c.xs.map((_, i) => (finite(lo[i]) && finite(hi[i]) ? 0 : null));
    for (const run of runs(both)) {
      const top = run.map((i) => `${n(sx(c.xs[i]))},${n(sy(hi[i] as number))}`);
      const bottom = [...run].reverse().map((i) => `${n(sx(c.xs[i]))},${n(sy(lo[i] as number))}`);
      body.push(`<path class="mark band" d="M${top.join("L")}L${bottom.join("L")}Z" fill="${s.color}"/>`);
    }
  }
  for (const s of c.series) {
    const dash = s.dashed ? ` stroke-dasharray="6 4"` : "";
    const at = (i: number): string => `${n(sx(c.xs[i]))},${n(sy(s.values[i] as number))}`;
    for (const run of runs(s.values)) {
      const d = run.map((i, k) => `${k === 0 ? "M" : "L"}${at(i)}`).join("");
      const cls = s.faint ? "mark line faint" : "mark line";
      if (run.length > 1) body.push(`<path class="${cls}" d="${d}" stroke="${s.color}"${dash}/>`);
      // A lone point between gaps would be invisible as a line.
      if (run.length === 1 && !s.markers) {
        const [cx, cy] = at(run[0]).split(",");
        body.push(`<circle class="mark dot" cx="${cx}" cy="${cy}" r="2.5" fill="${s.color}"/>`);
      }
    }
    if (s.markers) {
      c.xs.forEach((x, i) => {
        const v = s.values[i];
        if (!finite(v)) return;
        const fill = s.hollow?.[i] ? "#fff" : s.color;
        body.push(
          `<circle class="mark dot" cx="${n(sx(x))}" cy="${n(sy(v))}" r="4" fill="${fill}" stroke="${s.color}" stroke-width="2"/>`,
        );
      });
    }
  }
  if (c.marks && c.marks.xs.length > 0) {
    for (const x of c.marks.xs) {
      const px = sx(x);
      body.push(
        `<line class="skip-line" x1="${n(px)}" x2="${n(px)}" y1="${PLOT.y1}" y2="${PLOT.y0}" stroke="${c.marks.color}"/>`,
        `<path class="skip-mark" d="M${n(px)},${PLOT.y0 - 1}l-4.5,-8h9z" fill="${c.marks.color}"><title>skipped step ${x}</title></path>`,
      );
    }
  }
  body.push(hoverLine(), "</svg>");
  return body.join("");
}

export function stackedChartSvg(c: StackedChart, title: string): string {
  const totals = c.xs.map((_, i) =>
    c.layers.reduce((sum, l) => sum + (finite(l.values[i]) ? l.values[i] : 0), 0),
  );
  const yDomain = yDomainOf([0, ...totals], { ...c.y, includeZero: true });
  const sx = xScale(c.x);
  const sy = linear(yDomain, [PLOT.y0, PLOT.y1]);
  const body: string[] = [svgOpen(c.x, title), axes(c.x, yDomain, c.y.label)];
  const base = c.xs.map(() => 0);
  // Bars stay readable up to ~120 steps; past that they are slivers, and a stacked area reads better.
  const asBars = c.xs.length <= 120;
  const span = c.x.domain[1] - c.x.domain[0];
  const slot = ((PLOT.x1 - PLOT.x0) / Math.max(1, span + 1)) * 0.8;
  const barW = Math.max(1, Math.min(28, slot));
  for (const layer of c.layers) {
    const tops = base.map((b, i) => b + (finite(layer.values[i]) ? (layer.values[i] as number) : 0));
    if (asBars) {
      const rects: string[] = [];
      c.xs.forEach((x, i) => {
        const h = sy(base[i]) - sy(tops[i]);
        if (h <= 0) return;
        rects.push(
          `<rect class="mark bar" x="${n(sx(x) - barW / 2)}" y="${n(sy(tops[i]))}" width="${n(barW)}" height="${n(h)}"/>`,
        );
      });
      body.push(`<g fill="${layer.color}">${rects.join("")}</g>`);
    } else {
      const top = c.xs.map((x, i) => `${n(sx(x))},${n(sy(tops[i]))}`);
      const bottom = c.xs.map((x, i) => `${n(sx(x))},${n(sy(base[i]))}`).reverse();
      body.push(`<path class="mark area" d="M${top.join("L")}L${bottom.join("L")}Z" fill="${layer.color}"/>`);
    }
    tops.forEach((t, i) => {
      base[i] = t;
    });
  }
  body.push(hoverLine(), "</svg>");
  return body.join("");
}

export function chartSvg(c: Chart, title: string): string {
  return c.kind === "line" ? lineChartSvg(c, title) : stackedChartSvg(c, title);
}

export function hoverData(c: Chart, notes?: Array<string | null>): HoverData {
  const rows =
    c.kind === "line"
      ? c.series.flatMap((s) => {
          const main = { name: s.name, color: s.color, values: s.values.map((v) => (finite(v) ? v : null)) };
          if (!s.band) return [main];
          const { lo, hi } = s.band;
          const half = c.xs.map((_, i) => (finite(lo[i]) && finite(hi[i]) ? (hi[i] - lo[i]) / 2 : null));
          return [main, { name: s.band.name, color: s.color, values: half }];
        })
      : c.layers.map((l) => ({
          name: l.name,
          color: l.color,
          values: l.values.map((v) => (finite(v) ? v : null)),
        }));
  return { xLabel: c.x.label, xs: c.xs, rows, ...(notes ? { notes } : {}) };
}
