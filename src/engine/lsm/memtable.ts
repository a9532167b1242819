/**
 * Memtable: the newest versions, in memory, in internal order, until a flush turns them into an SST.
 *
 * Structure, chosen for a machine where a cache miss costs far more than a comparison, and for a garbage-collected
 * heap where every object a memtable keeps is marked by every full GC until the flush, then left as garbage:
 *   - Bytes live in an arena: the memtable copies each distinct key once and each version's value into chunks of
 *     `arenaChunkBytes` (a value above `arenaValueMax` gets a chunk of its own). The caller's arrays are not kept,
 *     so a commit's write objects die young. Measured in bench/engine/rss: one JS Entry per version, with its key and
 *     value arrays, cost ~300 bytes of V8 heap beyond the ~200 bytes of data, and V8 let a few times the live heap
 *     accumulate as garbage between full GCs; the arena holds the bytes outside the heap, where no GC marks them.
 *   - Versions and keys are rows of growable typed arrays, by id. Versions of one key form a singly linked list,
 *     newest (highest lsn) first; a new commit's version is pushed at the head.
 *   - A hash index (open addressing over typed arrays, keyed by `bloomHash`) maps a key to its key id, so a point
 *     read — and above all a miss, the common case when the data is in SSTs — is one hash and a probe or two,
 *     not a twenty-step binary search.
 *   - An ordered index of the distinct keys for scans: a sorted array of chunks (a two-level B+tree), each holding
 *     up to `chunkEntriesMax` keys as latin1 strings next to their key ids, plus a directory of each chunk's first
 *     key. Latin1 strings compare natively in byte order with their bytes inline. Seeking is two binary searches,
 *     O(log n); adding a key moves at most `chunkEntriesMax` slots and splits a full chunk, which inserts one
 *     directory slot: O(n / chunkEntriesMax), once per `chunkEntriesMax / 2` new keys at least.
 *   - New keys reach the ordered index in batches: `put` only appends a new key's string to `unsorted` (the keys
 *     with the highest ids, in id order), and `settle` merges them in when a cursor is made or `unsortedKeysMax`
 *     are waiting: sorted once, then each touched chunk merged from its back, every slot moved at most once per
 *     batch. Inserted one at a time, each key of 16 interleaved writers' commits shifted about half a chunk (two
 *     arrays of ~128 slots, a write barrier per string), ~8% of the CPU of a durable 16-writer commit. Point reads
 *     and conflict checks use the hash index only and never wait for a settle.
 *   - Arena chunks come from an `ArenaPool` the tree shares between its memtables: once a flushed memtable is out of
 *     every view and no read that began on an older view runs, the tree recycles it and the next memtable fills its
 *     chunks again (a flushed memtable was a memtable's worth of garbage, and V8 runs a full GC for about every
 *     64 MiB of dead ArrayBuffers).
 *   - Entries handed out are made on demand. Readers (get, iterate) get copies of keys and values (carved from
 *     block-pool.ts's value chunks, which are never recycled), so nothing outside the memtable points into the
 *     arena; only the flush asks for views (`views: true`), which it copies into its SST before the recycle.
 *
 * Invariants:
 *   - Iteration yields entries in strictly increasing internal order. An entry with the (key, lsn) of one already
 *     present replaces it (replaying the same commit twice is harmless).
 *   - Every key in the hash index is in the ordered index with the same id or in `unsorted` (key ids
 *     [keyCount - unsorted.length, keyCount), at index id - that), never both; its version list is non-empty and
 *     sorted by strictly decreasing lsn; no chunk is empty; ids are never reused (nothing is removed). A cursor
 *     settles when it is made, so it starts from an ordered index holding every key put before it.
 *   - Iteration tolerates puts between steps: a cursor remembers the key it is on and, when keys were added since,
 *     finds its place again by that key. So it never throws and never skips or repeats an entry that existed when
 *     it started; entries added meanwhile may or may not be seen.
 *   - A recycled memtable is never read again (a read of one is an INTERNAL error, not wrong bytes); within a
 *     memtable's life arena bytes are never rewritten (a replaced version's new value goes to fresh bytes).
 *   - `approximateBytes` counts what the memtable holds: arena bytes taken (with a chunk's unused tail once it is
 *     left), the typed-array rows, and per key its string and index slots.
 */

