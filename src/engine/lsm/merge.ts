/**
 * Merging sorted entry streams, and the two ways of collapsing versions: for readers (`visibleEntries`) and for
 * compaction (`compactEntries`).
 *
 * Invariants:
 *   - `mergeIterators` yields the union of its sources in internal order (or exactly reversed when `reverse`,
 *     in which case every source must itself be reversed). When several sources hold the same (key, lsn), the
 *     one listed first wins and the others are dropped — list newer layers (memtable, then newer SSTs) first.
 *   - `visibleEntries` yields, per key, the newest version with lsn <= snapshot if it is a Put, in key order.
 *   - `compactEntries` keeps, per key, the newest version and the newest version visible to each retained
 *     snapshot, so every retained snapshot (and every future reader) reads exactly what it read before; with
 *     `dropTombstones` it also drops Deletes with no older kept version beneath them, which is only correct when
 *     the merge covers every older version of the key (the bottom level).
 *   - All three are cursors: they run synchronously while their sources do, and also iterate with `for await`.
 */

import { ErrorCodes, TwillError } from "../../errors.js";
import { AsyncCursor, type Cursor, type EntrySource, toCursor } from "./cursor.js";
import {
  bytesEqual,
  compareBytes,
  describeKey,
  type Entry,
  EntryKind,
  NEEDS_IO,
  type NeedsIo,
} from "./types.js";

export interface MergeOptions {
  /** Sources (and so the output) run in exactly reversed internal order. */
  reverse?: boolean;
}

/** k-way merge over a binary heap of source indexes, ordered by their head entries (ties: lower index first). */
export class MergeCursor extends AsyncCursor<Entry> {
  private readonly sources: Cursor<Entry>[];
  private readonly heads: (Entry | undefined)[];
  private readonly heap: Int32Array;
  private heapSize = 0;
  /** Sources whose next head must be pulled before the heap top can be trusted. */
  private readonly pull: Int32Array;
  private pullCount: number;
  /** 1 for internal order, -1 for reversed. */
  private readonly direction: number;
  private last: Entry | undefined;

  constructor(sources: readonly EntrySource[], options: MergeOptions = {}) {
    super();
    this.sources = sources.map((s) => toCursor(s));
    const k = this.sources.length;
    this.heads = new Array(k).fill(undefined);
    this.heap = new Int32Array(k);
    this.pull = new Int32Array(k);
    for (let i = 0; i < k; i++) this.pull[i] = i;
    this.pullCount = k;
    this.direction = options.reverse ? -1 : 1;
  }

  /** Whether source a's head comes before source b's. */
  private before(a: number, b: number): boolean {
    const x = this.heads[a]!;
    const y = this.heads[b]!;
    let c = compareBytes(x.key, y.key);
    if (c === 0) c = y.lsn - x.lsn;
    c *= this.direction;
    return c < 0 || (c === 0 && a < b);
  }

