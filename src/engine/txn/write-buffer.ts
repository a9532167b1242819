/**
 * WriteBuffer: a transaction's buffered writes, last write per key wins.
 *
 * Built for both ends of the range: a one-row commit and a bulk load of millions of rows in one transaction.
 *   - Writes are appended to a list. While every key is greater than the one before (a load in key order), the
 *     list is already sorted and free of duplicates, so commit needs no sort and no key map at all.
 *   - The key map (latin1 key string → list position) that lookups need — read-your-own-writes, the engine's
 *     check against queued commits — is built only on the first lookup, then kept up to date. Before that,
 *     duplicates may sit in the list; building the map or sorting removes them, keeping the latest.
 *   - Key and value bytes are copied into chunks that grow from 256 B to 256 KiB, so a bulk load does not create
 *     one ArrayBuffer per write (about 2 µs each in V8) and a one-row commit allocates no more than it needs.
 *     The writes reach the memtable as views into those chunks, so a chunk lives as long as the memtable
 *     holding its writes; a write larger than 64 KiB gets its own buffer.
 *
 * Invariants: `sorted()` is in strictly increasing key order with one write per key, the latest; `get`/`has`
 * see the latest write of a key; callers never see memory shared with the bytes they passed in.
 *
 * Each write is created in the shape of an LSM `Entry` (key, lsn, kind, value; write and entry kinds share their
 * numbers) with lsn 0, so that a committed transaction's writes become its memtable entries by stamping the
 * commit LSN on them (`stampEntries`) rather than by allocating a second object per row.
 */

import { compareBytes, type Entry, EntryKind } from "../lsm/types.js";
import { type Write, WriteKind } from "./commit-record.js";

/** A buffered write; its lsn is 0 until the commit stamps it. */
export interface BufferedWrite extends Write {
  lsn: number;
}

// The stamping below relies on it.
const kindsAgree: boolean = EntryKind.Put === WriteKind.Put && EntryKind.Delete === WriteKind.Delete;

/**
 * The writes of a durable commit as memtable entries: the same objects, stamped with the commit LSN. The
 * transaction is finished with them (it accepts no more writes once it commits).
 */
export function stampEntries(writes: readonly BufferedWrite[], lsn: number): Entry[] {
  if (!kindsAgree) throw new Error("write and entry kinds differ");
  for (let i = 0; i < writes.length; i++) writes[i]!.lsn = lsn;
  return writes as readonly Entry[] as Entry[];
}

const EMPTY = new Uint8Array(0);
const chunkBytesFirst = 256;
const chunkBytesMax = 256 * 1024;
const ownBufferBytes = 64 * 1024;

function keyString(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString("latin1");
}

function byKey(a: BufferedWrite, b: BufferedWrite): number {
  return compareBytes(a.key, b.key);
}

export class WriteBuffer {
  private list: BufferedWrite[] = [];
  /** Key → position in `list`; undefined until the first lookup needs it. When present, `list` has no duplicates. */
  private index: Map<string, number> | undefined;
  /** Every key so far greater than the previous one: `list` is sorted and has no duplicates. */
  private ascending = true;
  private sortedCache: BufferedWrite[] | undefined;
  private chunk: Uint8Array = EMPTY;
  private chunkUsed = 0;
  private nextChunkBytes = chunkBytesFirst;

  /** Number of distinct keys written. */
  get size(): number {
    return this.ascending || this.index !== undefined ? this.list.length : this.sorted().length;
  }

  put(key: Uint8Array, value: Uint8Array): void {
    const both = this.copyIn(key, value);
    // Property order as in an Entry literal, so both share one hidden class in the memtable.
    this.add({
      key: both.subarray(0, key.length),
      lsn: 0,
      kind: WriteKind.Put,
      value: both.subarray(key.length),
    });
  }

  delete(key: Uint8Array): void {
    this.add({ key: this.copyIn(key, EMPTY), lsn: 0, kind: WriteKind.Delete, value: EMPTY });
  }

  /** The latest write of `key`, if any. */
  get(key: Uint8Array): BufferedWrite | undefined {
    const at = this.indexed().get(keyString(key));
    return at === undefined ? undefined : this.list[at];
  }

  has(key: Uint8Array): boolean {
    return this.indexed().has(keyString(key));
  }

  /**
   * The writes in key order, one per key (cached until the next write). The array is shared: callers must not
   * change it, and it is only valid until the next write.
   */
  sorted(): BufferedWrite[] {
    if (this.sortedCache !== undefined) return this.sortedCache;
    if (this.ascending) {
      this.sortedCache = this.list;
    } else if (this.index !== undefined) {
      this.sortedCache = this.list.slice().sort(byKey);
    } else {
      // Stable, so the writes of one key stay in the order they were made and the last one is the latest.
      const all = this.list.slice().sort(byKey);
      const unique: BufferedWrite[] = [];
      for (let i = 0; i < all.length; i++) {
        const next = all[i + 1];
        if (next === undefined || compareBytes(next.key, all[i]!.key) !== 0) unique.push(all[i]!);
      }
      this.sortedCache = unique;
    }
    return this.sortedCache;
  }

  clear(): void {
    this.list = [];
    this.index = undefined;
    this.ascending = true;
    this.sortedCache = undefined;
    this.chunk = EMPTY;
    this.chunkUsed = 0;
  }

  private add(w: BufferedWrite): void {
    this.sortedCache = undefined;
    const list = this.list;
    if (this.index !== undefined) {
      const k = keyString(w.key);
      const at = this.index.get(k);
      if (at !== undefined) {
        list[at] = w;
        return;
      }
      this.index.set(k, list.length);
    }
    if (this.ascending && list.length > 0 && compareBytes(w.key, list[list.length - 1]!.key) <= 0) {
      this.ascending = false;
    }
    list.push(w);
  }

  /** The key map, built on first use; building it drops superseded duplicates from the list. */
  private indexed(): Map<string, number> {
    if (this.index !== undefined) return this.index;
    const index = new Map<string, number>();
    const list = this.list;
    for (let i = 0; i < list.length; i++) index.set(keyString(list[i]!.key), i);
    if (index.size < list.length) {
      const kept: BufferedWrite[] = [];
      for (let i = 0; i < list.length; i++) {
        const k = keyString(list[i]!.key);
        if (index.get(k) === i) {
          index.set(k, kept.length);
          kept.push(list[i]!);
        }
      }
      this.list = kept;
    }
    this.index = index;
    return index;
  }

  /** key ++ value, copied into the current chunk (or a buffer of its own when large). */
  private copyIn(key: Uint8Array, value: Uint8Array): Uint8Array {
    const total = key.length + value.length;
    let out: Uint8Array;
    if (total > ownBufferBytes) {
      out = new Uint8Array(total);
    } else {
      if (this.chunkUsed + total > this.chunk.length) {
        this.chunk = new Uint8Array(Math.max(total, this.nextChunkBytes));
        this.chunkUsed = 0;
        this.nextChunkBytes = Math.min(chunkBytesMax, this.nextChunkBytes * 2);
      }
      out = this.chunk.subarray(this.chunkUsed, this.chunkUsed + total);
      this.chunkUsed += total;
    }
    const k = key.length;
    // Keys are short: a loop beats a `set` call.
    if (k <= 32) for (let i = 0; i < k; i++) out[i] = key[i]!;
    else out.set(key);
    if (value.length > 0) out.set(value, k);
    return out;
  }
}
