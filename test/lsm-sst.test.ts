import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BlockCache } from "../src/engine/lsm/block-cache.js";
import { collect } from "../src/engine/lsm/cursor.js";
import { encodeKey } from "../src/engine/lsm/keycodec.js";
import { buildSst, SlabPool, SstReader, SstWriter } from "../src/engine/lsm/sst.js";
import { blockChecksum, decodeFooter, decodeIndex, FOOTER_BYTES } from "../src/engine/lsm/sst-format.js";
import { compareEntries, type Entry, EntryKind, lsnMax, NEEDS_IO } from "../src/engine/lsm/types.js";
import { isTwillError, TwillError } from "../src/errors.js";
import { crc32c } from "../src/storage/crc32c.js";
import { MapStore } from "./helpers/map-store.js";

const text = new TextEncoder();

function put(key: Uint8Array, lsn: number, value: string): Entry {
  return { key, lsn, kind: EntryKind.Put, value: text.encode(value) };
}

function del(key: Uint8Array, lsn: number): Entry {
  return { key, lsn, kind: EntryKind.Delete, value: new Uint8Array() };
}

/** Entries for keys 0..n-1 (encoded as (7, i)), each with 1..3 versions, some deletes, sorted. */
function sampleEntries(n: number): Entry[] {
  const out: Entry[] = [];
  let lsn = 1;
  for (let i = 0; i < n; i++) {
    const key = encodeKey([7, i]);
    const versions = (i % 3) + 1;
    for (let v = 0; v < versions; v++) {
      out.push(
        i % 5 === 0 && v === 0 ? del(key, lsn) : put(key, lsn, `value ${i}.${v} ${"x".repeat(i % 13)}`),
      );
      lsn++;
    }
  }
  return out.sort(compareEntries);
}

/** The model answer: newest version of key with lsn <= snapshot. */
function modelGet(entries: Entry[], key: Uint8Array, snapshot: number): Entry | undefined {
  return entries.find((e) => Buffer.compare(e.key, key) === 0 && e.lsn <= snapshot);
}

async function openSst(entries: Entry[], options: { blockBytesTarget?: number; cacheBytes?: number } = {}) {
  const store = new MapStore({ yieldPerRead: true });
  const bytes = buildSst(entries, { blockBytesTarget: options.blockBytesTarget ?? 256 });
  await store.write("sst/1.sst", bytes);
  const cache = new BlockCache(options.cacheBytes ?? 1 << 24);
  const reader = await SstReader.open(store, "sst/1.sst", cache, { sizeBytes: bytes.length });
  return { store, bytes, cache, reader };
}

