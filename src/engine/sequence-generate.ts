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
  ignoreEog?: boolean;
  signal?: AbortSignal;
  onToken?: () => void;
};

export type SequenceResult = {
  /** Sampled tokens; when the completion ended at end-of-generation, the last one is that token. */
  tokens: number[];
  logprobs: number[];
  text: string;
  finishReason: FinishReason;
  firstTokenAt: number | null;
};

/** One completion's bookkeeping: accepts sampled tokens and decides when and why it ends. */
class Completion {
  readonly tokens: Token[] = [];
  readonly logprobs: number[] = [];
  finishReason: FinishReason = "max_tokens";
  firstTokenAt: number | null = null;
  done = false;
  private stopCut: number | null = null;
  /** The last token is the end-of-generation token that ended the completion. */
  private eogRecorded = false;
  private readonly maxStopLen: number;

  constructor(
    private readonly model: LlamaModel,
    private readonly job: SequenceJob,
  ) {
    this.maxStopLen = job.stops.reduce((m, s) => Math.max(m, s.length), 0);
  }

  /** Takes the next sampled token; returns false once the completion has ended. */
  accept(token: Token | null | undefined, confidence: number | undefined): boolean {
    if (this.done) return false;
    this.firstTokenAt ??= performance.now();
    if (this.job.signal?.aborted) return this.end("aborted");
    if (token == null) return this.end("eog");
    if (this.model.isEogToken(token) && !this.job.ignoreEog) {
      // The decision to stop is part of the rollout: its token and log-prob are recorded (and trained
      // on), but it is not text.
      this.tokens.push(token);
      this.logprobs.push(Math.log(confidence ?? Number.NaN));
      this.eogRecorded = true;
      return this.end("eog");
    }
    this.tokens.push(token);
    this.logprobs.push(Math.log(confidence ?? Number.NaN));
    this.job.onToken?.();
    if (this.maxStopLen > 0) {
      const tail = this.model.detokenize(this.tokens.slice(-Math.max(8, this.maxStopLen + 4)));
      if (this.job.stops.some((s) => tail.includes(s))) {
        const text = this.model.detokenize(this.tokens);
        this.stopCut = Math.min(...this.job.stops.map((s) => text.indexOf(s)).filter((i) => i >= 0));
        return this.end("stop");
      }
    }
    if (this.tokens.length >= this.job.maxTokens) return this.end("max_tokens");
    return true;
  }

  private end(reason: FinishReason): false {
    this.finishReason = reason;
    this.done = true;
    return false;
  }

  result(): SequenceResult {
    const full = this.model.detokenize(this.eogRecorded ? this.tokens.slice(0, -1) : this.tokens);
    return {
      tokens: this.tokens as number[],
      logprobs: this.logprobs,
      text: this.stopCut == null ? full : full.slice(0, this.stopCut),
      finishReason: this.finishReason,
      firstTokenAt: this.firstTokenAt,
    };
  }
}

function repeatPenaltyOf(s: Sampling, tokens: Token[]) {
  return s.repeatPenalty ? { penalty: s.repeatPenalty, punishTokens: () => tokens.slice(-64) } : undefined;
}

/**
 * Samples one completion on one sequence with node-llama-cpp's generator (persistent sampler, grammar).
 * Used for grammar-constrained requests; plain sampling goes through `generateLockstep`.
 */
export async function generateOnSequence(
  model: LlamaModel,
  sequence: LlamaContextSequence,
  job: SequenceJob,
): Promise<SequenceResult> {
  const c = new Completion(model, job);
  const { temperature, topK, topP, minP } = job.sampling;
  const gen = sequence.evaluateWithMetadata(
    job.input as Token[],
    { confidence: true },
    {
      temperature,
      topK,
      topP,
      minP,
      seed: job.seed,
      repeatPenalty: repeatPenaltyOf(job.sampling, c.tokens),
      grammarEvaluationState: job.grammar,
      // We want to see the end-of-generation token to tell "eog" from "max_tokens".
      yieldEogToken: true,
    },
  );
  for await (const out of gen) {
    if (!c.accept(out.token, out.confidence)) break;
  }
  return c.result();
}

/**
 * A distinct sampler seed per (rollout seed, step): each lockstep step samples with a fresh sampler, and
 * reusing one seed would replay the same random draw at every step.
 */
export function stepSeed(seed: number, step: number): number {
  let h = (seed ^ Math.imul(step + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * Samples many completions in lockstep: every step starts each live sequence's one-token evaluation in
 * the same tick, so node-llama-cpp decodes all of them as one full batch. Per-sequence generators let
 * one or two sequences miss most batches, and ggml's batched kernels lose a lot on ragged widths (see
 * bench/profile-sequence-loop.ts: 16 sequences, 1.6x the tokens/s).
 */
export async function generateLockstep(
  model: LlamaModel,
  sequences: LlamaContextSequence[],
  jobs: SequenceJob[],
  /** Called as each completion ends, so callers can keep finished work before the batch ends. */
  onFinish?: (k: number, r: SequenceResult) => void,
): Promise<SequenceResult[]> {
  const completions = jobs.map((j) => new Completion(model, j));
  const next = (k: number, step: number) => {
    const s = jobs[k].sampling;
    return {
      generateNext: {
        token: true,
        confidence: true,
        options: {
          temperature: s.temperature,
          topK: s.topK,
          topP: s.topP,
          minP: s.minP,
          seed: stepSeed(jobs[k].seed, step),
          repeatPenalty: repeatPenaltyOf(s, completions[k].tokens),
        },
      },
    } as const;
  };
  let last = await Promise.all(
    sequences.map(async (seq, k) => {
      const input = jobs[k].input;
      const items = input.map((t, i) => (i === input.length - 1 ? [t, next(k, 0)] : t));
      const out = await seq.controlledEvaluate(items as never);
      return out[input.length - 1]?.next;
    }),
  );
  for (let step = 1; ; step++) {
    const live = completions.map((c, k) => {
      if (c.done) return false;
      const goOn = c.accept(last[k]?.token, last[k]?.confidence);
      if (!goOn) onFinish?.(k, c.result());
      return goOn;
    });
    if (!live.some(Boolean)) break;
    last = await Promise.all(
      sequences.map(async (seq, k) => {
        if (!live[k]) return undefined;
        const tok = completions[k].tokens[completions[k].tokens.length - 1];
        const out = await seq.controlledEvaluate([[tok, next(k, step)]] as never);
        return out[0]?.next;
      }),
    );
  }
  return completions.map((c) => c.result());
}
