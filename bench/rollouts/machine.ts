import { createHash } from "node:crypto";
import { createReadStream, readFileSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { packageRoot, packageVersion } from "../../src/util/version.js";

export async function sha256File(file: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest("hex");
}

export function machineInfo() {
  const cpus = os.cpus();
  return {
    hostname: os.hostname(),
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    cpu: cpus[0]?.model ?? "unknown",
    cores: typeof os.availableParallelism === "function" ? os.availableParallelism() : cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    loadavg: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

export function versions() {
  const root = packageRoot();
  const read = (p: string) => {
    try {
      return JSON.parse(readFileSync(path.join(root, p), "utf8"));
    } catch {
      return {};
    }
  };
  return {
    node: process.version,
    catrl: packageVersion(),
    nodeLlamaCpp: read("node_modules/node-llama-cpp/package.json").version ?? "unknown",
    llamaCpp: read("node_modules/node-llama-cpp/llama/llama.cpp.info.json").tag ?? "unknown",
  };
}

export async function modelInfo(file: string) {
  return { path: path.resolve(file), bytes: statSync(file).size, sha256: await sha256File(file) };
}