import { ErrorCodes, TwillError } from "../../errors.js";
import { FixedBufferPool } from "../../util/buffer-pool.js";
import { copyValue } from "./block-pool.js";
import { bloomHash } from "./bloom.js";
import { SyncCursor } from "./cursor.js";
import { type Entry, type EntryKind, entryDefect } from "./types.js";

export interface MemtableRange {
  /** Inclusive lower bound on keys. */
  start?: Uint8Array;
  /** Exclusive upper bound on keys. */
  end?: Uint8Array;
  /** Exactly the reverse of internal order. */
  reverse?: boolean;
  /**
   * Entries whose key and value are views of the arena instead of copies: valid only until the memtable is
   * recycled. For the flush, which copies them into its SST first.
   */
  views?: boolean;
}

export interface MemtableOptions {
  /** Keys per chunk of the ordered index before it splits. Default 256; tests use tiny chunks to hit splits. */
  chunkEntriesMax?: number;
  /** Where arena chunks come from and go back to at `recycle`; default: fresh ones, left to the GC. */
  arena?: ArenaPool;
  /** New keys waiting before `put` merges them into the ordered index. Default 512; tests vary it. */
  unsortedKeysMax?: number;
}

/** Arena chunk size: large enough that a chunk is one allocation per ~1,000 rows, small enough to waste little. */
const arenaChunkBytes = 256 * 1024;
/** Values above this get a chunk of their own, so a chunk's unused tail stays small. */
const arenaValueMax = 16 * 1024;
/** Bytes per version row: lsn (8), chunk, offset, length, next (4 each), kind (1), rounded. */
const versionRowBytes = 32;
/** Bytes per distinct key beyond its arena copy: the key row (16), the latin1 string (~24 + length), the ordered
 * index's two slots (16), and the hash index's two slots at <= half load (16). */
const keyOverheadBytes = 72;
const hashCapacityMin = 64;
/** A settle of at most this many keys inserts them one at a time: the batch merge's sort would cost more. */
const settleOneByOneMax = 4;
const rowsMin = 64;
const EMPTY = new Uint8Array(0);

/** Recycled arena chunks, shared by one tree's memtables. Holds at most `keepMax` idle chunks. */
export class ArenaPool extends FixedBufferPool {
  constructor(keepMax: number) {
    super(arenaChunkBytes, keepMax);
  }

  /** Chunks a memtable of `bytes` (its `approximateBytes`) fills, at most. */
  static chunksFor(bytes: number): number {
    return Math.ceil(bytes / arenaChunkBytes);
  }
}

/**
 * Plain arrays of each length up to `keyScratchMax`, which `keyString` copies a short key into: `apply` with a
 * typed array goes through V8's slow generic CreateListFromArrayLike (~190 ns for 16 bytes), with a packed array of
 * small integers through its fast path (~80 ns). Reused: the string is made before `keyString` returns.
 */
const keyScratchMax = 64;
const keyScratch: number[][] = Array.from({ length: keyScratchMax + 1 }, (_, n) =>
  new Array<number>(n).fill(0),
);

/** A key as a latin1 string: one char per byte, so string order is unsigned byte order. */
export function keyString(key: Uint8Array): string {
  const n = key.length;
  if (n <= keyScratchMax) {
    const a = keyScratch[n]!;
    for (let i = 0; i < n; i++) a[i] = key[i]!;
    return String.fromCharCode.apply(null, a);
  }
  if (key.length <= 1024) return String.fromCharCode.apply(null, key as unknown as number[]);
  let s = "";
  for (let i = 0; i < key.length; i += 1024) {
    s += String.fromCharCode.apply(null, key.subarray(i, i + 1024) as unknown as number[]);
  }
  return s;
}

/** Positions of `keys` in ascending key order (keys are distinct); no sort when they already ascend. */
function sortedOrder(keys: readonly string[]): number[] {
  const order = new Array<number>(keys.length);
  let ascending = true;
  for (let i = 0; i < keys.length; i++) {
    order[i] = i;
    if (i > 0 && keys[i - 1]! > keys[i]!) ascending = false;
  }
  if (!ascending) order.sort((a, b) => (keys[a]! < keys[b]! ? -1 : 1));
  return order;
}

