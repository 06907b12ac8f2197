import { readdirSync } from "node:fs";
import { Command } from "commander";
import { describe, expect, it } from "vitest";
import { COMMANDS, invokedCommand } from "../src/cli/command-index.js";

describe("the command index", () => {
  it("lists exactly the commands the modules register, under the same names", async () => {
    for (const [name, { load }] of Object.entries(COMMANDS)) {
      const program = new Command();
      (await load()).register(program);
      expect(program.commands.map((c) => c.name())).toEqual([name]);
    }
  });

  it("has an entry for every module in src/cli/commands", () => {
    const modules = readdirSync(new URL("../src/cli/commands/", import.meta.url)).map((f) =>
      f.replace(/\.ts$/, ""),
    );
    expect(Object.keys(COMMANDS).sort()).toEqual(modules.sort());
  });

  it("finds the invoked command past options and after `help`, and nothing for unknown words", () => {
    expect(invokedCommand(["--verbose", "eval", "runs/x"])).toBe("eval");
    expect(invokedCommand(["help", "train"])).toBe("train");
    expect(invokedCommand(["--help"])).toBeUndefined();
    expect(invokedCommand(["bogus"])).toBeUndefined();
    expect(invokedCommand(["toString"])).toBeUndefined();
  });
});
