/**
 * file:// — objects and logs in a directory on a local file system.
 *
 * Layout under the root directory:
 *   obj/<key>                    one file per object (key segments are directories)
 *   tmp/<random>                 objects being written; renamed or linked into obj/ once durable
 *   log/<name>/<firstLsn>.seg    log segments, 16-digit zero-padded first LSN; frames as in log-format.ts
 *   log/<name>/LOCK              the writer lock: {"pid","host","token"} of the process that may append
 *
 * Invariants:
 *   - A completed `write` or `writeIfAbsent` survives a crash: the temp file is fsynced, then renamed (write) or
 *     hard-linked (writeIfAbsent: link fails with EEXIST when the key exists, so of N racing processes exactly one
 *     wins), then the parent directory is fsynced. A reader never sees a partial object.
 *   - One sync per append: all frames of an append are written with one positioned write, then one fdatasync.
 *   - Segments are preallocated with written zeros, a few MiB ahead of the last frame, so that the fdatasync of an
 *     append changes no file metadata (no size change to journal) — what SQLite gets by reusing its WAL. Past the
 *     last valid frame a segment holds only zeros; recovery zeroes any torn bytes it cuts off. The zeros go in
 *     writes of one page each (see `PAGE_ZEROS`).
 *   - Only the last segment can end in a torn frame (a segment is rotated only after a successful sync).
 *   - The last segment is never deleted, so the log's end survives any truncation.
 *   - A file system cannot hold both key "a" and key "a/b"; such a write fails with INVALID_ARGUMENT.
 */

import { randomBytes } from "node:crypto";
import { closeSync, fdatasyncSync, fstatSync, openSync, readSync, writeSync } from "node:fs";
import {
  type FileHandle,
  link,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  unlink,
} from "node:fs/promises";
import { hostname } from "node:os";
import { dirname, join, resolve } from "node:path";
import { ErrorCodes, notFound, TwillError } from "../errors.js";
import {
  rangeNotSatisfiable,
  validateFrames,
  validateIntoLength,
  validateKey,
  validateLogName,
  validatePrefix,
  validateRange,
} from "./keys.js";
import {
  checkFrame,
  encodedFrameBytes,
  encodeFrameHeader,
  encodeFramesInto,
  FRAME_HEADER_BYTES,
  findValidFrameAfter,
} from "./log-format.js";
import { compareKeys } from "./memory.js";
import type { AppendResult, ByteRange, Log, LogFrame, LogOpenOptions, Storage } from "./types.js";

export interface FileStorageOptions {
  /** A log segment is closed and a new one started past this size. Default 64 MiB. */
  segmentBytesMax?: number;
  /** Skip fsync (tests of logic only; a crash can lose acknowledged writes). Default false. */
  unsafeNoSync?: boolean;
}

const SEGMENT_SUFFIX = ".seg";
/** How far ahead of the last frame a segment is filled with zeros: from 64 KiB, doubling up to 4 MiB. */
const PREALLOCATE_BYTES_MIN = 64 * 1024;
const PREALLOCATE_BYTES_MAX = 4 * 1024 * 1024;
/**
 * Zeros go to a log segment one 4 KiB page per write (preallocated room, and the torn or failed bytes recovery
 * and a failed append wipe, all of which later appends write into). On kernels whose page cache gives ext4 large folios (6.x),
 * a write of 1 MiB leaves a folio of up to 1 MiB, and every later small append into it pays for all its blocks:
 * measured here (6.18, ext4), a 240-byte pwrite into room zeroed in 1 MiB writes cost 1.8-2.4 µs of CPU against
 * 0.67 in room zeroed page by page, and a pwrite + fdatasync 37-82 µs against 24-44 (the sync writes back the
 * whole dirty folio). 1,024 writes per 4 MiB of room cost ~2.5 ms, once per ~17,000 one-row commits.
 */
const PAGE_ZEROS = new Uint8Array(4096);
/** Appends above this size are written frame by frame (header, then payload) instead of copied into one buffer. */
const GATHER_BYTES_MIN = 1024 * 1024;
/** Object writes from many parts are staged through a buffer of this size. */
const STAGING_BYTES = 1024 * 1024;