/** One chunk of the ordered index: sorted distinct keys and their key ids. */
interface Chunk {
  keys: string[];
  ids: number[];
}

/** Index of the first element of `sorted` that is >= `s`. */
function lowerBoundString(sorted: string[], s: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < s) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function grownInt32(a: Int32Array<ArrayBuffer>, need: number): Int32Array<ArrayBuffer> {
  if (need <= a.length) return a;
  const b = new Int32Array(Math.max(need, a.length * 2));
  b.set(a);
  return b;
}

function grownFloat64(a: Float64Array<ArrayBuffer>, need: number): Float64Array<ArrayBuffer> {
  if (need <= a.length) return a;
  const b = new Float64Array(Math.max(need, a.length * 2));
  b.set(a);
  return b;
}

function grownUint8(a: Uint8Array<ArrayBuffer>, need: number): Uint8Array<ArrayBuffer> {
  if (need <= a.length) return a;
  const b = new Uint8Array(Math.max(need, a.length * 2));
  b.set(a);
  return b;
}

export class Memtable {
  private readonly chunkEntriesMax: number;

  // Arena.
  private readonly arena: Uint8Array[] = [];
  /**
   * Each arena chunk's ArrayBuffer and offset in it, so the flush's views are made with `new Uint8Array(buffer,
   * offset, length)`: the `buffer` getter and `subarray` cost ~100 ns each, twice per entry of a flush.
   */
  private readonly arenaBuffers: ArrayBufferLike[] = [];
  private readonly arenaOffsets: number[] = [];
  /** The chunks of `arena` taken from the pool (those of one value each are not). */
  private readonly pooled: Uint8Array[] = [];
  private readonly pool: ArenaPool | undefined;
  private recycled = false;
  /** Index in `arena` of the chunk small copies go to, and how much of it is used. */
  private arenaCurrent = -1;
  private arenaUsed = arenaChunkBytes;

  // Key rows, by key id: where its bytes are, and its newest version.
  private keyChunk = new Int32Array(rowsMin);
  private keyOffset = new Int32Array(rowsMin);
  private keyLength = new Int32Array(rowsMin);
  private keyHead = new Int32Array(rowsMin);
  private keyCount = 0;

  // Version rows, by version id.
  private versionLsn = new Float64Array(rowsMin);
  private versionChunk = new Int32Array(rowsMin);
  private versionOffset = new Int32Array(rowsMin);
  private versionLength = new Int32Array(rowsMin);
  /** The next older version of the same key, or -1. */
  private versionNext = new Int32Array(rowsMin);
  private versionKind = new Uint8Array(rowsMin);
  private versionCount = 0;

  // Hash index: slot -> (hash, key id + 1); 0 marks an empty slot.
  private slotHashes = new Uint32Array(hashCapacityMin);
  private slotIds = new Int32Array(hashCapacityMin);

  // Ordered index.
  private chunks: Chunk[] = [];
  /** First key of each chunk, so that the directory search touches one array of strings. */
  private chunkFirst: string[] = [];
  /** New keys not yet in the ordered index, by id (see the header). */
  private unsorted: string[] = [];
  private readonly unsortedKeysMax: number;

  private count = 0;
  private bytes = 0;
  private min = 0;
  private max = 0;
  private frozen = false;
  /** Bumped when a key is added; cursors check it to know whether their chunk position is still right. */
  private layout = 0;

  constructor(options: MemtableOptions = {}) {
    this.chunkEntriesMax = Math.max(2, options.chunkEntriesMax ?? 256);
    this.unsortedKeysMax = Math.max(1, options.unsortedKeysMax ?? 512);
    this.pool = options.arena;
  }

  /**
   * Gives the arena chunks back to the pool. Only for a memtable no view holds and no read can reach any more;
   * every later read of it fails.
   */
  recycle(): void {
    if (this.recycled) return;
    this.recycled = true;
    this.frozen = true;
    if (this.pool !== undefined) for (const c of this.pooled) this.pool.give(c);
    this.pooled.length = 0;
    this.arena.length = 0;
    this.arenaBuffers.length = 0;
    this.arenaOffsets.length = 0;
  }

