/**
 * Runs tasks one after another. An engine's context is sized per call and reused between calls, so two
 * overlapping calls on one engine would fight over it; a lane per engine keeps its calls in order while
 * calls on other engines (the policy generating, the anchor synthesizing) run at the same time.
 */
export class SerialLane {
  private tail: Promise<unknown> = Promise.resolve();

  run<R>(task: () => Promise<R>): Promise<R> {
    const p = this.tail.then(task);
    this.tail = p.catch(() => undefined);
    return p;
  }
}
