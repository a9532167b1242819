import { describe, expect, it } from "vitest";
import { BlockCache } from "../src/engine/lsm/block-cache.js";
import { BlockBufferPool, copyValue } from "../src/engine/lsm/block-pool.js";
import { collect } from "../src/engine/lsm/cursor.js";
import { encodeKey } from "../src/engine/lsm/keycodec.js";
import { buildSst, SstReader } from "../src/engine/lsm/sst.js";
import { compareEntries, type Entry, EntryKind, NEEDS_IO } from "../src/engine/lsm/types.js";
import { isTwillError } from "../src/errors.js";
import { openStorage } from "../src/storage/open.js";
import type { Storage } from "../src/storage/types.js";

const text = new TextEncoder();

/** One version per key, values long enough that a block of 256 bytes holds only a few. */
function rows(n: number): Entry[] {
  return Array.from(
    { length: n },
    (_, i): Entry => ({
      key: encodeKey([3, i]),
      lsn: i + 1,
      kind: EntryKind.Put,
      value: text.encode(`value ${i} ${"v".repeat(40 + (i % 7))}`),
    }),
  ).sort(compareEntries);
}

/** memory:// offers readIntoSync, so point reads take the synchronous, pooled load. */
async function sstOn(
  entries: Entry[],
  cacheBytes: number,
): Promise<{
  storage: Storage;
  bytes: Uint8Array;
  cache: BlockCache;
  reader: SstReader;
}> {
  const storage = await openStorage("memory://");
  const bytes = buildSst(entries, { blockBytesTarget: 256 });
  await storage.write("sst/p.sst", bytes);
  const cache = new BlockCache(cacheBytes);
  const reader = await SstReader.open(storage, "sst/p.sst", cache, { sizeBytes: bytes.length });
  return { storage, bytes, cache, reader };
}