  /** @internal Throws if the memtable was recycled: its bytes belong to another memtable now. */
  checkReadable(): void {
    if (this.recycled) throw new TwillError(ErrorCodes.Internal, "read of a recycled memtable");
  }

  get entryCount(): number {
    return this.count;
  }

  get distinctKeyCount(): number {
    return this.keyCount;
  }

  /** Approximate bytes held, for deciding when to flush. */
  get approximateBytes(): number {
    return this.bytes;
  }

  /** Smallest and largest LSN held; 0 when empty. */
  get minLsn(): number {
    return this.min;
  }

  get maxLsn(): number {
    return this.max;
  }

  /** Refuses further puts (a frozen memtable is being flushed). */
  freeze(): void {
    this.frozen = true;
  }

  get isFrozen(): boolean {
    return this.frozen;
  }

  // ---- arena --------------------------------------------------------------------------------------------------

  /** Copies `bytes` into the arena; returns the chunk index, the offset in `arenaOffsetOut`. */
  private arenaOffsetOut = 0;
  private copyIn(bytes: Uint8Array): number {
    const n = bytes.length;
    if (n > arenaValueMax) {
      this.pushChunk(bytes.slice());
      this.bytes += n;
      this.arenaOffsetOut = 0;
      return this.arena.length - 1;
    }
    if (this.arenaUsed + n > arenaChunkBytes) {
      // The unused tail of the chunk left behind is memory held too.
      if (this.arenaCurrent >= 0) this.bytes += arenaChunkBytes - this.arenaUsed;
      const fresh = this.pool?.take() ?? new Uint8Array(arenaChunkBytes);
      this.pooled.push(fresh);
      this.pushChunk(fresh);
      this.arenaCurrent = this.arena.length - 1;
      this.arenaUsed = 0;
    }
    const chunk = this.arena[this.arenaCurrent]!;
    const at = this.arenaUsed;
    if (n <= 32) for (let i = 0; i < n; i++) chunk[at + i] = bytes[i]!;
    else chunk.set(bytes, at);
    this.arenaUsed = at + n;
    this.bytes += n;
    this.arenaOffsetOut = at;
    return this.arenaCurrent;
  }

  private pushChunk(chunk: Uint8Array): void {
    this.arena.push(chunk);
    this.arenaBuffers.push(chunk.buffer);
    this.arenaOffsets.push(chunk.byteOffset);
  }

  private view(chunk: number, offset: number, length: number): Uint8Array {
    if (length === 0) return EMPTY;
    return new Uint8Array(this.arenaBuffers[chunk]!, this.arenaOffsets[chunk]! + offset, length);
  }

  // ---- rows ---------------------------------------------------------------------------------------------------

  /** @internal The key bytes of key id `k`, as a view of the arena. */
  keyView(k: number): Uint8Array {
    return this.view(this.keyChunk[k]!, this.keyOffset[k]!, this.keyLength[k]!);
  }

  /** @internal The newest version id of key id `k`. */
  headOf(k: number): number {
    return this.keyHead[k]!;
  }

  /** @internal The next older version of version `v`, or -1. */
  nextOf(v: number): number {
    return this.versionNext[v]!;
  }

  /** @internal */
  lsnOf(v: number): number {
    return this.versionLsn[v]!;
  }

  /** @internal A copy of the key bytes of key id `k`. */
  keyCopy(k: number): Uint8Array {
    const n = this.keyLength[k]!;
    return n === 0 ? EMPTY : copyValue(this.arena[this.keyChunk[k]!]!, this.keyOffset[k]!, n);
  }

  /** @internal Version `v` as an Entry with `key` (given, so one key serves all its versions). */
  entryOf(key: Uint8Array, v: number, views: boolean): Entry {
    const kind = this.versionKind[v] as EntryKind;
    const n = this.versionLength[v]!;
    const chunk = this.versionChunk[v]!;
    const offset = this.versionOffset[v]!;
    return {
      key,
      lsn: this.versionLsn[v]!,
      kind,
      value: n === 0 ? EMPTY : views ? this.view(chunk, offset, n) : copyValue(this.arena[chunk]!, offset, n),
    };
  }

