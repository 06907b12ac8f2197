import type { LlamaContextSequence, LlamaGrammarEvaluationState, LlamaModel, Token } from "node-llama-cpp";
import type { FinishReason, Sampling } from "./types.js";

export type SequenceJob = {
  /** Tokens still to evaluate before sampling (the whole prompt, or its tail when the prefix was copied in). */
  input: number[];
  maxTokens: number;
  sampling: Sampling;
  seed: number;
  stops: string[];
  grammar?: LlamaGrammarEvaluationState;
  signal?: AbortSignal;
  onToken?: () => void;
};

export type SequenceResult = {
  tokens: number[];
  logprobs: number[];
  text: string;
  finishReason: FinishReason;
  firstTokenAt: number | null;
};

/**
 * Samples one completion on one sequence. node-llama-cpp gathers the pending tokens of every sequence of
 * the context into one decode, so running many of these concurrently is what batches them.
 */
export async function generateOnSequence(
  model: LlamaModel,
  sequence: LlamaContextSequence,
  job: SequenceJob,
): Promise<SequenceResult> {
  const tokens: Token[] = [];
  const logprobs: number[] = [];
  let finishReason: FinishReason = "max_tokens";
  let firstTokenAt: number | null = null;
  let stopCut: number | null = null;
  const maxStopLen = job.stops.reduce((m, s) => Math.max(m, s.length), 0);
  const eog = new Set<number>();

  const { temperature, topK, topP, minP, repeatPenalty } = job.sampling;
  const gen = sequence.evaluateWithMetadata(
    job.input as Token[],
    { confidence: true },
    {
      temperature,
      topK,
      topP,
      minP,
      seed: job.seed,
      repeatPenalty: repeatPenalty
        ? { penalty: repeatPenalty, punishTokens: () => tokens.slice(-64) }
        : undefined,
      grammarEvaluationState: job.grammar,
      // We want to see the end-of-generation token to tell "eog" from "max_tokens".
      yieldEogToken: true,
    },
  );

  for await (const out of gen) {
    if (job.signal?.aborted) {
      finishReason = "aborted";
      break;
    }
    if (firstTokenAt == null) firstTokenAt = performance.now();
    if (eog.has(out.token) || model.isEogToken(out.token)) {
      eog.add(out.token);
      finishReason = "eog";
      break;
    }
    tokens.push(out.token);
    logprobs.push(Math.log(out.confidence));
    job.onToken?.();
    if (maxStopLen > 0) {
      const tail = model.detokenize(tokens.slice(-Math.max(8, maxStopLen + 4)));
      if (job.stops.some((s) => tail.includes(s))) {
        const text = model.detokenize(tokens);
        stopCut = Math.min(...job.stops.map((s) => text.indexOf(s)).filter((i) => i >= 0));
        finishReason = "stop";
        break;
      }
    }
    if (tokens.length >= job.maxTokens) break;
  }

  const full = model.detokenize(tokens);
  return {
    tokens: tokens as number[],
    logprobs,
    text: stopCut == null ? full : full.slice(0, stopCut),
    finishReason,
    firstTokenAt,
  };
}
