import { describe, expect, it } from "vitest";
import { BlockCache } from "../src/engine/lsm/block-cache.js";
import { collect } from "../src/engine/lsm/cursor.js";
import { encodeKey } from "../src/engine/lsm/keycodec.js";
import { buildSst, SST_FORMAT_VERSION, SstReader } from "../src/engine/lsm/sst.js";
import {
  BlockScanner,
  decodeDataBlock,
  lazyRestartsMax,
  restartFor,
  verifyAndGet,
} from "../src/engine/lsm/sst-block.js";
import { blockChecksum, decodeFooter, decodeIndex, FOOTER_BYTES } from "../src/engine/lsm/sst-format.js";
import {
  compareBytes,
  compareEntries,
  type Entry,
  EntryKind,
  LsmLimits,
  lsnMax,
} from "../src/engine/lsm/types.js";
import { isTwillError } from "../src/errors.js";
import { MapStore } from "./helpers/map-store.js";

// Structural damage under a valid checksum, as a buggy or crafted writer would leave it: every byte of every data
// block is set to other values (several, or one for the large block) and the block's checksum made right again. Whatever the reads meet, each
// one returns the undamaged SST's answer or fails with CORRUPTION naming the object and the block, never
// anything else (no crash, no other error, no wrong answer); and a damaged block that is still a valid block by
// the format's rules (an independent decoder below says so: a different value, or a different key in order) is
// read without complaint. Reads go through both load paths: private buffers, and recycled buffers filled by
// `readIntoSync` (where values leave the block as copies).

const text = new TextEncoder();

/** A MapStore that also serves `readIntoSync`, as file:// and memory:// do. */
class SyncMapStore extends MapStore {
  readIntoSync(key: string, offset: number, into: Uint8Array, length = into.length): number {
    const bytes = this.objects.get(key)!;
    const got = bytes.subarray(offset, Math.min(bytes.length, offset + length));
    into.set(got);
    return got.length;
  }
}

function sampleEntries(n: number): Entry[] {
  const out: Entry[] = [];
  let lsn = 1;
  for (let i = 0; i < n; i++) {
    const key = encodeKey([7, i * 3]);
    for (let v = 0; v < (i % 3) + 1; v++) {
      const value = text.encode(`v${i}.${v}${"x".repeat(i % 5)}`);
      out.push(
        i % 5 === 0 && v === 0
          ? { key, lsn: lsn++, kind: EntryKind.Delete, value: new Uint8Array() }
          : { key, lsn: lsn++, kind: EntryKind.Put, value },
      );
    }
  }
  return out.sort(compareEntries);
}

function modelGet(entries: Entry[], key: Uint8Array, snapshot: number): Entry | undefined {
  return entries.find((e) => compareBytes(e.key, key) === 0 && e.lsn <= snapshot);
}

interface Bounds {
  prevLastKey: Uint8Array | undefined;
  prevLastLsn: number;
  minKey: Uint8Array;
  lastKey: Uint8Array;
  lastLsn: number;
}

/** A data block as the format's rules read it: written from the format (sst-format.ts, sst-block.ts's header). */
interface ParsedBlock {
  /** Whether the block passes the checks made when it is loaded (restart offsets and restart entries). */
  loads: boolean;
  /** Restart entries (key stored whole), when it loads. */
  restartEntries: Entry[];
  /** Each restart interval's entries, or undefined where the interval breaks a rule. */
  intervals: (Entry[] | undefined)[];
}

function internalOrder(a: Uint8Array, aLsn: number, b: Uint8Array, bLsn: number): number {
  const c = compareBytes(a, b);
  return c !== 0 ? c : bLsn - aLsn;
}

