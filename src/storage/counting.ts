/**
 * CountingStorage: a pass-through Storage that counts requests and bytes, so tests can prove claims such as
 * "16 concurrent commits cost far fewer syncs than 16" (each log append is one sync) and benchmarks can report
 * bytes written per operation.
 */

import type { AppendResult, ByteRange, Log, LogFrame, LogOpenOptions, Storage } from "./types.js";

export interface StorageCounters {
  reads: number;
  readBytes: number;
  sizes: number;
  writes: number;
  conditionalWrites: number;
  writeBytes: number;
  lists: number;
  deletes: number;
  /** Log appends; each one is one durable sync (file) or one PUT (s3). */
  appends: number;
  appendFrames: number;
  appendBytes: number;
  logReads: number;
  truncates: number;
}

function zeroCounters(): StorageCounters {
  return {
    reads: 0,
    readBytes: 0,
    sizes: 0,
    writes: 0,
    conditionalWrites: 0,
    writeBytes: 0,
    lists: 0,
    deletes: 0,
    appends: 0,
    appendFrames: 0,
    appendBytes: 0,
    logReads: 0,
    truncates: 0,
  };
}

export class CountingStorage implements Storage {
  readonly counters: StorageCounters = zeroCounters();

  constructor(readonly inner: Storage) {
    const readIntoSync = inner.readIntoSync?.bind(inner);
    if (readIntoSync !== undefined) {
      this.readIntoSync = (key, offset, into, length) => {
        this.counters.reads++;
        const n = readIntoSync(key, offset, into, length);
        this.counters.readBytes += n;
        return n;
      };
    }
    const writeChunks = inner.writeChunks?.bind(inner);
    if (writeChunks !== undefined) {
      this.writeChunks = (key, chunks) => {
        this.counters.writes++;
        for (const c of chunks) this.counters.writeBytes += c.length;
        return writeChunks(key, chunks);
      };
    }
  }

  get kind() {
    return this.inner.kind;
  }
  get url() {
    return this.inner.url;
  }

  /** Returns the counters so far and starts again from zero. */
  reset(): StorageCounters {
    const snapshot = { ...this.counters };
    Object.assign(this.counters, zeroCounters());
    return snapshot;
  }

  /** Present when the wrapped store offers it, counted as a read. */
  readonly readIntoSync?: (key: string, offset: number, into: Uint8Array, length?: number) => number;
  /** Present when the wrapped store offers it, counted as a write. */
  readonly writeChunks?: (key: string, chunks: readonly Uint8Array[]) => Promise<void>;

  async read(key: string, range?: ByteRange): Promise<Uint8Array> {
    this.counters.reads++;
    const bytes = await this.inner.read(key, range);
    this.counters.readBytes += bytes.length;
    return bytes;
  }
  size(key: string): Promise<number> {
    this.counters.sizes++;
    return this.inner.size(key);
  }
  write(key: string, bytes: Uint8Array): Promise<void> {
    this.counters.writes++;
    this.counters.writeBytes += bytes.length;
    return this.inner.write(key, bytes);
  }
  writeIfAbsent(key: string, bytes: Uint8Array): Promise<boolean> {
    this.counters.conditionalWrites++;
    this.counters.writeBytes += bytes.length;
    return this.inner.writeIfAbsent(key, bytes);
  }
  list(prefix: string): AsyncIterable<string> {
    this.counters.lists++;
    return this.inner.list(prefix);
  }
  delete(key: string): Promise<void> {
    this.counters.deletes++;
    return this.inner.delete(key);
  }
  async openLog(name: string, options?: LogOpenOptions): Promise<Log> {
    return new CountingLog(await this.inner.openLog(name, options), this.counters);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

class CountingLog implements Log {
  constructor(
    private readonly inner: Log,
    private readonly counters: StorageCounters,
  ) {}
  get name() {
    return this.inner.name;
  }
  get readOnly() {
    return this.inner.readOnly;
  }
  nextLsn(): number {
    return this.inner.nextLsn();
  }
  append(frames: readonly Uint8Array[]): Promise<AppendResult> {
    this.counters.appends++;
    this.counters.appendFrames += frames.length;
    for (const f of frames) this.counters.appendBytes += f.length;
    return this.inner.append(frames);
  }
  read(fromLsn?: number): AsyncIterable<LogFrame> {
    this.counters.logReads++;
    return this.inner.read(fromLsn);
  }
  truncate(beforeLsn: number): Promise<void> {
    this.counters.truncates++;
    return this.inner.truncate(beforeLsn);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
