import { open, stat } from "node:fs/promises";
import * as nlc from "node-llama-cpp";
import { type GgufFileInfo, readGgufFileInfo } from "node-llama-cpp";
import { UserError } from "../util/errors.js";

/**
 * Checks a GGUF before llama.cpp sees it. llama.cpp answers a bad file with a generic "failed to load
 * model" (or, for a truncated file, a crash while mapping it); here each problem gets one line that
 * names the file and what is wrong with it.
 */
export type CheckedModelFile = {
  path: string;
  bytes: number;
  version: number;
  architecture: string;
  info: GgufFileInfo;
};

// GgufArchitectureType is declared as a const enum but shipped as a runtime object: read it as data.
const KNOWN_ARCHITECTURES = new Set<string>(
  Object.values((nlc as unknown as Record<string, Record<string, string>>).GgufArchitectureType ?? {}),
);

export async function checkModelFile(path: string): Promise<CheckedModelFile> {
  const st = await stat(path).catch(() => null);
  if (!st) throw new UserError(`${path}: no such file`);
  if (!st.isFile()) throw new UserError(`${path}: not a file`);

  const fh = await open(path, "r");
  const head = Buffer.alloc(8);
  try {
    await fh.read(head, 0, 8, 0);
  } finally {
    await fh.close();
  }
  if (st.size < 8 || head.toString("latin1", 0, 4) !== "GGUF") {
    throw new UserError(`${path}: not a GGUF file (no GGUF magic at the start)`);
  }
  const version = head.readUInt32LE(4);
  if (version === 1) {
    throw new UserError(`${path}: GGUF version 1 is not supported by llama.cpp; convert it to version 3`);
  }
  if (version !== 2 && version !== 3) throw new UserError(`${path}: unknown GGUF version ${version}`);

  let info: GgufFileInfo;
  try {
    info = await readGgufFileInfo(path, {
      logWarnings: false,
      sourceType: "filesystem",
      spliceSplitFiles: false,
    });
  } catch (e) {
    throw new UserError(`${path}: corrupt or truncated GGUF header (${(e as Error).message})`, 1, {
      cause: e,
    });
  }

  const expected = expectedFileSize(info);
  if (expected != null && st.size < expected) {
    throw new UserError(`${path}: truncated GGUF: ${st.size} bytes on disk, its tensors need ${expected}`);
  }

  const architecture = String(info.metadata?.general?.architecture ?? "");
  if (!architecture) throw new UserError(`${path}: GGUF has no general.architecture`);
  if (!KNOWN_ARCHITECTURES.has(architecture)) {
    throw new UserError(
      `${path}: architecture '${architecture}' is not known to llama.cpp (node-llama-cpp 3.21.1)`,
    );
  }
  return { path, bytes: st.size, version, architecture, info };
}

/** End of the last tensor's data: the file must be at least this long. */
function expectedFileSize(info: GgufFileInfo): number | null {
  const tensors = info.fullTensorInfo ?? info.tensorInfo;
  if (!tensors || info.infoEndOffset == null) return null;
  let end = 0;
  for (const t of tensors) {
    const size = tensorBytes(t.ggmlType, t.dimensions.map(Number));
    if (size == null) return null;
    end = Math.max(end, Number(t.offset) + size);
  }
  return info.infoEndOffset + end;
}

/** Block size and bytes per block of the ggml types a GGUF may hold (ggml.c's type_traits). */
const TYPE_LAYOUT: Record<number, [block: number, bytes: number]> = {
  0: [1, 4], // F32
  1: [1, 2], // F16
  2: [32, 18], // Q4_0
  3: [32, 20], // Q4_1
  6: [32, 22], // Q5_0
  7: [32, 24], // Q5_1
  8: [32, 34], // Q8_0
  9: [32, 36], // Q8_1
  10: [256, 84], // Q2_K
  11: [256, 110], // Q3_K
  12: [256, 144], // Q4_K
  13: [256, 176], // Q5_K
  14: [256, 210], // Q6_K
  15: [256, 292], // Q8_K
  16: [256, 66], // IQ2_XXS
  17: [256, 74], // IQ2_XS
  18: [256, 98], // IQ3_XXS
  19: [256, 50], // IQ1_S
  20: [32, 18], // IQ4_NL
  21: [256, 110], // IQ3_S
  22: [256, 82], // IQ2_S
  23: [256, 136], // IQ4_XS
  24: [1, 1], // I8
  25: [1, 2], // I16
  26: [1, 4], // I32
  27: [1, 8], // I64
  28: [1, 8], // F64
  29: [256, 56], // IQ1_M
  30: [1, 2], // BF16
  34: [256, 54], // TQ1_0
  35: [256, 66], // TQ2_0
  39: [32, 17], // MXFP4
};

function tensorBytes(type: number, dims: number[]): number | null {
  const layout = TYPE_LAYOUT[type];
  if (!layout) return null;
  const n = dims.reduce((a, b) => a * b, 1);
  return (n / layout[0]) * layout[1];
}