/** Writes all of `bytes` (or its first `length` bytes) at `position`. */
function writeAll(fd: number, bytes: Uint8Array, position: number, length = bytes.length): void {
  let done = 0;
  while (done < length) done += writeSync(fd, bytes, done, length - done, position + done);
}

/** Writes zeros over [from, to) of a file, in writes of at most one page, each ending on a page boundary. */
function writeZeros(fd: number, from: number, to: number): void {
  const page = PAGE_ZEROS.length;
  for (let at = from; at < to; ) {
    const n = Math.min(page - (at % page), to - at);
    at += writeSync(fd, PAGE_ZEROS, 0, n, at);
  }
}

/** One past the last non-zero byte at or after `from` (so `from` itself when only zeros follow). */
function lastNonZero(buf: Uint8Array, from: number): number {
  for (let i = buf.length - 1; i >= from; i--) if (buf[i] !== 0) return i + 1;
  return from;
}
const LSN_DIGITS = 16;

function errnoCode(error: unknown): string | undefined {
  return typeof error === "object" && error !== null && "code" in error ? String(error.code) : undefined;
}

function ioError(op: string, what: string, cause: unknown): TwillError {
  const code = errnoCode(cause);
  if (code === "ENOTDIR" || code === "EISDIR") {
    return new TwillError(
      ErrorCodes.InvalidArgument,
      `cannot ${op} ${what}: a file system cannot hold both a key and a key below it (as "a" and "a/b")`,
      { cause },
    );
  }
  return new TwillError(ErrorCodes.Io, `cannot ${op} ${what}: ${code ?? String(cause)}`, { cause });
}

export function segmentName(firstLsn: number): string {
  return `${String(firstLsn).padStart(LSN_DIGITS, "0")}${SEGMENT_SUFFIX}`;
}

export async function openFileStorage(rootPath: string, options: FileStorageOptions = {}): Promise<Storage> {
  const root = resolve(rootPath);
  try {
    await mkdir(join(root, "obj"), { recursive: true });
    await mkdir(join(root, "tmp"), { recursive: true });
    await mkdir(join(root, "log"), { recursive: true });
  } catch (error) {
    throw ioError("create", `database directory ${rootPath}`, error);
  }
  return new FileStorage(root, `file://${rootPath}`, options);
}

/** A cached read descriptor of an object: its size at open, and when it was last used (see `descriptors`). */
interface Descriptor {
  fd: number;
  size: number;
  lastUse: number;
}

class FileStorage implements Storage {
  readonly kind = "file" as const;
  private closed = false;
  private readonly openLogs = new Set<FileLog>();
  readonly sync: boolean;
  readonly segmentBytesMax: number;

  constructor(
    readonly root: string,
    readonly url: string,
    options: FileStorageOptions,
  ) {
    this.sync = !options.unsafeNoSync;
    this.segmentBytesMax = options.segmentBytesMax ?? 64 * 1024 * 1024;
  }

  private checkOpen(): void {
    if (this.closed) throw new TwillError(ErrorCodes.Closed, `storage ${this.url} is closed`);
  }

  private objectPath(key: string): string {
    validateKey(key);
    return join(this.root, "obj", ...key.split("/"));
  }

  /**
   * Open descriptors of recently read objects. Objects are read by ranges again and again (SST blocks), and
   * open+fstat+close would cost more than the read itself. Entries are dropped when this process writes or deletes
   * the key; objects the engine reads are immutable, so another process cannot change what a cached descriptor
   * points at. Recency is a use counter per entry rather than Map order: a hit is one lookup and a store (the
   * delete + set that kept the Map in order cost two more hash operations per block read), and finding the least
   * recently used, a scan of at most `descriptorsMax` entries, happens only when a new object is opened.
   */
  private readonly descriptors = new Map<string, Descriptor>();
  private static readonly descriptorsMax = 256;
  private descriptorUses = 0;

