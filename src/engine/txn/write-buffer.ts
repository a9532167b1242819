/**
 * WriteBuffer: a transaction's buffered writes, last write per key wins.
 *
 * Built for both ends of the range: a one-row commit and a bulk load of millions of rows in one transaction.
 *   - A write is four small integers in an array (chunk number, offset, key length, value length or -1 for a
 *     delete), not objects: a bulk load of 1M rows made 3M objects (a write and two views), which lived
 *     until the commit and cost more in garbage collection than everything else in the load. Write objects are
 *     made on demand: all at once by `sorted()` (what a commit through the memtable needs), or one at a time,
 *     short-lived, by `sortedAt` (what an ingest needs).
 *   - Writes are appended in arrival order. While every key is greater than the one before (a load in key order),
 *     that order is already sorted and free of duplicates, so commit needs no sort and no key map at all.
 *   - The key map (latin1 key string → write slot) that lookups need — read-your-own-writes, the engine's check
 *     against queued commits — is built only on the first lookup, then kept up to date. Before that,
 *     duplicates may sit in the slots; building the map or sorting removes them, keeping the latest.
 *   - Key and value bytes are copied into 256 KiB chunks shared by every write buffer of the process, filled
 *     front to back and never written twice, so neither a bulk load nor a one-row commit creates an ArrayBuffer
 *     per write or per transaction (about 2 µs each in V8). Writes are handed out as views into those chunks (the
 *     memtable copies them into its arena), so a chunk lives as long as anything holding one of its writes or a
 *     frame made of it; bytes of aborted transactions are simply never referenced. A write larger than 64 KiB
 *     gets a chunk of its own.
 *   - A write is copied in as its commit record (commit-record.ts: kind · varint key length · key · varint value
 *     length · value, the last two for a put only) after ONE_WRITE_HEADROOM spare bytes, so that a one-write
 *     commit's log frame is a view of those bytes (`oneWriteFrame`) rather than a second copy; the slot's offset is
 *     that of the key.
 *
 * Invariants: `sorted()` (and `sortedAt`) is in strictly increasing key order with one write per key, the latest;
 * `get`/`has` see the latest write of a key; callers never see memory shared with the bytes they passed in.
 *
 * Each write is created in the shape of an LSM `Entry` (key, lsn, kind, value; write and entry kinds share their
 * numbers) with lsn 0, so that a committed transaction's writes become its memtable entries by stamping the
 * commit LSN on them (`stampEntries`) rather than by allocating a second object per row.
 */

import { keyString } from "../lsm/memtable.js";
import { type Entry, EntryKind } from "../lsm/types.js";
import {
  ONE_WRITE_HEADROOM,
  putVarint,
  sealOneWriteCommit,
  varintBytes,
  type Write,
  WriteKind,
} from "./commit-record.js";

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

/** One write as its memtable/SST entry: the same object, stamped with the commit LSN. */
export function stampEntry(write: BufferedWrite, lsn: number): Entry {
  if (!kindsAgree) throw new Error("write and entry kinds differ");
  write.lsn = lsn;
  return write as Write as Entry;
}

const EMPTY = new Uint8Array(0);
const sharedChunkBytes = 256 * 1024;
const ownBufferBytes = 64 * 1024;
/** The chunk small writes of every buffer are copied into, and how much of it is taken. */
let shared: Uint8Array<ArrayBuffer> = EMPTY;
let sharedBuffer: ArrayBuffer = new ArrayBuffer(0);
let sharedUsed = 0;
const NO_CHUNKS = Object.freeze([]) as readonly Uint8Array[] as Uint8Array[];
const NO_BUFFERS = Object.freeze([]) as readonly ArrayBuffer[] as ArrayBuffer[];
const NO_SLOTS = Object.freeze([]) as readonly number[] as number[];
/** Int32 fields per write slot: chunk number, offset in the chunk, key length, value length (-1: delete). */
const F = 4;

