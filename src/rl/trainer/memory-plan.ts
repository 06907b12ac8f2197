import { readFileSync } from "node:fs";
import os from "node:os";
import { z } from "zod";

/**
 * The trainer's memory plan: what a step will need before any of it is allocated, so that the
 * micro-batch size, the transposed weight copy and the sequences left out are decided up front and a
 * step never dies in ggml's allocator. Bytes add up as
 *
 *   fixed        weights + transposed copies + LoRA on the device + the host's LoRA master copies,
 *                gradients and AdamW moments (8 floats per parameter)
 *   activations  per micro-batch of T rows: the input of every layer kept for the backward pass,
 *                (n_layer + 1) * T * n_embd floats, plus the upstream gradient and host staging
 *   compute      the graph allocator's buffer, which grows to the largest graph it has placed and is
 *                reused: max over (embedding, one layer forward, one layer backward, one head chunk)
 *                as ggml's allocator measures them (addon `plan`), or the whole-model graph
 *   work         the CPU backend's per-graph scratch (quantized copies of matmul inputs)
 *
 * and the predicted peak RSS is the process RSS before the trainer loaded plus the larger of the
 * step's total and the load-time peak (the transposed copies are made from a full copy of one matrix).
 */

/** Bytes of one [n_vocab x C] float tensor per output-head chunk: positions per chunk = this / (4 n_vocab). */
export const HEAD_CHUNK_BYTES = 64 * 2 ** 20;
/** `microBatch: "auto"` never puts more sequences in one micro-batch than this. */
export const AUTO_MAX_SEQS = 8;
/** ... nor more rows (tokens fed) than this: beyond it matmuls gain nothing from a larger batch. */
export const AUTO_MAX_ROWS = 4096;

/** Rows per sequence and targets are planned rounded up to a multiple of this. */
export const PLAN_GRAIN = 16;

export const PlanSizesSchema = z.object({
  embed: z.number(),
  layerForward: z.number(),
  layerBackward: z.number(),
  headForward: z.number(),
  headBackward: z.number(),
  whole: z.number(),
});
export type PlanSizes = z.infer<typeof PlanSizesSchema>;

export interface ModelDims {
  nVocab: number;
  nEmbd: number;
  nLayer: number;
  nFf: number;
}

/** Memory that does not depend on the batch (bytes). */
export interface FixedMemory {
  weights: number;
  transposed: number;
  /** LoRA tensors on the device plus 8 host floats per parameter (master, grad, two moments). */
  lora: number;
  /** Process RSS when the trainer started loading (Node, the engine, anything else in the process). */
  baseRss: number;
  /** Extra bytes while the transposed copies are made (one matrix copied in full plus staging). */
  loadScratch: number;
}

/** One micro-batch as the plan sizes it. */
export interface MicroBatchPlan {
  /** Indices of the sequences (into the step's input). */
  seqs: number[];
  /** Rows fed = sequences x the longest (prompt + completion - 1). */
  rows: number;
  targets: number;
  activations: number;
  compute: number;
}

/**
 * The plan of one step (or one logprobs call). All sizes in bytes. `predictedPeakRss` is what the
 * bench prints next to the measured peak RSS.
 */
export interface StepPlan {
  budget: number;
  fixed: FixedMemory;
  microBatches: MicroBatchPlan[];
  /** Sequences that cannot fit even alone: left out, with the one line saying so. */
  skipped: { index: number; tokens: number; needs: number; message: string }[];
  /** Largest activations + compute + work over the micro-batches. */
  perMicroBatch: number;
  /** fixed (without baseRss) + perMicroBatch: compared with the budget. */
  trainerBytes: number;
  predictedPeakRss: number;
  /** Output-head positions per chunk. */
  headChunk: number;
}

/** Free memory for a CPU trainer: MemAvailable (what can be allocated without swapping). */
export function availableMemoryBytes(): number {
  try {
    const m = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync("/proc/meminfo", "utf8"));
    if (m) return Number(m[1]) * 1024;
  } catch {}
  return os.freemem();
}

