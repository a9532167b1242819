import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ArrayCursor, AsyncCursor, ConcatCursor, collect } from "../src/engine/lsm/cursor.js";
import { compactEntries, mergeIterators, visibleEntries } from "../src/engine/lsm/merge.js";
import { compareEntries, type Entry, EntryKind, NEEDS_IO, type NeedsIo } from "../src/engine/lsm/types.js";
import { isTwillError } from "../src/errors.js";

const text = new TextEncoder();

function entry(key: number, lsn: number, kind: EntryKind = EntryKind.Put, value = `v${key}.${lsn}`): Entry {
  return {
    key: new Uint8Array([key]),
    lsn,
    kind,
    value: kind === EntryKind.Put ? text.encode(value) : new Uint8Array(),
  };
}

/** A cursor over an array that needs "I/O" before every `every`-th entry, counting fills. */
class FlakyCursor extends AsyncCursor<Entry> {
  private pos = 0;
  private ready = false;
  fills = 0;

  constructor(
    private readonly items: Entry[],
    private readonly every: number,
  ) {
    super();
  }

  nextSync(): Entry | undefined | NeedsIo {
    if (this.pos >= this.items.length) return undefined;
    if (this.pos % this.every === 0 && !this.ready) return NEEDS_IO;
    this.ready = false;
    return this.items[this.pos++];
  }

  async fill(): Promise<void> {
    this.fills++;
    await new Promise((resolve) => setImmediate(resolve));
    this.ready = true;
  }
}

async function* asyncOf(items: Entry[]): AsyncIterable<Entry> {
  for (const item of items) {
    await Promise.resolve();
    yield item;
  }
}

const entriesArb = fc
  .array(fc.tuple(fc.integer({ min: 0, max: 12 }), fc.integer({ min: 1, max: 40 }), fc.boolean()), {
    maxLength: 120,
  })
  .map((raw) => {
    const byId = new Map<string, Entry>();
    for (const [key, lsn, isDelete] of raw)
      byId.set(`${key}@${lsn}`, entry(key, lsn, isDelete ? EntryKind.Delete : EntryKind.Put));
    return [...byId.values()].sort(compareEntries);
  });

/** The model's view at a snapshot: per key the newest version <= snapshot, if a Put. */
function visibleModel(all: Entry[], snapshot: number): Entry[] {
  const out: Entry[] = [];
  let lastKey: number | undefined;
  for (const e of all) {
    if (e.lsn > snapshot || e.key[0] === lastKey) continue;
    lastKey = e.key[0];
    if (e.kind === EntryKind.Put) out.push(e);
  }
  return out;
}

describe("mergeIterators", () => {
  it("merges sources of every kind into internal order, first-listed source winning duplicates", async () => {
    await fc.assert(
      fc.asyncProperty(
        entriesArb,
        fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 120, maxLength: 120 }),
        fc.boolean(),
        async (all, assignment, reverse) => {
          // Spread entries over 4 sources; some also go to a later source with a different value (a stale copy).
          const parts: Entry[][] = [[], [], [], []];
          all.forEach((e, i) => {
            const s = assignment[i]!;
            parts[s]!.push(e);
            if (i % 4 === 0 && s < 3) parts[s + 1]!.push({ ...e, value: text.encode("stale") });
          });
          for (const p of parts) p.sort(compareEntries);
          const ordered = (p: Entry[]) => (reverse ? [...p].reverse() : p);
          const sources = [
            ordered(parts[0]!),
            asyncOf(ordered(parts[1]!)),
            new FlakyCursor(ordered(parts[2]!), 3),
            new FlakyCursor(ordered(parts[3]!), 1),
          ];
          const merged = await collect(mergeIterators(sources, { reverse }));
          expect(merged).toEqual(ordered(all));
        },
      ),
      { numRuns: 300 },
    );
  });

  it("stays synchronous over in-memory sources and fills waiting sources together", async () => {
    const a = [entry(1, 1), entry(3, 1)];
    const b = [entry(2, 1), entry(4, 1)];
    const sync = mergeIterators([a, b]);
    const out: Entry[] = [];
    for (let e = sync.nextSync(); e !== undefined; e = sync.nextSync()) {
      expect(e).not.toBe(NEEDS_IO);
      out.push(e as Entry);
    }
    expect(out.map((e) => e.key[0])).toEqual([1, 2, 3, 4]);

    const x = new FlakyCursor(a, 100);
    const y = new FlakyCursor(b, 100);
    const m = mergeIterators([x, y]);
    expect(m.nextSync()).toBe(NEEDS_IO);
    await m.fill();
    expect([x.fills, y.fills]).toEqual([1, 1]);
    expect((m.nextSync() as Entry).key[0]).toBe(1);
  });

  it("works with for await and stops early on break", async () => {
    const keys: number[] = [];
    for await (const e of mergeIterators([[entry(1, 1), entry(2, 1), entry(3, 1)]])) {
      keys.push(e.key[0]!);
      if (keys.length === 2) break;
    }
    expect(keys).toEqual([1, 2]);
  });
});

