/**
 * The storage seam: the only interface through which Twill DB does I/O. Two halves.
 *
 * Objects: immutable blobs addressed by key (SSTs, manifests, checkpoints).
 *   - Keys are 1..512 characters of `[A-Za-z0-9._~/=+-]`, with no empty, `.` or `..` segment and no leading or
 *     trailing `/`. Each backend maps them 1:1 (file: a path below `obj/`; s3: `<prefix>/obj/<key>`).
 *   - `write` replaces atomically and is durable when it resolves: a reader sees the old bytes or the new, never
 *     a mix, and a crash after the resolve keeps the new bytes.
 *   - `writeIfAbsent` is the compare-and-swap primitive: of N writers racing on one key (threads, processes or
 *     machines), exactly one gets `true` and its bytes are what every later read returns. A retried attempt never
 *     reports a lost race for its own earlier attempt.
 *   - `read` of a missing key rejects with a TwillError whose code is NOT_FOUND. A range returns bytes
 *     [offset, min(offset + length, size)); `offset === size` gives an empty array; `offset > size` is
 *     INVALID_ARGUMENT.
 *   - `list(prefix)` yields every key starting with `prefix`, in ascending byte order, across all pages.
 *   - `delete` is idempotent: deleting a missing key succeeds.
 *
 * Log: an append-only sequence of frames per log name, each frame numbered by a log sequence number (LSN).
 *   - LSNs are consecutive integers starting at 1. `append` assigns the next LSNs to its frames in order and
 *     resolves only when all of them are durable (file: fdatasync, one per append; s3: one conditional PUT).
 *   - `read(fromLsn)` yields every retained frame with lsn >= fromLsn in order.
 *   - `truncate(beforeLsn)` allows the backend to drop frames with lsn < beforeLsn (it may keep some; `read`
 *     still skips them when asked to start later). The end of the log is never forgotten.
 *   - One writer per log: a second writer is refused (file: a lock, LOCKED) or fenced (s3: its append collides
 *     with the first writer's object, FENCED). Read-only handles take no lock.
 */

export interface ByteRange {
  /** First byte to read, 0-based. */
  offset: number;
  /** Bytes to read; the read is cut at the end of the object. Omitted: to the end. */
  length?: number;
}

export type StorageKind = "memory" | "file" | "s3";

export interface ObjectStore {
  read(key: string, range?: ByteRange): Promise<Uint8Array>;
  /**
   * Optional: reads bytes [offset, offset + length) of an object into into[0, length), synchronously, and returns
   * how many it read (fewer only at the end of the object). `length` defaults to `into.length` and must not
   * exceed it (a recycled buffer is often larger than the block it receives: no view is made per read). Offered
   * only where a ranged read is a local pread or a copy (file://, memory://), so that a block-cache miss costs
   * neither a promise nor a fresh buffer; absent on s3://. Same errors as `read`.
   */
  readIntoSync?(key: string, offset: number, into: Uint8Array, length?: number): number;
  /** Size in bytes of an object; NOT_FOUND when it is missing. */
  size(key: string): Promise<number>;
  write(key: string, bytes: Uint8Array): Promise<void>;
  /**
   * Optional: `write(key, concatenation of chunks)` without the caller building the concatenation, so that an
   * object assembled from many parts (an SST's blocks) never exists twice in memory. Offered by file:// and
   * memory://; where absent, callers concatenate and `write`. The store keeps no reference to the chunks once the
   * promise settles, so callers may reuse their memory then.
   */
  writeChunks?(key: string, chunks: readonly Uint8Array[]): Promise<void>;
  writeIfAbsent(key: string, bytes: Uint8Array): Promise<boolean>;
  list(prefix: string): AsyncIterable<string>;
  delete(key: string): Promise<void>;
}

export interface LogFrame {
  lsn: number;
  data: Uint8Array;
}

export interface AppendResult {
  /** LSN of the first frame appended. */
  firstLsn: number;
  /** LSN the next appended frame will get (one past the last frame appended). */
  nextLsn: number;
}

export interface LogOpenOptions {
  /** Open without the writer lock: `append` and `truncate` are refused. Default false. */
  readOnly?: boolean;
}

export interface Log {
  readonly name: string;
  readonly readOnly: boolean;
  /** LSN the next appended frame will get. */
  nextLsn(): number;
  append(frames: readonly Uint8Array[]): Promise<AppendResult>;
  read(fromLsn?: number): AsyncIterable<LogFrame>;
  truncate(beforeLsn: number): Promise<void>;
  /** Releases the writer lock. Idempotent. */
  close(): Promise<void>;
}

export interface Storage extends ObjectStore {
  readonly kind: StorageKind;
  /** The URL this storage was opened with, credentials removed. */
  readonly url: string;
  openLog(name: string, options?: LogOpenOptions): Promise<Log>;
  /** Closes open logs and releases clients. Idempotent. */
  close(): Promise<void>;
}

/** Limits every backend enforces, so that a bug or bad input cannot ask for unbounded memory. */
export const StorageLimits = {
  keyLengthMax: 512,
  logNameLengthMax: 128,
  /** One frame: 64 MiB. */
  frameBytesMax: 64 * 1024 * 1024,
  /** One append: 10,000 frames. */
  appendFramesMax: 10_000,
} as const;
