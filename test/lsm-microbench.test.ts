/**
 * Not a timed test: prints how fast the LSM pieces run on this machine, so regressions show up in the log.
 * The point-read target is SQLite's point get through better-sqlite3 (around 1–2 µs on this class of machine).
 */

import { describe, expect, it } from "vitest";
import { BlockCache } from "../src/engine/lsm/block-cache.js";
import type { Cursor } from "../src/engine/lsm/cursor.js";
import { encodeKey } from "../src/engine/lsm/keycodec.js";
import { Memtable } from "../src/engine/lsm/memtable.js";
import { mergeIterators, visibleEntries } from "../src/engine/lsm/merge.js";
import { SstReader, SstWriter } from "../src/engine/lsm/sst.js";
import { type Entry, EntryKind, NEEDS_IO, lsnMax } from "../src/engine/lsm/types.js";
import { notFound } from "../src/errors.js";
import type { ByteRange, ObjectStore } from "../src/storage/types.js";

class TestStore implements ObjectStore {
  readonly objects = new Map<string, Uint8Array>();
  async read(key: string, range?: ByteRange): Promise<Uint8Array> {
    const bytes = this.objects.get(key);
    if (bytes === undefined) throw notFound(key);
    const offset = range?.offset ?? 0;
    return bytes.slice(offset, range?.length === undefined ? bytes.length : offset + range.length);
  }
  async size(key: string): Promise<number> {
    const bytes = this.objects.get(key);
    if (bytes === undefined) throw notFound(key);
    return bytes.length;
  }
  async write(key: string, bytes: Uint8Array): Promise<void> {
    this.objects.set(key, bytes);
  }
  async writeIfAbsent(key: string, bytes: Uint8Array): Promise<boolean> {
    if (this.objects.has(key)) return false;
    this.objects.set(key, bytes);
    return true;
  }
  async *list(): AsyncIterable<string> {}
  async delete(key: string): Promise<void> {
    this.objects.delete(key);
  }
}

function time<T>(run: () => T): [T, number] {
  const t0 = performance.now();
  const result = run();
  return [result, performance.now() - t0];
}

function drainSync(cursor: Cursor<Entry>): number {
  let n = 0;
  for (;;) {
    const e = cursor.nextSync();
    if (e === undefined) return n;
    if (e === NEEDS_IO) throw new Error("unexpected I/O");
    n++;
  }
}

const N = 1_000_000;

describe("LSM micro-benchmarks (printed, not asserted)", () => {
  it("builds, opens and reads a 1M-entry SST; fills and reads a 1M-entry memtable", async () => {
    const lines: string[] = [];
    const report = (what: string, ms: number, ops: number) =>
      lines.push(`${what.padEnd(52)} ${ms.toFixed(0).padStart(6)} ms  ${((ms * 1000) / ops).toFixed(3).padStart(8)} µs/op`);

    const value = new Uint8Array(16).fill(7);
    const [entries, genMs] = time(() => {
      const out: Entry[] = new Array(N);
      for (let i = 0; i < N; i++) out[i] = { key: encodeKey([1, i]), lsn: i + 1, kind: EntryKind.Put, value };
      return out;
    });
    report("encodeKey([1, i]) + Entry objects", genMs, N);

    const [bytes, buildMs] = time(() => {
      const w = new SstWriter();
      for (const e of entries) w.add(e);
      return w.finish();
    });
    report(`SstWriter: 1M entries -> ${(bytes.length / 1048576).toFixed(1)} MiB`, buildMs, N);

    const store = new TestStore();
    await store.write("sst/bench.sst", bytes);
    const cache = new BlockCache(256 * 1024 * 1024);
    const t0 = performance.now();
    const reader = await SstReader.open(store, "sst/bench.sst", cache, { sizeBytes: bytes.length });
    report(`SstReader.open (${reader.blockCount} blocks, meta ${(reader.metaBytes / 1024).toFixed(0)} KiB)`, performance.now() - t0, 1);

    // Warm every block through the async path.
    const [, warmMs] = [undefined, await (async () => {
      const t = performance.now();
      for (let i = 0; i < N; i += 500) await reader.get(entries[i]!.key, lsnMax - 1);
      return performance.now() - t;
    })()];
    report("get (cold, one block load each)", warmMs, N / 500);

    const hotKeys = entries.slice(5000, 5016).map((e) => e.key);
    let found = 0;
    for (let round = 0; round < 3; round++) {
      const [, hotMs] = time(() => {
        for (let i = 0; i < N; i++) if (reader.getCached(hotKeys[i & 15]!, lsnMax - 1) !== undefined) found++;
      });
      if (round === 2) report("getCached, hot block (16 keys)", hotMs, N);
    }
    const probes = Array.from({ length: 4096 }, (_, i) => entries[(i * 104_729) % N]!.key);
    let randomMs = 0;
    for (let round = 0; round < 3; round++) {
      [, randomMs] = time(() => {
        for (let i = 0; i < N; i++) if (reader.getCached(probes[i & 4095]!, lsnMax - 1) !== undefined) found++;
      });
    }
    report("getCached, random keys over all cached blocks", randomMs, N);
    const missKey = encodeKey([1, N + 5]);
    const [, missMs] = time(() => {
      for (let i = 0; i < N; i++) if (reader.getCached(missKey, lsnMax - 1) !== undefined) found++;
    });
    report("getCached, absent key (range check)", missMs, N);
    const bloomMiss = encodeKey([1, 5000.5]);
    const [, bloomMs] = time(() => {
      for (let i = 0; i < N; i++) if (reader.getCached(bloomMiss, lsnMax - 1) !== undefined) found++;
    });
    report("getCached, absent key inside the range (bloom)", bloomMs, N);
    expect(found).toBeGreaterThan(0);

    const [scanned, scanMs] = time(() => drainSync(reader.iterate()));
    report("SST scan, cursor.nextSync (cached)", scanMs, scanned);
    const t1 = performance.now();
    let viaAwait = 0;
    for await (const _ of reader.iterate()) viaAwait++;
    report("SST scan, for await", performance.now() - t1, viaAwait);
    expect([scanned, viaAwait]).toEqual([N, N]);

    const memtable = new Memtable();
    const order = Array.from({ length: N }, (_, i) => (i * 7_919) % N);
    const [, insertMs] = time(() => {
      for (const i of order) memtable.put(entries[i]!);
    });
    report("Memtable.put, 1M in scattered order", insertMs, N);
    const [, mgetMs] = time(() => {
      for (let i = 0; i < N; i++) if (memtable.get(probes[i & 4095]!, lsnMax - 1) !== undefined) found++;
    });
    report("Memtable.get, 1M entries", mgetMs, N);
    const [mscan, mscanMs] = time(() => drainSync(memtable.iterate()));
    report("Memtable scan", mscanMs, mscan);

    const [visible, mergeMs] = time(() =>
      drainSync(visibleEntries(mergeIterators([memtable.iterate(), reader.iterate()]), lsnMax - 1)),
    );
    report("merge(memtable, SST) + visibleEntries, 2M versions", mergeMs, 2 * N);
    expect(visible).toBe(N);

    console.log(`\nLSM micro-benchmarks (${process.version}, ${process.arch})\n${lines.join("\n")}`);
  });
});
