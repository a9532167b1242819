import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { keyString, Memtable } from "../src/engine/lsm/memtable.js";
import { compareEntries, type Entry, EntryKind, lsnMax } from "../src/engine/lsm/types.js";
import { isTwillError } from "../src/errors.js";

function entry(key: number[], lsn: number, kind: EntryKind = EntryKind.Put, value = `v${lsn}`): Entry {
  return {
    key: new Uint8Array(key),
    lsn,
    kind,
    value: kind === EntryKind.Put ? new TextEncoder().encode(value) : new Uint8Array(),
  };
}

/** Keys from a small alphabet so that keys share prefixes and carry several versions. */
const keyArb = fc.array(fc.constantFrom(0, 1, 2, 0xff), { maxLength: 3 });
const entriesArb = fc
  .array(fc.tuple(keyArb, fc.integer({ min: 1, max: 60 }), fc.boolean()), { maxLength: 300 })
  .map((raw) => {
    // Unique (key, lsn): the last one given wins, as in the memtable.
    const byId = new Map<string, Entry>();
    for (const [key, lsn, isDelete] of raw) {
      byId.set(`${key.join(",")}@${lsn}`, entry(key, lsn, isDelete ? EntryKind.Delete : EntryKind.Put));
    }
    return {
      inserted: raw.map(([key, lsn, isDelete]) =>
        entry(key, lsn, isDelete ? EntryKind.Delete : EntryKind.Put),
      ),
      model: [...byId.values()].sort(compareEntries),
    };
  });

function inRange(e: Entry, start: Uint8Array | undefined, end: Uint8Array | undefined): boolean {
  return (
    (start === undefined || Buffer.compare(e.key, start) >= 0) &&
    (end === undefined || Buffer.compare(e.key, end) < 0)
  );
}

