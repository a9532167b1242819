/**
 * The LSM pieces together against the obvious model — a sorted array of every entry: random versions go into a
 * memtable and several SSTs (tiny blocks, so that every path through blocks, restarts and the index is taken),
 * and every read of every layer, and of their merge, must equal the model's answer.
 */

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BlockCache } from "../src/engine/lsm/block-cache.js";
import { collect } from "../src/engine/lsm/cursor.js";
import { Memtable } from "../src/engine/lsm/memtable.js";
import { compactEntries, mergeIterators, visibleEntries } from "../src/engine/lsm/merge.js";
import { buildSst, SstReader } from "../src/engine/lsm/sst.js";
import { compareEntries, type Entry, EntryKind, NEEDS_IO } from "../src/engine/lsm/types.js";
import { MapStore } from "./helpers/map-store.js";

const keyArb = fc
  .array(fc.constantFrom(0, 1, 0x61, 0x62, 0xff), { maxLength: 4 })
  .map((a) => new Uint8Array(a));
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

const entriesArb = fc
  .array(
    fc.record({
      key: keyArb,
      lsn: fc.integer({ min: 1, max: 80 }),
      isDelete: fc.boolean(),
      value: fc.uint8Array({ maxLength: 24 }),
      layer: fc.integer({ min: 0, max: 3 }),
      alsoIn: fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined, freq: 5 }),
    }),
    { maxLength: 250 },
  )
  .map((raw) => {
    const byId = new Map<string, (typeof raw)[number]>();
    for (const r of raw) byId.set(`${hex(r.key)}@${r.lsn}`, r);
    const all: Entry[] = [];
    const layers: Entry[][] = [[], [], [], []];
    for (const r of byId.values()) {
      const e: Entry = {
        key: r.key,
        lsn: r.lsn,
        kind: r.isDelete ? EntryKind.Delete : EntryKind.Put,
        value: r.isDelete ? new Uint8Array() : r.value,
      };
      all.push(e);
      layers[r.layer]!.push(e);
      // The same version in a second layer, as while a flush is running.
      if (r.alsoIn !== undefined && r.alsoIn !== r.layer) layers[r.alsoIn]!.push(e);
    }
    all.sort(compareEntries);
    for (const l of layers) l.sort(compareEntries);
    return { all, layers };
  });

function inRange(e: Entry, start?: Uint8Array, end?: Uint8Array): boolean {
  return (
    (start === undefined || Buffer.compare(e.key, start) >= 0) &&
    (end === undefined || Buffer.compare(e.key, end) < 0)
  );
}

function modelGet(entries: Entry[], key: Uint8Array, snapshot: number): Entry | undefined {
  return entries.find((e) => Buffer.compare(e.key, key) === 0 && e.lsn <= snapshot);
}

function modelVisible(entries: Entry[], snapshot: number, start?: Uint8Array, end?: Uint8Array): Entry[] {
  const out: Entry[] = [];
  let last: string | undefined;
  for (const e of entries) {
    if (e.lsn > snapshot || !inRange(e, start, end)) continue;
    const k = hex(e.key);
    if (k === last) continue;
    last = k;
    if (e.kind === EntryKind.Put) out.push(e);
  }
  return out;
}

async function buildLayers(layers: Entry[][], blockBytesTarget: number, restartInterval: number) {
  const store = new MapStore();
  // A small cache, so that blocks get evicted and fetched again during the run.
  const cache = new BlockCache(2048);
  const memtable = new Memtable({ chunkEntriesMax: 4 });
  for (const e of layers[0]!) memtable.put(e);
  const readers: SstReader[] = [];
  for (let i = 1; i < layers.length; i++) {
    if (layers[i]!.length === 0) continue;
    const key = `sst/${i}.sst`;
    await store.write(key, buildSst(layers[i]!, { blockBytesTarget, restartInterval }));
    readers.push(await SstReader.open(store, key, cache, { tailReadBytes: 64 }));
  }
  return { store, cache, memtable, readers };
}

const probeArb = fc.record({
  key: keyArb,
  snapshot: fc.integer({ min: 0, max: 81 }),
  start: fc.option(keyArb, { nil: undefined }),
  end: fc.option(keyArb, { nil: undefined }),
  reverse: fc.boolean(),
});

describe("LSM against the model", () => {
  it("memtable, SSTs and their merge answer like a sorted array of all versions", async () => {
    await fc.assert(
      fc.asyncProperty(
        entriesArb,
        fc.array(probeArb, { minLength: 1, maxLength: 6 }),
        fc.constantFrom(1, 40, 128, 600),
        fc.constantFrom(1, 2, 16),
        async ({ all, layers }, probes, blockBytesTarget, restartInterval) => {
          const { memtable, readers } = await buildLayers(layers, blockBytesTarget, restartInterval);
          const sstLayers = layers.slice(1).filter((l) => l.length > 0);
          for (const { key, snapshot, start, end, reverse } of probes) {
            expect(memtable.get(key, snapshot)).toEqual(modelGet(layers[0]!, key, snapshot));
            for (let i = 0; i < readers.length; i++) {
              const want = modelGet(sstLayers[i]!, key, snapshot);
              const cached = readers[i]!.getCached(key, snapshot);
              if (cached !== NEEDS_IO) expect(cached).toEqual(want);
              expect(await readers[i]!.get(key, snapshot)).toEqual(want);
              const after = readers[i]!.getCached(key, snapshot);
              // The tiny cache may have evicted the block again; otherwise the fast path now answers.
              if (after !== NEEDS_IO) expect(after).toEqual(want);
              const scanned = await collect(readers[i]!.iterate({ start, end, reverse }));
              const inside = sstLayers[i]!.filter((e) => inRange(e, start, end));
              expect(scanned).toEqual(reverse ? inside.reverse() : inside);
            }
            const range = { start, end, reverse };
            const merged = mergeIterators(
              [memtable.iterate(range), ...readers.map((r) => r.iterate(range))],
              { reverse },
            );
            const want = modelVisible(all, snapshot, start, end);
            expect(await collect(visibleEntries(merged, snapshot, { reverse }))).toEqual(
              reverse ? want.reverse() : want,
            );
          }
        },
      ),
      { numRuns: 400 },
    );
  });

  it("compaction into one SST keeps every retained snapshot's view", async () => {
    await fc.assert(
      fc.asyncProperty(
        entriesArb,
        fc.uniqueArray(fc.integer({ min: 1, max: 80 }), { maxLength: 4 }).map((a) => a.sort((x, y) => x - y)),
        async ({ all, layers }, retainLsns) => {
          const { store, cache, memtable, readers } = await buildLayers(layers, 100, 4);
          const merged = mergeIterators([
            memtable.iterate(),
            ...readers.map((r) => r.iterate({ fillCache: false })),
          ]);
          const kept = await collect(compactEntries(merged, { retainLsns, dropTombstones: true }));
          for (const snapshot of [...retainLsns, 10_000]) {
            expect(modelVisible(kept, snapshot)).toEqual(modelVisible(all, snapshot));
          }
          if (kept.length === 0) return;
          await store.write("sst/out.sst", buildSst(kept, { blockBytesTarget: 100 }));
          const out = await SstReader.open(store, "sst/out.sst", cache);
          for (const snapshot of [...retainLsns, 10_000]) {
            expect(await collect(visibleEntries(out.iterate(), snapshot))).toEqual(
              modelVisible(all, snapshot),
            );
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
