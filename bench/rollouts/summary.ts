import { type Measurement, VARIANTS, type VariantName } from "./types.js";

export type VariantFigures = {
  tokensPerSec: number;
  rolloutsPerSec: number;
  decodeTokensPerSec: number | null;
  prefillTokensPerSec: number | null;
  repeats: number;
};

export type CaseSummary = {
  prompts: number;
  G: number;
  sequences: number;
  maxTokens: number;
  promptTokens: number;
  variants: Partial<Record<VariantName, VariantFigures>>;
  ratios: {
    /** Generated tokens/s, prompt evaluation included in both. */
    engineOverNaive: number | null;
    /** End to end: the engine's generated tokens/s against llama-batched-bench's (defaults) B*TG / T. */
    engineOverLlamaCpp: number | null;
    /** The same against llama-batched-bench -fa off. */
    engineOverLlamaCppFaOff: number | null;
    /** The same against llama-batched-bench -pps (prompt evaluated once; one-prompt cases). */
    engineOverLlamaCppPps: number | null;
    /** The engine's end-to-end tokens/s against llama-batched-bench's decode-only S_TG (the stricter one). */
    engineOverLlamaCppDecode: number | null;
    /** Decode alone: the engine's decode-window tokens/s against S_TG (defaults). */
    engineDecodeOverSTg: number | null;
    /** What flash attention buys the engine: engine over engine-fa-off, end to end. */
    engineOverEngineFaOff: number | null;
  };
};

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const caseKey = (m: Pick<Measurement, "prompts" | "G" | "maxTokens" | "promptTokens">) =>
  `${m.prompts}x${m.G}x${m.maxTokens}x${m.promptTokens}`;

/** Medians over repeats per case and variant, and the ratios the targets are stated in. */
export function summarize(ms: Measurement[]): CaseSummary[] {
  const keys = [...new Set(ms.map(caseKey))];
  return keys.map((key) => {
    const [prompts, G, maxTokens, promptTokens] = key.split("x").map(Number);
    const variants: CaseSummary["variants"] = {};
    for (const v of VARIANTS) {
      const own = ms.filter((m) => m.variant === v && caseKey(m) === key);
      if (own.length === 0) continue;
      const med = (f: (m: Measurement) => number | undefined) => {
        const xs = own.map(f).filter((x): x is number => x != null);
        return xs.length ? median(xs) : null;
      };
      variants[v] = {
        tokensPerSec: median(own.map((m) => m.tokensPerSec)),
        rolloutsPerSec: median(own.map((m) => m.rolloutsPerSec)),
        decodeTokensPerSec: med((m) => m.decodeTokensPerSec),
        prefillTokensPerSec: med((m) => m.prefillTokensPerSec),
        repeats: own.length,
      };
    }
    const e = variants.engine;
    const ratio = (a: number | undefined | null, b: number | undefined | null) => (a && b ? a / b : null);
    const l = variants["llama.cpp"];
    return {
      prompts,
      G,
      sequences: prompts * G,
      maxTokens,
      promptTokens,
      variants,
      ratios: {
        engineOverNaive: ratio(e?.tokensPerSec, variants.naive?.tokensPerSec),
        engineOverLlamaCpp: ratio(e?.tokensPerSec, l?.tokensPerSec),
        engineOverLlamaCppFaOff: ratio(e?.tokensPerSec, variants["llama.cpp-fa-off"]?.tokensPerSec),
        engineOverLlamaCppPps: ratio(e?.tokensPerSec, variants["llama.cpp-pps"]?.tokensPerSec),
        engineOverLlamaCppDecode: ratio(e?.tokensPerSec, l?.decodeTokensPerSec),
        engineDecodeOverSTg: ratio(e?.decodeTokensPerSec, l?.decodeTokensPerSec),
        engineOverEngineFaOff: ratio(e?.tokensPerSec, variants["engine-fa-off"]?.tokensPerSec),
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
    "prompt tok",
    "new tok",
    "engine tok/s",
    "engine decode",
    "engine fa-off",
    "naive tok/s",
    "llama.cpp tok/s",
    "llama.cpp S_TG",
    "llama.cpp fa-off tok/s",
    "llama.cpp -pps tok/s",
    "eng/naive",
    "eng/llama.cpp",
    "eng/fa-off llama.cpp",
    "eng/-pps",
    "eng decode/S_TG",
    "eng/eng fa-off",
  ];
  const body = rows.map((r) => [
    String(r.prompts),
    String(r.G),
    String(r.sequences),
    String(r.promptTokens),
    String(r.maxTokens),
    f(r.variants.engine?.tokensPerSec),
    f(r.variants.engine?.decodeTokensPerSec),
    f(r.variants["engine-fa-off"]?.tokensPerSec),
    f(r.variants.naive?.tokensPerSec),
    f(r.variants["llama.cpp"]?.tokensPerSec),
    f(r.variants["llama.cpp"]?.decodeTokensPerSec),
    f(r.variants["llama.cpp-fa-off"]?.tokensPerSec),
    f(r.variants["llama.cpp-pps"]?.tokensPerSec),
    f(r.ratios.engineOverNaive, 2),
    f(r.ratios.engineOverLlamaCpp, 2),
    f(r.ratios.engineOverLlamaCppFaOff, 2),
    f(r.ratios.engineOverLlamaCppPps, 2),
    f(r.ratios.engineDecodeOverSTg, 2),
    f(r.ratios.engineOverEngineFaOff, 2),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padStart(widths[i])).join(" | ")} |`;
  return [line(head), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...body.map(line)].join("\n");
}
