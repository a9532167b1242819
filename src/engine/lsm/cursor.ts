/**
 * Cursor: a pull iterator that stays synchronous while its data is in memory.
 *
 * `nextSync()` returns the next item, `undefined` at the end, or `NEEDS_IO` when the next item needs a block
 * that is not in memory; the caller then awaits `fill()` and calls `nextSync()` again. A scan over cached blocks
 * therefore runs without a single promise, while a cold one still works — the async iterator protocol would cost
 * a promise and a microtask per entry even when everything is cached.
 *
 * Contract: after `NEEDS_IO`, call `fill()` (and await it) before the next `nextSync()`; `fill()` when nothing is
 * pending resolves at once. Items are never `undefined` themselves.
 *
 * Every cursor in the LSM (memtable, SST, merge, visibility, compaction) also implements the async iterator
 * protocol through `AsyncCursor`, and `toCursor` unwraps such an object back to its cursor, so
 * `mergeIterators([reader.iterate(), memtable.iterate()])` keeps the synchronous fast path end to end.
 */

import { type Entry, NEEDS_IO, type NeedsIo } from "./types.js";

export interface Cursor<T> {
  nextSync(): T | undefined | NeedsIo;
  fill(): Promise<void>;
}

/** Anything the merge accepts as a source of entries in internal order. */
export type EntrySource = Cursor<Entry> | Iterable<Entry> | AsyncIterable<Entry>;

export function isCursor<T>(x: unknown): x is Cursor<T> {
  return (
    typeof x === "object" &&
    x !== null &&
    typeof (x as Cursor<T>).nextSync === "function" &&
    typeof (x as Cursor<T>).fill === "function"
  );
}

const done: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });
const resolvedFill = Promise.resolve();

/** A cursor that is also an async iterator (for `for await`, `yield*`). */
export abstract class AsyncCursor<T> implements Cursor<T>, AsyncIterableIterator<T> {
  abstract nextSync(): T | undefined | NeedsIo;
  abstract fill(): Promise<void>;

  async next(): Promise<IteratorResult<T, undefined>> {
    for (;;) {
      const item = this.nextSync();
      if (item === NEEDS_IO) {
        await this.fill();
        continue;
      }
      return item === undefined ? done : { done: false, value: item };
    }
  }

  /** Stops the iteration early (`break` in `for await`); later calls report the end. */
  async return(): Promise<IteratorResult<T, undefined>> {
    this.close();
    return done;
  }

  /** Releases what the cursor holds; `nextSync` reports the end afterwards. */
  close(): void {}

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/** A cursor that never needs I/O (memtables, arrays): also a plain synchronous iterator. */
export abstract class SyncCursor<T> implements Cursor<T>, IterableIterator<T> {
  abstract nextSync(): T | undefined;

  fill(): Promise<void> {
    return resolvedFill;
  }

  next(): IteratorResult<T, undefined> {
    const item = this.nextSync();
    return item === undefined ? done : { done: false, value: item };
  }

  return(): IteratorResult<T, undefined> {
    this.close();
    return done;
  }

  close(): void {}

  [Symbol.iterator](): this {
    return this;
  }
}

class IteratorCursor<T> extends SyncCursor<T> {
  private it: Iterator<T> | undefined;

  constructor(source: Iterable<T>) {
    super();
    this.it = source[Symbol.iterator]();
  }

  nextSync(): T | undefined {
    if (this.it === undefined) return undefined;
    const r = this.it.next();
    if (r.done) {
      this.it = undefined;
      return undefined;
    }
    return r.value;
  }

  override close(): void {
    this.it?.return?.();
    this.it = undefined;
  }
}

class AsyncIteratorCursor<T> extends AsyncCursor<T> {
  private it: AsyncIterator<T> | undefined;
  private buffered: T | undefined;

  constructor(source: AsyncIterable<T>) {
    super();
    this.it = source[Symbol.asyncIterator]();
  }

  nextSync(): T | undefined | NeedsIo {
    const item = this.buffered;
    if (item !== undefined) {
      this.buffered = undefined;
      return item;
    }
    return this.it === undefined ? undefined : NEEDS_IO;
  }

