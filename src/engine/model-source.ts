import os from "node:os";
import path from "node:path";
import { resolveModelFile } from "node-llama-cpp";
import { UserError } from "../util/errors.js";

/** node-llama-cpp's own model cache (`npx node-llama-cpp pull` puts files there). */
export const MODEL_CACHE_DIR = path.join(os.homedir(), ".node-llama-cpp", "models");

/** `hf:owner/repo/file.gguf`, `hf:owner/repo:Q8_0` or an https URL: resolved through node-llama-cpp. */
export function isRemoteModelSpec(spec: string): boolean {
  return spec.startsWith("hf:") || /^https?:\/\//.test(spec);
}

/**
 * Resolves a model argument to a local file. Remote specs are looked up in node-llama-cpp's model cache
 * first; only when absent there and `allowDownload` is set is a download attempted, and a machine with no
 * route to the hub gets one line saying the file is not available locally.
 */
export async function resolveModelPath(
  spec: string,
  opts: { allowDownload?: boolean; directory?: string } = {},
): Promise<string> {
  if (!isRemoteModelSpec(spec)) return spec;
  const directory = opts.directory ?? MODEL_CACHE_DIR;
  try {
    return await resolveModelFile(spec, { directory, download: false, cli: false });
  } catch (localMiss) {
    if (!opts.allowDownload) {
      throw new UserError(
        `${spec}: not available locally (looked in ${directory}); download it on a connected machine or pass a local .gguf path`,
        1,
        { cause: localMiss },
      );
    }
  }
  try {
    return await resolveModelFile(spec, { directory, download: "auto", cli: false });
  } catch (e) {
    throw new UserError(
      `${spec}: not available locally (looked in ${directory}) and the download failed (${(e as Error).message.split("\n")[0]}); on an offline machine pass a local .gguf path`,
      1,
      { cause: e },
    );
  }
}
