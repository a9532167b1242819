import { describe, expect, it } from "vitest";
import { Engine } from "../src/engine/engine.js";
import { ArenaPool, Memtable } from "../src/engine/lsm/memtable.js";
import { EntryKind } from "../src/engine/lsm/types.js";
import { isTwillError } from "../src/errors.js";
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

  it("recycles a memtable's arena into the next one, and what readers got are copies that stay as they were", () => {
    const pool = new ArenaPool(8);
    const first = new Memtable({ arena: pool });
    for (let i = 0; i < 2_000; i++) first.put({ ...row(i), lsn: 1, kind: EntryKind.Put });
    const got = first.get(row(5).key, 1)!;
    const scanned = first.iterate().nextSync()!;
    const viewed = first.iterate({ views: true }).nextSync()!;
    expect(viewed).toEqual(scanned);
    first.recycle();
    expect(pool.idleBytes).toBeGreaterThan(0);
    let error: unknown;
    try {
      first.get(row(5).key, 1);
    } catch (e) {
      error = e;
    }
    expect(isTwillError(error, "INTERNAL")).toBe(true);
    // The next memtable fills the same chunks with other bytes.
    const second = new Memtable({ arena: pool });
    for (let i = 0; i < 2_000; i++)
      second.put({ key: row(i).key, value: new Uint8Array(184).fill(0xee), lsn: 2, kind: EntryKind.Put });
    expect(pool.idleBytes).toBe(0);
    expect(got.value).toEqual(row(5).value);
    const i = new DataView(scanned.key.buffer, scanned.key.byteOffset).getUint32(4);
    expect(scanned.value).toEqual(row(i).value);
    expect(scanned.key).toEqual(row(i).key);
  });

  it("recycles a flushed memtable only after the scans that began before the flush are done", async () => {
    const storage = await openStorage("memory://");
    const engine = await Engine.open(storage, { autoMaintenance: false });
    const rows = 3_000;
    const txn = engine.begin();
    for (let i = 0; i < rows; i++) {
      const { key, value } = row(i);
      txn.put(key, value);
    }
    await txn.commit();
    const scan = engine.readRange({})[Symbol.asyncIterator]();
    const seen: { key: Uint8Array; value: Uint8Array }[] = [];
    for (let i = 0; i < 10; i++)
      seen.push((await scan.next()).value as { key: Uint8Array; value: Uint8Array });
    await engine.flush();
    // A new memtable that would take the flushed one's chunks if they were given back too early.
    const overwrite = engine.begin();
    for (let i = rows; i < 2 * rows; i++) overwrite.put(row(i).key, new Uint8Array(184).fill(0xee));
    await overwrite.commit();
    for (;;) {
      const r = await scan.next();
      if (r.done) break;
      seen.push(r.value as { key: Uint8Array; value: Uint8Array });
    }
    // The scan's view is from before the flush and the second commit: exactly the first rows, intact.
    expect(seen.length).toBe(rows);
    for (const { key, value } of seen) {
      const i = new DataView(key.buffer, key.byteOffset).getUint32(4);
      expect(value).toEqual(row(i).value);
    }
    await engine.close();
    await storage.close();
  });

  it("holds back a flushed memtable only for scans that could see it (not for later memtables)", async () => {
    const storage = await openStorage("memory://");
    const engine = await Engine.open(storage, { autoMaintenance: false });
    const put = async (from: number, to: number) => {
      const txn = engine.begin();
      for (let i = from; i < to; i++) txn.put(row(i).key, row(i).value);
      await txn.commit();
    };
    await put(0, 1_000);
    const scan = engine.readRange({})[Symbol.asyncIterator]();
    await scan.next();
    await engine.flush();
    expect(engine.stats().retiredMemtables).toBe(1);
    // Born after the scan began: the scan cannot reach it, so its flush recycles it at once. (Held back by every
    // older read, memtables flushed during a long compaction piled up: 675 MiB in bench/engine/rss.)
    await put(1_000, 2_000);
    await engine.flush();
    expect(engine.stats().retiredMemtables).toBe(1);
    let n = 1;
    while (!(await scan.next()).done) n++;
    expect(n).toBe(1_000);
    expect(engine.stats().retiredMemtables).toBe(0);
    await engine.close();
    await storage.close();
  });
});
