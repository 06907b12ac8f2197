import { z } from "zod";

/**
 * The engine contract. Everything the method code (src/cat, src/rl) needs from a model goes through
 * `Engine`: batches of requests in, rollouts with tokens and log-probs out. A local node-llama-cpp engine,
 * a pool of per-device workers, or a remote OpenAI-compatible server can all implement it; none of them
 * may keep hidden global state between calls.
 */

export const SamplingSchema = z.object({
  /** 0 means greedy. */
  temperature: z.number().min(0),
  /** 0 disables the filter. */
  topK: z.number().int().min(0),
  /** 1 disables the filter. */
  topP: z.number().gt(0).max(1),
  /** 0 disables the filter. */
  minP: z.number().min(0).max(1),
  /** Off unless asked: on-policy RL sampling must not be reshaped behind the policy's back. */
  repeatPenalty: z.number().min(1).optional(),
});
export type Sampling = z.infer<typeof SamplingSchema>;

/** A prompt is either raw text (no template applied) or chat turns rendered by the model's own template. */
export const ChatTurnSchema = z.object({
  role: z.enum(["system", "user", "assistant"]),
  content: z.string(),
});
export type ChatTurn = z.infer<typeof ChatTurnSchema>;

export const PromptSchema = z.union([z.string(), z.array(ChatTurnSchema).min(1)]);
export type Prompt = z.infer<typeof PromptSchema>;

/**
 * How the model's reply begins, for prompts whose next token must be a verdict (judges): `closeThinking`
 * starts the reply after an empty, closed thinking block where the chat template has one (Qwen 3's
 * no-think form `<think>\n\n</think>\n\n`), so the model answers instead of opening `<think>`; `prefix`
 * is text the reply already starts with (a raw prompt gets it after a blank line).
 */
export const ReplyStartSchema = z.object({
  prefix: z.string().optional(),
  closeThinking: z.boolean().optional(),
});
export type ReplyStart = z.infer<typeof ReplyStartSchema>;

export const GenerationRequestSchema = z.object({
  prompt: PromptSchema,
  /** Number of rollouts for this prompt (G). */
  n: z.number().int().min(1),
  maxTokens: z.number().int().min(1),
  sampling: SamplingSchema,
  /** Rollout i of this request uses seed `seed + i`. */
  seed: z.number().int().min(0),
  /** Extra stop strings besides end-of-generation. */
  stop: z.array(z.string()).optional(),
  /**
   * Keep sampling past end-of-generation up to maxTokens (fixed-length benchmarks, as llama-batched-bench
   * measures); the EOG token is then part of the rollout.
   */
  ignoreEog: z.boolean().optional(),
  /** GBNF/JSON-schema constrained output (for rubrics); engines that cannot constrain must throw. */
  jsonSchema: z.record(z.string(), z.unknown()).optional(),
  /**
   * Render chat prompts with the template but leave generation "raw" (no chat wrapper stop logic).
   * `auto` uses the model's chat template when it has one, raw text otherwise.
   */
  format: z.enum(["auto", "chat", "raw"]).default("auto"),
  /** How the reply begins (see `ReplyStart`); omitted: the template's own generation prompt. */
  reply: ReplyStartSchema.optional(),
});
export type GenerationRequest = z.input<typeof GenerationRequestSchema>;
export type ResolvedGenerationRequest = z.output<typeof GenerationRequestSchema>;

export const FinishReasonSchema = z.enum(["eog", "max_tokens", "stop", "aborted"]);
export type FinishReason = z.infer<typeof FinishReasonSchema>;

