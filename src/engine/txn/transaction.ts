/**
 * Transaction: a snapshot plus a write buffer. Reads see the database as of the snapshot LSN and the
 * transaction's own writes; nothing reaches the log until `commit`, which the engine checks first-committer-wins.
 */

import { ErrorCodes, TwillError } from "../../errors.js";
import { type AsyncCursor, LimitCursor } from "../lsm/cursor.js";
import type { KeyValue, ScanRange } from "../lsm/tree.js";
import { compareBytes, NEEDS_IO, type NeedsIo } from "../lsm/types.js";
import { type Write, WriteKind } from "./commit-record.js";
import { type BufferedWrite, WriteBuffer, type WriteList } from "./write-buffer.js";

/** The largest value one write may carry: half a log frame, so a write always fits a frame with its key. */
export const VALUE_BYTES_MAX = 32 * 1024 * 1024;
export const KEY_BYTES_MAX = 16 * 1024;

export interface TxnScanOptions extends ScanRange {
  /** Only keys starting with these bytes (combined with start/end). */
  prefix?: Uint8Array;
  limit?: number;
}

/** What a transaction needs from the engine; kept narrow so the two can be tested apart. */
export interface TxnHost {
  get(key: Uint8Array, snapshotLsn: number): Promise<Uint8Array | undefined>;
  scan(range: ScanRange, snapshotLsn: number): AsyncCursor<KeyValue>;
  /** Memory-only read at a snapshot, or NEEDS_IO; optional (a host without it makes `getSync` say NEEDS_IO). */
  getSync?(key: Uint8Array, snapshotLsn: number): Uint8Array | undefined | NeedsIo;
  /**
   * Commits `txn`: the promise settles with the commit LSN or the error. Before it settles, the host ends the
   * transaction with `txn.finishCommit` (exactly once, success or not): the transaction then needs no async
   * wrapper of its own, one promise and its state fewer per commit.
   */
  commit(txn: Transaction): Promise<number>;
  release(txn: Transaction): void;
}

/** A key as a latin1 string (the memtable's, whose short-key path beats a Buffer's latin1 decoding ~4x). */
export { keyString } from "../lsm/memtable.js";

/** Smallest key greater than every key starting with `prefix`; undefined when there is none (all 0xff). */
export function prefixEnd(prefix: Uint8Array): Uint8Array | undefined {
  for (let i = prefix.length - 1; i >= 0; i--) {
    if (prefix[i]! < 0xff) {
      const end = prefix.slice(0, i + 1);
      end[i]!++;
      return end;
    }
  }
  return undefined;
}

function checkKey(key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || key.length === 0 || key.length > KEY_BYTES_MAX) {
    throw new TwillError(
      ErrorCodes.InvalidArgument,
      `a key must be a Uint8Array of 1..${KEY_BYTES_MAX} bytes`,
    );
  }
}

export class Transaction {
  private readonly writes = new WriteBuffer();
  private state: "open" | "committing" | "committed" | "aborted" = "open";

  constructor(
    private readonly host: TxnHost,
    /** The transaction reads every commit with lsn <= snapshotLsn and nothing later. */
    readonly snapshotLsn: number,
  ) {}

  get isOpen(): boolean {
    return this.state === "open";
  }

  get writeCount(): number {
    return this.writes.size;
  }

  /** @internal Whether this transaction writes `key` (for the engine's conflict check against queued commits). */
  hasWrite(key: Uint8Array): boolean {
    return this.writes.has(key);
  }

  /** @internal `hasWrite` for a key given as its latin1 string. */
  hasWriteString(key: string): boolean {
    return this.writes.hasString(key);
  }

  private checkOpen(): void {
    if (this.state !== "open") {
      throw new TwillError(ErrorCodes.InvalidArgument, `the transaction is ${this.state}; begin a new one`, {
        sqlstate: "25P02",
      });
    }
  }

  async get(key: Uint8Array): Promise<Uint8Array | undefined> {
    this.checkOpen();
    checkKey(key);
    const own = this.writes.get(key);
    if (own) return own.kind === WriteKind.Put ? own.value : undefined;
    return this.host.get(key, this.snapshotLsn);
  }

  /**
   * `get` from memory only: the value, undefined, or NEEDS_IO when a block must be read (then call `get`). A
   * transaction that has written nothing skips the probe of its write set.
   */
  getSync(key: Uint8Array): Uint8Array | undefined | NeedsIo {
    this.checkOpen();
    checkKey(key);
    if (this.writes.size > 0) {
      const own = this.writes.get(key);
      if (own) return own.kind === WriteKind.Put ? own.value : undefined;
    }
    return this.host.getSync === undefined ? NEEDS_IO : this.host.getSync(key, this.snapshotLsn);
  }

  put(key: Uint8Array, value: Uint8Array): void {
    this.checkOpen();
    checkKey(key);
    if (!(value instanceof Uint8Array) || value.length > VALUE_BYTES_MAX) {
      throw new TwillError(
        ErrorCodes.InvalidArgument,
        `a value must be a Uint8Array of at most ${VALUE_BYTES_MAX} bytes`,
      );
    }
    // Copy key and value into one allocation: one ArrayBuffer per write instead of two, which is most of a small
    // row's memory in the memtable.
    this.writes.put(key, value);
  }