describe("Memtable", () => {
  it("gets the newest version at or below a snapshot and iterates ranges like the model", () => {
    fc.assert(
      fc.property(
        entriesArb,
        fc.array(fc.tuple(keyArb, fc.integer({ min: 0, max: 61 })), { maxLength: 30 }),
        fc.option(keyArb, { nil: undefined }),
        fc.option(keyArb, { nil: undefined }),
        fc.constantFrom(2, 3, 8, 512),
        fc.constantFrom(1, 3, 7, 512),
        ({ inserted, model }, probes, lo, hi, chunkEntriesMax, unsortedKeysMax) => {
          const m = new Memtable({ chunkEntriesMax, unsortedKeysMax });
          for (const e of inserted) m.put(e);
          expect(m.entryCount).toBe(model.length);
          for (const [key, snapshot] of probes) {
            const k = new Uint8Array(key);
            const want = model.find((e) => Buffer.compare(e.key, k) === 0 && e.lsn <= snapshot);
            expect(m.get(k, snapshot)).toEqual(want);
          }
          const start = lo && new Uint8Array(lo);
          const end = hi && new Uint8Array(hi);
          const want = model.filter((e) => inRange(e, start, end));
          expect([...m.iterate({ start, end })]).toEqual(want);
          expect([...m.iterate({ start, end, reverse: true })]).toEqual([...want].reverse());
        },
      ),
      { numRuns: 500 },
    );
  });

  it("keeps iterating correctly while entries are inserted between steps", () => {
    fc.assert(
      fc.property(
        entriesArb,
        entriesArb,
        fc.boolean(),
        fc.option(keyArb, { nil: undefined }),
        fc.option(keyArb, { nil: undefined }),
        fc.constantFrom(2, 3, 8, 512),
        fc.constantFrom(1, 3, 7, 512),
        ({ model: before }, { inserted: during }, reverse, lo, hi, chunkEntriesMax, unsortedKeysMax) => {
          const m = new Memtable({ chunkEntriesMax, unsortedKeysMax });
          for (const e of before) m.put(e);
          const start = lo && new Uint8Array(lo);
          const end = hi && new Uint8Array(hi);
          const cursor = m.iterate({ start, end, reverse });
          const seen: Entry[] = [];
          let i = 0;
          for (;;) {
            // Insert a few entries (new ones, and replacements of existing (key, lsn)) before each step.
            for (let j = 0; j < 3 && i < during.length; j++) m.put(during[i++]!);
            const e = cursor.nextSync();
            if (e === undefined) break;
            seen.push(e);
          }
          for (let k = 1; k < seen.length; k++) {
            const c = compareEntries(seen[k - 1]!, seen[k]!);
            expect(reverse ? c > 0 : c < 0).toBe(true);
          }
          for (const e of seen) expect(inRange(e, start, end)).toBe(true);
          // Every (key, lsn) present at the start was visited.
          const id = (e: Entry) => `${e.key.join(",")}@${e.lsn}`;
          const seenIds = new Set(seen.map(id));
          for (const e of before) if (inRange(e, start, end)) expect(seenIds.has(id(e))).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("merges batches of new keys into the ordered index: interleaved writers, random keys, and a scan between", () => {
    // 16 writers each putting ascending keys of their own range, interleaved (bench/engine's 16-committer phase),
    // then random keys; batches of 512 (the default) and of 37, so merges split chunks at many places at once.
    for (const unsortedKeysMax of [512, 37]) {
      const m = new Memtable({ unsortedKeysMax, chunkEntriesMax: 64 });
      const model = new Map<string, Entry>();
      const put = (key: Uint8Array, lsn: number) => {
        const e: Entry = { key, lsn, kind: EntryKind.Put, value: new Uint8Array([lsn & 0xff]) };
        m.put(e);
        model.set(`${Buffer.from(key).toString("hex")}@${lsn}`, e);
      };
      let lsn = 1;
      for (let i = 0; i < 600; i++) {
        for (let w = 0; w < 16; w++) put(new Uint8Array([0x41, w, i >> 8, i & 0xff]), lsn++);
        // A scan now and then, which settles whatever is waiting.
        if (i % 97 === 0) expect(m.iterate({ start: new Uint8Array([0x41, 3]) }).nextSync()).toBeDefined();
      }
      let x = 12345;
      for (let i = 0; i < 5000; i++) {
        x = (x * 1103515245 + 12345) >>> 0;
        put(new Uint8Array([x >>> 24, (x >>> 16) & 0xff, (x >>> 8) & 0xff]), lsn++);
      }
      const want = [...model.values()].sort(compareEntries);
      expect([...m.iterate()]).toEqual(want);
      expect([...m.iterate({ reverse: true })]).toEqual([...want].reverse());
      const lo = new Uint8Array([0x41, 5]);
      const hi = new Uint8Array([0x41, 9, 1]);
      expect([...m.iterate({ start: lo, end: hi })]).toEqual(want.filter((e) => inRange(e, lo, hi)));
    }
  });

  it("makes key strings of one char per byte at every length (reused short-key arrays, long keys in pieces)", () => {
    let previous: string | undefined;
    for (let n = 0; n < 2100; n += n < 70 ? 1 : 97) {
      const bytes = new Uint8Array(n + 3);
      for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 37 + n) & 0xff;
      const key = bytes.subarray(3);
      const s = keyString(key);
      expect(s).toBe(Buffer.from(key).toString("latin1"));
      // The reused array of one length never leaks into the string of another.
      expect(s).not.toBe(previous);
      previous = s;
    }
  });

  it("replaces a version put twice and tracks sizes and LSNs", () => {
    const m = new Memtable();
    expect([m.minLsn, m.maxLsn, m.entryCount, m.approximateBytes]).toEqual([0, 0, 0, 0]);
    m.put(entry([1], 5, EntryKind.Put, "first"));
    m.put(entry([1], 5, EntryKind.Put, "second!"));
    m.put(entry([2], 3));
    m.put(entry([0], 9, EntryKind.Delete));
    expect(m.entryCount).toBe(3);
    expect(m.get(new Uint8Array([1]), lsnMax - 1)?.value).toEqual(new TextEncoder().encode("second!"));
    expect([m.minLsn, m.maxLsn]).toEqual([3, 9]);
    expect(m.approximateBytes).toBeGreaterThan(0);
    expect(m.get(new Uint8Array([0]), 9)?.kind).toBe(EntryKind.Delete);
    expect(m.get(new Uint8Array([0]), 8)).toBeUndefined();
  });

  it("refuses puts once frozen and malformed entries", () => {
    const m = new Memtable();
    expect(() => m.put(entry([1], 0))).toThrow();
    m.freeze();
    let error: unknown;
    try {
      m.put(entry([1], 1));
    } catch (e) {
      error = e;
    }
    expect(isTwillError(error, "INTERNAL")).toBe(true);
  });

  it("keeps copies, not the caller's arrays: reusing them after put changes nothing", () => {
    // A commit's write objects must be free to die once applied (they were kept, and promoted, until the flush).
    const m = new Memtable();
    const key = new Uint8Array([7, 7]);
    const value = new Uint8Array(40_000).fill(1); // above the arena's per-value limit: a chunk of its own
    const small = new Uint8Array([1, 2, 3]);
    m.put({ key, lsn: 1, kind: EntryKind.Put, value });
    m.put({ key: small, lsn: 2, kind: EntryKind.Put, value: small });
    key.fill(9);
    value.fill(2);
    small.fill(0);
    expect(m.get(new Uint8Array([7, 7]), 5)?.value).toEqual(new Uint8Array(40_000).fill(1));
    expect(m.get(new Uint8Array([9, 9]), 5)).toBeUndefined();
    expect(m.get(new Uint8Array([1, 2, 3]), 5)?.value).toEqual(new Uint8Array([1, 2, 3]));
    expect([...m.iterate()].map((e) => [...e.key])).toEqual([
      [1, 2, 3],
      [7, 7],
    ]);
  });

  it("leaves a value handed out intact when its version is replaced, and holds empty keys and values", () => {
    const m = new Memtable();
    m.put(entry([1], 5, EntryKind.Put, "first"));
    const before = m.get(new Uint8Array([1]), 5)!;
    m.put(entry([1], 5, EntryKind.Put, "again"));
    expect(new TextDecoder().decode(before.value)).toBe("first");
    expect(new TextDecoder().decode(m.get(new Uint8Array([1]), 5)!.value)).toBe("again");
    m.put({ key: new Uint8Array(), lsn: 3, kind: EntryKind.Put, value: new Uint8Array() });
    m.put({ key: new Uint8Array(), lsn: 4, kind: EntryKind.Delete, value: new Uint8Array() });
    expect([...m.iterate()].map((e) => [e.key.length, e.lsn, e.kind, e.value.length])).toEqual([
      [0, 4, EntryKind.Delete, 0],
      [0, 3, EntryKind.Put, 0],
      [1, 5, EntryKind.Put, 5],
    ]);
  });

  it("counts about what it holds: ~300 bytes a row of 200 (it counted 536 when it kept JS objects)", () => {
    const m = new Memtable();
    const value = new Uint8Array(184);
    for (let i = 0; i < 10_000; i++) {
      const key = new Uint8Array(16);
      new DataView(key.buffer).setUint32(0, Math.imul(i, 0x9e3779b1) >>> 0);
      m.put({ key, lsn: 1, kind: EntryKind.Put, value });
    }
    const perRow = m.approximateBytes / 10_000;
    expect(perRow).toBeGreaterThan(300);
    expect(perRow).toBeLessThan(340);
  });

  it("holds many entries across many chunks in order", () => {
    const m = new Memtable();
    const n = 50_000;
    // A permutation of 0..n-1 so that inserts land everywhere.
    for (let i = 0; i < n; i++) {
      const k = (i * 7919) % n;
      m.put({
        key: new Uint8Array([k >>> 16, (k >>> 8) & 0xff, k & 0xff]),
        lsn: (i % 5) + 1,
        kind: EntryKind.Put,
        value: new Uint8Array(1),
      });
    }
    expect(m.entryCount).toBe(n);
    let prev: Entry | undefined;
    let count = 0;
    for (const e of m.iterate()) {
      if (prev) expect(compareEntries(prev, e)).toBeLessThan(0);
      prev = e;
      count++;
    }
    expect(count).toBe(n);
    const from = new Uint8Array([0, 0x80, 0]);
    const first = m.iterate({ start: from }).nextSync();
    expect(first?.key).toEqual(from);
    const last = m.iterate({ end: from, reverse: true }).nextSync();
    expect(last?.key).toEqual(new Uint8Array([0, 0x7f, 0xff]));
  });
});
