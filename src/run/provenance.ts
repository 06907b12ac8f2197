import { readFileSync } from "node:fs";
import { stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { RemoteModelIdentity } from "../engine/types.js";
import { sha256File } from "../util/hash.js";
import { packageRoot, packageVersion } from "../util/version.js";

/** A model file by its hash, or a served model by what its server reports (no file to hash there). */
export type ModelRecord =
  | { role: string; path: string; sha256: string; bytes: number }
  | { role: string; url: string; server: string; model_id: string; version: string };

/** What identifies a model's weights, for the checks that a resumed run uses the same ones. */
export function modelIdentity(m: ModelRecord): string {
  return "sha256" in m ? m.sha256 : `${m.server}:${m.model_id}@${m.version}`;
}

/** What makes a run reproducible besides its config: model hashes (or server identities), versions, machine. */
export async function modelRecords(
  models: { role: string; path: string; remote?: RemoteModelIdentity }[],
): Promise<ModelRecord[]> {
  const seen = new Map<string, Promise<{ sha256: string; bytes: number }>>();
  return Promise.all(
    models.map(async (m) => {
      if (m.remote) {
        const r = m.remote;
        return { role: m.role, url: r.url, server: r.server, model_id: r.modelId, version: r.version };
      }
      const abs = path.resolve(m.path);
      let p = seen.get(abs);
      if (!p) {
        p = Promise.all([sha256File(abs), stat(abs)]).then(([sha256, st]) => ({ sha256, bytes: st.size }));
        seen.set(abs, p);
      }
      return { role: m.role, path: abs, ...(await p) };
    }),
  );
}

export function versions(): Record<string, string> {
  const dep = (name: string) => {
    try {
      return JSON.parse(readFileSync(path.join(packageRoot(), "node_modules", name, "package.json"), "utf8"))
        .version;
    } catch {
      return "unknown";
    }
  };
  return {
    catrl: packageVersion(),
    node: process.version,
    node_llama_cpp: dep("node-llama-cpp"),
    llama_cpp: llamaCppRelease(),
    piscina: dep("piscina"),
    zod: dep("zod"),
  };
}

function llamaCppRelease(): string {
  try {
    const info = JSON.parse(
      readFileSync(path.join(packageRoot(), "node_modules/node-llama-cpp/llama/llama.cpp.info.json"), "utf8"),
    );
    return String(info.tag ?? info.release ?? "unknown");
  } catch {
    return "unknown";
  }
}

export function hostInfo() {
  return {
    hostname: os.hostname(),
    platform: `${os.platform()}-${os.arch()}`,
    cpus: os.cpus()[0]?.model ?? "unknown",
    cores: os.availableParallelism?.() ?? os.cpus().length,
    memory_gib: Math.round(os.totalmem() / 2 ** 30),
  };
}
