// Builds the native LoRA trainer (native/build/Release/catrl_trainer.node) with node-gyp, against
// node-llama-cpp's prebuilt ggml. Run as the package's `install` script. It never fails the
// install: inference does not need the addon, so on failure it records the reason in
// native/build/status.json, which the trainer loader reports in one line.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const statusFile = path.join(here, "build", "status.json");

// The package's "exports" hide package.json from require.resolve, so walk node_modules upwards.
function findPackageDir(name) {
  for (let dir = here; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, "node_modules", name);
    if (existsSync(path.join(candidate, "package.json"))) return candidate;
    if (path.dirname(dir) === dir) return undefined;
  }
}

function record(status) {
  mkdirSync(path.dirname(statusFile), { recursive: true });
  writeFileSync(statusFile, `${JSON.stringify({ ...status, at: new Date().toISOString() }, null, 2)}\n`);
}

function firstLine(s) {
  const lines = String(s ?? "")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "");
  return lines.find((l) => /error/i.test(l)) ?? lines.at(-1) ?? "";
}

function main() {
  if (process.env.CATRL_SKIP_NATIVE === "1") {
    record({ ok: false, reason: "the native trainer build was skipped (CATRL_SKIP_NATIVE=1)" });
    return;
  }
  if (process.platform !== "linux" || process.arch !== "x64") {
    record({ ok: false, reason: `the native trainer is built for linux-x64 only (this is ${process.platform}-${process.arch})` });
    return;
  }
  const pkgDir = findPackageDir("@node-llama-cpp/linux-x64");
  if (!pkgDir) {
    record({ ok: false, reason: "node-llama-cpp's @node-llama-cpp/linux-x64 package (its prebuilt ggml) is not installed" });
    return;
  }
  const libDir = path.join(pkgDir, "bins", "linux-x64");
  if (!existsSync(path.join(libDir, "libggml-base.so"))) {
    record({ ok: false, reason: `libggml-base.so not found in ${libDir}` });
    return;
  }
  // node-gyp: npm puts its bundled copy on PATH for lifecycle scripts (npm_config_node_gyp); else
  // use the one next to the running npm.
  let gyp = process.env.npm_config_node_gyp;
  if (!gyp || !existsSync(gyp)) {
    const npmDir = path.join(path.dirname(process.execPath), "..", "lib", "node_modules", "npm");
    gyp = path.join(npmDir, "node_modules", "node-gyp", "bin", "node-gyp.js");
  }
  if (!existsSync(gyp)) {
    record({ ok: false, reason: "node-gyp not found (it ships with npm)" });
    return;
  }
  const args = [gyp, "rebuild", "--directory", here, `--ggml_lib_dir=${libDir}`];
  // rpath relative to the addon so the checkout can move; the loader finds libggml-base.so there
  // (or reuses the one node-llama-cpp already loaded: same soname).
  const addonDir = path.join(here, "build", "Release");
  args.push(`--ggml_rpath=${path.relative(addonDir, libDir)}`);
  // Use the installed Node headers (no network here): <prefix>/include/node/node_api.h
  const prefix = path.resolve(path.dirname(process.execPath), "..");
  if (existsSync(path.join(prefix, "include", "node", "node_api.h"))) args.push(`--nodedir=${prefix}`);
  const jobs = process.env.CATRL_BUILD_JOBS ?? "1";
  args.push(`--jobs=${jobs}`);
  const r = spawnSync(process.execPath, args, { encoding: "utf8", env: { ...process.env } });
  if (r.status !== 0) {
    const why = firstLine(r.stderr) || firstLine(r.stdout) || `node-gyp exited with ${r.status}`;
    process.stderr.write(`catrl: native trainer not built (training commands will be unavailable): ${why}\n`);
    record({ ok: false, reason: `the native trainer failed to build: ${why}` });
    return;
  }
  record({ ok: true, libDir });
  process.stdout.write("catrl: native trainer built\n");
}

try {
  main();
} catch (e) {
  try {
    record({ ok: false, reason: `the native trainer build script failed: ${e instanceof Error ? e.message : e}` });
  } catch {}
}
