/**
 * Bounded read amplification when writes outrun compaction: flushes wait while L0 is at its stop trigger, so a
 * point get never has more than that many L0 SSTs (plus one of L1) to probe, and commits wait on the memtables
 * instead of piling SSTs up. Compaction is held back here by gating the SST reads it makes (a flush only writes).
 */

import { describe, expect, it } from "vitest";
import { Engine } from "../src/engine/engine.js";
import { isTwillError } from "../src/errors.js";
import { openMemoryStorage } from "../src/storage/memory.js";
import type { Storage } from "../src/storage/types.js";
import { deferred } from "./helpers/deferred.js";
import { smallEngine } from "./helpers/engine-options.js";

const enc = (s: string) => new TextEncoder().encode(s);
// Keys spread over the whole key space in every batch, as random writes are: every L0 SST overlaps every other.
const key = (i: number) => enc(`k${String((i * 7919) % 100_003).padStart(6, "0")}`);
const value = (i: number) => enc(`value ${i} `.padEnd(200, "."));

/** `inner` with its async SST reads held while `gate` is set (compaction reads its inputs through `read`). */
function gatedReads(inner: Storage): { storage: Storage; hold(): void; release(): void } {
  let gate: Promise<void> | undefined;
  let open = () => {};
  const storage = new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === "read") {
        return async (key: string, range?: { offset: number; length?: number }) => {
          while (gate && key.startsWith("sst/")) await gate;
          return target.read(key, range);
        };
      }
      const v = Reflect.get(target, prop, receiver);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  return {
    storage,
    hold() {
      const d = deferred<void>();
      gate = d.promise;
      open = () => d.resolve();
    },
    release() {
      gate = undefined;
      open();
    },
  };
}

describe("L0 stop trigger", () => {
  it("holds flushes back while compaction lags, so L0 never passes the trigger, then catches up", async () => {
    const gated = gatedReads(openMemoryStorage(""));
    const engine = await Engine.open(gated.storage, {
      ...smallEngine,
      l0CompactionTrigger: 2,
      l0StopWritesTrigger: 3,
    });
    try {
      // Enough writes for many memtables' worth of flushes (64 KiB each, ~200 B rows).
      const rows = 3000;
      gated.hold();
      let maxL0 = 0;
      const commits: Promise<number>[] = [];
      for (let i = 0; i < rows; i++) {
        const txn = engine.begin();
        txn.put(key(i), value(i));
        commits.push(txn.commit());
        if (i % 50 === 49) {
          // Let the background work run between batches, as a real writer's awaits would.
          await new Promise((resolve) => setTimeout(resolve, 1));
          maxL0 = Math.max(maxL0, engine.stats().l0Ssts);
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
      maxL0 = Math.max(maxL0, engine.stats().l0Ssts);
      const stalled = engine.stats();
      expect(maxL0).toBeLessThanOrEqual(3);
      expect(stalled.l0Stalls).toBeGreaterThan(0);
      // The writes that did not fit wait (the memtables are full) rather than being lost or failing.
      const settled = await Promise.race([Promise.all(commits).then(() => true), Promise.resolve(false)]);
      expect(settled).toBe(false);
      gated.release();
      await Promise.all(commits);
      maxL0 = Math.max(maxL0, engine.stats().l0Ssts);
      expect(maxL0).toBeLessThanOrEqual(3);
      for (let i = 0; i < rows; i += 97) expect(await engine.read(key(i))).toEqual(value(i));
      await engine.flush();
      await engine.compact();
      expect(engine.stats()).toMatchObject({ l0Ssts: 0 });
      for (let i = 0; i < rows; i += 89) expect(await engine.read(key(i))).toEqual(value(i));
    } finally {
      gated.release();
      await engine.close();
    }
  });

  it("does not hold flushes without automatic maintenance (nothing would compact)", async () => {
    const engine = await Engine.open(openMemoryStorage(""), {
      ...smallEngine,
      l0CompactionTrigger: 2,
      l0StopWritesTrigger: 3,
      autoMaintenance: false,
    });
    try {
      for (let f = 0; f < 5; f++) {
        const txn = engine.begin();
        for (let i = 0; i < 20; i++) txn.put(key(f * 20 + i), value(i));
        await txn.commit();
        await engine.flush();
      }
      expect(engine.stats()).toMatchObject({ l0Ssts: 5, l0Stalls: 0 });
    } finally {
      await engine.close();
    }
  });

  it("refuses a stop trigger at or below the compaction trigger", async () => {
    const error = await Engine.open(openMemoryStorage(""), {
      l0CompactionTrigger: 4,
      l0StopWritesTrigger: 4,
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isTwillError(error, "INVALID_ARGUMENT"), String(error)).toBe(true);
    expect(String(error)).toContain("l0StopWritesTrigger");
  });
});
