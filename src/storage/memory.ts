/**
 * memory:// — objects and logs in this process's heap. For tests and scratch databases.
 *
 * `memory://name` names a store shared by every `openStorage("memory://name")` in the process until
 * `dropMemoryStore(name)`, so a test can close and reopen a database; bare `memory://` is a fresh private store.
 * Bytes are copied in and out so that a caller mutating its buffer cannot change what was stored.
 */

import { ErrorCodes, notFound, TwillError } from "../errors.js";
import { concatChunks } from "../util/concat-chunks.js";
import {
  rangeNotSatisfiable,
  validateFrames,
  validateIntoLength,
  validateKey,
  validateLogName,
  validatePrefix,
  validateRange,
} from "./keys.js";
import type { AppendResult, ByteRange, Log, LogFrame, LogOpenOptions, Storage } from "./types.js";

interface MemoryLogState {
  frames: LogFrame[];
  nextLsn: number;
  writerHeld: boolean;
}

interface MemoryState {
  objects: Map<string, Uint8Array>;
  logs: Map<string, MemoryLogState>;
}

const namedStores = new Map<string, MemoryState>();

/** Forgets a named memory:// store (its bytes are freed once no storage handle uses it). */
export function dropMemoryStore(name: string): void {
  namedStores.delete(name);
}

export function openMemoryStorage(name: string): Storage {
  let state: MemoryState | undefined = name === "" ? undefined : namedStores.get(name);
  if (!state) {
    state = { objects: new Map(), logs: new Map() };
    if (name !== "") namedStores.set(name, state);
  }
  return new MemoryStorage(state, name === "" ? "memory://" : `memory://${name}`);
}

class MemoryStorage implements Storage {
  readonly kind = "memory" as const;
  private closed = false;
  private readonly openLogs = new Set<MemoryLog>();

  constructor(
    private readonly state: MemoryState,
    readonly url: string,
  ) {}

  private checkOpen(): void {
    if (this.closed) throw new TwillError(ErrorCodes.Closed, `storage ${this.url} is closed`);
  }

  async read(key: string, range?: ByteRange): Promise<Uint8Array> {
    this.checkOpen();
    validateKey(key);
    const bytes = this.state.objects.get(key);
    if (!bytes) throw notFound(`object ${JSON.stringify(key)}`);
    if (!range) return bytes.slice();
    validateRange(range.offset, range.length);
    if (range.offset > bytes.length) throw rangeNotSatisfiable(key, range.offset, bytes.length);
    const end =
      range.length === undefined ? bytes.length : Math.min(bytes.length, range.offset + range.length);
    return bytes.slice(range.offset, end);
  }

  readIntoSync(key: string, offset: number, into: Uint8Array, length: number = into.length): number {
    this.checkOpen();
    validateKey(key);
    const bytes = this.state.objects.get(key);
    if (!bytes) throw notFound(`object ${JSON.stringify(key)}`);
    validateIntoLength(length, into);
    validateRange(offset, length);
    if (offset > bytes.length) throw rangeNotSatisfiable(key, offset, bytes.length);
    const end = Math.min(bytes.length, offset + length);
    into.set(bytes.subarray(offset, end));
    return end - offset;
  }

  async size(key: string): Promise<number> {
    this.checkOpen();
    validateKey(key);
    const bytes = this.state.objects.get(key);
    if (!bytes) throw notFound(`object ${JSON.stringify(key)}`);
    return bytes.length;
  }

  async write(key: string, bytes: Uint8Array): Promise<void> {
    this.checkOpen();
    validateKey(key);
    this.state.objects.set(key, Uint8Array.from(bytes));
  }

  async writeChunks(key: string, chunks: readonly Uint8Array[]): Promise<void> {
    this.checkOpen();
    validateKey(key);
    this.state.objects.set(key, concatChunks(chunks));
  }

  async writeIfAbsent(key: string, bytes: Uint8Array): Promise<boolean> {
    this.checkOpen();
    validateKey(key);
    if (this.state.objects.has(key)) return false;
    this.state.objects.set(key, Uint8Array.from(bytes));
    return true;
  }

  async *list(prefix: string): AsyncIterable<string> {
    this.checkOpen();
    validatePrefix(prefix);
    const keys = [...this.state.objects.keys()].filter((k) => k.startsWith(prefix)).sort(compareKeys);
    yield* keys;
  }

  async delete(key: string): Promise<void> {
    this.checkOpen();
    validateKey(key);
    this.state.objects.delete(key);
  }

  async openLog(name: string, options: LogOpenOptions = {}): Promise<Log> {
    this.checkOpen();
    validateLogName(name);
    let log = this.state.logs.get(name);
    if (!log) {
      log = { frames: [], nextLsn: 1, writerHeld: false };
      this.state.logs.set(name, log);
    }
    const readOnly = options.readOnly ?? false;
    if (!readOnly) {
      if (log.writerHeld) {
        throw new TwillError(ErrorCodes.Locked, `log ${JSON.stringify(name)} is already open for writing`, {
          hint: "close the other writer first; one writer per database",
        });
      }
      log.writerHeld = true;
    }
    const handle = new MemoryLog(name, log, readOnly, () => this.openLogs.delete(handle));
    this.openLogs.add(handle);
    return handle;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    for (const log of [...this.openLogs]) await log.close();
    this.closed = true;
  }
}

class MemoryLog implements Log {
  private closed = false;

  constructor(
    readonly name: string,
    private readonly state: MemoryLogState,
    readonly readOnly: boolean,
    private readonly onClose: () => void,
  ) {}

  nextLsn(): number {
    return this.state.nextLsn;
  }

  private checkWritable(op: string): void {
    if (this.closed) throw new TwillError(ErrorCodes.Closed, `log ${JSON.stringify(this.name)} is closed`);
    if (this.readOnly) {
      throw new TwillError(
        ErrorCodes.InvalidArgument,
        `cannot ${op} log ${JSON.stringify(this.name)}: opened read-only`,
      );
    }
  }

  async append(frames: readonly Uint8Array[]): Promise<AppendResult> {
    this.checkWritable("append to");
    validateFrames(frames);
    const firstLsn = this.state.nextLsn;
    for (const data of frames)
      this.state.frames.push({ lsn: this.state.nextLsn++, data: Uint8Array.from(data) });
    return { firstLsn, nextLsn: this.state.nextLsn };
  }

  async *read(fromLsn = 1): AsyncIterable<LogFrame> {
    if (this.closed) throw new TwillError(ErrorCodes.Closed, `log ${JSON.stringify(this.name)} is closed`);
    // A snapshot of the array: frames appended while reading may or may not be seen, none is skipped.
    for (const frame of [...this.state.frames]) {
      if (frame.lsn >= fromLsn) yield { lsn: frame.lsn, data: frame.data.slice() };
    }
  }

  async truncate(beforeLsn: number): Promise<void> {
    this.checkWritable("truncate");
    const keepFrom = this.state.frames.findIndex((f) => f.lsn >= beforeLsn);
    this.state.frames.splice(0, keepFrom === -1 ? this.state.frames.length : keepFrom);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!this.readOnly) this.state.writerHeld = false;
    this.onClose();
  }
}

/** Ascending order by UTF-8 bytes, which is S3's listing order; keys are ASCII so code units suffice. */
export function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