describe("pooled block buffers", () => {
  it("hands out buffers by 256-byte class and reuses given ones", () => {
    const pool = new BlockBufferPool(4096);
    const a = pool.take(300);
    expect(a.byteLength).toBe(512);
    pool.give(a);
    expect(pool.take(400)).toBe(a);
    expect(pool.take(400)).not.toBe(a);
    expect(pool.reused).toBe(1);
    // Bounded: beyond freeBytesMax, given buffers are left to the GC.
    for (let i = 0; i < 20; i++) pool.give(new Uint8Array(512));
    let recycled = 0;
    for (let i = 0; i < 20; i++)
      if (pool.take(512).byteLength === 512 && pool.reused > 1 + recycled) recycled++;
    expect(recycled).toBe(8);
  });

  it("copies values out so that they share no memory with the block", () => {
    const block = new Uint8Array(5000).map((_, i) => i & 0xff);
    const small = copyValue(block, 10, 20);
    const large = copyValue(block, 100, 2000);
    block.fill(0);
    expect([...small]).toEqual(Array.from({ length: 20 }, (_, i) => (10 + i) & 0xff));
    expect(large[0]).toBe(100);
    expect(large.length).toBe(2000);
  });

  it("verifies a block read synchronously before caching it: corruption every time, never cached", async () => {
    const entries = rows(60);
    const { storage, bytes, cache, reader } = await sstOn(entries, 1 << 20);
    // Damage one byte inside the data blocks (not the first block), behind the reader's back.
    const damaged = bytes.slice();
    damaged[700] = damaged[700]! ^ 0x10;
    await storage.write("sst/p.sst", damaged);
    let corrupt = 0;
    for (const e of entries) {
      for (let attempt = 0; attempt < 2; attempt++) {
        const before = cache.stats().entries;
        const got = await reader.get(e.key, e.lsn).then(
          (value) => ({ value }),
          (error: unknown) => ({ error }),
        );
        if ("error" in got) {
          expect(isTwillError(got.error, "CORRUPTION"), String(got.error)).toBe(true);
          expect(String(got.error)).toContain("sst/p.sst");
          expect(cache.stats().entries).toBe(before);
          corrupt++;
        } else {
          expect(got.value).toEqual(e);
        }
      }
    }
    // Both attempts at every key of the damaged block failed: a bad block is not remembered as good.
    expect(corrupt).toBeGreaterThanOrEqual(2);
    expect(corrupt % 2).toBe(0);
    await storage.close();
  });

  it("keeps returned values intact after their block is evicted and its buffer reused", async () => {
    const entries = rows(400);
    // Room for about three blocks: every few gets evict one and the next miss refills its buffer.
    const { storage, cache, reader } = await sstOn(entries, 3 * 1024);
    const kept = [];
    for (let i = 0; i < entries.length; i += 13)
      kept.push({ got: await reader.get(entries[i]!.key, 1e9), want: entries[i]! });
    for (const e of entries) await reader.get(e.key, 1e9);
    expect(cache.buffers.reused).toBeGreaterThan(50);
    for (const { got, want } of kept) expect(got).toEqual(want);
    await storage.close();
  });

  it("never lets a scan read a block whose buffer the cache gave to another block", async () => {
    const entries = rows(400);
    const { storage, cache, reader } = await sstOn(entries, 3 * 1024);
    for (const reverse of [false, true]) {
      const cursor = reader.iterate({ readaheadBlocks: 2, reverse });
      const seen: Entry[] = [];
      let n = 0;
      for await (const e of cursor) {
        seen.push(e);
        // Point reads of keys far away churn the cache between every step of the scan.
        const other = entries[(n * 97 + 200) % entries.length]!;
        expect(await reader.get(other.key, 1e9)).toEqual(other);
        n++;
      }
      expect(seen).toEqual(reverse ? [...entries].reverse() : entries);
    }
    expect(cache.buffers.reused).toBeGreaterThan(50);
    expect(await collect(reader.iterate())).toEqual(entries);
    await storage.close();
  });

  it("does not decode a fetched block the cache dropped before the scan reached it", async () => {
    const entries = rows(400);
    const { storage, cache, reader } = await sstOn(entries, 1 << 20);
    const cursor = reader.iterate();
    expect(cursor.nextSync()).toBe(NEEDS_IO);
    // A point read loads block 0 into a pooled buffer; the scan's fetch then finds it in the cache.
    expect(await reader.get(entries[0]!.key, 1e9)).toEqual(entries[0]);
    await cursor.fill();
    // Dropping it gives the buffer back, and the next miss fills it with another block.
    cache.clear();
    const last = entries[entries.length - 1]!;
    expect(await reader.get(last.key, 1e9)).toEqual(last);
    expect(cache.buffers.reused).toBe(1);
    const seen: Entry[] = [];
    for (;;) {
      const e = cursor.nextSync();
      if (e === undefined) break;
      if (e === NEEDS_IO) await cursor.fill();
      else seen.push(e);
    }
    expect(seen).toEqual(entries);
    await storage.close();
  });

  // Last: the hand-off is process-wide, and the tests above count reuses exactly.
  it("hands a cleared cache's buffers to the next cache's misses, whose reads stay exact", async () => {
    const entries = rows(200);
    const first = await sstOn(entries, 1 << 20);
    for (const e of entries) expect((await first.reader.get(e.key, e.lsn))?.value).toEqual(e.value);
    const loaded = first.cache.stats().entries;
    expect(loaded).toBeGreaterThan(10);
    first.cache.clear();
    // Another database opened in the same process: its misses fill the closed cache's buffers.
    const second = await sstOn(entries, 1 << 20);
    for (const e of [...entries].reverse())
      expect((await second.reader.get(e.key, e.lsn))?.value).toEqual(e.value);
    expect(second.cache.buffers.adopted).toBeGreaterThan(loaded / 2);
    // The first cache still reads right after the clear (it allocates again, or adopts what is left).
    for (const e of entries) expect((await first.reader.get(e.key, e.lsn))?.value).toEqual(e.value);
  });
});