/** A list of writes by position: an array of them, or a WriteBuffer's sorted writes made one at a time. */
export interface WriteList {
  readonly length: number;
  at(index: number): BufferedWrite | undefined;
}

export class WriteBuffer {
  // The three arrays start as shared frozen empties, replaced by the first write (a push into one throws rather
  // than reaching another buffer): a transaction then allocates none before it writes, and a one-row one three
  // arrays fewer.
  private chunks: Uint8Array[] = NO_CHUNKS;
  /**
   * The ArrayBuffer of each chunk (each chunk starts at byte 0 of its own): a write's key and value views are made
   * with `new Uint8Array(buffer, offset, length)`, ~40 ns, where `subarray` and the `buffer` getter cost ~100 each.
   */
  private buffers: ArrayBuffer[] = NO_BUFFERS;
  /** F small integers per write; a plain array, since a typed array costs an ArrayBuffer per transaction. */
  private slots: number[] = NO_SLOTS;
  /** Slots in use; before the key map exists, superseded duplicates may be among them. */
  private count = 0;
  /** Key → slot; undefined until the first lookup needs it. When present, no two slots hold one key. */
  private index: Map<string, number> | undefined;
  /** Every key so far greater than the previous one: the slots are sorted and hold no duplicates. */
  private ascending = true;
  /** Slots in key order, one per key (undefined while `ascending`, or until the next sort). */
  private order: Int32Array | undefined;
  private sortedCache: BufferedWrite[] | undefined;
  private bytes = 0;

  /** Number of distinct keys written. */
  get size(): number {
    return this.ascending || this.index !== undefined ? this.count : this.sortOrder().length;
  }

  /** Key and value bytes of every write so far (superseded ones included). */
  get byteCount(): number {
    return this.bytes;
  }

  put(key: Uint8Array, value: Uint8Array): void {
    this.add(key, value, value.length);
  }

  delete(key: Uint8Array): void {
    this.add(key, EMPTY, -1);
  }

  /** The latest write of `key`, if any. */
  get(key: Uint8Array): BufferedWrite | undefined {
    const slot = this.indexed().get(keyString(key));
    return slot === undefined ? undefined : this.write(slot);
  }

  has(key: Uint8Array): boolean {
    return this.indexed().has(keyString(key));
  }

  /** `has` for a key given as its latin1 string. */
  hasString(key: string): boolean {
    return this.indexed().has(key);
  }

  /**
   * The writes in key order, one per key (cached until the next write). The array is shared: callers must not
   * change it, and it is only valid until the next write.
   */
  sorted(): BufferedWrite[] {
    if (this.sortedCache !== undefined) return this.sortedCache;
    const n = this.sortedLength;
    // A one-write commit (the common case) gets an array of exactly one, not the 17 slots a first push makes.
    let out: BufferedWrite[];
    if (n === 1) out = [this.sortedAt(0)];
    else {
      out = [];
      for (let i = 0; i < n; i++) out.push(this.sortedAt(i));
    }
    this.sortedCache = out;
    return out;
  }

  /** How many writes `sorted()` holds, without making them. */
  get sortedLength(): number {
    return this.ascending ? this.count : this.sortOrder().length;
  }

  /** The i-th write of `sorted()`, as a new object each call (so nothing survives a pass over a huge buffer). */
  sortedAt(i: number): BufferedWrite {
    return this.write(this.ascending ? i : this.sortOrder()[i]!);
  }

  /** The sorted writes as a list: `sorted()` once made, else made one at a time. */
  sortedList(): WriteList {
    if (this.sortedCache !== undefined) return this.sortedCache;
    const length = this.sortedLength;
    return { length, at: (i) => (i >= 0 && i < length ? this.sortedAt(i) : undefined) };
  }

