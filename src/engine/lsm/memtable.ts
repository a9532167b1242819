/**
 * Memtable: the newest versions, in memory, in internal order, until a flush turns them into an SST.
 *
 * Structure: a sorted array of chunks, each a sorted array of at most `chunkEntriesMax` entries (a two-level
 * B+tree). A lookup binary-searches the chunks by their first entry, then the chunk: O(log n). An insert adds to
 * one chunk (moving at most `chunkEntriesMax` pointers) and splits it in two when full; a split inserts one
 * pointer into the chunk directory, O(n / chunkEntriesMax) but once per `chunkEntriesMax / 2` inserts at least,
 * which keeps it a small fraction of an insert's cost up to tens of millions of entries. A skip list would give
 * the same bounds with a node object and a pointer array per entry; chunks keep entries contiguous and cheap.
 *
 * Invariants:
 *   - Entries are in strictly increasing internal order; an entry with the (key, lsn) of one already present
 *     replaces it (replaying the same commit twice is harmless).
 *   - No chunk is empty; the directory is empty exactly when the memtable is.
 *   - Iteration tolerates inserts between steps: a cursor remembers the last entry it returned and, when the
 *     memtable changed since, seeks again just past it. So it never throws and never skips or repeats an entry
 *     that existed when it started; entries inserted meanwhile may or may not be seen.
 *   - The memtable keeps the Entry objects it is given; callers must not mutate them afterwards.
 */

import { ErrorCodes, TwillError } from "../../errors.js";
import { SyncCursor } from "./cursor.js";
import { compareBytes, type Entry, entryDefect, lsnMax } from "./types.js";

export interface MemtableRange {
  /** Inclusive lower bound on keys. */
  start?: Uint8Array;
  /** Exclusive upper bound on keys. */
  end?: Uint8Array;
  /** Exactly the reverse of internal order. */
  reverse?: boolean;
}

/** Rough heap cost of one entry beyond its key and value bytes (Entry object, two typed-array headers, slot). */
const entryOverheadBytes = 160;

export interface MemtableOptions {
  /** Entries per chunk before it splits. Default 512; tests use tiny chunks to exercise splits. */
  chunkEntriesMax?: number;
}

/** A position: chunk index and index in it. */
interface Position {
  chunk: number;
  index: number;
}

export class Memtable {
  private chunks: Entry[][] = [];
  private count = 0;
  private bytes = 0;
  private min = 0;
  private max = 0;
  private frozen = false;
  /** Bumped by every insert; cursors compare it to know whether their position is still valid. */
  private version = 0;
  private readonly chunkEntriesMax: number;

  constructor(options: MemtableOptions = {}) {
    this.chunkEntriesMax = Math.max(2, options.chunkEntriesMax ?? 512);
  }

