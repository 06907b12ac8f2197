import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { getLlama, type Llama, LlamaCompletion, LlamaLogLevel } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  encodeTensorData,
  f16BitsToF32,
  f32ToF16Bits,
  GgmlType,
  GgufValueType,
  gguf,
  readGgufHeader,
  writeGguf,
} from "../src/gguf/index.js";
import {
  countParameters,
  MODEL_PRESETS,
  type ModelShape,
  ModelShapeSchema,
  writeRandomModel,
} from "../src/modelgen/index.js";
import { resolveTokenizerPath } from "../src/modelgen/tokenizer.js";

const STORIES = path.resolve(__dirname, "../../shared/models/stories260K.gguf");

const tmp = mkdtempSync(path.join(os.tmpdir(), "catrl-modelgen-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const sha = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex");

describe("fp16 and Q8_0 encoding", () => {
  it("rounds to the IEEE half values ggml uses", () => {
    expect(f32ToF16Bits(1)).toBe(0x3c00);
    expect(f32ToF16Bits(-2)).toBe(0xc000);
    expect(f32ToF16Bits(65504)).toBe(0x7bff);
    expect(f32ToF16Bits(1e6)).toBe(0x7c00);
    expect(f32ToF16Bits(1 / 3)).toBe(0x3555);
    expect(f32ToF16Bits(2 ** -24)).toBe(0x0001);
    expect(f32ToF16Bits(0.1)).toBe(0x2e66);
    for (const x of [0.02, -0.0137, 3.5e-5, 123.456]) {
      expect(Math.abs(f16BitsToF32(f32ToF16Bits(x)) - x)).toBeLessThanOrEqual(Math.abs(x) * 2 ** -11);
    }
  });

  it("lays out Q8_0 blocks as fp16 scale then 32 int8 quants", () => {
    const src = new Float32Array(64);
    for (let i = 0; i < 64; i++) src[i] = (i - 20) / 10;
    const out = encodeTensorData(GgmlType.Q8_0, src);
    expect(out.length).toBe(2 * 34);
    const d0 = f16BitsToF32(out.readUInt16LE(0));
    expect(d0).toBeCloseTo(2.0 / 127, 4); // block 0: max |x| = 2.0 at i = 0
    expect(out.readInt8(2)).toBe(-127);
    expect(out.readInt8(2 + 20)).toBe(0);
    for (let j = 0; j < 32; j++) expect(out.readInt8(2 + j) * d0).toBeCloseTo(src[j], 1);
    const d1 = f16BitsToF32(out.readUInt16LE(34));
    expect(d1).toBeCloseTo(4.3 / 127, 4); // block 1: max |x| = (63 - 20) / 10
    expect(out.readInt8(34 + 2 + 31)).toBe(127);
  });
});

describe("GGUF writer and reader", () => {
  it("round-trips metadata of every type, arrays and tensor infos with 32-byte aligned data", async () => {
    const file = path.join(tmp, "roundtrip.gguf");
    const kv = new Map([
      ["a.u8", { type: GgufValueType.UINT8, value: 200 }],
      ["a.i8", { type: GgufValueType.INT8, value: -100 }],
      ["a.u16", { type: GgufValueType.UINT16, value: 60000 }],
      ["a.i16", { type: GgufValueType.INT16, value: -30000 }],
      ["a.u32", gguf.u32(4000000000)],
      ["a.i32", gguf.i32(-2000000000)],
      ["a.f32", gguf.f32(0.5)],
      ["a.bool", gguf.bool(true)],
      ["a.str", gguf.str("héllo")],
      ["a.u64", { type: GgufValueType.UINT64, value: 2n ** 40n }],
      ["a.i64", { type: GgufValueType.INT64, value: -(2n ** 40n) }],
      ["a.f64", { type: GgufValueType.FLOAT64, value: Math.PI }],
      ["a.strs", gguf.arr(GgufValueType.STRING, ["x", "", "yz"])],
      ["a.f32s", gguf.arr(GgufValueType.FLOAT32, [1.5, -2])],
      ["a.i32s", gguf.arr(GgufValueType.INT32, [1, -1, 3])],
    ] as const);
    const data = [new Float32Array([1, 2, 3]), new Float32Array(64).fill(0.25)];
    const { bytes, layout } = await writeGguf({
      path: file,
      kv: new Map(kv),
      tensors: [
        { name: "t0", ne: [3], type: GgmlType.F32 },
        { name: "t1", ne: [32, 2], type: GgmlType.F16 },
      ],
      data: (t, i) => [encodeTensorData(t.type, data[i])],
    });
    expect(readFileSync(file).length).toBe(bytes);
    const h = await readGgufHeader(file);
    expect(h.version).toBe(3);
    for (const [k, v] of kv) expect(h.kv.get(k), k).toEqual(v);
    expect(h.tensors.map((t) => [t.name, t.ne, t.type, t.offset])).toEqual([
      ["t0", [3], GgmlType.F32, 0],
      ["t1", [32, 2], GgmlType.F16, 32],
    ]);
    expect(layout.dataOffset % 32).toBe(0);
    const buf = readFileSync(file);
    expect(buf.readFloatLE(layout.dataOffset + 8)).toBe(3);
    expect(f16BitsToF32(buf.readUInt16LE(layout.dataOffset + 32 + 2 * 63))).toBe(0.25);
  });

  it("refuses a data source that gives the wrong number of bytes and leaves no file", async () => {
    const file = path.join(tmp, "bad.gguf");
    await expect(
      writeGguf({
        path: file,
        kv: new Map(),
        tensors: [{ name: "t", ne: [4], type: GgmlType.F32 }],
        data: () => [new Uint8Array(8)],
      }),
    ).rejects.toThrow(/gave 8 bytes, expected 16/);
    expect(existsSync(file)).toBe(false);
  });
});

describe("parameter counts of the real shapes (computed, not written)", () => {
  const count = (name: string) => {
    const p = MODEL_PRESETS[name];
    return countParameters({ ...p.shape, n_vocab: p.n_vocab });
  };
  it("match the published sizes", () => {
    expect(count("qwen3-0.6b") / 1e9).toBeCloseTo(0.596, 2);
    expect(count("qwen3-4b") / 1e9).toBeCloseTo(4.02, 1);
    expect(count("llama-3.1-8b") / 1e9).toBeCloseTo(8.03, 1);
    // Gemma-3-4B's language model is 3.88B (the 4.3B includes the vision tower); 262,144 vs 262,208 tokens
    expect(count("gemma3-4b") / 1e9).toBeCloseTo(3.88, 1);
    expect(count("85m") / 1e6).toBeGreaterThan(80);
    expect(count("85m") / 1e6).toBeLessThan(90);
  });
  it("validates shapes", () => {
    expect(ModelShapeSchema.safeParse({ ...MODEL_PRESETS.tiny.shape, n_head_kv: 3 }).success).toBe(false);
  });
});

describe("random models in llama.cpp (needs shared/models/stories260K.gguf)", () => {
  let llama: Llama;
  beforeAll(async () => {
    llama = await getLlama({ gpu: false, logLevel: LlamaLogLevel.error });
  });

  /** Loads the file, checks next-token probabilities over the prompt are finite, and samples tokens. */
  async function generate(modelPath: string): Promise<number[]> {
    const model = await llama.loadModel({ modelPath });
    try {
      const ctx = await model.createContext({ contextSize: 128, threads: 1 });
      const seq = ctx.getSequence();
      const prompt = model.tokenize("Once upon a time");
      const res = await seq.controlledEvaluate(
        prompt.map((t) => [t, { generateNext: { probabilities: true } }] as const),
      );
      for (const r of res) {
        const probs = [...(r?.next?.probabilities?.values() ?? [])];
        expect(probs.length).toBeGreaterThan(0);
        expect(probs.every((p) => Number.isFinite(p) && p >= 0)).toBe(true);
      }
      await seq.clearHistory();
      const completion = new LlamaCompletion({ contextSequence: seq });
      const out: number[] = [];
      await completion.generateCompletion("Once upon a time", {
        maxTokens: 24,
        temperature: 1,
        seed: 7,
        customStopTriggers: [],
        onToken: (t) => out.push(...t),
      });
      await ctx.dispose();
      return out;
    } finally {
      await model.dispose();
    }
  }

  for (const type of ["f32", "f16", "q8_0"] as const) {
    it(`tiny ${type} loads and generates`, async () => {
      const r = await writeRandomModel({
        preset: "tiny",
        type,
        seed: 1,
        out: path.join(tmp, `tiny-${type}.gguf`),
      });
      expect(r.shape.n_vocab).toBe(512);
      expect(r.parameters).toBe(countParameters(r.shape));
      const tokens = await generate(r.path);
      expect(tokens.length).toBeGreaterThan(0);
    });
  }

  for (const arch of ["qwen2", "qwen3"] as const) {
    it(`a tiny ${arch}-arch model loads and generates`, async () => {
      const shape: ModelShape = { ...MODEL_PRESETS.tiny.shape, arch, tied_embeddings: true };
      const r = await writeRandomModel({
        shape,
        type: "q8_0",
        seed: 2,
        tokenizerFrom: STORIES,
        out: path.join(tmp, `tiny-${arch}.gguf`),
      });
      const h = await readGgufHeader(r.path);
      expect(h.kv.get("general.architecture")?.value).toBe(arch);
      const names = h.tensors.map((t) => t.name);
      expect(names.includes("output.weight")).toBe(false);
      if (arch === "qwen3") expect(names).toContain("blk.0.attn_q_norm.weight");
      if (arch === "qwen2") expect(names).toContain("blk.0.attn_q.bias");
      expect((await generate(r.path)).length).toBeGreaterThan(0);
    });
  }

  it("gemma3-tiny carries the keys and tensors llama.cpp's gemma3 loader reads, and generates", async () => {
    const r = await writeRandomModel({
      preset: "gemma3-tiny",
      type: "q8_0",
      seed: 3,
      out: path.join(tmp, "gemma3-tiny.gguf"),
    });
    const h = await readGgufHeader(r.path);
    const key = (k: string) => h.kv.get(`gemma3.${k}`)?.value;
    expect(key("attention.sliding_window")).toBe(16);
    expect(key("attention.sliding_window_pattern")).toBe(6);
    expect(key("rope.freq_base_swa")).toBe(10000);
    expect(key("rope.freq_base")).toBe(1e6);
    expect(key("rope.scaling.factor")).toBe(8);
    const names = h.tensors.map((t) => t.name);
    for (const n of ["post_attention_norm", "post_ffw_norm", "attn_q_norm", "attn_k_norm"])
      expect(names).toContain(`blk.5.${n}.weight`);
    expect(names.includes("output.weight")).toBe(false);
    expect((await generate(r.path)).length).toBeGreaterThan(0);
  });

  it("a gemma3 model with the bundled Gemma tokenizer (the gemma3-4b preset's) loads and generates", async () => {
    const r = await writeRandomModel({
      shape: MODEL_PRESETS["gemma3-tiny"].shape,
      type: "q8_0",
      seed: 4,
      tokenizerFrom: await resolveTokenizerPath(MODEL_PRESETS["gemma3-4b"].tokenizer),
      out: path.join(tmp, "gemma3-gemma-tok.gguf"),
    });
    expect(r.shape.n_vocab).toBe(MODEL_PRESETS["gemma3-4b"].n_vocab);
    expect((await generate(r.path)).length).toBeGreaterThan(0);
  }, 120_000);

  it("is deterministic in the seed and copies the tokenizer with its types", async () => {
    const progress: number[] = [];
    const a = await writeRandomModel({
      preset: "tiny",
      type: "q8_0",
      seed: 5,
      out: path.join(tmp, "a.gguf"),
      onProgress: (p) => progress.push(p.bytesWritten / p.bytesTotal),
    });
    const b = await writeRandomModel({
      preset: "tiny",
      type: "q8_0",
      seed: 5,
      out: path.join(tmp, "b.gguf"),
    });
    const c = await writeRandomModel({
      preset: "tiny",
      type: "q8_0",
      seed: 6,
      out: path.join(tmp, "c.gguf"),
    });
    expect(sha(a.path)).toBe(sha(b.path));
    expect(sha(a.path)).not.toBe(sha(c.path));
    expect(progress.at(-1)).toBe(1);
    expect(a.bytes).toBe(readFileSync(a.path).length);

    const src = await readGgufHeader(STORIES);
    const out = await readGgufHeader(a.path);
    for (const [k, v] of src.kv) if (k.startsWith("tokenizer.")) expect(out.kv.get(k), k).toEqual(v);
  });

  it("names the missing tokenizer source", async () => {
    await expect(
      writeRandomModel({
        preset: "tiny",
        type: "f32",
        seed: 1,
        tokenizerFrom: "/nope.gguf",
        out: path.join(tmp, "x.gguf"),
      }),
    ).rejects.toThrow(/\/nope\.gguf: tokenizer GGUF not found/);
    await expect(
      writeRandomModel({
        shape: MODEL_PRESETS.tiny.shape,
        type: "f32",
        seed: 1,
        out: path.join(tmp, "x.gguf"),
      }),
    ).rejects.toThrow(/needs tokenizerFrom/);
  });
});
