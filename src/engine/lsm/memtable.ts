/**
 * Memtable: the newest versions, in memory, in internal order, until a flush turns them into an SST.
 *
 * Structure, chosen for a machine where a cache miss costs far more than a comparison:
 *   - Versions of one key live together in a version list (an array, oldest first; appending a new commit's
 *     version is a push).
 *   - A hash index (open addressing over typed arrays, keyed by `bloomHash`) maps a key to its version list, so a
 *     point read — and above all a miss, the common case when the data is in SSTs — is one hash and a probe or two,
 *     not a twenty-step binary search that chases pointers.
 *   - An ordered index of the distinct keys for scans: a sorted array of chunks (a two-level B+tree), each holding
 *     up to `chunkEntriesMax` keys as latin1 strings next to their version lists, plus a directory of each chunk's
 *     first key. Latin1 strings compare natively in byte order with their bytes inline, several times faster than
 *     Uint8Array comparisons when the keys are scattered over the heap. Seeking is two binary searches, O(log n);
 *     adding a key moves at most `chunkEntriesMax` pointers and splits a full chunk, which inserts one directory
 *     slot: O(n / chunkEntriesMax), once per `chunkEntriesMax / 2` new keys at least.
 *
 * Invariants:
 *   - Iteration yields entries in strictly increasing internal order. An entry with the (key, lsn) of one already
 *     present replaces it (replaying the same commit twice is harmless).
 *   - Every key in the hash index is in the ordered index with the same version list, and no list is empty; no
 *     chunk is empty.
 *   - Iteration tolerates puts between steps: a cursor remembers the last entry it returned and, when the memtable
 *     changed since, finds its place again just past it. So it never throws and never skips or repeats an entry
 *     that existed when it started; entries added meanwhile may or may not be seen.
 *   - The memtable keeps the Entry objects it is given; callers must not mutate them afterwards.
 */

import { ErrorCodes, TwillError } from "../../errors.js";
import { bloomHash } from "./bloom.js";
import { SyncCursor } from "./cursor.js";
import { bytesEqual, type Entry, entryDefect } from "./types.js";

export interface MemtableRange {
  /** Inclusive lower bound on keys. */
  start?: Uint8Array;
  /** Exclusive upper bound on keys. */
  end?: Uint8Array;
  /** Exactly the reverse of internal order. */
  reverse?: boolean;
}

export interface MemtableOptions {
  /** Keys per chunk of the ordered index before it splits. Default 256; tests use tiny chunks to hit splits. */
  chunkEntriesMax?: number;
}

/** Heap cost of one entry beyond its key and value bytes: the Entry object, a list slot, two typed-array views and
 * their ArrayBuffer (measured in bench/engine/rss: counting less made a "32 MiB" memtable cost 60 MiB). */
const entryOverheadBytes = 160;
/** Heap cost of one distinct key beyond its bytes: the string, the version list, hash slots, index slots. */
const keyOverheadBytes = 160;
const hashCapacityMin = 64;

/** A key as a latin1 string: one char per byte, so string order is unsigned byte order. */
export function keyString(key: Uint8Array): string {
  if (key.length <= 1024) return String.fromCharCode.apply(null, key as unknown as number[]);
  let s = "";
  for (let i = 0; i < key.length; i += 1024) {
    s += String.fromCharCode.apply(null, key.subarray(i, i + 1024) as unknown as number[]);
  }
  return s;
}

