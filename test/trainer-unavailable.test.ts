import { describe, expect, it, vi } from "vitest";
import { STORIES } from "./helpers/shared.js";

// The addon path is overridden before the trainer module loads (vitest runs each file in its own
// process), so this file sees the "addon missing" state while the rest of the suite has the addon.
describe("when the native trainer is missing", () => {
  it("trainerAvailability says why in one line and openTrainer throws a UserError", async () => {
    vi.stubEnv("CATRL_NATIVE_TRAINER", "/nonexistent/catrl_trainer.node");
    const { trainerAvailability, openTrainer } = await import("../src/rl/trainer/index.js");
    const { UserError } = await import("../src/util/errors.js");
    const a = trainerAvailability();
    expect(a.ok).toBe(false);
    if (a.ok) return;
    expect(a.reason).not.toContain("\n");
    expect(a.reason).toMatch(/native trainer/);
    const err = await openTrainer({
      modelPath: "x.gguf",
      threads: 1,
      lora: { rank: 2, alpha: 4, targets: ["q"] },
    }).catch((e) => e);
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toMatch(/^training unavailable: /);
  });

  it("inference still works without the addon", async () => {
    vi.stubEnv("CATRL_NATIVE_TRAINER", "/nonexistent/catrl_trainer.node");
    const { trainerAvailability } = await import("../src/rl/trainer/index.js");
    expect(trainerAvailability().ok).toBe(false);
    const { llama, llamaLogprobs } = await import("./trainer-helpers.js");
    const model = await (await llama()).loadModel({ modelPath: STORIES });
    try {
      const lp = await llamaLogprobs(model, [{ prompt: [1, 403], completion: [407, 261] }]);
      expect(lp[0].every((x) => Number.isFinite(x) && x < 0)).toBe(true);
    } finally {
      await model.dispose();
    }
  });
});
