import type { SerialLane } from "./serial-lane.js";

/**
 * Collects items submitted while a batch runs and hands them all to the next batch, so work that trickles
 * in (groups finishing their rollouts one by one) still runs in full batches, and nothing waits for a batch
 * it is not part of. Items submitted in the same tick start together.
 */
export class BatchQueue<T, R> {
  private pending: { item: T; resolve: (r: R) => void; reject: (e: unknown) => void }[] = [];
  private running = false;
  private scheduled = false;
  private pumping: Promise<void> | null = null;

  constructor(
    /** Runs one batch; may report items early through `done(k, result)`, else returns every result in order. */
    private readonly run: (items: T[], done: (k: number, r: R) => void) => Promise<R[] | undefined>,
    private readonly lane?: SerialLane,
  ) {}

  submit(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      if (!this.scheduled && !this.running) {
        this.scheduled = true;
        setImmediate(() => {
          this.pumping = this.pump();
        });
      }
    });
  }

  /** Resolves once nothing is queued or running (a batch may still be finishing after its items resolved). */
  async idle(): Promise<void> {
    while (this.scheduled || this.running) await (this.pumping ?? new Promise((r) => setImmediate(r)));
  }

  private async pump(): Promise<void> {
    this.scheduled = false;
    if (this.running) return;
    this.running = true;
    try {
      while (this.pending.length > 0) {
        const batch = this.pending.splice(0);
        const settled = new Array<boolean>(batch.length).fill(false);
        const done = (k: number, r: R) => {
          if (settled[k]) return;
          settled[k] = true;
          batch[k].resolve(r);
        };
        try {
          const items = batch.map((b) => b.item);
          const out = await (this.lane ? this.lane.run(() => this.run(items, done)) : this.run(items, done));
          batch.forEach((_, k) => {
            if (!settled[k]) {
              if (out && k < out.length) done(k, out[k]);
              else {
                settled[k] = true;
                batch[k].reject(new Error("batch ended without a result for this item"));
              }
            }
          });
        } catch (e) {
          batch.forEach((b, k) => {
            if (!settled[k]) {
              settled[k] = true;
              b.reject(e);
            }
          });
        }
      }
    } finally {
      this.running = false;
    }
  }
}
