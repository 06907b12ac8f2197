import { z } from "zod";

/**
 * The parts of the two OpenAI-compatible servers' answers that the remote engine reads (zod at the
 * boundary: a server that answers something else fails with the field named).
 *
 * llama-server (tools/server/README.md of the llama.cpp release node-llama-cpp bundles):
 *   GET /props (`build_info`, `chat_template`, `total_slots`, `default_generation_settings.n_ctx`),
 *   GET /v1/models (`data[0].id`, `meta.n_vocab`, `meta.n_ctx_train`), POST /tokenize, POST /apply-template,
 *   POST /v1/completions with `logprobs: k` answering `choices[0].logprobs.content[]` of
 *   `{id, logprob | prob, top_logprobs | top_probs}` (the `prob` spelling under `post_sampling_probs`).
 * vLLM (vllm/entrypoints/openai/completion/protocol.py): GET /version, GET /v1/models (`max_model_len`),
 *   POST /tokenize, POST /detokenize, POST /v1/completions answering OpenAI's legacy
 *   `logprobs: {tokens, token_logprobs, top_logprobs}` plus `token_ids`, `stop_reason`, `prompt_logprobs`.
 */

export const LlamaServerPropsSchema = z.object({
  build_info: z.string().optional(),
  chat_template: z.string().optional(),
  total_slots: z.number().int().optional(),
  model_path: z.string().optional(),
  default_generation_settings: z.object({ n_ctx: z.number().int().optional() }).loose().optional(),
});

export const ModelsSchema = z.object({
  data: z
    .array(
      z
        .object({
          id: z.string(),
          max_model_len: z.number().int().optional(),
          meta: z
            .object({ n_vocab: z.number().int().optional(), n_ctx_train: z.number().int().optional() })
            .loose()
            .nullable()
            .optional(),
        })
        .loose(),
    )
    .min(1, "the server lists no model"),
});

export const VllmVersionSchema = z.object({ version: z.string() });

export const LlamaTokenizeSchema = z.object({ tokens: z.array(z.number().int()) });
export const VllmTokenizeSchema = z.object({
  tokens: z.array(z.number().int()),
  max_model_len: z.number().optional(),
});
export const ApplyTemplateSchema = z.object({ prompt: z.string() });
export const DetokenizeSchema = z.object({ prompt: z.string() });

const LlamaTopSchema = z.object({
  id: z.number().int(),
  logprob: z.number().optional(),
  prob: z.number().optional(),
});
const LlamaTokenProbSchema = LlamaTopSchema.extend({
  top_logprobs: z.array(LlamaTopSchema).optional(),
  top_probs: z.array(LlamaTopSchema).optional(),
});

export const CompletionChoiceSchema = z
  .object({
    text: z.string(),
    finish_reason: z.string().nullable().optional(),
    stop_reason: z.union([z.string(), z.number(), z.null()]).optional(),
    token_ids: z.array(z.number().int()).nullable().optional(),
    prompt_logprobs: z
      .array(z.record(z.string(), z.object({ logprob: z.number() }).loose()).nullable())
      .nullable()
      .optional(),
    logprobs: z
      .union([
        z.object({ content: z.array(LlamaTokenProbSchema) }),
        z.object({
          tokens: z.array(z.string()),
          token_logprobs: z.array(z.number().nullable()),
          top_logprobs: z.array(z.record(z.string(), z.number()).nullable()).nullable().optional(),
        }),
      ])
      .nullable()
      .optional(),
  })
  .loose();
export type CompletionChoice = z.infer<typeof CompletionChoiceSchema>;

export const CompletionSchema = z.object({
  choices: z.array(CompletionChoiceSchema).min(1),
  usage: z.object({ prompt_tokens: z.number().int().optional() }).loose().optional(),
  system_fingerprint: z.string().optional(),
});

/** Where a token id travels as text: vLLM's `return_tokens_as_token_ids` spelling `token_id:123`. */
function tokenIdOf(s: string): number {
  const m = /^token_id:(\d+)$/.exec(s);
  if (!m) throw new Error(`token '${s}' is not in the token_id:N form (return_tokens_as_token_ids ignored?)`);
  return Number(m[1]);
}

export type ParsedTokens = {
  tokens: number[];
  logprobs: number[];
  /** Per position: token id -> log-prob of the returned alternatives. */
  top: Map<number, number>[];
};

/** Sampled tokens, their log-probs and the alternatives, from either server's logprobs shape. */
export function parseChoiceLogprobs(choice: CompletionChoice): ParsedTokens | null {
  const lp = choice.logprobs;
  if (!lp) return null;
  const log = (e: { logprob?: number; prob?: number }) => e.logprob ?? Math.log(e.prob ?? 0);
  if ("content" in lp) {
    return {
      tokens: lp.content.map((c) => c.id),
      logprobs: lp.content.map(log),
      top: lp.content.map((c) => new Map((c.top_logprobs ?? c.top_probs ?? []).map((t) => [t.id, log(t)]))),
    };
  }
  const tokens = choice.token_ids ?? lp.tokens.map(tokenIdOf);
  return {
    tokens,
    logprobs: lp.token_logprobs.map((x) => x ?? Number.NEGATIVE_INFINITY),
    top: (lp.top_logprobs ?? []).map(
      (m) => new Map(Object.entries(m ?? {}).map(([k, v]) => [tokenIdOf(k), v] as [number, number])),
    ),
  };
}