  private keyEquals(k: number, key: Uint8Array): boolean {
    const n = this.keyLength[k]!;
    if (n !== key.length) return false;
    const c = this.arena[this.keyChunk[k]!];
    const at = this.keyOffset[k]!;
    // Compare from the end: keys sharing a table / index prefix differ last.
    for (let i = n - 1; i >= 0; i--) if (c![at + i] !== key[i]) return false;
    return true;
  }

  /** The key id of `key`, or -1. */
  private find(key: Uint8Array, hash: number): number {
    const mask = this.slotIds.length - 1;
    const ids = this.slotIds;
    const hashes = this.slotHashes;
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const id = ids[i]!;
      if (id === 0) return -1;
      if (hashes[i] === hash && this.keyEquals(id - 1, key)) return id - 1;
    }
  }

  private addSlot(hash: number, id: number): void {
    const mask = this.slotIds.length - 1;
    let i = hash & mask;
    while (this.slotIds[i] !== 0) i = (i + 1) & mask;
    this.slotHashes[i] = hash;
    this.slotIds[i] = id + 1;
  }

  /** Doubles the hash index when it is half full, so that probe runs stay short. */
  private growSlots(): void {
    const oldHashes = this.slotHashes;
    const oldIds = this.slotIds;
    this.slotHashes = new Uint32Array(oldHashes.length * 2);
    this.slotIds = new Int32Array(oldIds.length * 2);
    for (let i = 0; i < oldIds.length; i++) {
      if (oldIds[i] !== 0) this.addSlot(oldHashes[i]!, oldIds[i]! - 1);
    }
  }

  /** Stores the value of `entry` in version row `v`. */
  private setVersion(v: number, entry: Entry): void {
    const length = entry.value.length;
    this.versionChunk[v] = length === 0 ? -1 : this.copyIn(entry.value);
    this.versionOffset[v] = length === 0 ? 0 : this.arenaOffsetOut;
    this.versionLength[v] = length;
    this.versionKind[v] = entry.kind;
    this.versionLsn[v] = entry.lsn;
  }

  private newVersion(entry: Entry, next: number): number {
    const v = this.versionCount++;
    if (v === this.versionLsn.length) {
      const need = v + 1;
      this.versionLsn = grownFloat64(this.versionLsn, need);
      this.versionChunk = grownInt32(this.versionChunk, need);
      this.versionOffset = grownInt32(this.versionOffset, need);
      this.versionLength = grownInt32(this.versionLength, need);
      this.versionNext = grownInt32(this.versionNext, need);
      this.versionKind = grownUint8(this.versionKind, need);
    }
    this.setVersion(v, entry);
    this.versionNext[v] = next;
    this.count++;
    this.bytes += versionRowBytes;
    if (this.min === 0 || entry.lsn < this.min) this.min = entry.lsn;
    if (entry.lsn > this.max) this.max = entry.lsn;
    return v;
  }

  /** Adds a version; `keyStr` and `keyHash`, if given, are `keyString(entry.key)` and `bloomHash(entry.key)`. */
  put(entry: Entry, keyStr?: string, keyHash?: number): void {
    if (this.frozen) throw new TwillError(ErrorCodes.Internal, "put into a frozen memtable");
    const bad = entryDefect(entry);
    if (bad !== undefined)
      throw new TwillError(ErrorCodes.Internal, `memtable got a malformed entry: ${bad}`);
    const key = entry.key;
    const lsn = entry.lsn;
    const hash = keyHash ?? bloomHash(key);
    const k = this.find(key, hash);
    if (k >= 0) {
      let prev = -1;
      let v = this.keyHead[k]!;
      while (v !== -1 && this.versionLsn[v]! > lsn) {
        prev = v;
        v = this.versionNext[v]!;
      }
      if (v !== -1 && this.versionLsn[v] === lsn) {
        // Fresh arena bytes: views handed out of the old value must keep reading it.
        this.setVersion(v, entry);
        return;
      }
      const fresh = this.newVersion(entry, v);
      if (prev === -1) this.keyHead[k] = fresh;
      else this.versionNext[prev] = fresh;
      return;
    }
    if ((this.keyCount + 1) * 2 > this.slotIds.length) this.growSlots();
    const id = this.keyCount++;
    if (id === this.keyHead.length) {
      const need = id + 1;
      this.keyChunk = grownInt32(this.keyChunk, need);
      this.keyOffset = grownInt32(this.keyOffset, need);
      this.keyLength = grownInt32(this.keyLength, need);
      this.keyHead = grownInt32(this.keyHead, need);
    }
    this.keyChunk[id] = key.length === 0 ? -1 : this.copyIn(key);
    this.keyOffset[id] = key.length === 0 ? 0 : this.arenaOffsetOut;
    this.keyLength[id] = key.length;
    this.keyHead[id] = this.newVersion(entry, -1);
    this.addSlot(hash, id);
    this.bytes += keyOverheadBytes + key.length;
    // Last: a settle takes every key of `unsorted` to be fully stored.
    if (this.unsorted.push(keyStr ?? keyString(key)) >= this.unsortedKeysMax) this.settle();
  }

  /**
   * Merges the keys waiting in `unsorted` into the ordered index (see the header). Bumps `layout` when it moves
   * anything, so cursors find their place again.
   */
  settle(): void {
    const fresh = this.unsorted;
    const n = fresh.length;
    if (n === 0) return;
    this.unsorted = [];
    this.layout++;
    const base = this.keyCount - n;
    if (n <= settleOneByOneMax) {
      for (let i = 0; i < n; i++) this.insertKey(fresh[i]!, base + i);
      return;
    }
    const order = sortedOrder(fresh);
    if (this.chunks.length === 0) {
      this.chunks.push({ keys: [], ids: [] });
      this.chunkFirst.push(fresh[order[0]!]!);
    }
    const chunks = this.chunks;
    const first = this.chunkFirst;
    const max = this.chunkEntriesMax;
    // Built only once a chunk splits: the directory, with chunks [0, copied) of the old one already in it.
    let outChunks: Chunk[] | undefined;
    let outFirst: string[] | undefined;
    let copied = 0;
    let j = 0;
    while (j < n) {
      // The chunk of the smallest key left (the old directory: nothing below is changed before the end, but for
      // chunk 0's first key, which only ever gets smaller), and the run of keys below the next chunk's first.
      const c = this.chunkFor(fresh[order[j]!]!);
      const limit = c + 1 < chunks.length ? first[c + 1]! : undefined;
      let k = j + 1;
      if (limit === undefined) k = n;
      else while (k < n && fresh[order[k]!]! < limit) k++;
      const chunk = chunks[c]!;
      const keys = chunk.keys;
      const ids = chunk.ids;
      // Merged from the back into the grown arrays, so each slot moves once.
      let a = keys.length - 1;
      let w = keys.length + (k - j) - 1;
      for (let t = j; t < k; t++) {
        keys.push("");
        ids.push(0);
      }
      for (let b = k - 1; b >= j; ) {
        const i = order[b]!;
        const s = fresh[i]!;
        if (a >= 0 && keys[a]! > s) {
          keys[w] = keys[a]!;
          ids[w] = ids[a]!;
          a--;
        } else {
          keys[w] = s;
          ids[w] = base + i;
          b--;
        }
        w--;
      }
      first[c] = keys[0]!;
      if (keys.length > max) {
        if (outChunks === undefined || outFirst === undefined) {
          outChunks = chunks.slice(0, c);
          outFirst = first.slice(0, c);
        } else {
          for (let x = copied; x < c; x++) {
            outChunks.push(chunks[x]!);
            outFirst.push(first[x]!);
          }
        }
        // Pieces of about three quarters of a chunk: room for the next keys before the next split.
        const pieces = Math.ceil(keys.length / Math.max(1, Math.floor((max * 3) / 4)));
        const size = Math.ceil(keys.length / pieces);
        for (let from = 0; from < keys.length; from += size) {
          const piece: Chunk = { keys: keys.slice(from, from + size), ids: ids.slice(from, from + size) };
          outChunks.push(piece);
          outFirst.push(piece.keys[0]!);
        }
        copied = c + 1;
      }
      j = k;
    }
    if (outChunks !== undefined && outFirst !== undefined) {
      for (let x = copied; x < chunks.length; x++) {
        outChunks.push(chunks[x]!);
        outFirst.push(first[x]!);
      }
      this.chunks = outChunks;
      this.chunkFirst = outFirst;
    }
  }

  /** Index of the chunk where key `s` belongs: the last whose first key is <= s (0 if none). */
  private chunkFor(s: string): number {
    const first = this.chunkFirst;
    let lo = 0;
    let hi = first.length - 1;
    let found = 0;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (first[mid]! <= s) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found;
  }

  private insertKey(s: string, id: number): void {
    if (this.chunks.length === 0) {
      this.chunks.push({ keys: [s], ids: [id] });
      this.chunkFirst.push(s);
      return;
    }
    const c = this.chunkFor(s);
    const chunk = this.chunks[c]!;
    const keys = chunk.keys;
    const ids = chunk.ids;
    const n = keys.length;
    // The last key of the chunk first: keys arriving in order (a load, a writer's own sequence) land at the end.
    const i = s > keys[n - 1]! ? n : lowerBoundString(keys, s);
    keys.push(s);
    ids.push(id);
    if (i < n) {
      // Shifted by hand: `splice` allocates the array of removed elements (empty here) on every call.
      for (let j = n; j > i; j--) {
        keys[j] = keys[j - 1]!;
        ids[j] = ids[j - 1]!;
      }
      keys[i] = s;
      ids[i] = id;
    }
    if (i === 0) this.chunkFirst[c] = s;
    if (keys.length > this.chunkEntriesMax) {
      const half = chunk.keys.length >>> 1;
      const right: Chunk = { keys: chunk.keys.splice(half), ids: chunk.ids.splice(half) };
      this.chunks.splice(c + 1, 0, right);
      this.chunkFirst.splice(c + 1, 0, right.keys[0]!);
    }
  }

  /** The newest version of `key` with lsn <= snapshotLsn (possibly a Delete), or undefined. */
  get(key: Uint8Array, snapshotLsn: number, keyHash?: number): Entry | undefined {
    this.checkReadable();
    if (this.keyCount === 0) return undefined;
    const k = this.find(key, keyHash ?? bloomHash(key));
    if (k < 0) return undefined;
    for (let v = this.keyHead[k]!; v !== -1; v = this.versionNext[v]!) {
      // The probe key is bytes-equal to the stored one: no view to make.
      if (this.versionLsn[v]! <= snapshotLsn) return this.entryOf(key, v, false);
    }
    return undefined;
  }

  /** The LSN of the newest version of `key`, or 0 (for conflict checks: nothing is copied). */
  newestLsn(key: Uint8Array, keyHash?: number): number {
    this.checkReadable();
    if (this.keyCount === 0) return 0;
    const k = this.find(key, keyHash ?? bloomHash(key));
    return k < 0 ? 0 : this.versionLsn[this.keyHead[k]!]!;
  }

  /** All versions of keys in [start, end), in internal order (or exactly reversed). */
  iterate(range: MemtableRange = {}): MemtableCursor {
    return new MemtableCursor(this, range);
  }

  // ---- for MemtableCursor -------------------------------------------------------------------------------------

  /** @internal */
  get layoutCount(): number {
    return this.layout;
  }

  /** @internal */
  chunkAt(c: number): Chunk | undefined {
    return this.chunks[c];
  }

  /** @internal */
  get chunkCount(): number {
    return this.chunks.length;
  }

  /** @internal Position (chunk, index) of the first key >= s; chunk === chunkCount when there is none. */
  seekKey(s: string): [number, number] {
    if (this.chunks.length === 0) return [0, 0];
    const c = this.chunkFor(s);
    const keys = this.chunks[c]!.keys;
    const i = lowerBoundString(keys, s);
    return i < keys.length ? [c, i] : [c + 1, 0];
  }
}