  delete(key: Uint8Array): void {
    this.checkOpen();
    checkKey(key);
    this.writes.delete(key);
  }

  /** Own writes in key order, one per key (cached until the next write; do not modify). */
  ownWrites(): BufferedWrite[] {
    return this.writes.sorted();
  }

  /** @internal The log frame of a commit of exactly one write, without encoding (see write-buffer.ts); else undefined. */
  oneWriteFrame(): Uint8Array | undefined {
    return this.writes.oneWriteFrame();
  }

  /** Own writes in key order without making them all at once (each `at` may return a new object). */
  ownWriteList(): WriteList {
    return this.writes.sortedList();
  }

  /** Key and value bytes written so far (overwritten ones included). */
  get ownByteCount(): number {
    return this.writes.byteCount;
  }

  /** Visible pairs in range, merging the snapshot with this transaction's own writes. */
  scan(options: TxnScanOptions = {}): AsyncIterable<KeyValue> {
    this.checkOpen();
    const range = resolveRange(options);
    if (range === undefined) return EMPTY;
    const inRange = (k: Uint8Array) =>
      (!range.start || compareBytes(k, range.start) >= 0) && (!range.end || compareBytes(k, range.end) < 0);
    const own = this.writes.size === 0 ? [] : this.ownWrites().filter((w) => inRange(w.key));
    const limit = options.limit ?? Number.POSITIVE_INFINITY;
    const snapshot = this.host.scan({ ...range, reverse: options.reverse ?? false }, this.snapshotLsn);
    // Without own writes in range the snapshot's cursor is the answer (no promise per entry).
    if (own.length === 0) return new LimitCursor(snapshot, limit);
    return mergeOwnWrites(snapshot, own, options.reverse ?? false, limit);
  }

  /** Makes the writes durable and visible; returns the commit LSN. SERIALIZATION_FAILURE (40001) on conflict. */
  commit(): Promise<number> {
    try {
      this.checkOpen();
    } catch (error) {
      return Promise.reject(error);
    }
    this.state = "committing";
    return this.host.commit(this);
  }

  /**
   * @internal For the host, once per commit before its promise settles: the transaction is committed (or failed,
   * and so aborted) and its snapshot released.
   */
  finishCommit(committed: boolean): void {
    if (this.state !== "committing") return;
    this.state = committed ? "committed" : "aborted";
    this.host.release(this);
  }

  /** Discards the writes. Idempotent; a no-op after commit. */
  abort(): void {
    if (this.state !== "open") return;
    this.state = "aborted";
    this.writes.clear();
    this.host.release(this);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.abort();
  }
}

/** Combines start/end/prefix into one [start, end) range; undefined when it is empty. */
export function resolveRange(options: TxnScanOptions): { start?: Uint8Array; end?: Uint8Array } | undefined {
  let start = options.start;
  let end = options.end;
  if (options.prefix && options.prefix.length > 0) {
    const p = options.prefix;
    const pEnd = prefixEnd(p);
    if (!start || compareBytes(p, start) > 0) start = p;
    if (pEnd && (!end || compareBytes(pEnd, end) < 0)) end = pEnd;
  }
  if (start && end && compareBytes(start, end) >= 0) return undefined;
  return { ...(start ? { start } : {}), ...(end ? { end } : {}) };
}

const EMPTY: AsyncIterable<KeyValue> = {
  async *[Symbol.asyncIterator]() {},
};

/** Merges a snapshot scan with a transaction's own writes (which win on equal keys; deletes hide keys). */
async function* mergeOwnWrites(
  snapshot: AsyncIterable<KeyValue>,
  ownAscending: Write[],
  reverse: boolean,
  limit: number,
): AsyncIterable<KeyValue> {
  if (limit <= 0) return;
  const own = reverse ? [...ownAscending].reverse() : ownAscending;
  let i = 0;
  let emitted = 0;
  const before = (a: Uint8Array, b: Uint8Array) =>
    reverse ? compareBytes(a, b) > 0 : compareBytes(a, b) < 0;
  for await (const kv of snapshot) {
    while (i < own.length && before(own[i]!.key, kv.key)) {
      const w = own[i++]!;
      if (w.kind === WriteKind.Put) {
        yield { key: w.key, value: w.value };
        if (++emitted >= limit) return;
      }
    }
    if (i < own.length && compareBytes(own[i]!.key, kv.key) === 0) {
      const w = own[i++]!;
      if (w.kind === WriteKind.Put) {
        yield { key: w.key, value: w.value };
        if (++emitted >= limit) return;
      }
      continue;
    }
    yield kv;
    if (++emitted >= limit) return;
  }
  for (; i < own.length; i++) {
    const w = own[i]!;
    if (w.kind === WriteKind.Put) {
      yield { key: w.key, value: w.value };
      if (++emitted >= limit) return;
    }
  }
}