async function errorOf(run: () => Promise<unknown>): Promise<unknown> {
  try {
    await run();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe("SST", () => {
  it("answers point reads at every snapshot like the model", async () => {
    const entries = sampleEntries(300);
    const { reader } = await openSst(entries);
    expect(reader.blockCount).toBeGreaterThan(10);
    const maxLsn = entries.reduce((m, e) => Math.max(m, e.lsn), 0);
    for (let i = -1; i <= 300; i++) {
      const key = encodeKey([7, i]);
      for (const snapshot of [1, 2, 3, 100, 333, maxLsn, lsnMax - 1]) {
        expect(await reader.get(key, snapshot)).toEqual(modelGet(entries, key, snapshot));
      }
    }
  });

  it("answers every key of a small universe exactly, for every restart interval and block size", async () => {
    // All byte strings over {0, 1, 2} of length <= 3 as keys: prefixes of each other, shared prefixes of every
    // length. Every string of length <= 4 is probed, so lookups land between, on and beyond every stored key.
    const universe: Uint8Array[] = [new Uint8Array()];
    for (let len = 1; len <= 4; len++) {
      const count = 3 ** len;
      for (let n = 0; n < count; n++) {
        const key = new Uint8Array(len);
        for (let i = 0, v = n; i < len; i++, v = Math.floor(v / 3)) key[len - 1 - i] = v % 3;
        universe.push(key);
      }
    }
    const stored = universe.filter((k) => k.length <= 3);
    const entries: Entry[] = [];
    stored.forEach((key, i) => {
      // 1..3 versions; lsns spread so that snapshots fall between them.
      for (let v = (i % 3) + 1; v >= 1; v--)
        entries.push(v === 2 ? del(key, v * 10 + (i % 7)) : put(key, v * 10 + (i % 7), `${i}.${v}`));
    });
    entries.sort(compareEntries);
    for (const restartInterval of [1, 2, 3, 16]) {
      for (const blockBytesTarget of [1, 50, 4096]) {
        const store = new MapStore({ yieldPerRead: true });
        await store.write("u.sst", buildSst(entries, { restartInterval, blockBytesTarget }));
        const reader = await SstReader.open(store, "u.sst", new BlockCache(1 << 20));
        for (const key of universe) {
          for (const snapshot of [5, 12, 15, 21, 25, 35, 99]) {
            expect(
              await reader.get(key, snapshot),
              `${restartInterval}/${blockBytesTarget} ${key} @${snapshot}`,
            ).toEqual(modelGet(entries, key, snapshot));
          }
        }
      }
    }
  });

  it("writes the same bytes with recycled slabs, and a recycled slab never shows in an SST written before", () => {
    // Large enough for several 1 MiB slabs.
    const big = Array.from({ length: 12_000 }, (_, i) =>
      put(encodeKey([3, i]), 5, `v${i}${"y".repeat(300)}`),
    );
    const plain = buildSst(big, { blockBytesTarget: 4096 });
    const pool = new SlabPool(8);
    const first = new SstWriter({ blockBytesTarget: 4096, slabs: pool });
    for (const e of big) first.add(e);
    const parts = first.finishParts();
    expect(parts.length).toBeGreaterThan(4);
    // What a store that copies (memory://) or has written the parts (file://) holds once writeChunks settles.
    const stored = Buffer.concat(parts);
    first.releaseSlabs();
    expect(pool.idleCount).toBeGreaterThan(1);
    expect(Buffer.compare(stored, plain)).toBe(0);
    // The next writer reuses the slabs (overwriting them): the stored copy stays what it was.
    const other = sampleEntries(3000);
    const second = new SstWriter({ blockBytesTarget: 4096, slabs: pool });
    for (const e of other) second.add(e);
    const secondBytes = second.finish();
    second.releaseSlabs();
    expect(Buffer.compare(secondBytes, buildSst(other, { blockBytesTarget: 4096 }))).toBe(0);
    expect(Buffer.compare(stored, plain)).toBe(0);
  });

  it("records its properties", async () => {
    const entries = sampleEntries(50);
    const { reader, bytes } = await openSst(entries);
    const p = reader.properties;
    expect(p.entryCount).toBe(entries.length);
    expect(p.distinctKeyCount).toBe(50);
    expect(p.deleteCount).toBe(entries.filter((e) => e.kind === EntryKind.Delete).length);
    expect(p.putCount + p.deleteCount).toBe(entries.length);
    expect(p.minKey).toEqual(encodeKey([7, 0]));
    expect(p.maxKey).toEqual(encodeKey([7, 49]));
    expect(p.minLsn).toBe(1);
    expect(p.maxLsn).toBe(Math.max(...entries.map((e) => e.lsn)));
    expect(p.blockCount).toBe(reader.blockCount);
    expect(p.formatVersion).toBe(4);
    expect(reader.sizeBytes).toBe(bytes.length);
    expect(reader.objectKey).toBe("sst/1.sst");
    expect(p.dataBytes).toBeLessThan(bytes.length);
  });

  it("opens with one read when the meta blocks fit in the tail, two otherwise, plus size() only when asked", async () => {
    const entries = sampleEntries(200);
    const bytes = buildSst(entries, { blockBytesTarget: 256 });
    const store = new MapStore({ yieldPerRead: true });
    await store.write("s", bytes);
    const cache = new BlockCache(1 << 20);
    await SstReader.open(store, "s", cache, { sizeBytes: bytes.length });
    expect([store.reads, store.sizes]).toEqual([1, 0]);
    await SstReader.open(store, "s", cache, { sizeBytes: bytes.length, tailReadBytes: FOOTER_BYTES });
    expect([store.reads, store.sizes]).toEqual([3, 0]);
    await SstReader.open(store, "s", cache);
    expect([store.reads, store.sizes]).toEqual([4, 1]);
  });

  it("keeps hot point reads synchronous: getCached answers from cached blocks or says NEEDS_IO", async () => {
    const entries = sampleEntries(200);
    const { reader, store } = await openSst(entries);
    const key = encodeKey([7, 100]);
    expect(reader.getCached(key, lsnMax - 1)).toBe(NEEDS_IO);
    // Keys the bloom filter or key range rule out need no I/O at all.
    expect(reader.getCached(encodeKey([8, 1]), lsnMax - 1)).toBeUndefined();
    expect(reader.getCached(encodeKey([6, 1]), lsnMax - 1)).toBeUndefined();
    const reads = store.reads;
    const viaIo = await reader.get(key, lsnMax - 1);
    expect(store.reads).toBe(reads + 1);
    expect(reader.getCached(key, lsnMax - 1)).toEqual(viaIo);
    expect(reader.getCached(key, lsnMax - 1)).toEqual(modelGet(entries, key, lsnMax));
    expect(store.reads).toBe(reads + 1);
  });

  it("shares one storage read between concurrent misses of a block", async () => {
    const entries = sampleEntries(200);
    const { reader, store, cache } = await openSst(entries);
    const reads = store.reads;
    const results = await Promise.all([
      reader.get(encodeKey([7, 100]), lsnMax - 1),
      reader.get(encodeKey([7, 100]), 5),
      reader.get(encodeKey([7, 100]), lsnMax - 1),
    ]);
    expect(results[0]).toEqual(modelGet(entries, encodeKey([7, 100]), lsnMax));
    expect(store.reads).toBe(reads + 1);
    expect(cache.stats().sharedLoads).toBe(2);
  });

  it("finds the visible version when a key's versions straddle blocks", async () => {
    const key = encodeKey(["hot"]);
    const entries: Entry[] = [];
    for (let lsn = 500; lsn >= 1; lsn--)
      entries.push(lsn % 7 === 0 ? del(key, lsn) : put(key, lsn, `v${lsn}`));
    entries.unshift(put(encodeKey(["a"]), 3, "a"));
    entries.push(put(encodeKey(["z"]), 2, "z"));
    const { reader } = await openSst(entries, { blockBytesTarget: 64 });
    expect(reader.blockCount).toBeGreaterThan(20);
    for (let snapshot = 0; snapshot <= 501; snapshot++) {
      expect(await reader.get(key, snapshot)).toEqual(modelGet(entries, key, snapshot));
    }
  });

  it("iterates ranges forward and backward, lazily", async () => {
    const entries = sampleEntries(300);
    const { reader, store, bytes } = await openSst(entries);
    expect(await collect(reader.iterate())).toEqual(entries);
    expect(await collect(reader.iterate({ reverse: true }))).toEqual([...entries].reverse());
    for (const [lo, hi] of [
      [0, 1],
      [5, 17],
      [100, 250],
      [299, 400],
      [-5, 3],
      [17, 17],
      [20, 10],
    ] as const) {
      const start = encodeKey([7, lo]);
      const end = encodeKey([7, hi]);
      const want = entries.filter((e) => Buffer.compare(e.key, start) >= 0 && Buffer.compare(e.key, end) < 0);
      expect(await collect(reader.iterate({ start, end }))).toEqual(want);
      expect(await collect(reader.iterate({ start, end, reverse: true }))).toEqual([...want].reverse());
    }
    // Taking the first entries of a scan fetches one or two blocks, not the SST.
    const fresh = await SstReader.open(store, "sst/1.sst", new BlockCache(1 << 20), {
      sizeBytes: bytes.length,
    });
    const before = store.reads;
    const it = fresh.iterate({ start: encodeKey([7, 150]) });
    for (let i = 0; i < 3; i++) await it.next();
    await it.return();
    expect(store.reads - before).toBeLessThanOrEqual(2);
  });

  it("reads ahead in parallel and can scan without filling the cache", async () => {
    const entries = sampleEntries(300);
    const { reader, store, cache } = await openSst(entries);
    const scan = reader.iterate({ readaheadBlocks: 4, fillCache: false });
    expect(await collect(scan)).toEqual(entries);
    expect(cache.stats().entries).toBe(0);
    expect(store.maxInFlight).toBeGreaterThan(1);
    expect(store.reads).toBe(1 + reader.blockCount);
    const reverse = reader.iterate({ readaheadBlocks: 3, reverse: true });
    expect(await collect(reverse)).toEqual([...entries].reverse());
    expect(cache.stats().entries).toBe(reader.blockCount);
  });

  it("supports for-await and stays correct while the cache evicts under it", async () => {
    const entries = sampleEntries(300);
    const { reader } = await openSst(entries, { cacheBytes: 600 });
    const seen: Entry[] = [];
    for await (const e of reader.iterate()) seen.push(e);
    expect(seen).toEqual(entries);
    for (let i = 0; i < 300; i += 7) {
      const key = encodeKey([7, i]);
      expect(await reader.get(key, 200)).toEqual(modelGet(entries, key, 200));
    }
  });

  it("refuses out-of-order, duplicate and malformed input as an internal error", () => {
    const a = encodeKey(["a"]);
    const b = encodeKey(["b"]);
    const cases: Entry[][] = [
      [put(b, 1, "x"), put(a, 1, "x")],
      [put(a, 1, "x"), put(a, 2, "x")],
      [put(a, 1, "x"), put(a, 1, "y")],
      [put(a, 0, "x")],
      [{ key: a, lsn: 1, kind: EntryKind.Delete, value: new Uint8Array([1]) }],
      [],
    ];
    for (const entries of cases) {
      let error: unknown;
      try {
        buildSst(entries);
      } catch (e) {
        error = e;
      }
      expect(isTwillError(error, "INTERNAL")).toBe(true);
    }
    const w = new SstWriter();
    w.add(put(a, 1, "x"));
    expect(w.lastKey).toEqual(a);
    w.finish();
    expect(() => w.add(put(b, 1, "x"))).toThrow(TwillError);
  });

  it("copies keys it is given, so callers may reuse their buffers", async () => {
    const w = new SstWriter({ blockBytesTarget: 64 });
    const scratch = new Uint8Array(4);
    const want: Entry[] = [];
    for (let i = 0; i < 100; i++) {
      new DataView(scratch.buffer).setUint32(0, i);
      w.add({ key: scratch, lsn: 1, kind: EntryKind.Put, value: text.encode(`v${i}`) });
      want.push({ key: scratch.slice(), lsn: 1, kind: EntryKind.Put, value: text.encode(`v${i}`) });
    }
    const store = new MapStore({ yieldPerRead: true });
    await store.write("k", w.finish());
    const reader = await SstReader.open(store, "k", new BlockCache(1 << 20));
    expect(await collect(reader.iterate())).toEqual(want);
  });

  it("handles empty keys, empty values, long keys and large values", async () => {
    const long = new Uint8Array(3000).fill(0x41);
    const longer = new Uint8Array(3001).fill(0x41);
    const big = new Uint8Array(200_000).map((_, i) => i & 0xff);
    const entries = [
      { key: new Uint8Array(), lsn: 9, kind: EntryKind.Put, value: new Uint8Array() },
      { key: new Uint8Array(), lsn: 3, kind: EntryKind.Put, value: big },
      { key: long, lsn: 5, kind: EntryKind.Delete, value: new Uint8Array() },
      { key: longer, lsn: 4, kind: EntryKind.Put, value: big },
    ] satisfies Entry[];
    const { reader } = await openSst(entries, { blockBytesTarget: 1024 });
    // Compared as hex: deep equality of 200 KB arrays element by element is slow.
    const brief = (e: Entry | undefined) =>
      e && {
        key: Buffer.from(e.key).toString("hex"),
        lsn: e.lsn,
        kind: e.kind,
        value: Buffer.from(e.value).toString("hex"),
      };
    expect((await collect(reader.iterate())).map(brief)).toEqual(entries.map(brief));
    expect(brief(await reader.get(new Uint8Array(), 5))).toEqual(brief(entries[1]));
    expect(brief(await reader.get(longer, 5))).toEqual(brief(entries[3]));
    expect(reader.properties.keyBytesMax).toBe(3001);
  });

  it.each([1, 2, 4] as const)(
    "format %i: reports every flipped bit as corruption and never answers wrongly",
    async (formatVersion) => {
      const entries = sampleEntries(12);
      const bytes = buildSst(entries, { blockBytesTarget: 96, formatVersion });
      const keys = [...new Set(entries.map((e) => Buffer.from(e.key).toString("hex")))].map(
        (h) => new Uint8Array(Buffer.from(h, "hex")),
      );
      let detected = 0;
      for (let pos = 0; pos < bytes.length; pos++) {
        const damaged = bytes.slice();
        damaged[pos] = damaged[pos]! ^ (1 << (pos % 8));
        const store = new MapStore({ yieldPerRead: true });
        await store.write("bad.sst", damaged);
        let sawCorruption = false;
        const expectCorruptionOr = async <T>(run: () => Promise<T>, check: (value: T) => void) => {
          const outcome = await run().then(
            (value) => ({ value }),
            (error: unknown) => ({ error }),
          );
          if ("error" in outcome) {
            expect(isTwillError(outcome.error, "CORRUPTION"), `byte ${pos}: ${String(outcome.error)}`).toBe(
              true,
            );
            expect((outcome.error as Error).message).toContain("bad.sst");
            sawCorruption = true;
          } else {
            check(outcome.value);
          }
        };
        let reader: SstReader | undefined;
        await expectCorruptionOr(
          () => SstReader.open(store, "bad.sst", new BlockCache(1 << 20)),
          (r) => {
            reader = r;
          },
        );
        if (reader !== undefined) {
          const r = reader;
          for (const key of keys) {
            for (const snapshot of [2, 10, lsnMax - 1]) {
              await expectCorruptionOr(
                () => r.get(key, snapshot),
                (got) => expect(got).toEqual(modelGet(entries, key, snapshot)),
              );
            }
          }
          await expectCorruptionOr(
            () => collect(r.iterate({ reverse: pos % 2 === 0 })),
            (got) => expect(got).toEqual(pos % 2 === 0 ? [...entries].reverse() : entries),
          );
        }
        if (sawCorruption) detected++;
      }
      // Every byte is under a checksum or the magic. CRC-32C (format 1) is certain to catch a single-bit error;
      // xxHash32 (format 2) and XXH64's low half (format 4) miss a given one with probability 2^-32, and these
      // inputs are fixed.
      expect(detected).toBe(bytes.length);
    },
  );

  it("reports a truncated object as corruption, with or without a trusted size", async () => {
    const bytes = buildSst(sampleEntries(40), { blockBytesTarget: 128 });
    for (let length = 0; length < bytes.length; length += length < 64 ? 1 : 7) {
      const store = new MapStore({ yieldPerRead: true });
      await store.write("t.sst", bytes.subarray(0, length));
      for (const sizeBytes of [undefined, bytes.length]) {
        const error = await errorOf(async () => {
          const reader = await SstReader.open(store, "t.sst", new BlockCache(1 << 20), { sizeBytes });
          await collect(reader.iterate());
        });
        expect(isTwillError(error, "CORRUPTION"), `length ${length}: ${String(error)}`).toBe(true);
        expect((error as Error).message).toMatch(/t\.sst/);
      }
    }
    // An object cut after open: the block read comes back short.
    const store = new MapStore({ yieldPerRead: true });
    await store.write("t.sst", bytes);
    const reader = await SstReader.open(store, "t.sst", new BlockCache(1 << 20), { sizeBytes: bytes.length });
    await store.write("t.sst", bytes.subarray(0, 100));
    const error = await errorOf(() => collect(reader.iterate()));
    expect(isTwillError(error, "CORRUPTION")).toBe(true);
    expect((error as Error).message).toMatch(/truncated/);
  });

  it("reads format 1 (CRC-32C block checksums) and 2 (xxHash32) SSTs as well as format 4 (XXH64)", async () => {
    const entries = sampleEntries(60);
    const built = new Map<number, Uint8Array>();
    for (const formatVersion of [1, 2, 4] as const) {
      const bytes = buildSst(entries, { blockBytesTarget: 128, formatVersion });
      built.set(formatVersion, bytes);
      const store = new MapStore({ yieldPerRead: true });
      await store.write("v.sst", bytes);
      const reader = await SstReader.open(store, "v.sst", new BlockCache(1 << 20));
      expect(reader.properties.formatVersion).toBe(formatVersion);
      expect(await collect(reader.iterate())).toEqual(entries);
      for (const e of entries) expect(await reader.get(e.key, e.lsn)).toEqual(e);
    }
    // The versions differ in the checksums only, so a body of one under the footer of another fails them.
    for (const [body, footer] of [
      [1, 2],
      [2, 4],
      [4, 2],
      [1, 4],
    ] as const) {
      const a = built.get(body)!;
      const b = built.get(footer)!;
      expect(a.length).toBe(b.length);
      const mixed = a.slice();
      mixed.set(b.subarray(b.length - FOOTER_BYTES), b.length - FOOTER_BYTES);
      const store = new MapStore({ yieldPerRead: true });
      await store.write("m.sst", mixed);
      const error = await errorOf(() => SstReader.open(store, "m.sst", new BlockCache(1 << 20)));
      expect(isTwillError(error, "CORRUPTION"), `${body} under ${footer}: ${String(error)}`).toBe(true);
    }
    // Version 3 (never written by a merged build) is refused by name, as any unknown version.
    const v3 = built.get(4)!.slice();
    const footerAt = v3.length - FOOTER_BYTES;
    const view = new DataView(v3.buffer);
    view.setUint32(footerAt + 20, 3, true);
    view.setUint32(footerAt + 28, crc32c(v3.subarray(footerAt, footerAt + 28)), true);
    const store = new MapStore({ yieldPerRead: true });
    await store.write("v3.sst", v3);
    const error = await errorOf(() => SstReader.open(store, "v3.sst", new BlockCache(1 << 20)));
    expect(isTwillError(error, "CORRUPTION"), String(error)).toBe(true);
    expect((error as Error).message).toMatch(/unknown format version 3/);
  });

  it("names a missing object as NOT_FOUND, not corruption", async () => {
    const error = await errorOf(() =>
      SstReader.open(new MapStore({ yieldPerRead: true }), "nope.sst", new BlockCache(100)),
    );
    expect(isTwillError(error, "NOT_FOUND")).toBe(true);
  });
});

describe("restart entries that tie on the key", () => {
  // Many versions of one key, restarts every 2 entries: the in-block search meets restart entries whose key equals
  // the target and must order them by lsn (read from the entry, since the restart table keeps no lsns).
  it("answers every snapshot of a many-versioned key like the model", async () => {
    const entries: Entry[] = [];
    let lsn = 1;
    for (const i of [1, 2, 3]) {
      const versions = i === 2 ? 40 : 3;
      for (let v = 0; v < versions; v++) entries.push(put(encodeKey([9, i]), lsn++, `v${i}.${v}`));
    }
    entries.sort(compareEntries);
    for (const blockBytesTarget of [4096, 128]) {
      const store = new MapStore();
      const bytes = buildSst(entries, { blockBytesTarget, restartInterval: 2 });
      await store.write("sst/t.sst", bytes);
      const reader = await SstReader.open(store, "sst/t.sst", new BlockCache(1 << 20), {
        sizeBytes: bytes.length,
      });
      for (const i of [1, 2, 3, 4]) {
        const key = encodeKey([9, i]);
        for (let snapshot = 0; snapshot <= lsn; snapshot++) {
          const want = modelGet(entries, key, snapshot);
          const got = await reader.get(key, snapshot);
          expect(got?.lsn, `key ${i} at ${snapshot}`).toBe(want?.lsn);
          if (want) expect(Buffer.from(got!.value).toString()).toBe(Buffer.from(want.value).toString());
          const cached = reader.getCached(key, snapshot);
          expect(cached === NEEDS_IO ? "io" : cached?.lsn).toBe(want?.lsn);
        }
      }
    }
  });
});

describe("the bloom filter probed only in front of a read (filterFirst = false)", () => {
  // The bottom level defers the filter until the block turns out not to be cached: same answers, and a key the
  // filter rules out still costs no read.
  const entries = sampleEntries(200);
  const present = [...new Set(entries.map((e) => Buffer.from(e.key).toString("hex")))].map(
    (h) => new Uint8Array(Buffer.from(h, "hex")),
  );
  // Inside the SST's key range but absent: between consecutive present keys.
  const absent = Array.from({ length: 199 }, (_, i) => encodeKey([7, i, 1]));

  it("answers like the model with and without the filter first, cached or not", async () => {
    for (const cacheBytes of [0, 1 << 24]) {
      const { reader } = await openSst(entries, { cacheBytes });
      for (const filterFirst of [true, false]) {
        for (const key of [...present, ...absent]) {
          for (const snapshot of [2, 50, lsnMax - 1]) {
            const want = modelGet(entries, key, snapshot);
            expect(await reader.get(key, snapshot, undefined, filterFirst)).toEqual(want);
            const cached = reader.getCached(key, snapshot, undefined, false, filterFirst);
            if (cached !== NEEDS_IO) expect(cached).toEqual(want);
          }
        }
      }
    }
  });

  it("reads no block for a key the filter rules out when the block is not cached", async () => {
    const { reader, store } = await openSst(entries, { cacheBytes: 0 });
    const admitted = absent.filter((k) => reader.mayContain(k)).length;
    expect(admitted).toBeLessThan(absent.length / 4);
    const before = store.reads;
    for (const key of absent) {
      expect(await reader.get(key, lsnMax - 1, undefined, false)).toBeUndefined();
      // Not cached and ruled out: answered without I/O rather than NEEDS_IO.
      if (!reader.mayContain(key))
        expect(reader.getCached(key, lsnMax - 1, undefined, false, false)).toBeUndefined();
    }
    // Nothing is cached (a 0-byte cache), so every key the filter admits costs exactly one read, and no other does.
    expect(store.reads - before).toBe(admitted);
  });
});

describe("entries checked lazily, one restart interval at a time", () => {
  // A block's checksum is checked at load, and its entries when a read first reaches their restart interval. These
  // blocks have valid checksums over defective entries (as a writer bug would leave them): no read may return a
  // defective entry, and one that reaches it must fail with CORRUPTION naming the object, every time.

  interface ParsedEntry {
    at: number;
    shared: number;
    unshared: number;
    lsnAt: number;
    keyAt: number;
    key: Uint8Array;
    restart: boolean;
  }

  /** The entries of block 0 of `bytes`, decoded here independently of the reader. */
  function parseBlock0(bytes: Uint8Array): { length: number; restarts: number[]; entries: ParsedEntry[] } {
    const footer = decodeFooter(bytes.subarray(bytes.length - FOOTER_BYTES), bytes.length, "t");
    const indexContent = bytes.subarray(footer.indexOffset, footer.indexOffset + footer.indexLength - 4);
    const length = decodeIndex(indexContent, footer.indexOffset, "t").lengths[0]!;
    const view = new DataView(bytes.buffer, bytes.byteOffset, length);
    const count = view.getUint32(length - 8, true);
    const entriesEnd = length - 8 - 4 * count;
    const restarts = Array.from({ length: count }, (_, r) => view.getUint32(entriesEnd + 4 * r, true));
    const varint = (p: number): [number, number] => {
      let v = 0;
      let scale = 1;
      for (;;) {
        const b = bytes[p++]!;
        v += (b & 0x7f) * scale;
        scale *= 128;
        if (b < 0x80) return [v, p];
      }
    };
    const entries: ParsedEntry[] = [];
    let prev = new Uint8Array();
    for (let p = 0; p < entriesEnd; ) {
      const at = p;
      const [shared, p1] = varint(p);
      const [unshared, p2] = varint(p1);
      const [tag, p3] = varint(p2);
      const [, p4] = varint(p3);
      const key = new Uint8Array(shared + unshared);
      key.set(prev.subarray(0, shared));
      key.set(bytes.subarray(p4, p4 + unshared), shared);
      entries.push({ at, shared, unshared, lsnAt: p3, keyAt: p4, key, restart: restarts.includes(at) });
      prev = key;
      p = p4 + unshared + (tag === 0 ? 0 : tag - 1);
    }
    return { length, restarts, entries };
  }

  /** A copy of `bytes` with `damage` applied to block 0 and its checksum made valid again. */
  function damagedSst(bytes: Uint8Array, damage: (copy: Uint8Array) => void, length: number): Uint8Array {
    const copy = bytes.slice();
    damage(copy);
    const sum = blockChecksum(copy.subarray(0, length - 4), 0);
    new DataView(copy.buffer).setUint32(length - 4, sum, true);
    return copy;
  }

  const entries = sampleEntries(30);
  const bytes = buildSst(entries, { blockBytesTarget: 4096, restartInterval: 4 });
  const block = parseBlock0(bytes);
  // The first entry of the second interval whose key differs from its restart entry's: a lookup of its key reads
  // that interval (and not only the restart entry it starts with).
  const victim = block.entries.find(
    (e) =>
      !e.restart &&
      e.unshared > 0 &&
      e.at > block.restarts[1]! &&
      e.at < block.restarts[2]! &&
      Buffer.compare(e.key, block.entries.find((r) => r.at === block.restarts[1])!.key) !== 0,
  )!;
  const restart2 = block.entries.find((e) => e.at === block.restarts[2])!;
  const distinctKeys = [...new Set(entries.map((e) => Buffer.from(e.key).toString("hex")))].map(
    (h) => new Uint8Array(Buffer.from(h, "hex")),
  );

  // [defect, damage, a key whose lookup reaches it, whether the block passes its load checks (and is cached)]
  const defects: [string, (copy: Uint8Array) => void, Uint8Array, boolean][] = [
    ["an lsn of 0", (c) => (c[victim.lsnAt] = 0), victim.key, true],
    ["a key out of order", (c) => (c[victim.keyAt] = 0), victim.key, true],
    ["sharing more than the previous key has", (c) => (c[victim.at] = 0x7f), victim.key, true],
    ["a restart entry that shares key bytes", (c) => (c[restart2.at] = 1), restart2.key, false],
  ];

  it("has the layout the defects below assume", () => {
    expect(block.restarts.length).toBeGreaterThan(3);
    expect(victim).toBeDefined();
    expect(bytes[victim.lsnAt]).toBeLessThan(0x80);
  });

  // A cache of one byte keeps no block: every read loads the block again, and the loads after the first find
  // bytes the reader has seen (redecodeDataBlock), which must not skip a check that failed.
  const cases = defects.flatMap(([name, damage, key, loadable]) =>
    [1 << 20, 1].map((cacheBytes) => [name, cacheBytes, damage, key, loadable && cacheBytes > 1] as const),
  );
  it.each(cases)(
    "refuses %s, on every read that reaches it (cache of %i bytes)",
    async (_, cacheBytes, damage, key, cached) => {
      const store = new MapStore();
      await store.write("lazy.sst", damagedSst(bytes, damage, block.length));
      const reader = await SstReader.open(store, "lazy.sst", new BlockCache(cacheBytes));
      const expectCorruption = (error: unknown) => {
        expect(isTwillError(error, "CORRUPTION"), String(error)).toBe(true);
        expect((error as Error).message).toContain("lazy.sst");
        expect((error as Error).message).toContain("data block 0");
      };
      // The lookup that reaches the defect fails, as does the same lookup again (from the cache when the block
      // passed its load checks), and the synchronous path: over the cached block, or NEEDS_IO when none is cached.
      for (let round = 0; round < 2; round++)
        expectCorruption(await errorOf(() => reader.get(key, lsnMax - 1)));
      if (cached) expectCorruption(await errorOf(async () => reader.getCached(key, lsnMax - 1)));
      else expect(reader.getCached(key, lsnMax - 1)).toBe(NEEDS_IO);
      // Every other lookup is answered exactly or refused: never a wrong answer.
      for (const k of distinctKeys) {
        for (const snapshot of [2, 20, lsnMax - 1]) {
          const outcome = await reader.get(k, snapshot).then(
            (value) => ({ value }),
            (error: unknown) => ({ error }),
          );
          if ("error" in outcome) expectCorruption(outcome.error);
          else expect(outcome.value).toEqual(modelGet(entries, k, snapshot));
        }
      }
      // A scan over the block checks every interval of it first.
      expectCorruption(await errorOf(() => collect(reader.iterate())));
      expectCorruption(await errorOf(() => collect(reader.iterate({ reverse: true }))));
    },
  );

  it("checks a block in full again when the object's bytes change under the reader, checksum and all", async () => {
    for (const [name, damage, key] of defects) {
      const store = new MapStore();
      await store.write("lazy.sst", bytes);
      // No block stays cached, so every read loads block 0 again.
      const reader = await SstReader.open(store, "lazy.sst", new BlockCache(1));
      for (const k of distinctKeys)
        expect(await reader.get(k, lsnMax - 1), name).toEqual(modelGet(entries, k, lsnMax - 1));
      expect(await collect(reader.iterate())).toHaveLength(entries.length);
      // The same object key now holds a defective block 0 with a valid checksum (a writer bug, or a file replaced
      // behind the engine's back): the reader knows block 0's old checksum, not this one, so it checks in full.
      await store.write("lazy.sst", damagedSst(bytes, damage, block.length));
      const error = await errorOf(() => reader.get(key, lsnMax - 1));
      expect(isTwillError(error, "CORRUPTION"), `${name}: ${String(error)}`).toBe(true);
      expect((error as Error).message).toContain("data block 0");
      expect(isTwillError(await errorOf(() => collect(reader.iterate())), "CORRUPTION"), name).toBe(true);
    }
  });

  it("still checks the checksum of a block it has seen before", async () => {
    const store = new MapStore();
    await store.write("lazy.sst", bytes);
    const reader = await SstReader.open(store, "lazy.sst", new BlockCache(1));
    expect(await reader.get(victim.key, lsnMax - 1)).toEqual(modelGet(entries, victim.key, lsnMax - 1));
    // One flipped bit in an entry, the stored checksum left as it was.
    const damaged = bytes.slice();
    damaged[victim.keyAt]! ^= 0x10;
    await store.write("lazy.sst", damaged);
    const error = await errorOf(() => reader.get(victim.key, lsnMax - 1));
    expect(isTwillError(error, "CORRUPTION"), String(error)).toBe(true);
    expect((error as Error).message).toContain("checksum mismatch");
    // And the good bytes back are read as before.
    await store.write("lazy.sst", bytes);
    expect(await reader.get(victim.key, lsnMax - 1)).toEqual(modelGet(entries, victim.key, lsnMax - 1));
  });
});

describe("point reads over keys that are prefixes of each other and differ only in zero bytes", () => {
  // The index search compares 4-byte words of the last keys first (zero-padded past a key's end) and the bytes
  // only on a tie; the in-block search skips the prefix a block's keys share. Keys from {0, 1, 255} of length
  // 0-9 make every tie, padding and prefix case, in blocks of a few entries each.
  it("answers every present and absent key like the model", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.array(fc.constantFrom(0, 1, 255), { maxLength: 9 }), {
          minLength: 1,
          maxLength: 60,
          selector: (k) => k.join(","),
        }),
        fc.array(fc.array(fc.constantFrom(0, 1, 255), { maxLength: 9 }), { maxLength: 20 }),
        fc.constantFrom(40, 96, 400),
        fc.constantFrom(1, 2, 16),
        async (rawKeys, probes, blockBytesTarget, restartInterval) => {
          const keys = rawKeys.map((k) => new Uint8Array(k));
          let lsn = 1;
          const entries = keys
            .flatMap((key, i) => Array.from({ length: (i % 2) + 1 }, () => put(key, lsn++, `v${i}.${lsn}`)))
            .sort(compareEntries);
          const store = new MapStore();
          const bytes = buildSst(entries, { blockBytesTarget, restartInterval });
          await store.write("p.sst", bytes);
          const reader = await SstReader.open(store, "p.sst", new BlockCache(1 << 20));
          for (const key of [...keys, ...probes.map((p) => new Uint8Array(p))]) {
            for (const snapshot of [1, Math.ceil(lsn / 2), lsnMax - 1]) {
              expect(await reader.get(key, snapshot)).toEqual(modelGet(entries, key, snapshot));
            }
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});
