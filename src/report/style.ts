/** The report's stylesheet, inlined into the page (the file must not fetch anything). */
export const PAGE_CSS = `
:root { --fg: #1f2933; --muted: #5b6470; --line: #e3e6ea; --bg: #f5f6f8; --card: #fff; --warn: #8a5a00; --bad: #b42318; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Liberation Sans", Arial, sans-serif; }
main { max-width: 1400px; margin: 0 auto; padding: 24px 28px 48px; }
header h1 { font-size: 22px; margin: 0 0 2px; }
header .meta { color: var(--muted); font-size: 13px; }
h2 { font-size: 16px; margin: 28px 0 10px; }
code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, "Liberation Mono", monospace; font-size: 12.5px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 12px; margin-top: 18px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
.card .k { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .v { font-size: 20px; font-weight: 600; font-variant-numeric: tabular-nums; margin-top: 2px; }
.card .v.small { font-size: 13px; overflow-wrap: anywhere; padding-top: 6px; }
.card .s { color: var(--muted); font-size: 12px; }
.notice { border-radius: 8px; padding: 10px 14px; margin-top: 16px; border: 1px solid; }
.notice.problems { background: #fff8eb; border-color: #f3d9a4; color: var(--warn); }
.notice.errors { background: #fef3f2; border-color: #f4c7c3; color: var(--bad); }
.notice.empty { background: var(--card); border-color: var(--line); color: var(--muted); }
.notice ul { margin: 6px 0 0; padding-left: 20px; }
.notice li { font-family: ui-monospace, Menlo, "Liberation Mono", monospace; font-size: 12.5px; }
.plots { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap: 16px; }
figure.plot { margin: 0; background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px 6px; }
figure.plot h3 { margin: 0; font-size: 14.5px; }
figure.plot .sub { color: var(--muted); font-size: 12px; min-height: 1.45em; }
figure.plot.empty .placeholder { height: 120px; display: flex; align-items: center; justify-content: center;
  color: var(--muted); border: 1px dashed var(--line); border-radius: 6px; margin: 8px 0 10px; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 16px; font-size: 12px; color: var(--fg); margin: 6px 0 2px; }
.legend span { display: inline-flex; align-items: center; gap: 6px; }
.legend i { display: inline-block; width: 18px; height: 0; border-top: 2.5px solid; }
.legend i.dashed { border-top-style: dashed; }
.legend i.faint { border-top-width: 1px; opacity: .45; }
#table-skipped th:first-child, #table-skipped td:first-child { width: 6em; }
.legend i.band { height: 10px; border: 0; opacity: .25; }
.legend i.bar { width: 11px; height: 11px; border: 0; border-radius: 2px; }
.legend i.dot { width: 9px; height: 9px; border: 0; border-radius: 50%; }
.legend i.mark { width: 0; height: 0; border: 0; border-left: 5px solid transparent; border-right: 5px solid transparent;
  border-bottom: 8px solid; border-bottom-color: inherit; }
/* Capped so a single wide column does not blow the 11px tick labels up to headline size. */
svg.chart { display: block; width: 100%; max-width: 820px; height: auto; margin: 0 auto; overflow: visible; }
svg.chart text { font-family: inherit; }
svg.chart .grid { stroke: #eceef1; stroke-width: 1; }
svg.chart .axis { stroke: #8f98a3; stroke-width: 1; }
svg.chart .tickmark { stroke: #8f98a3; }
svg.chart .tick { fill: var(--muted); font-size: 11px; font-variant-numeric: tabular-nums; }
svg.chart .label { fill: #374151; font-size: 12px; }
svg.chart .line { fill: none; stroke-width: 2; stroke-linejoin: round; stroke-linecap: round; }
svg.chart .line.faint { stroke-width: 1; stroke-opacity: .35; }
svg.chart .band { opacity: .18; stroke: none; }
svg.chart .area { opacity: .9; stroke: none; }
svg.chart .skip-line { stroke-opacity: .35; stroke-dasharray: 2 3; }
svg.chart .hover-line { stroke: #111; stroke-opacity: .35; stroke-dasharray: 3 3; pointer-events: none; }
.tooltip { position: fixed; z-index: 10; pointer-events: none; background: rgba(255,255,255,.97); border: 1px solid #cfd4da;
  border-radius: 6px; padding: 6px 9px; font-size: 12px; box-shadow: 0 2px 8px rgba(0,0,0,.12); font-variant-numeric: tabular-nums; }
.tooltip .tip-head { font-weight: 600; margin-bottom: 2px; }
.tooltip .tip-note { color: var(--bad); margin-top: 2px; }
.tooltip .sw { display: inline-block; width: 8px; height: 8px; border-radius: 2px; margin-right: 6px; }
.tables { display: grid; grid-template-columns: repeat(auto-fit, minmax(360px, 1fr)); gap: 16px; align-items: start; }
.tables section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; overflow-x: auto; }
.tables section.wide { grid-column: 1 / -1; }
.tables h3 { margin: 0 0 8px; font-size: 14.5px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 4px 10px 4px 0; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; font-size: 12px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.key { color: var(--muted); white-space: nowrap; width: 1%; padding-right: 28px; }
th.num { text-align: right; }
td.break { word-break: break-all; }
footer { color: var(--muted); font-size: 12px; margin-top: 28px; }
@media print { body { background: #fff; } figure.plot, .card, .tables section { break-inside: avoid; } }
`;