/** A scan over a memtable; also a synchronous iterator. See the header for what it does under concurrent puts. */
export class MemtableCursor extends SyncCursor<Entry> {
  private readonly startKey: string | undefined;
  private readonly endKey: string | undefined;
  private readonly reverse: boolean;
  private readonly views: boolean;
  /** Position of the current key in the ordered index. */
  private chunk = 0;
  private index = 0;
  /** Whether the position's key was entered (its versions are being yielded). */
  private inKey = false;
  /** The current key's bytes, shared by the entries of its versions. */
  private keyBytes: Uint8Array = new Uint8Array(0);
  /** Forward: the next version to yield (-1: none). Reverse: the index in `older` of the next one. */
  private nextVersion = -1;
  /** Reverse only: the current key's versions when it was entered, oldest first. */
  private older: number[] = [];
  private keyStr = "";
  private started = false;
  private finished = false;
  private layout: number;

  constructor(
    private readonly table: Memtable,
    range: MemtableRange,
  ) {
    super();
    this.startKey = range.start && keyString(range.start);
    this.endKey = range.end && keyString(range.end);
    this.reverse = range.reverse ?? false;
    this.views = range.views ?? false;
    table.settle();
    this.layout = table.layoutCount;
    if (this.startKey !== undefined && this.endKey !== undefined && this.startKey >= this.endKey) {
      this.finished = true;
      return;
    }
    this.positionAtBound();
  }

