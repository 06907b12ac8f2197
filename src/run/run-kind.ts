import { z } from "zod";

/** Just enough of any catrl run.json to say which command wrote it (`catrl-train`, `catrl-infer`). */
export const RunKindSchema = z.looseObject({ kind: z.unknown() });

/** `catrl-train` -> `catrl train`: how a refusal names the command that wrote a directory. */
export function commandOfKind(kind: unknown): string {
  return typeof kind === "string" && kind.startsWith("catrl-")
    ? `catrl ${kind.slice("catrl-".length)}`
    : `unknown (kind ${JSON.stringify(kind) ?? "missing"})`;
}
