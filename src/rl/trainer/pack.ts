import type { NativeBatch } from "./native.js";

/** One sequence as the trainer sees it: the prompt as fed to the model (BOS included) and the completion. */
export interface TokenSeq {
  prompt: number[];
  completion: number[];
}

/**
 * Lays sequences out as one micro-batch for the addon: each sequence feeds prompt + completion minus
 * its last token (positions from 0), padded at its end to the longest sequence's length Tm, so row
 * s*Tm + i is token i of sequence s. The logits of row s*Tm + P-1+j predict completion[j]; prompt
 * tokens and padding are never targets (masked from the loss). Attention is per sequence and
 * causal, so padding (after the real tokens) is never attended to by them.
 */
export function packBatch(seqs: TokenSeq[]): NativeBatch {
  const Tm = Math.max(...seqs.map((s) => s.prompt.length + s.completion.length - 1));
  const N = seqs.reduce((a, s) => a + s.completion.length, 0);
  const tokens = new Int32Array(Tm * seqs.length);
  const pos = new Int32Array(Tm * seqs.length);
  const outRows = new Int32Array(N);
  const targets = new Int32Array(N);
  let n = 0;
  seqs.forEach((s, si) => {
    const fed = s.prompt.concat(s.completion.slice(0, -1));
    const base = si * Tm;
    for (let i = 0; i < Tm; i++) {
      // padding repeats the first token (any valid id works: no real row attends to it)
      tokens[base + i] = i < fed.length ? fed[i] : fed[0];
      pos[base + i] = i;
    }
    s.completion.forEach((tok, j) => {
      outRows[n] = base + s.prompt.length - 1 + j;
      targets[n] = tok;
      n++;
    });
  });
  return { tokens, pos, nSeq: seqs.length, outRows, targets };
}

export interface LossSeq {
  completionLength: number;
  advantage: number;
  old: Float32Array;
  ref?: Float32Array;
}

/**
 * Per-token loss inputs for a micro-batch. GRPO per token: -A * min(r, clip(r, 1-eps, 1+eps)) with
 * r = exp(logp - old), plus beta * k3(KL to ref), averaged over each sequence's completion tokens and
 * then over the `nSeqsInStep` sequences of the whole step (so accumulated micro-batch gradients are
 * the gradient of the step's mean loss). The addon builds the clip mask from sgn and clipC: the
 * ratio carries gradient iff sgn * (clipC - r) > 0.
 */
export function lossInputs(
  seqs: LossSeq[],
  o: { beta: number; clipEps: number; nSeqsInStep: number },
): Required<Pick<NativeBatch, "old" | "negAdvW" | "clipC" | "sgn">> & Pick<NativeBatch, "ref" | "betaW"> {
  const N = seqs.reduce((a, s) => a + s.completionLength, 0);
  const old = new Float32Array(N);
  const negAdvW = new Float32Array(N);
  const clipC = new Float32Array(N);
  const sgn = new Float32Array(N);
  const withKl = o.beta > 0;
  const ref = withKl ? new Float32Array(N) : undefined;
  const betaW = withKl ? new Float32Array(N) : undefined;
  let n = 0;
  for (const s of seqs) {
    const w = 1 / (s.completionLength * o.nSeqsInStep);
    for (let j = 0; j < s.completionLength; j++, n++) {
      old[n] = s.old[j];
      negAdvW[n] = -s.advantage * w;
      sgn[n] = s.advantage >= 0 ? 1 : -1;
      clipC[n] = s.advantage >= 0 ? 1 + o.clipEps : 1 - o.clipEps;
      if (ref && betaW && s.ref) {
        ref[n] = s.ref[j];
        betaW[n] = o.beta * w;
      }
    }
  }
  return { old, negAdvW, clipC, sgn, ref, betaW };
}

/** Statistics of a step from per-token log-probs, computed as the addon's loss does (float64 here). */
export function stepStats(
  seqs: { logp: Float32Array; old: Float32Array; ref?: Float32Array; advantage: number }[],
  clipEps: number,
): { kl: number; clipFraction: number; tokens: number } {
  let klSum = 0;
  let clipped = 0;
  let tokens = 0;
  let nSeq = 0;
  for (const s of seqs) {
    if (s.logp.length === 0) continue;
    nSeq++;
    let kl = 0;
    for (let j = 0; j < s.logp.length; j++) {
      const r = Math.exp(s.logp[j] - s.old[j]);
      const active = s.advantage >= 0 ? r < 1 + clipEps : r > 1 - clipEps;
      if (!active) clipped++;
      if (s.ref) {
        const d = s.ref[j] - s.logp[j];
        kl += Math.exp(d) - d - 1;
      }
      tokens++;
    }
    klSum += kl / s.logp.length;
  }
  return { kl: nSeq ? klSum / nSeq : 0, clipFraction: tokens ? clipped / tokens : 0, tokens };
}