  /** Points at the first key of the range (forward) or the last (reverse). */
  private positionAtBound(): void {
    if (this.reverse) {
      if (this.endKey === undefined) {
        this.chunk = this.table.chunkCount;
        this.index = 0;
      } else {
        [this.chunk, this.index] = this.table.seekKey(this.endKey);
      }
      this.stepBack();
    } else if (this.startKey === undefined) {
      this.chunk = 0;
      this.index = 0;
    } else {
      [this.chunk, this.index] = this.table.seekKey(this.startKey);
    }
  }

  private stepBack(): void {
    if (this.index > 0) {
      this.index--;
      return;
    }
    this.chunk--;
    const chunk = this.table.chunkAt(this.chunk);
    this.index = chunk === undefined ? 0 : chunk.keys.length - 1;
  }

  private stepForward(): void {
    const chunk = this.table.chunkAt(this.chunk);
    if (chunk !== undefined && this.index + 1 < chunk.keys.length) {
      this.index++;
    } else {
      this.chunk++;
      this.index = 0;
    }
  }

  /** Finds the place again after keys were added: the current key may have moved. */
  private resync(): void {
    this.layout = this.table.layoutCount;
    if (!this.started) {
      this.positionAtBound();
      return;
    }
    // The current key still exists (keys are never removed): find it by value.
    [this.chunk, this.index] = this.table.seekKey(this.keyStr);
  }

