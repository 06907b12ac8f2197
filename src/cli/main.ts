#!/usr/bin/env node
import { Command } from "commander";
import { isUserError, oneLine } from "../util/errors.js";
import { packageVersion } from "../util/version.js";
import { COMMANDS, type CommandName, invokedCommand } from "./command-index.js";

/**
 * `catrl`: each subcommand lives in src/cli/commands/<name>.ts and registers itself here. Errors meant
 * for the user print as one line; anything else too, with the stack only under --verbose.
 */
const program = new Command()
  .name("catrl")
  .description("Compute as Teacher on local GGUF models: rollouts, anchor synthesis, rewards, CaT-RL")
  .version(packageVersion())
  .option("--verbose", "print stack traces and llama.cpp logs");

async function main(): Promise<void> {
  const name = invokedCommand(process.argv.slice(2));
  if (name === undefined) {
    // `catrl`, `catrl --help`, `catrl --version`: list the commands from the index, importing none of them
    // (the command modules pull in node-llama-cpp, about a second to load).
    for (const [spec, { summary }] of Object.entries(COMMANDS)) program.command(spec).description(summary);
    program.addHelpText("after", "\nRun `catrl <command> --help` for a command's options.");
  } else {
    (await COMMANDS[name as CommandName].load()).register(program);
  }
  await program.parseAsync(process.argv);
}

main().catch((e: unknown) => {
  const verbose = process.argv.includes("--verbose");
  process.stderr.write(`catrl: ${oneLine(e)}\n`);
  if (verbose && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
  process.exitCode = isUserError(e) ? e.exitCode : 1;
});