/** One chunk of the ordered index: sorted distinct keys and their version lists. */
interface Chunk {
  keys: string[];
  lists: Entry[][];
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

/** Index of the first version in `list` (ascending lsn) with lsn >= `lsn`. */
function lowerBoundLsn(list: Entry[], lsn: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (list[mid]!.lsn < lsn) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class Memtable {
  private readonly chunkEntriesMax: number;

  // Hash index: slot -> (hash, version list id + 1); 0 marks an empty slot.
  private slotHashes = new Uint32Array(hashCapacityMin);
  private slotIds = new Int32Array(hashCapacityMin);
  private readonly lists: Entry[][] = [];

  // Ordered index.
  private readonly chunks: Chunk[] = [];
  /** First key of each chunk, so that the directory search touches one array of strings. */
  private readonly chunkFirst: string[] = [];

  private count = 0;
  private bytes = 0;
  private min = 0;
  private max = 0;
  private frozen = false;
  /** Bumped by every put; cursors check it to know whether their version index is still right. */
  private version = 0;
  /** Bumped when a key is added; cursors check it to know whether their chunk position is still right. */
  private layout = 0;

  constructor(options: MemtableOptions = {}) {
    this.chunkEntriesMax = Math.max(2, options.chunkEntriesMax ?? 256);
  }

  get entryCount(): number {
    return this.count;
  }

  get distinctKeyCount(): number {
    return this.lists.length;
  }

  /** Approximate heap bytes held, for deciding when to flush. */
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

  /** The version list of `key`, or undefined. */
  private find(key: Uint8Array, hash: number): Entry[] | undefined {
    const mask = this.slotIds.length - 1;
    const ids = this.slotIds;
    const hashes = this.slotHashes;
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const id = ids[i]!;
      if (id === 0) return undefined;
      if (hashes[i] === hash) {
        const list = this.lists[id - 1]!;
        if (bytesEqual(list[0]!.key, key)) return list;
      }
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

  put(entry: Entry): void {
    if (this.frozen) throw new TwillError(ErrorCodes.Internal, "put into a frozen memtable");
    const bad = entryDefect(entry);
    if (bad !== undefined)
      throw new TwillError(ErrorCodes.Internal, `memtable got a malformed entry: ${bad}`);
    this.version++;
    const key = entry.key;
    const hash = bloomHash(key);
    const list = this.find(key, hash);
    if (list !== undefined) {
      const last = list[list.length - 1]!;
      if (entry.lsn > last.lsn) {
        list.push(entry);
      } else {
        const i = lowerBoundLsn(list, entry.lsn);
        const existing = list[i]!;
        if (existing.lsn === entry.lsn) {
          list[i] = entry;
          this.bytes += entry.value.length - existing.value.length;
          return;
        }
        list.splice(i, 0, entry);
      }
      this.added(entry);
      return;
    }
    if ((this.lists.length + 1) * 2 > this.slotIds.length) this.growSlots();
    const fresh = [entry];
    this.addSlot(hash, this.lists.length);
    this.lists.push(fresh);
    this.insertKey(keyString(key), fresh);
    this.layout++;
    this.bytes += key.length + keyOverheadBytes;
    this.added(entry);
  }

  private added(entry: Entry): void {
    this.count++;
    this.bytes += entry.key.length + entry.value.length + entryOverheadBytes;
    if (this.min === 0 || entry.lsn < this.min) this.min = entry.lsn;
    if (entry.lsn > this.max) this.max = entry.lsn;
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

  private insertKey(s: string, list: Entry[]): void {
    if (this.chunks.length === 0) {
      this.chunks.push({ keys: [s], lists: [list] });
      this.chunkFirst.push(s);
      return;
    }
    const c = this.chunkFor(s);
    const chunk = this.chunks[c]!;
    const i = lowerBoundString(chunk.keys, s);
    if (i === chunk.keys.length) {
      chunk.keys.push(s);
      chunk.lists.push(list);
    } else {
      chunk.keys.splice(i, 0, s);
      chunk.lists.splice(i, 0, list);
    }
    if (i === 0) this.chunkFirst[c] = s;
    if (chunk.keys.length > this.chunkEntriesMax) {
      const half = chunk.keys.length >>> 1;
      const right: Chunk = { keys: chunk.keys.splice(half), lists: chunk.lists.splice(half) };
      this.chunks.splice(c + 1, 0, right);
      this.chunkFirst.splice(c + 1, 0, right.keys[0]!);
    }
  }

  /** The newest version of `key` with lsn <= snapshotLsn (possibly a Delete), or undefined. */
  get(key: Uint8Array, snapshotLsn: number, keyHash?: number): Entry | undefined {
    if (this.lists.length === 0) return undefined;
    const list = this.find(key, keyHash ?? bloomHash(key));
    if (list === undefined) return undefined;
    for (let i = list.length - 1; i >= 0; i--) {
      const e = list[i]!;
      if (e.lsn <= snapshotLsn) return e;
    }
    return undefined;
  }

  /** All versions of keys in [start, end), in internal order (or exactly reversed). */
  iterate(range: MemtableRange = {}): MemtableCursor {
    return new MemtableCursor(this, range);
  }

  // ---- for MemtableCursor -------------------------------------------------------------------------------------

  /** @internal */
  get modificationCount(): number {
    return this.version;
  }

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
  /** Position of the current key in the ordered index. */
  private chunk = 0;
  private index = 0;
  /** Version list of the current key, or undefined when the position points at a key not yet entered. */
  private list: Entry[] | undefined;
  /** Next version to yield in `list`. */
  private next_ = 0;
  private keyStr = "";
  private lastLsn = 0;
  private started = false;
  private finished = false;
  private version: number;
  private layout: number;

  constructor(
    private readonly table: Memtable,
    range: MemtableRange,
  ) {
    super();
    this.startKey = range.start && keyString(range.start);
    this.endKey = range.end && keyString(range.end);
    this.reverse = range.reverse ?? false;
    this.version = table.modificationCount;
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

  /** Finds the place again after puts: keys may have moved, and the current list may have new versions. */
  private resync(): void {
    this.version = this.table.modificationCount;
    if (!this.started) {
      if (this.layout !== this.table.layoutCount) {
        this.layout = this.table.layoutCount;
        this.positionAtBound();
      }
      return;
    }
    if (this.layout !== this.table.layoutCount) {
      this.layout = this.table.layoutCount;
      // The current key still exists (keys are never removed): find it by value.
      [this.chunk, this.index] = this.table.seekKey(this.keyStr);
      this.list = this.table.chunkAt(this.chunk)!.lists[this.index]!;
    }
    if (this.list === undefined) {
      this.list = this.table.chunkAt(this.chunk)!.lists[this.index]!;
    }
    // Just past the last version returned, in scan order.
    const i = lowerBoundLsn(this.list, this.lastLsn);
    this.next_ = this.reverse ? (this.list[i]?.lsn === this.lastLsn ? i + 1 : i) : i - 1;
  }

  nextSync(): Entry | undefined {
    if (this.finished) return undefined;
    if (this.version !== this.table.modificationCount) this.resync();
    for (;;) {
      const list = this.list;
      if (list !== undefined) {
        if (this.reverse ? this.next_ < list.length : this.next_ >= 0) {
          const e = list[this.next_]!;
          this.next_ += this.reverse ? 1 : -1;
          this.lastLsn = e.lsn;
          return e;
        }
        this.list = undefined;
        if (this.reverse) this.stepBack();
        else this.stepForward();
      }
      const chunk = this.table.chunkAt(this.chunk);
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
      const next = chunk!.lists[this.index]!;
      this.list = next;
      this.keyStr = s;
      this.started = true;
      this.next_ = this.reverse ? 0 : next.length - 1;
    }
  }

  override close(): void {
    this.finished = true;
    this.list = undefined;
  }
}