  async fill(): Promise<void> {
    if (this.buffered !== undefined || this.it === undefined) return;
    const r = await this.it.next();
    if (r.done) this.it = undefined;
    else this.buffered = r.value;
  }

  override close(): void {
    void this.it?.return?.();
    this.it = undefined;
    this.buffered = undefined;
  }
}

/** Adapts any entry source to a cursor; cursors (including every LSM iterator) pass through unchanged. */
export function toCursor<T>(source: Cursor<T> | Iterable<T> | AsyncIterable<T>): Cursor<T> {
  if (isCursor<T>(source)) return source;
  if (typeof (source as Iterable<T>)[Symbol.iterator] === "function")
    return new IteratorCursor(source as Iterable<T>);
  if (typeof (source as AsyncIterable<T>)[Symbol.asyncIterator] === "function") {
    return new AsyncIteratorCursor(source as AsyncIterable<T>);
  }
  throw new TypeError("not a cursor, iterable or async iterable");
}

/** A cursor over an array (already in the order wanted). */
export class ArrayCursor<T> extends SyncCursor<T> {
  private pos = 0;

  constructor(private items: readonly T[]) {
    super();
  }

  nextSync(): T | undefined {
    return this.pos < this.items.length ? this.items[this.pos++] : undefined;
  }

  override close(): void {
    this.items = [];
  }
}

/**
 * The sources one after the other, each opened only when the previous one is exhausted (for the SSTs of one
 * level, which do not overlap: opening an SST reader costs a read). A source that returns a promise makes
 * `nextSync` say NEEDS_IO until `fill` has awaited it.
 */
export class ConcatCursor<T> extends AsyncCursor<T> {
  private index = 0;
  private current: Cursor<T> | undefined;
  private opening: Promise<Cursor<T>> | undefined;

  constructor(private readonly sources: readonly (() => Cursor<T> | Promise<Cursor<T>>)[]) {
    super();
  }

  nextSync(): T | undefined | NeedsIo {
    for (;;) {
      if (this.current === undefined) {
        if (this.opening !== undefined) return NEEDS_IO;
        const open = this.sources[this.index];
        if (open === undefined) return undefined;
        const opened = open();
        if (opened instanceof Promise) {
          this.opening = opened;
          return NEEDS_IO;
        }
        this.current = opened;
      }
      const item = this.current.nextSync();
      if (item !== undefined) return item;
      (this.current as { close?: () => void }).close?.();
      this.current = undefined;
      this.index++;
    }
  }

  async fill(): Promise<void> {
    if (this.opening !== undefined) {
      try {
        this.current = await this.opening;
      } finally {
        this.opening = undefined;
      }
      return;
    }
    await this.current?.fill();
  }

  override close(): void {
    (this.current as { close?: () => void } | undefined)?.close?.();
    this.current = undefined;
    this.index = this.sources.length;
  }
}

/** Drains a cursor into an array (tests, small scans). */
export async function collect<T>(source: Cursor<T> | Iterable<T> | AsyncIterable<T>): Promise<T[]> {
  const cursor = toCursor(source);
  const out: T[] = [];
  for (;;) {
    const item = cursor.nextSync();
    if (item === NEEDS_IO) await cursor.fill();
    else if (item === undefined) return out;
    else out.push(item);
  }
}

/** Passes through at most `limit` items, then ends (and closes the source). */
export class LimitCursor<T> extends AsyncCursor<T> {
  private emitted = 0;

  constructor(
    private readonly source: Cursor<T> & { close?: () => void },
    private readonly limit: number,
  ) {
    super();
    if (limit <= 0) source.close?.();
  }

  nextSync(): T | undefined | NeedsIo {
    if (this.emitted >= this.limit) return undefined;
    const item = this.source.nextSync();
    if (item === undefined || item === NEEDS_IO) return item;
    if (++this.emitted >= this.limit) this.source.close?.();
    return item;
  }

  fill(): Promise<void> {
    return this.source.fill();
  }

  override close(): void {
    this.emitted = this.limit;
    this.source.close?.();
  }
}