  /**
   * The log frame of a commit of exactly one write: a view of its record with the frame's type and count written
   * into the headroom before it (commit-record.ts `sealOneWriteCommit`); undefined for any other number of writes.
   * The bytes are never written again, so the frame stays valid as long as it is held.
   */
  oneWriteFrame(): Uint8Array | undefined {
    if (this.sortedLength !== 1) return undefined;
    const at = (this.ascending ? 0 : this.sortOrder()[0]!) * F;
    const s = this.slots;
    const keyAt = s[at + 1]!;
    const keyLength = s[at + 2]!;
    const valueLength = s[at + 3]!;
    const recordAt = keyAt - varintBytes(keyLength) - 1;
    const end =
      valueLength < 0 ? keyAt + keyLength : keyAt + keyLength + varintBytes(valueLength) + valueLength;
    return sealOneWriteCommit(this.buffers[s[at]!]!, recordAt, end);
  }

  clear(): void {
    this.chunks = NO_CHUNKS;
    this.buffers = NO_BUFFERS;
    this.slots = NO_SLOTS;
    this.count = 0;
    this.index = undefined;
    this.ascending = true;
    this.order = undefined;
    this.sortedCache = undefined;
    this.bytes = 0;
  }

  private write(slot: number): BufferedWrite {
    const s = this.slots;
    const at = slot * F;
    const buffer = this.buffers[s[at]!]!;
    const offset = s[at + 1]!;
    const keyLength = s[at + 2]!;
    const valueLength = s[at + 3]!;
    // Property order as in an Entry literal, so both share one hidden class in the memtable.
    return {
      key: new Uint8Array(buffer, offset, keyLength),
      lsn: 0,
      kind: valueLength < 0 ? WriteKind.Delete : WriteKind.Put,
      value:
        valueLength <= 0
          ? EMPTY
          : new Uint8Array(buffer, offset + keyLength + varintBytes(valueLength), valueLength),
    };
  }

  /** Compares `key` with the key in `slot`. */
  private compareToSlot(key: Uint8Array, slot: number): number {
    const s = this.slots;
    const at = slot * F;
    const bytes = this.chunks[s[at]!]!;
    const offset = s[at + 1]!;
    const length = s[at + 2]!;
    const n = Math.min(key.length, length);
    for (let i = 0; i < n; i++) {
      const d = key[i]! - bytes[offset + i]!;
      if (d !== 0) return d;
    }
    return key.length - length;
  }

  /** Compares the keys of two slots. */
  private compareSlots(a: number, b: number): number {
    const s = this.slots;
    const bytesA = this.chunks[s[a * F]!]!;
    const offA = s[a * F + 1]!;
    const lenA = s[a * F + 2]!;
    const bytesB = this.chunks[s[b * F]!]!;
    const offB = s[b * F + 1]!;
    const lenB = s[b * F + 2]!;
    const n = Math.min(lenA, lenB);
    for (let i = 0; i < n; i++) {
      const d = bytesA[offA + i]! - bytesB[offB + i]!;
      if (d !== 0) return d;
    }
    return lenA - lenB;
  }

  private slotKeyString(slot: number): string {
    const s = this.slots;
    const offset = s[slot * F + 1]!;
    return keyString(this.chunks[s[slot * F]!]!.subarray(offset, offset + s[slot * F + 2]!));
  }

  /** Slots in key order, one per key: the latest (with the key map, every slot is already the latest). */
  private sortOrder(): Int32Array {
    if (this.order !== undefined) return this.order;
    const all = Array.from({ length: this.count }, (_, i) => i);
    // Ties keep arrival order (the sort is stable), so the last slot of a run of one key is its latest write.
    all.sort((a, b) => this.compareSlots(a, b));
    const unique: number[] = [];
    for (let i = 0; i < all.length; i++) {
      const next = all[i + 1];
      if (next === undefined || this.compareSlots(next, all[i]!) !== 0) unique.push(all[i]!);
    }
    this.order = Int32Array.from(unique);
    return this.order;
  }