  get entryCount(): number {
    return this.count;
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

  /** @internal */
  get modificationCount(): number {
    return this.version;
  }

  /** Refuses further puts (a frozen memtable is being flushed). */
  freeze(): void {
    this.frozen = true;
  }

  get isFrozen(): boolean {
    return this.frozen;
  }

  put(entry: Entry): void {
    if (this.frozen) throw new TwillError(ErrorCodes.Internal, "put into a frozen memtable");
    const bad = entryDefect(entry);
    if (bad !== undefined)
      throw new TwillError(ErrorCodes.Internal, `memtable got a malformed entry: ${bad}`);
    this.version++;
    const chunks = this.chunks;
    if (chunks.length === 0) {
      chunks.push([entry]);
      this.added(entry);
      return;
    }
    const c = this.chunkFor(entry.key, entry.lsn);
    const chunk = chunks[c]!;
    const i = lowerBound(chunk, entry.key, entry.lsn);
    const existing = chunk[i];
    if (existing !== undefined && existing.lsn === entry.lsn && compareBytes(existing.key, entry.key) === 0) {
      chunk[i] = entry;
      this.bytes += entry.value.length - existing.value.length;
      return;
    }
    if (i === chunk.length) chunk.push(entry);
    else chunk.splice(i, 0, entry);
    this.added(entry);
    if (chunk.length > this.chunkEntriesMax) chunks.splice(c + 1, 0, chunk.splice(chunk.length >>> 1));
  }

  private added(entry: Entry): void {
    this.count++;
    this.bytes += entry.key.length + entry.value.length + entryOverheadBytes;
    if (this.min === 0 || entry.lsn < this.min) this.min = entry.lsn;
    if (entry.lsn > this.max) this.max = entry.lsn;
  }

  /** Index of the chunk where (key, lsn) belongs: the last whose first entry is <= it (0 if none). */
  private chunkFor(key: Uint8Array, lsn: number): number {
    const chunks = this.chunks;
    let lo = 0;
    let hi = chunks.length - 1;
    let found = 0;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const first = chunks[mid]![0]!;
      const c = compareBytes(first.key, key);
      if (c < 0 || (c === 0 && first.lsn >= lsn)) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found;
  }

  /** @internal Position of the first entry >= (key, lsn) in internal order; chunk === chunks.length at the end. */
  seek(key: Uint8Array, lsn: number): Position {
    const chunks = this.chunks;
    if (chunks.length === 0) return { chunk: 0, index: 0 };
    const c = this.chunkFor(key, lsn);
    const i = lowerBound(chunks[c]!, key, lsn);
    return i < chunks[c]!.length ? { chunk: c, index: i } : { chunk: c + 1, index: 0 };
  }

  /** @internal */
  chunkAt(c: number): Entry[] | undefined {
    return this.chunks[c];
  }

  /** @internal */
  get chunkCount(): number {
    return this.chunks.length;
  }

  /** The newest version of `key` with lsn <= snapshotLsn (possibly a Delete), or undefined. */
  get(key: Uint8Array, snapshotLsn: number): Entry | undefined {
    const chunks = this.chunks;
    if (chunks.length === 0) return undefined;
    const c = this.chunkFor(key, snapshotLsn);
    let chunk = chunks[c]!;
    let i = lowerBound(chunk, key, snapshotLsn);
    if (i === chunk.length) {
      const next = chunks[c + 1];
      if (next === undefined) return undefined;
      chunk = next;
      i = 0;
    }
    const e = chunk[i]!;
    return compareBytes(e.key, key) === 0 ? e : undefined;
  }

  /** All versions of keys in [start, end), in internal order (or exactly reversed). */
  iterate(range: MemtableRange = {}): MemtableCursor {
    return new MemtableCursor(this, range);
  }
}

/** First index in `chunk` whose entry is >= (key, lsn) in internal order. */
function lowerBound(chunk: Entry[], key: Uint8Array, lsn: number): number {
  let lo = 0;
  let hi = chunk.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const e = chunk[mid]!;
    const c = compareBytes(e.key, key);
    if (c < 0 || (c === 0 && e.lsn > lsn)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** A scan over a memtable; also a synchronous iterator. See the header for what it does under concurrent puts. */
export class MemtableCursor extends SyncCursor<Entry> {
  private readonly start: Uint8Array | undefined;
  private readonly end: Uint8Array | undefined;
  private readonly reverse: boolean;
  private chunk = 0;
  private index = 0;
  private version: number;
  private last: Entry | undefined;
  private finished = false;

  constructor(
    private readonly table: Memtable,
    range: MemtableRange,
  ) {
    super();
    this.start = range.start;
    this.end = range.end;
    this.reverse = range.reverse ?? false;
    this.version = table.modificationCount;
    if (this.start !== undefined && this.end !== undefined && compareBytes(this.start, this.end) >= 0) {
      this.finished = true;
      return;
    }
    if (this.reverse) {
      // Last entry with key < end: one before the first entry >= (end, first version).
      if (this.end === undefined) this.atEnd();
      else this.setPosition(table.seek(this.end, lsnMax));
      this.stepBack();
    } else if (this.start !== undefined) {
      this.setPosition(table.seek(this.start, lsnMax));
    }
  }

  private setPosition(p: Position): void {
    this.chunk = p.chunk;
    this.index = p.index;
  }

  private atEnd(): void {
    this.chunk = this.table.chunkCount;
    this.index = 0;
  }

  /** Moves one entry back; chunk becomes -1 before the first entry. */
  private stepBack(): void {
    if (this.index > 0) {
      this.index--;
      return;
    }
    this.chunk--;
    const chunk = this.table.chunkAt(this.chunk);
    this.index = chunk === undefined ? 0 : chunk.length - 1;
  }

  /** Finds the position again after puts moved entries: just past the last entry returned. */
  private reseek(): void {
    this.version = this.table.modificationCount;
    const last = this.last;
    if (last === undefined) {
      // Nothing returned yet: start over from the range bound.
      if (this.reverse) {
        if (this.end === undefined) this.atEnd();
        else this.setPosition(this.table.seek(this.end, lsnMax));
        this.stepBack();
      } else {
        this.setPosition(
          this.start === undefined ? { chunk: 0, index: 0 } : this.table.seek(this.start, lsnMax),
        );
      }
      return;
    }
    const p = this.table.seek(last.key, last.lsn);
    this.setPosition(p);
    if (this.reverse) {
      this.stepBack();
    } else {
      const e = this.table.chunkAt(p.chunk)?.[p.index];
      // The entry at p is `last` (or its replacement with the same key and lsn): step past it.
      if (e !== undefined && e.lsn === last.lsn && compareBytes(e.key, last.key) === 0)
        this.stepForwardPosition();
    }
  }

  private stepForwardPosition(): void {
    const chunk = this.table.chunkAt(this.chunk);
    if (chunk !== undefined && this.index + 1 < chunk.length) {
      this.index++;
    } else {
      this.chunk++;
      this.index = 0;
    }
  }

  nextSync(): Entry | undefined {
    if (this.finished) return undefined;
    if (this.version !== this.table.modificationCount) this.reseek();
    const e = this.table.chunkAt(this.chunk)?.[this.index];
    if (e === undefined) {
      this.finished = true;
      return undefined;
    }
    if (this.reverse) {
      if (this.start !== undefined && compareBytes(e.key, this.start) < 0) {
        this.finished = true;
        return undefined;
      }
      this.stepBack();
    } else {
      if (this.end !== undefined && compareBytes(e.key, this.end) >= 0) {
        this.finished = true;
        return undefined;
      }
      this.stepForwardPosition();
    }
    this.last = e;
    return e;
  }

  override close(): void {
    this.finished = true;
    this.last = undefined;
  }
}