function parseBlock(block: Uint8Array, bounds: Bounds): ParsedBlock {
  const broken: ParsedBlock = { loads: false, restartEntries: [], intervals: [] };
  const n = block.length;
  if (n < 12) return broken;
  const view = new DataView(block.buffer, block.byteOffset, n);
  const count = view.getUint32(n - 4, true);
  const entriesEnd = n - 4 - 4 * count;
  if (count < 1 || entriesEnd < 1) return broken;
  const starts = Array.from({ length: count }, (_, r) => view.getUint32(entriesEnd + 4 * r, true));
  if (starts[0] !== 0) return broken;
  for (let r = 1; r < count; r++) if (starts[r]! <= starts[r - 1]! || starts[r]! >= entriesEnd) return broken;
  const endOf = (r: number) => (r + 1 < count ? starts[r + 1]! : entriesEnd);
  /** The entry at p (key rebuilt from `prev`), or undefined if it breaks a bound; `after` is where it ends. */
  let after = 0;
  let lastShared = 0;
  const entryAt = (p: number, end: number, prev: Uint8Array): Entry | undefined => {
    const varint = (): number | undefined => {
      let v = 0;
      let scale = 1;
      for (let i = 0; i < 8; i++) {
        if (p >= end) return undefined;
        const b = block[p++]!;
        v += (b & 0x7f) * scale;
        if (b < 0x80) return v;
        scale *= 128;
      }
      return undefined;
    };
    const shared = varint();
    const unshared = varint();
    const tag = varint();
    const lsn = varint();
    if (shared === undefined || unshared === undefined || tag === undefined || lsn === undefined)
      return undefined;
    if (shared > prev.length || shared + unshared > LsmLimits.keyBytesMax) return undefined;
    const valueLength = tag === 0 ? 0 : tag - 1;
    if (p + unshared + valueLength > end || !Number.isSafeInteger(lsn) || lsn < 1) return undefined;
    const key = new Uint8Array(shared + unshared);
    key.set(prev.subarray(0, shared));
    key.set(block.subarray(p, p + unshared), shared);
    after = p + unshared + valueLength;
    lastShared = shared;
    const value = block.slice(p + unshared, after);
    return { key, lsn, kind: tag === 0 ? EntryKind.Delete : EntryKind.Put, value };
  };
  const restartEntries: Entry[] = [];
  for (let r = 0; r < count; r++) {
    if (block[starts[r]!] !== 0) return broken; // a restart's shared count is the one byte 0
    const e = entryAt(starts[r]!, endOf(r), new Uint8Array());
    if (e === undefined) return broken;
    const prev = restartEntries[r - 1];
    if (prev !== undefined && internalOrder(e.key, e.lsn, prev.key, prev.lsn) <= 0) return broken;
    if (internalOrder(e.key, e.lsn, bounds.lastKey, bounds.lastLsn) > 0) return broken;
    restartEntries.push(e);
  }
  const first = restartEntries[0]!;
  if (bounds.prevLastKey === undefined) {
    if (compareBytes(first.key, bounds.minKey) !== 0) return broken;
  } else if (internalOrder(first.key, first.lsn, bounds.prevLastKey, bounds.prevLastLsn) <= 0) {
    return broken;
  }
  const intervals = restartEntries.map((_, r): Entry[] | undefined => {
    const out: Entry[] = [];
    let prev: Uint8Array = new Uint8Array();
    for (let p = starts[r]!; p < endOf(r); p = after) {
      const e = entryAt(p, endOf(r), prev);
      if (e === undefined) return undefined;
      const last = out[out.length - 1];
      if (last !== undefined) {
        if (internalOrder(e.key, e.lsn, last.key, last.lsn) <= 0) return undefined;
        let lcp = 0;
        while (lcp < e.key.length && lcp < prev.length && e.key[lcp] === prev[lcp]) lcp++;
        if (lcp !== lastShared) return undefined; // sharing not maximal
      }
      out.push(e);
      prev = e.key;
    }
    const last = out[out.length - 1]!;
    const next = restartEntries[r + 1];
    if (next !== undefined)
      return internalOrder(last.key, last.lsn, next.key, next.lsn) < 0 ? out : undefined;
    return compareBytes(last.key, bounds.lastKey) === 0 && last.lsn === bounds.lastLsn ? out : undefined;
  });
  // A block of more than lazyRestartsMax restarts has every interval checked when it is loaded.
  if (count > lazyRestartsMax && intervals.some((e) => e === undefined)) return broken;
  return { loads: true, restartEntries, intervals };
}

