import { z } from "zod";

/**
 * The prompt schema, shared by the data readers and the engine contract. It lives here, below both, so
 * that reading a dataset does not import the engine layer.
 */

/** A prompt is either raw text (no template applied) or chat turns rendered by the model's own template. */
export const ChatTurnSchema = z.object({
  role: z.enum(["system", "user", "assistant"]),
  content: z.string(),
});
export type ChatTurn = z.infer<typeof ChatTurnSchema>;

export const PromptSchema = z.union([z.string(), z.array(ChatTurnSchema).min(1)]);
export type Prompt = z.infer<typeof PromptSchema>;