describe("ConcatCursor", () => {
  it("runs sources one after the other, opening each only when reached", async () => {
    const opened: number[] = [];
    const concat = new ConcatCursor<Entry>([
      () => {
        opened.push(0);
        return new ArrayCursor([entry(1, 1), entry(2, 1)]);
      },
      async () => {
        opened.push(1);
        await new Promise((resolve) => setImmediate(resolve));
        return new FlakyCursor([entry(3, 2), entry(3, 1), entry(4, 1)], 2);
      },
      () => new ArrayCursor<Entry>([]),
      () => {
        opened.push(3);
        return new ArrayCursor([entry(5, 1)]);
      },
    ]);
    expect((concat.nextSync() as Entry).key[0]).toBe(1);
    expect(opened).toEqual([0]);
    const rest = await collect(mergeIterators([concat, [entry(3, 2, EntryKind.Put, "newer source")]]));
    expect(rest.map((e) => [e.key[0], e.lsn])).toEqual([
      [2, 1],
      [3, 2],
      [3, 1],
      [4, 1],
      [5, 1],
    ]);
    expect(opened).toEqual([0, 1, 3]);
  });

  it("surfaces a failed open and retries it on the next step", async () => {
    let attempts = 0;
    const concat = new ConcatCursor<Entry>([
      async () => {
        attempts++;
        if (attempts === 1) throw new Error("open failed");
        return new ArrayCursor([entry(1, 1)]);
      },
    ]);
    expect(concat.nextSync()).toBe(NEEDS_IO);
    await expect(concat.fill()).rejects.toThrow("open failed");
    expect(await collect(concat)).toEqual([entry(1, 1)]);
  });
});

describe("visibleEntries", () => {
  it("shows per key the newest version at the snapshot, dropping deleted keys, both directions", async () => {
    await fc.assert(
      fc.asyncProperty(entriesArb, fc.integer({ min: 0, max: 41 }), async (all, snapshot) => {
        const want = visibleModel(all, snapshot);
        expect(await collect(visibleEntries(mergeIterators([all]), snapshot))).toEqual(want);
        const reversed = [...all].reverse();
        expect(
          await collect(visibleEntries(new FlakyCursor(reversed, 2), snapshot, { reverse: true })),
        ).toEqual([...want].reverse());
      }),
      { numRuns: 500 },
    );
  });
});

describe("compactEntries", () => {
  it("preserves what every retained snapshot and every future reader sees, and drops the rest", async () => {
    await fc.assert(
      fc.asyncProperty(
        entriesArb,
        fc.uniqueArray(fc.integer({ min: 1, max: 45 }), { maxLength: 5 }).map((a) => a.sort((x, y) => x - y)),
        fc.boolean(),
        async (all, retainLsns, dropTombstones) => {
          const kept = await collect(compactEntries(new FlakyCursor(all, 3), { retainLsns, dropTombstones }));
          // Output is a subsequence of the input, in order.
          let j = 0;
          for (const e of kept) {
            while (j < all.length && all[j] !== e) j++;
            expect(j).toBeLessThan(all.length);
          }
          for (const snapshot of [...retainLsns, 1_000]) {
            expect(visibleModel(kept, snapshot)).toEqual(visibleModel(all, snapshot));
          }
          // Minimal: per key at most one version per retained snapshot plus the newest; with dropTombstones no
          // Delete is the oldest kept version of its key.
          const byKey = new Map<number, Entry[]>();
          for (const e of kept) byKey.set(e.key[0]!, [...(byKey.get(e.key[0]!) ?? []), e]);
          for (const versions of byKey.values()) {
            expect(versions.length).toBeLessThanOrEqual(retainLsns.length + 1);
            // (A Delete stays while a snapshot older than it lives: conflict checks need it.)
            const oldest = versions.at(-1)!;
            const olderSnapshot = retainLsns.length > 0 && retainLsns[0]! < oldest.lsn;
            if (dropTombstones && !olderSnapshot) expect(oldest.kind).toBe(EntryKind.Put);
          }
          // Without snapshots and with tombstones dropped, exactly the live Puts remain.
          if (retainLsns.length === 0 && dropTombstones) expect(kept).toEqual(visibleModel(all, 1_000));
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("keeps a Delete that hides an older version a snapshot still needs", async () => {
    const input = [entry(1, 9), entry(1, 7, EntryKind.Delete), entry(1, 3)];
    const kept = await collect(compactEntries(input, { retainLsns: [4, 8], dropTombstones: true }));
    expect(kept.map((e) => e.lsn)).toEqual([9, 7, 3]);
    const none = await collect(compactEntries(input, { retainLsns: [], dropTombstones: true }));
    expect(none.map((e) => e.lsn)).toEqual([9]);
    const top = await collect(
      compactEntries([entry(1, 9, EntryKind.Delete), entry(1, 3)], { retainLsns: [], dropTombstones: true }),
    );
    expect(top).toEqual([]);
    const upper = await collect(
      compactEntries([entry(1, 9, EntryKind.Delete), entry(1, 3)], { retainLsns: [], dropTombstones: false }),
    );
    expect(upper.map((e) => [e.lsn, e.kind])).toEqual([[9, EntryKind.Delete]]);
  });

  it("refuses input out of internal order and unsorted snapshot lists", async () => {
    const bad = [entry(2, 1), entry(1, 1)];
    let error: unknown;
    try {
      await collect(compactEntries(bad, { retainLsns: [], dropTombstones: false }));
    } catch (e) {
      error = e;
    }
    expect(isTwillError(error, "INTERNAL")).toBe(true);
    expect(() => compactEntries([], { retainLsns: [5, 3], dropTombstones: false })).toThrow();
  });
});