const CORRUPT = "corrupt";

/**
 * What a point read of (key, snapshot) sent to this block must give: a read searches the last restart interval
 * whose restart entry is below (key, snapshot) (or the first) and the next restart entry, and only once that
 * interval passed its checks.
 */
function blockGet(
  parsed: ParsedBlock,
  key: Uint8Array,
  snapshot: number,
): Entry | undefined | typeof CORRUPT {
  if (!parsed.loads) return CORRUPT;
  let r = 0;
  parsed.restartEntries.forEach((e, i) => {
    if (internalOrder(e.key, e.lsn, key, snapshot) < 0) r = i;
  });
  const interval = parsed.intervals[r];
  if (interval === undefined) return CORRUPT;
  const candidates = [...interval, ...parsed.restartEntries.slice(r + 1, r + 2)];
  return candidates.find((e) => compareBytes(e.key, key) === 0 && e.lsn <= snapshot);
}

// Small blocks of a few restart intervals each (checked interval by interval, the first time by a lookup), and one
// block of more than `lazyRestartsMax` restarts (checked whole when it is loaded).
describe.each([
  { rows: 14, blockBytesTarget: 150, restartInterval: 3, blocksMin: 4, damages: [1, 0x80, -1, -2] },
  // Every read of a refused whole-checked block throws (an error each): one damage per byte keeps this quick.
  { rows: 16, blockBytesTarget: 1 << 20, restartInterval: 1, blocksMin: 1, damages: [1] },
])(
  "data blocks damaged under a valid checksum (%o)",
  ({ rows, blockBytesTarget, restartInterval, blocksMin, damages }) => {
    const entries = sampleEntries(rows);
    const bytes = buildSst(entries, { blockBytesTarget, restartInterval });
    const footer = decodeFooter(bytes.subarray(bytes.length - FOOTER_BYTES), bytes.length, "t");
    const index = decodeIndex(
      bytes.subarray(footer.indexOffset, footer.indexOffset + footer.indexLength - 4),
      footer.indexOffset,
      "t",
    );
    const lastKeyOf = (i: number) =>
      index.keyBytes.subarray(index.keyStarts[i]!, index.keyStarts[i]! + index.keyLengths[i]!);
    const boundsOf = (i: number): Bounds => ({
      prevLastKey: i > 0 ? lastKeyOf(i - 1) : undefined,
      prevLastLsn: i > 0 ? index.lastLsns[i - 1]! : 0,
      minKey: entries[0]!.key,
      lastKey: lastKeyOf(i),
      lastLsn: index.lastLsns[i]!,
    });
    const probes = [
      ...[...new Set(entries.map((e) => Buffer.from(e.key).toString("hex")))].map(
        (h) => new Uint8Array(Buffer.from(h, "hex")),
      ),
      encodeKey([7, 4]),
      encodeKey([7, 100]),
    ];
    const snapshots = [2, 12, lsnMax - 1];

    it("has the blocks described", () => {
      expect(index.blockCount).toBeGreaterThanOrEqual(blocksMin);
      for (let i = 0; i < index.blockCount; i++) {
        const at = index.offsets[i]! + index.lengths[i]! - 8;
        const restarts = new DataView(bytes.buffer, bytes.byteOffset).getUint32(at, true);
        expect(restarts).toBeGreaterThan(restartInterval === 1 ? lazyRestartsMax : 1);
        const parsed = parseBlock(bytes.subarray(index.offsets[i]!, at + 4), boundsOf(i));
        expect(parsed.loads).toBe(true);
        expect(parsed.intervals.flatMap((e) => e ?? [])).toEqual(
          entries.filter((e) => blockOf(e.key, e.lsn) === i),
        );
      }
    });

    /** The block the index sends a read of (key, snapshot) to, as the reader's index search does. */
    function blockOf(key: Uint8Array, snapshot: number): number {
      for (let i = 0; i < index.blockCount; i++)
        if (internalOrder(lastKeyOf(i), index.lastLsns[i]!, key, snapshot) >= 0) return i;
      return -1;
    }

    it("answers each read as the format's rules say, or refuses it with CORRUPTION naming the object and block", async () => {
      const present = new Set(entries.map((e) => Buffer.from(e.key).toString("hex")));
      let refused = 0;
      let stillValid = 0;
      let cases = 0;
      for (let b = 0; b < index.blockCount; b++) {
        const offset = index.offsets[b]!;
        const length = index.lengths[b]!;
        for (let pos = offset; pos < offset + length - 4; pos++) {
          const original = bytes[pos]!;
          // A positive damage flips those bits; -1 sets the byte to 0, -2 to 0xff.
          for (const value of new Set(damages.map((d) => (d > 0 ? original ^ d : d === -1 ? 0 : 0xff)))) {
            if ((value & 0xff) === original) continue;
            cases++;
            const damaged = bytes.slice();
            damaged[pos] = value & 0xff;
            const content = damaged.subarray(offset, offset + length - 4);
            new DataView(damaged.buffer).setUint32(offset + length - 4, blockChecksum(content, offset), true);
            const parsed = parseBlock(content, boundsOf(b));
            const valid = parsed.loads && parsed.intervals.every((e) => e !== undefined);
            const sync = cases % 2 === 0;
            const store = sync ? new SyncMapStore() : new MapStore();
            await store.write("d.sst", damaged);
            const reader = await SstReader.open(store, "d.sst", new BlockCache(1 << 20));
            const what = `byte ${pos - offset} of block ${b} set to ${value & 0xff}`;
            let sawCorruption = false;
            /** Runs a read: its outcome must be one of `allowed` (CORRUPT: a CORRUPTION naming object and block). */
            const check = async (run: () => Promise<unknown> | unknown, allowed: unknown[]) => {
              try {
                const got = await run();
                if (!allowed.some((a) => a !== CORRUPT && equals(a, got)))
                  expect.fail(`${what}: got ${JSON.stringify(got)}, allowed ${JSON.stringify(allowed)}`);
              } catch (error) {
                // Plain checks, and expect only on a failure: thousands of refusals go through here.
                if (!isTwillError(error, "CORRUPTION")) expect.fail(`${what}: ${String(error)}`);
                if (!allowed.includes(CORRUPT)) expect.fail(`${what}: refused: ${String(error)}`);
                const message = (error as Error).message;
                if (!message.includes("d.sst") || !message.includes(`data block ${b}`))
                  expect.fail(`${what}: the error does not name the object and block: ${message}`);
                sawCorruption = true;
              }
            };
            const blockEntries = parsed.intervals.flatMap((e) => e ?? []);
            const scanned = [...entries.filter((e) => blockOf(e.key, e.lsn) !== b), ...blockEntries].sort(
              compareEntries,
            );
            // Point reads first, so that each interval is first checked by a lookup; then scans; then reads again.
            for (let round = 0; round < 2; round++) {
              for (const key of probes) {
                for (const snapshot of snapshots) {
                  const at = blockOf(key, snapshot);
                  const allowed: unknown[] =
                    at !== b ? [modelGet(entries, key, snapshot)] : [blockGet(parsed, key, snapshot)];
                  // The bloom filter may rule out a key the SST never held before its block is read.
                  if (!present.has(Buffer.from(key).toString("hex"))) allowed.push(undefined);
                  await check(
                    () =>
                      sync ? reader.getCached(key, snapshot, undefined, true) : reader.get(key, snapshot),
                    allowed,
                  );
                }
              }
              if (round === 0) {
                await check(() => collect(reader.iterate()), [valid ? scanned : CORRUPT]);
                await check(
                  () => collect(reader.iterate({ reverse: true })),
                  [valid ? [...scanned].reverse() : CORRUPT],
                );
              }
            }
            if (valid) stillValid++;
            else if (sawCorruption) refused++;
            else expect.fail(`${what}: a defective block was never refused`);
          }
        }
      }
      // Most damage breaks the structure and is refused; some leaves a valid block (a value byte, a key byte that
      // keeps the order), read as what it now says.
      expect(refused).toBeGreaterThan(cases / 3);
      expect(stillValid).toBeGreaterThan(0);
    });
  },
);

