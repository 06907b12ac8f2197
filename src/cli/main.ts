#!/usr/bin/env node
import { Command } from "commander";
import { isUserError, oneLine } from "../util/errors.js";
import { packageVersion } from "../util/version.js";

/**
 * `catrl`: each subcommand lives in src/cli/commands/<name>.ts and registers itself here. Errors meant
 * for the user print as one line; anything else too, with the stack only under --verbose.
 */
const program = new Command()
  .name("catrl")
  .description("Compute as Teacher on local GGUF models: rollouts, anchor synthesis, rewards, CaT-RL")
  .version(packageVersion())
  .option("--verbose", "print stack traces and llama.cpp logs");

type CommandModule = { register(program: Command): void };
// Loaded lazily so that `catrl --help` does not load llama.cpp.
const commandModules: Array<() => Promise<CommandModule>> = [
  () => import("./commands/rollout.js"),
  () => import("./commands/infer.js"),
  () => import("./commands/eval.js"),
  () => import("./commands/train.js"),
  () => import("./commands/demo.js"),
  () => import("./commands/report.js"),
  () => import("./commands/model.js"),
  () => import("./commands/bench.js"),
];

async function main(): Promise<void> {
  for (const load of commandModules) {
    (await load()).register(program);
  }
  await program.parseAsync(process.argv);
}

main().catch((e: unknown) => {
  const verbose = process.argv.includes("--verbose");
  process.stderr.write(`catrl: ${oneLine(e)}\n`);
  if (verbose && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
  process.exitCode = isUserError(e) ? e.exitCode : 1;
});
