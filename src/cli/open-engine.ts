import { z } from "zod";
import { type LlamaEngine, openLlamaEngine } from "../engine/llama-engine.js";
import { resolveModelPath } from "../engine/model-source.js";
import { openPoolEngine } from "../engine/pool-engine.js";
import { isEndpointUrl } from "../engine/remote-endpoint.js";
import { openRemoteEngine } from "../engine/remote-engine.js";
import type { Engine } from "../engine/types.js";
import { UserError } from "../util/errors.js";
import type { RuntimeOptions } from "./options.js";

/** Retries of a failed request to a server (default DEFAULT_RETRIES in remote-http.ts). */
const RetriesEnvSchema = z.coerce.number().int().min(0).optional();

/**
 * Opens a model flag's value: an OpenAI-compatible base URL becomes a remote engine, anything else a
 * local GGUF (sharing `shareModelWith`'s loaded model when given).
 */
export async function openModelFromCli(
  spec: string,
  rt: RuntimeOptions,
  extra: { verbose?: boolean; maxSequences?: number; shareModelWith?: LlamaEngine } = {},
): Promise<Engine> {
  if (isEndpointUrl(spec)) {
    const retries = RetriesEnvSchema.safeParse(process.env.CATRL_REMOTE_RETRIES);
    if (!retries.success) throw new UserError("CATRL_REMOTE_RETRIES: expected a whole number >= 0");
    return openRemoteEngine({
      url: spec,
      retries: retries.data,
      log: (l) => process.stderr.write(`${l}\n`),
    });
  }
  if (rt.devices && !extra.shareModelWith) {
    const modelPath = await resolveModelPath(spec, { allowDownload: process.env.CATRL_OFFLINE !== "1" });
    return openPoolEngine({
      modelPath,
      devices: rt.devices,
      threads: rt.threads,
      verbose: extra.verbose,
      maxSequences: extra.maxSequences,
    });
  }
  return openEngineFromCli(spec, rt, extra);
}

/** Resolves a --model argument (path or hf: URI, offline-safe) and opens the local engine on it. */
export async function openEngineFromCli(
  model: string,
  rt: RuntimeOptions,
  extra: { verbose?: boolean; maxSequences?: number; shareModelWith?: LlamaEngine } = {},
): Promise<LlamaEngine> {
  const modelPath = await resolveModelPath(model, { allowDownload: process.env.CATRL_OFFLINE !== "1" });
  return openLlamaEngine({
    modelPath,
    gpu: rt.gpu,
    threads: rt.threads,
    verbose: extra.verbose,
    maxSequences: extra.maxSequences,
    shareModelWith: extra.shareModelWith,
  });
}

/** An AbortSignal tied to Ctrl-C: the first press stops generation cleanly, a second one exits at once. */
export function abortOnSigint(): { signal: AbortSignal; interrupted: () => boolean; dispose: () => void } {
  const ac = new AbortController();
  const onSig = () => {
    if (ac.signal.aborted) process.exit(130);
    process.stderr.write(
      "\ninterrupted: finishing the tokens in flight and keeping finished work (Ctrl-C again to quit now)\n",
    );
    ac.abort();
  };
  process.on("SIGINT", onSig);
  process.on("SIGTERM", onSig);
  return {
    signal: ac.signal,
    interrupted: () => ac.signal.aborted,
    dispose: () => {
      process.off("SIGINT", onSig);
      process.off("SIGTERM", onSig);
    },
  };
}