  nextSync(): Entry | undefined {
    if (this.finished) return undefined;
    const table = this.table;
    table.checkReadable();
    if (this.layout !== table.layoutCount) this.resync();
    for (;;) {
      if (this.inKey) {
        if (this.reverse) {
          if (this.nextVersion < this.older.length)
            return table.entryOf(this.keyBytes, this.older[this.nextVersion++]!, this.views);
        } else if (this.nextVersion !== -1) {
          const v = this.nextVersion;
          // Read when stepping, not when entering: a version put meanwhile just below the last one is seen.
          this.nextVersion = table.nextOf(v);
          return table.entryOf(this.keyBytes, v, this.views);
        }
        this.inKey = false;
        if (this.reverse) this.stepBack();
        else this.stepForward();
      }
      const chunk = table.chunkAt(this.chunk);
      const s = chunk?.keys[this.index];
      if (
        s === undefined ||
        (this.reverse
          ? this.startKey !== undefined && s < this.startKey
          : this.endKey !== undefined && s >= this.endKey)
      ) {
        this.close();
        return undefined;
      }
      const k = chunk!.ids[this.index]!;
      this.inKey = true;
      this.keyStr = s;
      this.started = true;
      this.keyBytes = this.views ? table.keyView(k) : table.keyCopy(k);
      const head = table.headOf(k);
      if (this.reverse) {
        // Versions present now, oldest first; later ones may or may not be seen, and these never repeat.
        const older: number[] = [];
        for (let v = head; v !== -1; v = table.nextOf(v)) older.push(v);
        older.reverse();
        this.older = older;
        this.nextVersion = 0;
      } else {
        this.nextVersion = head;
      }
    }
  }

  override close(): void {
    this.finished = true;
    this.inKey = false;
    this.older = [];
  }
}