export const RolloutSchema = z.object({
  requestIndex: z.number().int(),
  rolloutIndex: z.number().int(),
  seed: z.number().int(),
  /** The completion as text: never includes the end-of-generation token. */
  text: z.string(),
  /**
   * Every sampled token. A rollout with `finishReason` "eog" ends with the end-of-generation token that
   * stopped it (so training rewards or penalises the decision to stop); `text` leaves it out.
   */
  tokens: z.array(z.number().int()),
  /** Tokens of the rendered prompt, as the model saw them. */
  promptTokens: z.number().int(),
  finishReason: FinishReasonSchema,
  /**
   * Natural log-probability of each sampled token under the distribution it was sampled from
   * (the model's logits after temperature and top-k/top-p/min-p filtering). With temperature 1 and
   * every filter off this is the model's own log-prob. Use `Engine.score` for teacher-forced log-probs.
   */
  logprobs: z.array(z.number()),
  timings: z.object({
    startMs: z.number(),
    firstTokenMs: z.number().nullable(),
    endMs: z.number(),
  }),
});
export type Rollout = z.infer<typeof RolloutSchema>;

export const ScoreRequestSchema = z.object({
  prompt: PromptSchema,
  /** Continuation to score, as token ids (exact replay) or text (tokenized without BOS). */
  continuation: z.union([z.string(), z.array(z.number().int())]),
  /** Re-score under this sampling distribution; omitted means the raw model (temperature 1, no filters). */
  sampling: SamplingSchema.optional(),
  format: z.enum(["auto", "chat", "raw"]).default("auto"),
  /** How the reply began when the continuation was generated (see `ReplyStart`). */
  reply: ReplyStartSchema.optional(),
});
export type ScoreRequest = z.input<typeof ScoreRequestSchema>;

export type ScoreResult = {
  tokens: number[];
  logprobs: number[];
};

/** Probabilities of a few candidate next tokens after a prompt, from one forward pass (judge verdicts). */
export type NextTokenRequest = {
  prompt: Prompt;
  /** Candidate continuations; each is scored by the probability of its first token. */
  candidates: string[];
  format?: "auto" | "chat" | "raw";
  /** How the reply begins; the candidates are read right after it. */
  reply?: ReplyStart;
};
export type NextTokenResult = {
  /**
   * Probability of each candidate's first token under the raw model, same order as `candidates`; a
   * candidate whose first token repeats an earlier candidate's gets 0, so the list can be summed.
   */
  probs: number[];
};

export type GenerateProgress = {
  rolloutsDone: number;
  rolloutsTotal: number;
  tokensGenerated: number;
  elapsedMs: number;
};

export type GenerateOptions = {
  signal?: AbortSignal;
  onProgress?: (p: GenerateProgress) => void;
  /** Called as soon as each rollout finishes, so callers can persist work before the batch ends. */
  onRollout?: (r: Rollout) => void;
};

export type ModelInfo = {
  path: string;
  architecture: string;
  parameters?: number;
  trainContextSize: number;
  vocabSize: number;
  hasChatTemplate: boolean;
  /** Family used to choose sampling presets, e.g. "qwen3", "llama3", "gemma3", "unknown". */
  family: string;
};

export interface Engine {
  readonly info: ModelInfo;
  /** Generate `n` rollouts for every request, all sequences concurrently. Results are ordered by (request, rollout). */
  generate(requests: GenerationRequest[], options?: GenerateOptions): Promise<Rollout[][]>;
  /** Teacher-forced log-probs of given continuations. */
  score(requests: ScoreRequest[], options?: { signal?: AbortSignal }): Promise<ScoreResult[]>;
  /** Candidate first-token probabilities after each prompt (one forward pass per prompt). */
  nextTokenProbs(
    requests: NextTokenRequest[],
    options?: { signal?: AbortSignal },
  ): Promise<NextTokenResult[]>;
  /** Render a prompt as the model will see it (chat template or raw), for auditing and length checks. */
  renderPrompt(prompt: Prompt, format?: "auto" | "chat" | "raw", reply?: ReplyStart): string;
  /** Token ids of a prompt exactly as `generate` feeds it (BOS and template included); the trainer needs them. */
  tokenizePrompt(prompt: Prompt, format?: "auto" | "chat" | "raw", reply?: ReplyStart): number[];
  countTokens(text: string): number;
  dispose(): Promise<void>;
}