  private push(source: number): void {
    const heap = this.heap;
    let i = this.heapSize++;
    while (i > 0) {
      const parent = (i - 1) >>> 1;
      if (!this.before(source, heap[parent]!)) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = source;
  }

  private popTop(): void {
    const heap = this.heap;
    const n = --this.heapSize;
    if (n === 0) return;
    const moved = heap[n]!;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && this.before(heap[right]!, heap[left]!) ? right : left;
      if (!this.before(heap[child]!, moved)) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = moved;
  }

  nextSync(): Entry | undefined | NeedsIo {
    for (;;) {
      if (this.pullCount > 0) {
        // Pull every source that owes a head; the ones that need I/O stay listed for `fill`, all at once.
        let waiting = 0;
        for (let p = 0; p < this.pullCount; p++) {
          const s = this.pull[p]!;
          const head = this.sources[s]!.nextSync();
          if (head === NEEDS_IO) {
            this.pull[waiting++] = s;
          } else if (head !== undefined) {
            this.heads[s] = head;
            this.push(s);
          }
        }
        this.pullCount = waiting;
        if (waiting > 0) return NEEDS_IO;
      }
      if (this.heapSize === 0) return undefined;
      const top = this.heap[0]!;
      const entry = this.heads[top]!;
      this.heads[top] = undefined;
      this.popTop();
      this.pull[this.pullCount++] = top;
      const last = this.last;
      // The same version from a later-listed source: the first one already went out.
      if (last !== undefined && last.lsn === entry.lsn && bytesEqual(last.key, entry.key)) continue;
      this.last = entry;
      return entry;
    }
  }

  async fill(): Promise<void> {
    if (this.pullCount === 1) return this.sources[this.pull[0]!]!.fill();
    const fills: Promise<void>[] = [];
    for (let p = 0; p < this.pullCount; p++) fills.push(this.sources[this.pull[p]!]!.fill());
    await Promise.all(fills);
  }

  override close(): void {
    for (const s of this.sources) (s as { close?: () => void }).close?.();
    this.heapSize = 0;
    this.pullCount = 0;
  }
}

/** Merges sources in internal order (or all reversed) into one stream; see the header for duplicates. */
export function mergeIterators(sources: readonly EntrySource[], options: MergeOptions = {}): MergeCursor {
  return new MergeCursor(sources, options);
}

/** The versions a reader at `snapshotLsn` sees: per key the newest version <= snapshot, if it is a Put. */
export class VisibleCursor extends AsyncCursor<Entry> {
  private readonly source: Cursor<Entry>;
  private readonly reverse: boolean;
  /** Forward: the key already decided. Reverse: the key being collected. */
  private key: Uint8Array | undefined;
  /** Reverse: the newest version <= snapshot of `key` so far (versions arrive oldest first). */
  private best: Entry | undefined;
  private ended = false;

  constructor(
    source: EntrySource,
    private readonly snapshotLsn: number,
    options: MergeOptions = {},
  ) {
    super();
    this.source = toCursor(source);
    this.reverse = options.reverse ?? false;
  }

  nextSync(): Entry | undefined | NeedsIo {
    const snapshot = this.snapshotLsn;
    if (!this.reverse) {
      for (;;) {
        const e = this.source.nextSync();
        if (e === undefined || e === NEEDS_IO) return e;
        if (e.lsn > snapshot) continue;
        if (this.key !== undefined && bytesEqual(e.key, this.key)) continue;
        this.key = e.key;
        if (e.kind === EntryKind.Put) return e;
      }
    }
    for (;;) {
      if (this.ended) return undefined;
      const e = this.source.nextSync();
      if (e === NEEDS_IO) return e;
      if (e === undefined) {
        this.ended = true;
        const out = this.best;
        this.best = undefined;
        return out !== undefined && out.kind === EntryKind.Put ? out : undefined;
      }
      if (this.key !== undefined && bytesEqual(e.key, this.key)) {
        if (e.lsn <= snapshot) this.best = e;
        continue;
      }
      const out = this.best;
      this.key = e.key;
      this.best = e.lsn <= snapshot ? e : undefined;
      if (out !== undefined && out.kind === EntryKind.Put) return out;
    }
  }

  fill(): Promise<void> {
    return this.source.fill();
  }

  override close(): void {
    (this.source as { close?: () => void }).close?.();
    this.ended = true;
    this.best = undefined;
  }
}

/**
 * Collapses merged versions to what a reader at `snapshotLsn` sees, dropping deleted keys. Yields Put entries
 * (`key`, `value`, `lsn`) in key order, descending when `reverse` (the source must then be reversed too).
 */
export function visibleEntries(
  source: EntrySource,
  snapshotLsn: number,
  options: MergeOptions = {},
): VisibleCursor {
  return new VisibleCursor(source, snapshotLsn, options);
}

export interface CompactOptions {
  /** LSNs of live snapshots (readers, child branches' fork points), ascending. */
  retainLsns: readonly number[];
  /** Drop Deletes that no retained snapshot needs: only when the merge holds every older version (bottom level). */
  dropTombstones: boolean;
}

/** See `compactEntries`. Forward only. Asserts its input is in strictly increasing internal order. */
export class CompactCursor extends AsyncCursor<Entry> {
  private readonly source: Cursor<Entry>;
  private readonly retain: Float64Array;
  private readonly dropTombstones: boolean;
  /** Kept versions of the current key, newest first. */
  private group: Entry[] = [];
  private groupKey: Uint8Array | undefined;
  /** LSN of the version just newer than the next one, in the input (kept or not). */
  private newerLsn = 0;
  private out: Entry[] = [];
  private outPos = 0;
  private ended = false;

