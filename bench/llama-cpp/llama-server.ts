import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import net from "node:net";
import path from "node:path";

/**
 * A llama-server built from node-llama-cpp's bundled llama.cpp (`build-batched-bench.sh llama-server`),
 * started on loopback for tests and benchmarks: a free port, a bounded wait for /health, and a kill that
 * always runs.
 */

/** Loading stories260K takes well under a second; a loaded 2-core machine gets some slack. */
const HEALTH_TIMEOUT_MS = 60_000;
const HEALTH_POLL_MS = 100;

export function llamaServerBinary(): string {
  const cache = process.env.CATRL_CACHE ?? path.join(process.env.HOME ?? "", ".cache", "catrl");
  return path.join(cache, "llama.cpp-build", "bin", "llama-server");
}

export function hasLlamaServer(): boolean {
  return existsSync(llamaServerBinary());
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export type LlamaServerOptions = {
  model: string;
  port?: number;
  threads?: number;
  /** Server slots (`-np`): requests decoded together. */
  parallel?: number;
  /** Total KV cache (`-c`), split evenly across slots. */
  contextSize?: number;
  extraArgs?: string[];
};

export class LlamaServer {
  private log = "";

  private constructor(
    readonly proc: ChildProcess,
    readonly port: number,
    readonly opts: LlamaServerOptions,
  ) {
    proc.stdout?.on("data", (d) => this.keep(d));
    proc.stderr?.on("data", (d) => this.keep(d));
  }

  /** The OpenAI-compatible base URL. */
  get url(): string {
    return `http://127.0.0.1:${this.port}/v1`;
  }

  private keep(d: Buffer): void {
    this.log = (this.log + d.toString()).slice(-8_000);
  }

  static async start(opts: LlamaServerOptions): Promise<LlamaServer> {
    const port = opts.port ?? (await freePort());
    const args = [
      "-m",
      opts.model,
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
      "-t",
      String(opts.threads ?? 1),
      "-np",
      String(opts.parallel ?? 4),
      "-c",
      String(opts.contextSize ?? 8192),
      "--no-webui",
      ...(opts.extraArgs ?? []),
    ];
    const proc = spawn(llamaServerBinary(), args, { stdio: ["ignore", "pipe", "pipe"] });
    const server = new LlamaServer(proc, port, opts);
    await server.waitHealthy();
    return server;
  }

  private async waitHealthy(): Promise<void> {
    const t0 = Date.now();
    while (Date.now() - t0 < HEALTH_TIMEOUT_MS) {
      if (this.proc.exitCode != null)
        throw new Error(`llama-server exited (${this.proc.exitCode}): ${this.tail()}`);
      try {
        const res = await fetch(`http://127.0.0.1:${this.port}/health`);
        if (res.ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, HEALTH_POLL_MS));
    }
    this.kill();
    throw new Error(`llama-server not healthy within ${HEALTH_TIMEOUT_MS} ms: ${this.tail()}`);
  }

  tail(): string {
    return this.log.split("\n").slice(-5).join(" | ");
  }

  /** SIGKILL: what a crashed or OOM-killed server looks like to its clients. */
  kill(): Promise<void> {
    if (this.proc.exitCode != null || this.proc.signalCode != null) return Promise.resolve();
    return new Promise((resolve) => {
      this.proc.once("exit", () => resolve());
      this.proc.kill("SIGKILL");
    });
  }

  /** A fresh server on the same port and model (as an operator restarting it). */
  restart(): Promise<LlamaServer> {
    return LlamaServer.start({ ...this.opts, port: this.port });
  }
}
