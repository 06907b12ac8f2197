import type { Measurement, VariantName } from "./types.js";

export type VariantFigures = {
  tokensPerSec: number;
  rolloutsPerSec: number;
  decodeTokensPerSec: number | null;
  repeats: number;
};

export type CaseSummary = {
  prompts: number;
  G: number;
  sequences: number;
  variants: Partial<Record<VariantName, VariantFigures>>;
  ratios: {
    /** Generated tokens/s, prompt evaluation included in both. */
    engineOverNaive: number | null;
    /** End to end: the engine's generated tokens/s against llama-batched-bench's G*TG / T. */
    engineOverLlamaCpp: number | null;
    /** The engine's end-to-end tokens/s against llama-batched-bench's decode-only S_TG (the stricter one). */
    engineOverLlamaCppDecode: number | null;
  };
};

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Medians over repeats per (prompts, G) and variant, and the ratios the targets are stated in. */
export function summarize(ms: Measurement[]): CaseSummary[] {
  const keys = [...new Set(ms.map((m) => `${m.prompts}x${m.G}`))];
  return keys.map((key) => {
    const [prompts, G] = key.split("x").map(Number);
    const variants: CaseSummary["variants"] = {};
    for (const v of ["engine", "naive", "llama.cpp"] as const) {
      const own = ms.filter((m) => m.variant === v && m.prompts === prompts && m.G === G);
      if (own.length === 0) continue;
      const dec = own.map((m) => m.decodeTokensPerSec).filter((x): x is number => x != null);
      variants[v] = {
        tokensPerSec: median(own.map((m) => m.tokensPerSec)),
        rolloutsPerSec: median(own.map((m) => m.rolloutsPerSec)),
        decodeTokensPerSec: dec.length ? median(dec) : null,
        repeats: own.length,
      };
    }
    const e = variants.engine;
    const ratio = (a: number | undefined | null, b: number | undefined | null) => (a && b ? a / b : null);
    return {
      prompts,
      G,
      sequences: prompts * G,
      variants,
      ratios: {
        engineOverNaive: ratio(e?.tokensPerSec, variants.naive?.tokensPerSec),
        engineOverLlamaCpp: ratio(e?.tokensPerSec, variants["llama.cpp"]?.tokensPerSec),
        engineOverLlamaCppDecode: ratio(e?.tokensPerSec, variants["llama.cpp"]?.decodeTokensPerSec),
      },
    };
  });
}

export function formatTable(rows: CaseSummary[]): string {
  const f = (x: number | null | undefined, d = 1) => (x == null ? "-" : x.toFixed(d));
  const head = [
    "prompts",
    "G",
    "seqs",
    "engine tok/s",
    "engine roll/s",
    "naive tok/s",
    "naive roll/s",
    "llama.cpp tok/s",
    "llama.cpp S_TG",
    "eng/naive",
    "eng/llama.cpp",
    "eng/S_TG",
  ];
  const body = rows.map((r) => [
    String(r.prompts),
    String(r.G),
    String(r.sequences),
    f(r.variants.engine?.tokensPerSec),
    f(r.variants.engine?.rolloutsPerSec, 2),
    f(r.variants.naive?.tokensPerSec),
    f(r.variants.naive?.rolloutsPerSec, 2),
    f(r.variants["llama.cpp"]?.tokensPerSec),
    f(r.variants["llama.cpp"]?.decodeTokensPerSec),
    f(r.ratios.engineOverNaive, 2),
    f(r.ratios.engineOverLlamaCpp, 2),
    f(r.ratios.engineOverLlamaCppDecode, 2),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padStart(widths[i])).join(" | ")} |`;
  return [line(head), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...body.map(line)].join("\n");
}
