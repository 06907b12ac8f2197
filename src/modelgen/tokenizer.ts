import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rename, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { type GgufKv, readGgufHeader } from "../gguf/index.js";
import { UserError } from "../util/errors.js";
import { packageRoot } from "../util/version.js";
import type { TokenizerSource } from "./presets.js";

export function cacheDir(): string {
  return process.env.CATRL_CACHE ?? path.join(os.homedir(), ".cache", "catrl");
}

/** Places stories260K.gguf is looked for: the repo's models/ and the shared folder beside the repo. */
export function stories260KCandidates(): string[] {
  const root = packageRoot();
  return [
    path.join(root, "models", "stories260K.gguf"),
    path.join(root, "..", "shared", "models", "stories260K.gguf"),
  ];
}

/** The llama.cpp source tree node-llama-cpp bundles, cloned offline once into the cache. */
export async function llamaCppSource(): Promise<string> {
  const dest = path.join(cacheDir(), "llama.cpp");
  if (existsSync(path.join(dest, "CMakeLists.txt"))) return dest;
  const bundle = path.join(packageRoot(), "node_modules", "node-llama-cpp", "llama", "gitRelease.bundle");
  if (!existsSync(bundle)) {
    throw new UserError(`llama.cpp source bundle not found at ${bundle}: reinstall node-llama-cpp`);
  }
  await mkdir(cacheDir(), { recursive: true });
  // Cloned beside and renamed so a half-done clone is never used; if another process wins the race,
  // its tree is as good as ours.
  const tmp = await mkdtemp(path.join(cacheDir(), "llama.cpp.clone."));
  try {
    await promisify(execFile)("git", ["clone", "--quiet", bundle, path.join(tmp, "src")]);
    await rename(path.join(tmp, "src"), dest).catch(() => {});
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  if (!existsSync(path.join(dest, "CMakeLists.txt")))
    throw new Error(`cloning ${bundle} into ${dest} failed`);
  return dest;
}

export async function resolveTokenizerPath(source: TokenizerSource): Promise<string> {
  if (source.kind === "stories260K") {
    const found = stories260KCandidates().find((p) => existsSync(p));
    if (!found) {
      throw new UserError(
        `tokenizer source missing: this preset copies stories260K.gguf's tokenizer, not found at ${stories260KCandidates().join(" or ")}; pass --tokenizer-from <file.gguf>`,
      );
    }
    return found;
  }
  const file = path.join(await llamaCppSource(), "models", `ggml-vocab-${source.name}.gguf`);
  if (!existsSync(file)) throw new UserError(`tokenizer source missing: ${file} not in the llama.cpp source`);
  return file;
}

/** The tokenizer's metadata (every `tokenizer.*` key, chat template included) with exact types. */
export async function readTokenizerKv(file: string): Promise<{ kv: GgufKv; nVocab: number }> {
  if (!existsSync(file)) throw new UserError(`${file}: tokenizer GGUF not found`);
  let header: Awaited<ReturnType<typeof readGgufHeader>>;
  try {
    header = await readGgufHeader(file);
  } catch (e) {
    throw new UserError(`${file}: cannot read as GGUF (${(e as Error).message})`, 1, { cause: e });
  }
  const kv: GgufKv = new Map();
  for (const [k, v] of header.kv) if (k.startsWith("tokenizer.")) kv.set(k, v);
  const tokens = kv.get("tokenizer.ggml.tokens");
  if (!tokens || !Array.isArray(tokens.value) || tokens.value.length === 0) {
    throw new UserError(`${file}: no tokenizer.ggml.tokens array, so it cannot supply a tokenizer`);
  }
  return { kv, nVocab: tokens.value.length };
}
