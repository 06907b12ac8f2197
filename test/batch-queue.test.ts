import { describe, expect, it } from "vitest";
import { BatchQueue } from "../src/util/batch-queue.js";
import { SerialLane } from "../src/util/serial-lane.js";

const tick = () => new Promise((r) => setImmediate(r));

describe("BatchQueue", () => {
  it("runs items submitted in one tick as one batch and items arriving during it as the next", async () => {
    const batches: number[][] = [];
    let release: () => void = () => {};
    const q = new BatchQueue<number, number>(async (items) => {
      batches.push(items);
      if (batches.length === 1) await new Promise<void>((r) => (release = r));
      return items.map((x) => x * 10);
    });
    const first = [q.submit(1), q.submit(2)];
    await tick();
    const later = [q.submit(3), q.submit(4), q.submit(5)];
    await tick();
    expect(batches).toEqual([[1, 2]]);
    release();
    expect(await Promise.all([...first, ...later])).toEqual([10, 20, 30, 40, 50]);
    expect(batches).toEqual([
      [1, 2],
      [3, 4, 5],
    ]);
  });

  it("resolves an item as soon as the batch reports it, before the batch ends", async () => {
    let release: () => void = () => {};
    const q = new BatchQueue<string, string>(async (items, done) => {
      done(1, `${items[1]}!`);
      await new Promise<void>((r) => (release = r));
      return items.map((x) => `${x}?`);
    });
    const a = q.submit("a");
    const b = q.submit("b");
    expect(await b).toBe("b!");
    let idle = false;
    const drained = q.idle().then(() => {
      idle = true;
    });
    await tick();
    expect(idle).toBe(false);
    release();
    expect(await a).toBe("a?");
    await drained;
    expect(idle).toBe(true);
  });

  it("rejects every unfinished item of a failed batch and keeps serving later ones", async () => {
    let calls = 0;
    const q = new BatchQueue<number, number>(async (items) => {
      calls++;
      if (calls === 1) throw new Error("boom");
      return items;
    });
    const failed = [q.submit(1), q.submit(2)].map((p) => p.catch((e: Error) => e.message));
    expect(await Promise.all(failed)).toEqual(["boom", "boom"]);
    expect(await q.submit(3)).toBe(3);
  });

  it("waits for its lane: batches of two queues on one lane never overlap", async () => {
    const lane = new SerialLane();
    const log: string[] = [];
    const slow = (name: string) => async (items: number[]) => {
      log.push(`${name} start`);
      await new Promise((r) => setTimeout(r, 5));
      log.push(`${name} end`);
      return items;
    };
    const a = new BatchQueue<number, number>(slow("a"), lane);
    const b = new BatchQueue<number, number>(slow("b"), lane);
    await Promise.all([a.submit(1), b.submit(2)]);
    expect(log).toEqual(["a start", "a end", "b start", "b end"]);
  });
});