/** Equality of two read results (an Entry, undefined, or an array of entries), without expect's overhead. */
function equals(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((x, i) => equals(x, b[i]));
  }
  if (a === undefined || b === undefined) return a === b;
  const x = a as Entry;
  const y = b as Entry;
  return (
    x.lsn === y.lsn &&
    x.kind === y.kind &&
    compareBytes(x.key, y.key) === 0 &&
    compareBytes(x.value, y.value) === 0
  );
}

describe("restart entries as the search reads them", () => {
  // The restart search reads a restart entry's shared count as the single byte 0 the writer puts there. A varint
  // that spells 0 in two bytes (0x80 0x00) is a valid varint but would shift every field the search reads: the
  // load checks refuse it, as they refuse any restart entry that shares bytes.
  const key0 = encodeKey([7, 1]);
  const key1 = encodeKey([7, 2]);
  const value = text.encode("value");
  function block(sharedOfSecond: number[]): Uint8Array {
    const entry = (shared: number[], key: Uint8Array, lsn: number) => [
      ...shared,
      key.length,
      value.length + 1,
      lsn,
      ...key,
      ...value,
    ];
    const first = entry([0], key0, 5);
    const second = entry(sharedOfSecond, key1, 4);
    const content = [...first, ...second, first.length, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0];
    const bytes = new Uint8Array(content.length + 4);
    bytes.set(content);
    // Restart offsets and count little-endian: [0, first.length], 2.
    const view = new DataView(bytes.buffer);
    view.setUint32(first.length + second.length, 0, true);
    view.setUint32(first.length + second.length + 4, first.length, true);
    view.setUint32(first.length + second.length + 8, 2, true);
    view.setUint32(content.length, blockChecksum(bytes.subarray(0, content.length), 0), true);
    return bytes;
  }
  const bounds = { prevLastKey: undefined, prevLastLsn: 0, minKey: key0, lastKey: key1, lastLsn: 4 };
  const decode = (bytes: Uint8Array) =>
    decodeDataBlock(bytes, bytes.length, 0, bounds, new BlockScanner(), "r.sst", 0, SST_FORMAT_VERSION);

  it("reads a well-formed block", () => {
    const b = decode(block([0]));
    expect(b.restartCount).toBe(2);
    // (key1, 4) is the first entry at or above (key1, 10): the search ends in interval 0 and answers with the
    // restart entry after it; at snapshot 3 it starts in interval 1 and finds no version.
    const r = restartFor(b, key1, 10);
    expect(r).toBe(0);
    expect(verifyAndGet(b, r, key1, 10, key1, 4, new BlockScanner(), "r.sst", 0, 0)?.lsn).toBe(4);
    expect(restartFor(b, key1, 3)).toBe(1);
    expect(verifyAndGet(b, 1, key1, 3, key1, 4, new BlockScanner(), "r.sst", 0, 0)).toBeUndefined();
  });

  it("refuses a restart entry whose shared count of 0 takes two bytes", () => {
    let error: unknown;
    try {
      decode(block([0x80, 0x00]));
    } catch (e) {
      error = e;
    }
    expect(isTwillError(error, "CORRUPTION"), String(error)).toBe(true);
    expect((error as Error).message).toContain("r.sst");
    expect((error as Error).message).toContain("data block 0");
  });
});
