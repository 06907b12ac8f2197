import type { Command } from "commander";

type CommandModule = { register(program: Command): void };

/**
 * Every `catrl` command, in help order: a one-line summary for the top-level listing and the module that
 * registers it (with its full description and options). Only the invoked command's module is imported.
 */
export const COMMANDS = {
  rollout: {
    summary: "sample G rollouts per prompt with seeds, tokens and log-probs",
    load: () => import("./commands/rollout.js"),
  },
  infer: {
    summary: "CaT at inference time: rollouts, anchor synthesis, rewards, baselines",
    load: () => import("./commands/infer.js"),
  },
  eval: {
    summary: "score an infer run against gold answers or HealthBench rubrics",
    load: () => import("./commands/eval.js"),
  },
  train: {
    summary: "CaT-RL: GRPO on a LoRA adapter with CaT rewards, resumable",
    load: () => import("./commands/train.js"),
  },
  demo: {
    summary: "CaT end to end on a local model, ending in a report",
    load: () => import("./commands/demo.js"),
  },
  report: {
    summary: "render a run directory as one self-contained HTML page",
    load: () => import("./commands/report.js"),
  },
  model: { summary: "random-weight GGUF models of real shapes", load: () => import("./commands/model.js") },
  bench: { summary: "benchmarks (results under bench/results/)", load: () => import("./commands/bench.js") },
} satisfies Record<string, { summary: string; load: () => Promise<CommandModule> }>;

export type CommandName = keyof typeof COMMANDS;

/**
 * The command named on the command line (the first argument that is not an option, or the one after
 * `help`), if it is one of ours.
 */
export function invokedCommand(args: readonly string[]): CommandName | undefined {
  const positional = args.filter((a) => !a.startsWith("-"));
  const name = positional[0] === "help" ? positional[1] : positional[0];
  return name !== undefined && Object.hasOwn(COMMANDS, name) ? (name as CommandName) : undefined;
}
