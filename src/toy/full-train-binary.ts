import { execFile } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { mkdir, rename } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { cacheDir, llamaCppSource } from "../modelgen/tokenizer.js";
import { UserError } from "../util/errors.js";
import { packageRoot } from "../util/version.js";

/** The prebuilt CPU libraries node-llama-cpp ships (libllama, libggml, the CPU backends). */
export function prebuiltLibDir(): string {
  const dir = path.join(packageRoot(), "node_modules", "@node-llama-cpp", "linux-x64", "bins", "linux-x64");
  if (!existsSync(path.join(dir, "libllama.v0.4.0.so"))) {
    throw new UserError(
      `full-parameter training needs node-llama-cpp's prebuilt linux-x64 libllama (not found in ${dir})`,
    );
  }
  return dir;
}

/**
 * Builds native/full-train/full-train.cpp into the cache (once per source change, ~2 s with g++),
 * against the headers of the llama.cpp source node-llama-cpp bundles and its prebuilt libllama, and
 * returns the executable's path.
 */
export async function fullTrainBinary(): Promise<string> {
  const source = path.join(packageRoot(), "native", "full-train", "full-train.cpp");
  const out = path.join(cacheDir(), "full-train", "full-train");
  if (existsSync(out) && statSync(out).mtimeMs >= statSync(source).mtimeMs) return out;
  const lib = prebuiltLibDir();
  const src = await llamaCppSource();
  await mkdir(path.dirname(out), { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  const args = [
    "-O2",
    "-std=c++17",
    `-I${path.join(src, "include")}`,
    `-I${path.join(src, "ggml", "include")}`,
    source,
    "-o",
    tmp,
    `-L${lib}`,
    "-l:libllama.v0.4.0.so",
    "-l:libggml.v0.4.0.so",
    "-l:libggml-base.so",
    `-Wl,-rpath,${lib}`,
  ];
  try {
    await promisify(execFile)("g++", args);
  } catch (e) {
    throw new UserError(`building ${source} failed (g++ ${args.join(" ")}): ${(e as Error).message}`, 1, {
      cause: e,
    });
  }
  await rename(tmp, out);
  return out;
}