  private openDescriptor(key: string): Descriptor {
    const path = this.objectPath(key);
    let fd: number;
    try {
      fd = openSync(path, "r");
    } catch (error) {
      const code = errnoCode(error);
      if (code === "ENOENT" || code === "ENOTDIR" || code === "EISDIR")
        throw notFound(`object ${JSON.stringify(key)}`);
      throw ioError("read", `object ${JSON.stringify(key)}`, error);
    }
    let size: number;
    try {
      size = fstatSync(fd).size;
    } catch (error) {
      closeSync(fd);
      throw ioError("read", `object ${JSON.stringify(key)}`, error);
    }
    if (this.descriptors.size >= FileStorage.descriptorsMax) {
      let oldestKey: string | undefined;
      let oldestUse = Number.POSITIVE_INFINITY;
      for (const [k, d] of this.descriptors) {
        if (d.lastUse < oldestUse) {
          oldestUse = d.lastUse;
          oldestKey = k;
        }
      }
      if (oldestKey !== undefined) this.forgetDescriptor(oldestKey);
    }
    const entry: Descriptor = { fd, size, lastUse: ++this.descriptorUses };
    this.descriptors.set(key, entry);
    return entry;
  }

  private forgetDescriptor(key: string): void {
    const cached = this.descriptors.get(key);
    if (!cached) return;
    this.descriptors.delete(key);
    closeSync(cached.fd);
  }

  /**
   * Reads with positioned synchronous reads on a cached descriptor: for a local file system (mostly the page cache)
   * a pread costs microseconds, while the async path costs a thread-pool round trip per call — the same trade
   * SQLite makes. Blocking the event loop for one block read is the price; a remote store is s3://.
   */
  async read(key: string, range?: ByteRange): Promise<Uint8Array> {
    this.checkOpen();
    if (range) validateRange(range.offset, range.length);
    const d = this.cachedDescriptor(key);
    const offset = range?.offset ?? 0;
    if (offset > d.size) throw rangeNotSatisfiable(key, offset, d.size);
    const end = range?.length === undefined ? d.size : Math.min(d.size, offset + range.length);
    const out = new Uint8Array(end - offset);
    if (this.preadInto(key, d.fd, offset, out, out.length) !== out.length) {
      this.forgetDescriptor(key);
      throw new TwillError(ErrorCodes.Io, `object ${JSON.stringify(key)} shrank while it was read`);
    }
    return out;
  }

  readIntoSync(key: string, offset: number, into: Uint8Array, length: number = into.length): number {
    this.checkOpen();
    validateIntoLength(length, into);
    validateRange(offset, length);
    const d = this.cachedDescriptor(key);
    if (offset > d.size) throw rangeNotSatisfiable(key, offset, d.size);
    const want = Math.min(length, d.size - offset);
    const done = this.preadInto(key, d.fd, offset, into, want);
    if (done !== want) {
      this.forgetDescriptor(key);
      throw new TwillError(ErrorCodes.Io, `object ${JSON.stringify(key)} shrank while it was read`);
    }
    return done;
  }

  /** The cached descriptor of `key`, opened when absent: the key-to-path work is paid only then. */
  private cachedDescriptor(key: string): Descriptor {
    const cached = this.descriptors.get(key);
    if (cached === undefined) return this.openDescriptor(key);
    cached.lastUse = ++this.descriptorUses;
    return cached;
  }