  constructor(source: EntrySource, options: CompactOptions) {
    super();
    this.source = toCursor(source);
    const retain = options.retainLsns;
    for (let i = 1; i < retain.length; i++) {
      if (!(retain[i]! >= retain[i - 1]!)) {
        throw new TwillError(ErrorCodes.Internal, "compactEntries: retainLsns must be ascending");
      }
    }
    this.retain = Float64Array.from(retain);
    this.dropTombstones = options.dropTombstones;
  }

  /** Whether some retained snapshot s has lo <= s < hi, i.e. sees the version with lsn lo shadowed at hi. */
  private retainedBetween(lo: number, hi: number): boolean {
    const retain = this.retain;
    let a = 0;
    let b = retain.length;
    while (a < b) {
      const mid = (a + b) >>> 1;
      if (retain[mid]! < lo) a = mid + 1;
      else b = mid;
    }
    return a < retain.length && retain[a]! < hi;
  }

  /** Moves the finished group to `out` (which the caller has drained). */
  private closeGroup(): void {
    const group = this.group;
    if (this.dropTombstones) {
      // A Delete with nothing older kept beneath it hides nothing: every snapshot reads "absent" without it. But
      // while a snapshot older than the Delete lives, the Delete is the only trace that the key was written after
      // that snapshot, and first-committer-wins needs it to refuse that transaction's write of the key.
      const oldestSnapshot = this.retain.length > 0 ? this.retain[0]! : Number.POSITIVE_INFINITY;
      while (group.length > 0) {
        const oldest = group[group.length - 1]!;
        if (oldest.kind !== EntryKind.Delete || oldestSnapshot < oldest.lsn) break;
        group.pop();
      }
    }
    this.group = this.out;
    this.group.length = 0;
    this.out = group;
    this.outPos = 0;
  }

  nextSync(): Entry | undefined | NeedsIo {
    for (;;) {
      if (this.outPos < this.out.length) return this.out[this.outPos++]!;
      if (this.ended) return undefined;
      const e = this.source.nextSync();
      if (e === NEEDS_IO) return e;
      if (e === undefined) {
        this.ended = true;
        this.closeGroup();
        continue;
      }
      const c = this.groupKey === undefined ? 1 : compareBytes(e.key, this.groupKey);
      if (c > 0) {
        this.closeGroup();
        this.groupKey = e.key;
        this.group.push(e); // the newest version of a key is always kept
        this.newerLsn = e.lsn;
        continue;
      }
      if (c < 0 || e.lsn >= this.newerLsn) {
        throw new TwillError(
          ErrorCodes.Internal,
          `compaction input out of internal order at (${describeKey(e.key)}, lsn ${e.lsn})`,
        );
      }
      if (this.retainedBetween(e.lsn, this.newerLsn)) this.group.push(e);
      this.newerLsn = e.lsn;
    }
  }

  fill(): Promise<void> {
    return this.source.fill();
  }

  override close(): void {
    (this.source as { close?: () => void }).close?.();
    this.ended = true;
    this.out = [];
    this.group = [];
  }
}

/**
 * Drops versions no reader can see any more: keeps, per key, the newest version and the newest version visible
 * to each retained snapshot; with `dropTombstones`, also Deletes with no kept version beneath them. Input and
 * output in internal order.
 */
export function compactEntries(source: EntrySource, options: CompactOptions): CompactCursor {
  return new CompactCursor(source, options);
}