export function headChunkFor(nVocab: number): number {
  return Math.max(1, Math.floor(HEAD_CHUNK_BYTES / (4 * nVocab)));
}

/** Host floats the layer-by-layer pass keeps for a micro-batch of `rows` rows. */
export function activationBytes(
  d: ModelDims,
  rows: number,
  targets: number,
  withGrad: boolean,
  headChunk: number,
): number {
  const x = rows * d.nEmbd * 4;
  // with a backward pass: every layer's input, the upstream gradient and one layer's output gradient;
  // forward only: two layers' worth (ping-pong); plus the head chunk's gathered rows
  const layers = withGrad ? (d.nLayer + 1) * x + 2 * x : 2 * x;
  return layers + 2 * Math.min(targets, headChunk) * d.nEmbd * 4;
}

/** CPU scratch of one graph: matmul inputs converted to the weights' dot type (at most ~T x n_ff). */
export function workBytes(d: ModelDims, rows: number): number {
  return rows * Math.max(d.nFf, d.nEmbd) * 4;
}

export function computeBytes(p: PlanSizes, withGrad: boolean, whole: boolean): number {
  if (whole) return p.whole;
  return Math.max(
    p.embed,
    p.layerForward,
    p.headForward,
    withGrad ? p.layerBackward : 0,
    withGrad ? p.headBackward : 0,
  );
}

export interface PlanSeq {
  /** Tokens fed (prompt + completion - 1) and targets (completion tokens). */
  rows: number;
  targets: number;
}

/**
 * Groups sequences into micro-batches that fit the budget. `size(rows, nSeq, targets)` gives one
 * micro-batch's activations + compute + work. Sequences go longest first (less padding), greedily:
 * a sequence joins the current micro-batch while the padded batch still fits and is below `cap`
 * sequences (`auto`: AUTO_MAX_SEQS and AUTO_MAX_ROWS). One that cannot fit alone is skipped.
 */
export function groupMicroBatches(
  seqs: PlanSeq[],
  o: {
    cap: number | "auto";
    room: number;
    size: (rowsPerSeq: number, nSeq: number, targets: number) => { activations: number; compute: number };
  },
): { batches: MicroBatchPlan[]; skipped: { index: number; needs: number }[] } {
  const order = seqs.map((s, i) => ({ ...s, i })).sort((a, b) => b.rows - a.rows || a.i - b.i);
  const batches: MicroBatchPlan[] = [];
  const skipped: { index: number; needs: number }[] = [];
  const maxSeqs = o.cap === "auto" ? AUTO_MAX_SEQS : o.cap;
  let cur: { seqs: number[]; tm: number; targets: number; act: number; comp: number } | undefined;
  const flush = () => {
    if (cur)
      batches.push({
        seqs: cur.seqs,
        rows: cur.tm * cur.seqs.length,
        targets: cur.targets,
        activations: cur.act,
        compute: cur.comp,
      });
    cur = undefined;
  };
  for (const s of order) {
    if (cur && cur.seqs.length < maxSeqs) {
      const tm = Math.max(cur.tm, s.rows);
      const n = cur.seqs.length + 1;
      const rowsOk = o.cap !== "auto" || tm * n <= AUTO_MAX_ROWS;
      const sz = rowsOk ? o.size(tm, n, cur.targets + s.targets) : undefined;
      if (sz && sz.activations + sz.compute <= o.room) {
        cur = {
          seqs: [...cur.seqs, s.i],
          tm,
          targets: cur.targets + s.targets,
          act: sz.activations,
          comp: sz.compute,
        };
        continue;
      }
      // over the budget (or the row cap): this one starts the next micro-batch
      flush();
    } else flush();
    const alone = o.size(s.rows, 1, s.targets);
    if (alone.activations + alone.compute > o.room) {
      skipped.push({ index: s.i, needs: alone.activations + alone.compute });
      continue;
    }
    cur = { seqs: [s.i], tm: s.rows, targets: s.targets, act: alone.activations, comp: alone.compute };
  }
  flush();
  return { batches, skipped };
}

export const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;
