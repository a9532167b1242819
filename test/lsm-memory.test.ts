import { describe, expect, it } from "vitest";
import { Engine } from "../src/engine/engine.js";
import { openStorage } from "../src/storage/open.js";

/** 16-byte keys in scrambled order and 184-byte values, as in bench/engine/rss. */
function row(i: number): { key: Uint8Array; value: Uint8Array } {
  const key = new Uint8Array(16);
  const view = new DataView(key.buffer);
  view.setUint32(0, Math.imul(i ^ 0x5bd1e995, 0x9e3779b1) >>> 0);
  view.setUint32(4, i);
  return { key, value: new Uint8Array(184).fill(i & 0xff) };
}

describe("memory the tree holds between bursts of writing", () => {
  it("gives the SST writers' idle slabs back when no flush or compaction runs, and on close", async () => {
    const storage = await openStorage("memory://");
    // SSTs of a few MiB, so that writers fill (and recycle) full 1 MiB slabs.
    const engine = await Engine.open(storage, {
      memtableBytesMax: 4 * 1024 * 1024,
      sstBytesTarget: 2 * 1024 * 1024,
      l0CompactionTrigger: 2,
    });
    const rows = 40_000;
    for (let from = 0; from < rows; from += 5_000) {
      const txn = engine.begin();
      for (let i = from; i < from + 5_000; i++) {
        const { key, value } = row(i);
        txn.put(key, value);
      }
      await txn.commit();
    }
    await engine.flush();
    await engine.compact();
    const stats = engine.stats();
    expect(stats.flushes).toBeGreaterThan(1);
    expect(stats.compactions).toBeGreaterThan(0);
    // Held for good after the last compaction, these were one SST's worth (sstBytesTarget + 2 MiB).
    expect(stats.idleSlabBytes).toBe(0);
    for (const i of [0, 1, 17_777, rows - 1]) {
      const got = await engine.read(row(i).key);
      expect(got).toEqual(row(i).value);
    }
    await engine.close();
    expect(engine.stats().idleSlabBytes).toBe(0);
    await storage.close();
  });
});