  private add(key: Uint8Array, value: Uint8Array, valueLength: number): void {
    this.sortedCache = undefined;
    this.order = undefined;
    const offset = this.copyIn(key, value, valueLength);
    const chunkId = this.chunks.length - 1;
    this.bytes += key.length + value.length;
    let slot = this.count;
    if (this.index !== undefined) {
      const k = keyString(key);
      const at = this.index.get(k);
      if (at !== undefined) slot = at;
      else this.index.set(k, slot);
    }
    const s = this.slots;
    if (slot === this.count) {
      if (this.ascending && slot > 0 && this.compareToSlot(key, slot - 1) <= 0) this.ascending = false;
      // Pushed, not assigned past the end, so the array stays packed. The first write makes an array of exactly
      // its four fields: a push into an empty array allocates room for 17, most of a one-row commit's garbage.
      if (slot === 0 && s.length === 0) this.slots = [chunkId, offset, key.length, valueLength];
      else if (s.length === slot * F) s.push(chunkId, offset, key.length, valueLength);
      else {
        s[slot * F] = chunkId;
        s[slot * F + 1] = offset;
        s[slot * F + 2] = key.length;
        s[slot * F + 3] = valueLength;
      }
      this.count++;
      return;
    }
    const at = slot * F;
    s[at] = chunkId;
    s[at + 1] = offset;
    s[at + 2] = key.length;
    s[at + 3] = valueLength;
  }

  /** The key map, built on first use; building it drops superseded duplicates from the slots. */
  private indexed(): Map<string, number> {
    if (this.index !== undefined) return this.index;
    const index = new Map<string, number>();
    for (let i = 0; i < this.count; i++) index.set(this.slotKeyString(i), i);
    if (index.size < this.count) {
      const s = this.slots;
      let kept = 0;
      for (let i = 0; i < this.count; i++) {
        const k = this.slotKeyString(i);
        if (index.get(k) === i) {
          index.set(k, kept);
          if (kept !== i) s.copyWithin(kept * F, i * F, i * F + F);
          kept++;
        }
      }
      this.count = kept;
      s.length = kept * F;
      this.order = undefined;
    }
    this.index = index;
    return index;
  }

  /**
   * The write's record (see the header) after ONE_WRITE_HEADROOM spare bytes, copied into the shared chunk (a chunk
   * of its own when large), which is then this buffer's last; returns the key's offset. `valueLength` is -1 for a
   * delete.
   */
  private copyIn(key: Uint8Array, value: Uint8Array, valueLength: number): number {
    const k = key.length;
    const total =
      ONE_WRITE_HEADROOM +
      1 +
      varintBytes(k) +
      k +
      (valueLength < 0 ? 0 : varintBytes(value.length) + value.length);
    let out: Uint8Array<ArrayBuffer>;
    let at = 0;
    if (total > ownBufferBytes) {
      out = new Uint8Array(total);
      if (this.chunks.length === 0) {
        this.chunks = [out];
        this.buffers = [out.buffer];
      } else {
        this.chunks.push(out);
        this.buffers.push(out.buffer);
      }
    } else {
      if (sharedUsed + total > shared.length) {
        shared = new Uint8Array(sharedChunkBytes);
        sharedBuffer = shared.buffer;
        sharedUsed = 0;
      }
      out = shared;
      if (this.chunks.length === 0) {
        this.chunks = [out];
        this.buffers = [sharedBuffer];
      } else if (this.chunks[this.chunks.length - 1] !== out) {
        this.chunks.push(out);
        this.buffers.push(sharedBuffer);
      }
      at = sharedUsed;
      sharedUsed += total;
    }
    let p = at + ONE_WRITE_HEADROOM;
    out[p++] = valueLength < 0 ? WriteKind.Delete : WriteKind.Put;
    p = putVarint(out, p, k);
    const keyAt = p;
    // Keys are short: a loop beats a `set` call.
    if (k <= 32) for (let i = 0; i < k; i++) out[p + i] = key[i]!;
    else out.set(key, p);
    p += k;
    if (valueLength >= 0) {
      p = putVarint(out, p, value.length);
      if (value.length > 0) out.set(value, p);
    }
    return keyAt;
  }
}