  /**
   * Fills out[0, length) from `offset` with positioned reads on `fd` (the descriptor of `key`); returns the bytes
   * read (fewer at the end of the file).
   */
  private preadInto(key: string, fd: number, offset: number, out: Uint8Array, length: number): number {
    let done = 0;
    try {
      while (done < length) {
        const bytesRead = readSync(fd, out, done, length - done, offset + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
    } catch (error) {
      this.forgetDescriptor(key);
      throw ioError("read", `object ${JSON.stringify(key)}`, error);
    }
    return done;
  }

  async size(key: string): Promise<number> {
    this.checkOpen();
    const path = this.objectPath(key);
    try {
      const info = await stat(path);
      if (!info.isFile()) throw notFound(`object ${JSON.stringify(key)}`);
      return info.size;
    } catch (error) {
      if (error instanceof TwillError) throw error;
      const code = errnoCode(error);
      if (code === "ENOENT" || code === "ENOTDIR") throw notFound(`object ${JSON.stringify(key)}`);
      throw ioError("stat", `object ${JSON.stringify(key)}`, error);
    }
  }

  /** Writes `bytes` to a fresh durable temp file and returns its path. */
  private async writeTemp(parts: readonly Uint8Array[]): Promise<string> {
    const path = join(this.root, "tmp", randomBytes(12).toString("hex"));
    const handle = await open(path, "wx");
    try {
      let position = 0;
      const writeOut = async (bytes: Uint8Array) => {
        let done = 0;
        while (done < bytes.length) {
          const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position + done);
          done += bytesWritten;
        }
        position += bytes.length;
      };
      if (parts.length === 1) {
        await writeOut(parts[0]!);
      } else {
        // Many small parts (an SST's blocks) go out through one reused staging buffer: one write per MiB,
        // and no allocation the size of the object.
        const staging = new Uint8Array(STAGING_BYTES);
        let staged = 0;
        for (const part of parts) {
          if (part.length >= STAGING_BYTES) {
            if (staged > 0) await writeOut(staging.subarray(0, staged));
            staged = 0;
            await writeOut(part);
            continue;
          }
          if (staged + part.length > STAGING_BYTES) {
            await writeOut(staging.subarray(0, staged));
            staged = 0;
          }
          staging.set(part, staged);
          staged += part.length;
        }
        if (staged > 0) await writeOut(staging.subarray(0, staged));
      }
      if (this.sync) await handle.sync();
    } finally {
      await handle.close();
    }
    return path;
  }

  /** Creates the parent directories of `path` and makes their entries durable. */
  private async ensureParent(path: string): Promise<void> {
    const parent = dirname(path);
    const firstCreated = await mkdir(parent, { recursive: true });
    if (firstCreated && this.sync) {
      // Every directory from the first one created down to `parent` is a new entry in its own parent.
      let dir = parent;
      const chain: string[] = [];
      while (dir.length >= firstCreated.length) {
        chain.push(dirname(dir));
        dir = dirname(dir);
      }
      for (const d of chain.reverse()) await syncDirectory(d);
    }
  }

  async write(key: string, bytes: Uint8Array): Promise<void> {
    return this.writeChunks(key, [bytes]);
  }

  async writeChunks(key: string, chunks: readonly Uint8Array[]): Promise<void> {
    this.checkOpen();
    const path = this.objectPath(key);
    this.forgetDescriptor(key);
    let temp: string | undefined;
    try {
      await this.ensureParent(path);
      temp = await this.writeTemp(chunks);
      await rename(temp, path);
      temp = undefined;
      if (this.sync) await syncDirectory(dirname(path));
    } catch (error) {
      if (temp) await rm(temp, { force: true });
      throw ioError("write", `object ${JSON.stringify(key)}`, error);
    }
  }

  async writeIfAbsent(key: string, bytes: Uint8Array): Promise<boolean> {
    this.checkOpen();
    const path = this.objectPath(key);
    let temp: string | undefined;
    try {
      await this.ensureParent(path);
      temp = await this.writeTemp([bytes]);
      try {
        await link(temp, path);
      } catch (error) {
        if (errnoCode(error) === "EEXIST") return false;
        throw error;
      }
      if (this.sync) await syncDirectory(dirname(path));
      return true;
    } catch (error) {
      throw ioError("write", `object ${JSON.stringify(key)}`, error);
    } finally {
      if (temp) await rm(temp, { force: true });
    }
  }

  async *list(prefix: string): AsyncIterable<string> {
    this.checkOpen();
    validatePrefix(prefix);
    // Walk only below the deepest directory the prefix names.
    const slash = prefix.lastIndexOf("/");
    const baseKey = slash === -1 ? "" : prefix.slice(0, slash);
    const keys: string[] = [];
    const walk = async (dirKey: string): Promise<void> => {
      const dir = dirKey === "" ? join(this.root, "obj") : join(this.root, "obj", ...dirKey.split("/"));
      let entries: import("node:fs").Dirent[];
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (error) {
        const code = errnoCode(error);
        if (code === "ENOENT" || code === "ENOTDIR") return;
        throw ioError("list", `objects under ${JSON.stringify(prefix)}`, error);
      }
      for (const entry of entries) {
        const key = dirKey === "" ? entry.name : `${dirKey}/${entry.name}`;
        if (entry.isDirectory()) {
          if (key.startsWith(prefix) || prefix.startsWith(`${key}/`)) await walk(key);
        } else if (key.startsWith(prefix)) {
          keys.push(key);
        }
      }
    };
    await walk(baseKey);
    keys.sort(compareKeys);
    yield* keys;
  }

  async delete(key: string): Promise<void> {
    this.checkOpen();
    const path = this.objectPath(key);
    this.forgetDescriptor(key);
    try {
      await unlink(path);
      if (this.sync) await syncDirectory(dirname(path));
    } catch (error) {
      const code = errnoCode(error);
      if (code === "ENOENT" || code === "ENOTDIR") return;
      throw ioError("delete", `object ${JSON.stringify(key)}`, error);
    }
  }

  async openLog(name: string, options: LogOpenOptions = {}): Promise<Log> {
    this.checkOpen();
    validateLogName(name);
    const dir = join(this.root, "log", name);
    try {
      const created = await mkdir(dir, { recursive: true });
      if (created && this.sync) await syncDirectory(join(this.root, "log"));
    } catch (error) {
      throw ioError("create", `log ${JSON.stringify(name)}`, error);
    }
    const readOnly = options.readOnly ?? false;
    const lock = readOnly ? undefined : await acquireLock(join(dir, "LOCK"), name);
    try {
      const log = new FileLog(this, name, dir, readOnly, lock, () => this.openLogs.delete(log));
      await log.recover();
      this.openLogs.add(log);
      return log;
    } catch (error) {
      await lock?.release();
      throw error;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    for (const log of [...this.openLogs]) await log.close();
    for (const key of [...this.descriptors.keys()]) this.forgetDescriptor(key);
    this.closed = true;
  }
}

async function syncDirectory(path: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

interface HeldLock {
  release(): Promise<void>;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errnoCode(error) === "EPERM";
  }
}

/**
 * Takes the log's writer lock: a file holding our pid, host and a random token, created complete in one step (a
 * fsynced temp file hard-linked to the lock's name; `link` fails with EEXIST atomically). A process killed while
 * taking the lock therefore leaves either no lock or a whole one, never an empty file that no one could ever take
 * over (O_EXCL create and then write left that window open: a writer killed in it locked the database for good).
 * A lock left by a dead process on this host is taken over, and so is a lock file with no complete holder record
 * (no live writer can leave one); after taking it we read it back, so that of two processes racing to take over
 * the same stale lock at most one believes it won.
 */
async function acquireLock(path: string, logName: string): Promise<HeldLock> {
  const token = randomBytes(8).toString("hex");
  const content = JSON.stringify({ pid: process.pid, host: hostname(), token });
  for (let attempt = 0; attempt < 5; attempt++) {
    const temp = `${path}.${token}.tmp`;
    try {
      const handle = await open(temp, "wx");
      try {
        await handle.writeFile(content);
        await handle.sync();
      } finally {
        await handle.close();
      }
      try {
        await link(temp, path);
      } finally {
        await rm(temp, { force: true });
      }
      await syncDirectory(dirname(path));
      const readBack = await readFile(path, "utf8").catch(() => "");
      if (readBack !== content) continue;
      return {
        release: async () => {
          const current = await readFile(path, "utf8").catch(() => "");
          if (current === content) await rm(path, { force: true });
        },
      };
    } catch (error) {
      if (errnoCode(error) !== "EEXIST") throw ioError("lock", `log ${JSON.stringify(logName)}`, error);
    }
    const seen = await readFile(path, "utf8").catch(() => undefined);
    if (seen === undefined) continue; // released meanwhile: try again
    let holder: { pid?: unknown; host?: unknown } = {};
    try {
      holder = JSON.parse(seen) as typeof holder;
    } catch {
      // Not a complete holder record: left by a crash (of a build that created locks in two steps) or damage.
    }
    const complete = typeof holder.pid === "number" && typeof holder.host === "string";
    const stale = !complete || (holder.host === hostname() && !processAlive(holder.pid as number));
    if (!stale) {
      throw new TwillError(
        ErrorCodes.Locked,
        `log ${JSON.stringify(logName)} is locked by another writer (pid ${String(holder.pid)} on ${String(holder.host)})`,
        { hint: "one writer per database: close the other process, or open read-only" },
      );
    }
    // Only the stale lock we looked at: not one another process took over meanwhile.
    if ((await readFile(path, "utf8").catch(() => undefined)) === seen) await rm(path, { force: true });
  }
  throw new TwillError(
    ErrorCodes.Locked,
    `could not take the writer lock of log ${JSON.stringify(logName)}`,
    {
      hint: "another process is racing for it; retry",
    },
  );
}

interface Segment {
  firstLsn: number;
  path: string;
}

class FileLog implements Log {
  private segments: Segment[] = [];
  private next = 1;
  /** Byte length of the valid prefix of the last segment. */
  private tailBytes = 0;
  /** Size of the tail segment's file: zeros from `tailBytes` up to here are preallocated room. */
  private allocatedBytes = 0;
  private tail: FileHandle | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  /** Operations waiting in or running through `chain`. */
  private queued = 0;
  /** Where small appends are encoded (reused: the write is synchronous), with its int32 view for the CRCs and a DataView. */
  private scratch = new Uint8Array(0);
  private scratchWords = new Int32Array(0);
  private scratchView = new DataView(this.scratch.buffer);
  private closed = false;

  constructor(
    private readonly storage: FileStorage,
    readonly name: string,
    private readonly dir: string,
    readonly readOnly: boolean,
    private readonly lock: HeldLock | undefined,
    private readonly onClose: () => void,
  ) {}

  nextLsn(): number {
    return this.next;
  }

  private async listSegments(): Promise<Segment[]> {
    const names = (await readdir(this.dir)).filter((n) => n.endsWith(SEGMENT_SUFFIX)).sort();
    return names.map((n) => ({
      firstLsn: Number(n.slice(0, -SEGMENT_SUFFIX.length)),
      path: join(this.dir, n),
    }));
  }

  /** Finds the log's end; drops a torn trailing frame (writable handles cut it off the file). */
  async recover(): Promise<void> {
    this.segments = await this.listSegments();
    const last = this.segments.at(-1);
    if (!last) {
      this.next = 1;
      this.tailBytes = 0;
      return;
    }
    const buf = new Uint8Array(await readFile(last.path));
    const { next, validBytes } = scanSegmentFrames(buf, last, this.name, true, false);
    this.next = next;
    this.tailBytes = validBytes;
    this.allocatedBytes = buf.length;
    if (!this.readOnly) {
      this.tail = await open(last.path, "r+");
      const garbageEnd = lastNonZero(buf, validBytes);
      if (garbageEnd > validBytes) {
        // A torn append: zero it, so that only zeros follow the last frame and no stale frame can resurface.
        writeZeros(this.tail.fd, validBytes, garbageEnd);
        if (this.storage.sync) fdatasyncSync(this.tail.fd);
      }
    }
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

  /**
   * Appends are serialised: each waits for the previous one, so LSNs follow call order. `queued` counts the
   * operations in the chain: with none, an append that needs no new segment runs at once (see `append`).
   */
  private serialise<T>(work: () => Promise<T>): Promise<T> {
    this.queued++;
    const result = this.chain.then(work).finally(this.dequeue);
    this.chain = result.catch(() => undefined);
    return result;
  }

  private readonly dequeue = (): void => {
    this.queued--;
  };

  append(frames: readonly Uint8Array[]): Promise<AppendResult> {
    try {
      this.checkWritable("append to");
      validateFrames(frames);
      // The write and the sync are synchronous, so with nothing queued before it an append can run now instead of
      // through the chain: three promises fewer per group commit, which a single committer pays on every commit.
      if (this.queued === 0 && this.tail && this.tailBytes < this.storage.segmentBytesMax) {
        return Promise.resolve(this.appendNow(frames));
      }
    } catch (error) {
      return Promise.reject(error);
    }
    return this.serialise(async () => {
      this.checkWritable("append to");
      if (!this.tail || this.tailBytes >= this.storage.segmentBytesMax) await this.startSegment();
      return this.appendNow(frames);
    });
  }

  /** Writes and syncs `frames` at the end of the tail segment, which exists and has room. */
  private appendNow(frames: readonly Uint8Array[]): AppendResult {
    const firstLsn = this.next;
    const length = encodedFrameBytes(frames);
    const tail = this.tail!;
    const end = this.tailBytes + length;
    if (end > this.allocatedBytes) this.preallocate(tail.fd, end);
    try {
      // Synchronous pwrite + fdatasync: two thread-pool round trips cost more than the sync itself (about 2x
      // the commit rate measured here), and SQLite's WAL pays the same blocking write. Commits that arrive
      // meanwhile queue up and share the next append, so group commit is unaffected. A small append is encoded
      // into a buffer the log keeps (a fresh ArrayBuffer per append cost ~1 µs); a large one (a bulk load's
      // megabytes) is written frame by frame, sparing a copy of all of it into one buffer.
      if (length < GATHER_BYTES_MIN) {
        const out = this.appendBuffer(length);
        encodeFramesInto(out, 0, firstLsn, frames, this.scratchWords, this.scratchView);
        writeAll(tail.fd, out, this.tailBytes, length);
      } else {
        let at = this.tailBytes;
        let lsn = firstLsn;
        for (const payload of frames) {
          writeAll(tail.fd, encodeFrameHeader(lsn++, payload), at);
          writeAll(tail.fd, payload, at + FRAME_HEADER_BYTES);
          at += FRAME_HEADER_BYTES + payload.length;
        }
      }
      if (this.storage.sync) fdatasyncSync(tail.fd);
    } catch (error) {
      // The file may now hold part of this append: zero it, so the next append starts at a frame boundary and no
      // frame of this failed append can be read back.
      try {
        writeZeros(tail.fd, this.tailBytes, end);
      } catch {
        // the disk is failing; the caller stops writing (the engine poisons itself on a failed append)
      }
      throw ioError("append to", `log ${JSON.stringify(this.name)}`, error);
    }
    this.tailBytes += length;
    this.next = firstLsn + frames.length;
    return { firstLsn, nextLsn: this.next };
  }

  /** The log's encoding buffer, grown to hold `length` bytes (at most GATHER_BYTES_MIN, by powers of two). */
  private appendBuffer(length: number): Uint8Array {
    if (this.scratch.length < length) {
      let size = Math.max(4096, this.scratch.length);
      while (size < length) size *= 2;
      this.scratch = new Uint8Array(size);
      this.scratchWords = new Int32Array(this.scratch.buffer);
      this.scratchView = new DataView(this.scratch.buffer);
    }
    return this.scratch;
  }

  private async startSegment(): Promise<void> {
    const segment = { firstLsn: this.next, path: join(this.dir, segmentName(this.next)) };
    const handle = await open(segment.path, "wx").catch((error: unknown) => {
      throw ioError("create", `segment ${segment.path}`, error);
    });
    if (this.storage.sync) await syncDirectory(this.dir);
    await this.tail?.close();
    this.tail = handle;
    this.tailBytes = 0;
    this.allocatedBytes = 0;
    this.segments.push(segment);
  }

  /** Extends the tail segment with written zeros to past `end`, and makes the new size durable. */
  private preallocate(fd: number, end: number): void {
    // The room grows with the segment (64 KiB, then doubling up to 4 MiB), so a small database does not pay for
    // megabytes of zeros and a busy log still extends, and syncs its size, only once per 4 MiB.
    const step = Math.min(PREALLOCATE_BYTES_MAX, Math.max(PREALLOCATE_BYTES_MIN, this.allocatedBytes));
    const target = Math.ceil(end / step) * step + step;
    // An append larger than a step writes its own bytes over most of the new room: zero only what lies past it.
    writeZeros(fd, end - this.allocatedBytes > PREALLOCATE_BYTES_MAX ? end : this.allocatedBytes, target);
    if (this.storage.sync) fdatasyncSync(fd);
    this.allocatedBytes = target;
  }

  async *read(fromLsn = 1): AsyncIterable<LogFrame> {
    if (this.closed) throw new TwillError(ErrorCodes.Closed, `log ${JSON.stringify(this.name)} is closed`);
    const segments = this.readOnly ? await this.listSegments() : [...this.segments];
    let expected: number | undefined;
    for (let i = 0; i < segments.length; i++) {
      const segment = segments[i]!;
      const following = segments[i + 1];
      if (following && following.firstLsn <= fromLsn) continue;
      if (expected !== undefined && segment.firstLsn !== expected) {
        throw new TwillError(
          ErrorCodes.Corruption,
          `log ${JSON.stringify(this.name)} is missing frames ${expected}..${segment.firstLsn - 1} before segment ${segmentName(segment.firstLsn)}`,
        );
      }
      let buf: Uint8Array;
      try {
        buf = new Uint8Array(await readFile(segment.path));
      } catch (error) {
        throw ioError("read", `log segment ${segmentName(segment.firstLsn)}`, error);
      }
      const isLast = following === undefined;
      // A writable handle knows the durable end of its last segment; bytes past it are an append in progress.
      if (isLast && !this.readOnly) buf = buf.subarray(0, this.tailBytes);
      const { frames, next } = scanSegmentFrames(buf, segment, this.name, isLast);
      for (const frame of frames) if (frame.lsn >= fromLsn) yield frame;
      expected = next;
    }
  }

  async truncate(beforeLsn: number): Promise<void> {
    this.checkWritable("truncate");
    return this.serialise(async () => {
      if (beforeLsn >= this.next && this.tailBytes > 0) await this.startSegment();
      const doomed: Segment[] = [];
      for (let i = 0; i + 1 < this.segments.length; i++) {
        if (this.segments[i + 1]!.firstLsn <= beforeLsn) doomed.push(this.segments[i]!);
      }
      for (const segment of doomed) await rm(segment.path, { force: true });
      if (doomed.length > 0 && this.storage.sync) await syncDirectory(this.dir);
      this.segments = this.segments.filter((s) => !doomed.includes(s));
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.chain;
    await this.tail?.close();
    this.tail = undefined;
    await this.lock?.release();
    this.onClose();
  }
}

function scanSegmentFrames(
  buf: Uint8Array,
  segment: Segment,
  logName: string,
  isLast: boolean,
  collect = true,
): { frames: LogFrame[]; next: number; validBytes: number } {
  const frames: LogFrame[] = [];
  let at = 0;
  let lsn = segment.firstLsn;
  while (at < buf.length) {
    const check = checkFrame(buf, at, lsn);
    if (!check.ok) {
      if (lastNonZero(buf, at) === at) break; // only preallocated zeros follow: the end of the segment
      const where = `log ${JSON.stringify(logName)} segment ${segmentName(segment.firstLsn)} byte ${at} (lsn ${lsn})`;
      if (findValidFrameAfter(buf, at) !== -1) {
        throw new TwillError(
          ErrorCodes.Corruption,
          `${where} is corrupt: ${check.reason}, and valid frames follow it`,
          {
            hint: "the log was damaged in the middle, not torn at the end; restore it from a backup",
          },
        );
      }
      if (!isLast) {
        throw new TwillError(
          ErrorCodes.Corruption,
          `${where} is corrupt: ${check.reason} before the end of a full segment`,
          {
            hint: "only the last segment can hold a torn append; restore the log from a backup",
          },
        );
      }
      break; // a torn tail: the last append did not complete before a crash
    }
    if (collect) frames.push(check.frame);
    at = check.end;
    lsn++;
  }
  return { frames, next: lsn, validBytes: at };
}
