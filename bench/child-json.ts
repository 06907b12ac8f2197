import { spawn } from "node:child_process";

/** What a benchmark child gave back: its last stdout line as JSON, or one line saying how it died. */
export type ChildJson = { ok: true; value: unknown } | { ok: false; error: string };

/** stderr lines kept to explain a failure (a C assert prints its message just before aborting). */
const TAIL_LINES = 20;

/**
 * Runs one benchmark case in its own process, so that its peak RSS is its own (maxRSS only grows)
 * and a case that aborts (a C assert, the OOM killer) is reported while the others still run. The
 * child's stderr passes through as progress; its last stdout line is its result.
 */
export function runJsonChild(
  command: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; log?: (line: string) => void } = {},
): Promise<ChildJson> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], env: opts.env ?? process.env });
    let out = "";
    let errBuf = "";
    const tail: string[] = [];
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      errBuf += d.toString();
      const lines = errBuf.split("\n");
      errBuf = lines.pop() ?? "";
      for (const l of lines) {
        log(l);
        if (l.trim()) tail.push(l.trim());
        if (tail.length > TAIL_LINES) tail.shift();
      }
    });
    child.on("error", (e) => resolve({ ok: false, error: `${command}: ${e.message}` }));
    child.on("close", (code, signal) => {
      if (errBuf.trim()) {
        log(errBuf);
        tail.push(errBuf.trim());
      }
      if (code === 0) {
        try {
          return resolve({ ok: true, value: JSON.parse(out.trim().split("\n").at(-1) ?? "") });
        } catch {
          return resolve({ ok: false, error: "exited 0 without a JSON result on its last stdout line" });
        }
      }
      // SIGKILL that the child did not ask for is almost always the kernel's OOM killer
      const how = signal
        ? `killed by ${signal}${signal === "SIGKILL" ? " (out of memory?)" : ""}`
        : `exited with ${code}`;
      resolve({ ok: false, error: `${how}: ${explain(tail)}` });
    });
  });
}

/** The stderr line most likely to say why: an assert or error line, else the last one. */
function explain(tail: string[]): string {
  const why = [...tail].reverse().find((l) => /GGML_ASSERT|error|fail|abort|Killed|memory/i.test(l));
  return why ?? tail.at(-1) ?? "(no output)";
}
