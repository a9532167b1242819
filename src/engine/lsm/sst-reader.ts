/**
 * SstReader: point reads and range scans over one SST object (layout in sst-format.ts) through the block cache.
 *
 * Opening costs at most two ranged reads (plus a `size` request when the caller does not pass `sizeBytes`): the
 * tail, which holds the footer and, for SSTs whose meta blocks fit in `tailReadBytes`, everything else too; then
 * the adjacent index + bloom + properties blocks when they did not fit. The index and bloom stay in memory while
 * the reader lives (`metaBytes`); data blocks are fetched one range read each, on demand, through the cache.
 *
 * Invariants:
 *   - Every byte is checked before use (checksums, structure, agreement between blocks); a defect is CORRUPTION
 *     naming the object and what is wrong, never a wrong answer. A short read means a truncated object. A data
 *     block's checksum is checked every time it is read; its restart entries when it is read, each restart
 *     interval's entries before the first lookup in it (`lookup`), and every interval before a scan decodes the
 *     block (sst-block.ts) — once per bytes: a block read again whose checksum is the one of bytes that passed
 *     (`knownChecksums`) keeps what they passed (`redecodeDataBlock`).
 *   - A point read touches at most one data block: the index holds each block's last (key, lsn).
 *   - `getCached` never allocates a promise, and never does I/O unless told to load synchronously (`loadSync`,
 *     on stores with `readIntoSync`); it answers or says NEEDS_IO.
 *   - Scans decode one block at a time and hold at most one decoded block (plus read-ahead) per cursor.
 */

import { ErrorCodes, isTwillError, TwillError } from "../../errors.js";
import type { ObjectStore } from "../../storage/types.js";
import type { BlockCache, CachedObject } from "./block-cache.js";
import { Bloom, bloomHash } from "./bloom.js";
import { AsyncCursor } from "./cursor.js";
import {
  ALL_VERIFIED,
  BlockScanner,
  commonPrefix,
  compareRange,
  DataBlock,
  decodeDataBlock,
  getFromInterval,
  isVerified,
  redecodeDataBlock,
  restartFor,
  storedChecksum,
  verifyAll,
  verifyAndGet,
} from "./sst-block.js";
import {
  checkedContent,
  decodeFooter,
  decodeIndex,
  decodeProperties,
  FOOTER_BYTES,
  lastKeyOf,
  type SstIndex,
  type SstProperties,
  sstCorruption,
} from "./sst-format.js";
import { compareBytes, type Entry, lsnMax, NEEDS_IO, type NeedsIo } from "./types.js";

export interface SstOpenOptions {
  /** The object's size when the caller knows it (from the manifest): saves one `size` request. */
  sizeBytes?: number;
  /** Bytes read from the end of the object at open. Default 64 KiB, at least the footer. */
  tailReadBytes?: number;
}

export interface SstIterateOptions {
  /** Inclusive lower bound on keys. */
  start?: Uint8Array;
  /** Exclusive upper bound on keys. */
  end?: Uint8Array;
  /** Yield exactly the reverse of internal order (keys descending, versions oldest first). */
  reverse?: boolean;
  /** Blocks to fetch ahead of the scan, in parallel (useful on s3://). Default 0. */
  readaheadBlocks?: number;
  /** Put fetched blocks in the cache. Default true; compaction passes false to keep hot blocks cached. */
  fillCache?: boolean;
}

const tailReadBytesDefault = 64 * 1024;
/** Set in `knownVerified` entries that hold something (a block with no interval verified yet is 0 otherwise). */
const knownBit = 1 << 30;

/** A read error: offsets come from a size the caller or the footer vouched for, so past the end means the
 * object shrank (CORRUPTION); anything else passes through. */
function truncatedOr(
  error: unknown,
  objectKey: string,
  offset: number,
  length: number,
  what: string,
): unknown {
  if (isTwillError(error, ErrorCodes.InvalidArgument)) {
    return sstCorruption(
      objectKey,
      `${what} at bytes [${offset}, ${offset + length}) is past the end (truncated)`,
      error,
    );
  }
  return error;
}

async function readExact(
  store: ObjectStore,
  objectKey: string,
  offset: number,
  length: number,
  what: string,
): Promise<Uint8Array> {
  let bytes: Uint8Array;
  try {
    bytes = await store.read(objectKey, { offset, length });
  } catch (error) {
    throw truncatedOr(error, objectKey, offset, length, what);
  }
  if (bytes.length !== length) {
    throw sstCorruption(
      objectKey,
      `${what} at bytes [${offset}, ${offset + length}) came back as ${bytes.length} bytes (truncated)`,
    );
  }
  return bytes;
}

/** bytes[start, start + min(length, 4)) as a big-endian u32, zero-padded: see `SstReader.headWords`. */
function headWord(bytes: Uint8Array, start: number, length: number): number {
  return (
    (((length > 0 ? bytes[start]! : 0) << 24) |
      ((length > 1 ? bytes[start + 1]! : 0) << 16) |
      ((length > 2 ? bytes[start + 2]! : 0) << 8) |
      (length > 3 ? bytes[start + 3]! : 0)) >>>
    0
  );
}

export class SstReader {
  /** Last keys of the blocks, read in place from the index block (see SstIndex). */
  private readonly keyBytes: Uint8Array;
  private readonly keyStarts: Uint32Array;
  private readonly keyLengths: Uint32Array;
  /** The same last keys as views, for the colder scan paths. */
  private readonly lastKeys: Uint8Array[];
  private readonly lastLsns: Float64Array;
  private readonly offsets: Float64Array;
  private readonly lengths: Float64Array;
  /** Shared by every synchronous decode of this reader; no decode spans an await. */
  private readonly scanner: BlockScanner;
  /** Bytes every key in the SST starts with (the min and max keys share them): index searches skip them. */
  private readonly rangePrefix: number;
  /**
   * For each block, the 4 bytes of its last key after `rangePrefix` as a big-endian u32 (zero-padded when the key
   * is shorter). Where two such words differ they order their keys, so the index search compares one small array
   * and reads the keys' bytes only on a tie: the keys, their starts and lengths are three arrays, and on a large
   * SST each binary-search step touched each of them in a different cold cache line.
   */
  private readonly headWords: Uint32Array;
  /** This SST's blocks in the cache, by block index. */
  private readonly cached: CachedObject;
  /**
   * Per block, what its last load found good, so that reading it again after the cache dropped it (two misses in
   * three of a large database's point gets) checks only the checksum (`redecodeDataBlock`): the trailer checksum
   * of the bytes that passed the load checks, and the intervals verified in them (`DataBlock.verified`, -1 for
   * all: ALL_VERIFIED) with bit 30 set; 0 while nothing is known. 8 bytes a block, ~2 MB for 1 GB of 4 KiB blocks.
   */
  private readonly knownChecksums: Uint32Array;
  private readonly knownVerified: Int32Array;

  private constructor(
    private readonly store: ObjectStore,
    readonly objectKey: string,
    private readonly cache: BlockCache,
    readonly sizeBytes: number,
    index: SstIndex,
    private readonly bloom: Bloom,
    readonly properties: SstProperties,
    /** Memory held by the index and bloom while the reader lives. */
    readonly metaBytes: number,
  ) {
    this.keyBytes = index.keyBytes;
    this.keyStarts = index.keyStarts;
    this.keyLengths = index.keyLengths;
    this.lastKeys = Array.from({ length: index.blockCount }, (_, i) => lastKeyOf(index, i));
    this.lastLsns = index.lastLsns;
    this.rangePrefix = commonPrefix(properties.minKey, properties.maxKey);
    this.headWords = new Uint32Array(index.blockCount);
    for (let i = 0; i < index.blockCount; i++) {
      this.headWords[i] = headWord(
        index.keyBytes,
        index.keyStarts[i]! + this.rangePrefix,
        index.keyLengths[i]! - this.rangePrefix,
      );
    }
    this.offsets = index.offsets;
    this.lengths = index.lengths;
    this.scanner = new BlockScanner(properties.keyBytesMax);
    this.cached = cache.object(objectKey, index.blockCount);
    this.knownChecksums = new Uint32Array(index.blockCount);
    this.knownVerified = new Int32Array(index.blockCount);
  }

  static async open(
    store: ObjectStore,
    objectKey: string,
    cache: BlockCache,
    options: SstOpenOptions = {},
  ): Promise<SstReader> {
    const sizeBytes = options.sizeBytes ?? (await store.size(objectKey));
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0) {
      throw new TwillError(
        ErrorCodes.InvalidArgument,
        `SST size must be a non-negative integer, got ${sizeBytes}`,
      );
    }
    if (sizeBytes < FOOTER_BYTES) {
      throw sstCorruption(
        objectKey,
        `${sizeBytes} bytes is shorter than the ${FOOTER_BYTES}-byte footer (truncated?)`,
      );
    }
    const tailBytes = Math.min(
      sizeBytes,
      Math.max(FOOTER_BYTES, options.tailReadBytes ?? tailReadBytesDefault),
    );
    const tailStart = sizeBytes - tailBytes;
    const tail = await readExact(store, objectKey, tailStart, tailBytes, "tail");
    const footer = decodeFooter(tail.subarray(tailBytes - FOOTER_BYTES), sizeBytes, objectKey);
    const metaStart = footer.indexOffset;
    const metaEnd = sizeBytes - FOOTER_BYTES;
    // Copied out of the tail so that the reader does not pin tail bytes that belong to data blocks.
    const meta =
      metaStart >= tailStart
        ? tail.slice(metaStart - tailStart, metaEnd - tailStart)
        : await readExact(
            store,
            objectKey,
            metaStart,
            metaEnd - metaStart,
            "index, bloom and properties blocks",
          );

    const bloomStart = footer.indexLength;
    const propertiesStart = bloomStart + footer.bloomLength;
    const version = footer.formatVersion;
    const indexContent = checkedContent(meta.subarray(0, bloomStart), metaStart, objectKey, "index", version);
    const bloomContent = checkedContent(
      meta.subarray(bloomStart, propertiesStart),
      metaStart + bloomStart,
      objectKey,
      "bloom",
      version,
    );
    const propertiesContent = checkedContent(
      meta.subarray(propertiesStart),
      metaStart + propertiesStart,
      objectKey,
      "properties",
      version,
    );
    const properties = decodeProperties(
      propertiesContent,
      footer.formatVersion,
      `SST ${objectKey} properties block`,
    );
    const index = decodeIndex(indexContent, footer.indexOffset, `SST ${objectKey} index block`);
    const bloom = Bloom.from(bloomContent, `SST ${objectKey} bloom block`);
    const lastKey = lastKeyOf(index, index.blockCount - 1);
    const disagreement =
      properties.dataBytes !== footer.indexOffset
        ? "properties and footer disagree on the data size"
        : properties.blockCount !== index.blockCount
          ? "properties and index disagree on the block count"
          : compareBytes(properties.maxKey, lastKey) !== 0
            ? "properties max key is not the index's last key"
            : compareBytes(properties.minKey, lastKeyOf(index, 0)) > 0
              ? "properties min key is above the first block's last key"
              : undefined;
    if (disagreement !== undefined) throw sstCorruption(objectKey, disagreement);
    return new SstReader(
      store,
      objectKey,
      cache,
      sizeBytes,
      index,
      bloom,
      properties,
      meta.byteLength + index.blockCount * 4,
    );
  }

  get blockCount(): number {
    return this.lastKeys.length;
  }

  /** False when the bloom filter rules the key out. */
  mayContain(key: Uint8Array, keyHash?: number): boolean {
    return this.bloom.mayContainHash(keyHash ?? bloomHash(key));
  }

  /**
   * The block that holds the newest version of `key` with lsn <= snapshot if this SST has one, or -1 when the
   * key range, the LSN range or (with `filterFirst`) the bloom filter rule it out.
   */
  private locate(
    key: Uint8Array,
    snapshotLsn: number,
    keyHash: number | undefined,
    filterFirst: boolean,
  ): number {
    const p = this.properties;
    if (snapshotLsn < p.minLsn) return -1;
    if (compareBytes(key, p.minKey) < 0 || compareBytes(key, p.maxKey) > 0) return -1;
    if (filterFirst && !this.bloom.mayContainHash(keyHash ?? bloomHash(key))) return -1;
    // First block whose last (key, lsn) is >= (key, snapshot) in internal order. Every key compared lies within
    // [minKey, maxKey], so the bytes those share are equal and skipped.
    const keyBytes = this.keyBytes;
    const keyStarts = this.keyStarts;
    const keyLengths = this.keyLengths;
    const lastLsns = this.lastLsns;
    const words = this.headWords;
    const skip = this.rangePrefix;
    const word = headWord(key, skip, key.length - skip);
    let lo = 0;
    let hi = keyStarts.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const w = words[mid]!;
      const c =
        w !== word
          ? w - word
          : compareRange(keyBytes, keyStarts[mid]! + skip, keyLengths[mid]! - skip, key, skip);
      if (c < 0 || (c === 0 && lastLsns[mid]! > snapshotLsn)) lo = mid + 1;
      else hi = mid;
    }
    return lo < keyStarts.length ? lo : -1;
  }

  /**
   * The newest version of `key` with lsn <= snapshotLsn (possibly a Delete), or undefined when the SST has none —
   * answered from cached blocks only: NEEDS_IO when the block is not cached (then call `get`). `keyHash` is
   * `bloomHash(key)`, for callers probing many SSTs with one key. With `loadSync`, a store that offers
   * `readIntoSync` serves a missing block synchronously instead (and NEEDS_IO is never returned then).
   *
   * `filterFirst` (default true) probes the bloom filter before anything else. False defers the probe until the
   * block turns out not to be cached, where it still saves the read: for the bottom level, where a point get's
   * key is usually present and the SST is the only candidate, a probe in front of a cached block saves nothing
   * and costs a cache miss in the filter (RocksDB's optimize_filters_for_hits drops the bottom level's filters
   * for the same reason). The answer is the same either way.
   */
  getCached(
    key: Uint8Array,
    snapshotLsn: number,
    keyHash?: number,
    loadSync = false,
    filterFirst = true,
  ): Entry | undefined | NeedsIo {
    const i = this.locate(key, snapshotLsn, keyHash, filterFirst);
    if (i < 0) return undefined;
    let block = this.cache.get(this.cached, i) as DataBlock | undefined;
    if (block === undefined) {
      if (!filterFirst && !this.bloom.mayContainHash(keyHash ?? bloomHash(key))) return undefined;
      if (!loadSync || this.store.readIntoSync === undefined) return NEEDS_IO;
      block = this.loadBlockSync(i);
    }
    return this.lookup(block, i, key, snapshotLsn);
  }

  /**
   * The newest version of `key` with lsn <= snapshotLsn (possibly a Delete), or undefined. `filterFirst` as for
   * `getCached`.
   */
  async get(
    key: Uint8Array,
    snapshotLsn: number,
    keyHash?: number,
    filterFirst = true,
  ): Promise<Entry | undefined> {
    const i = this.locate(key, snapshotLsn, keyHash, filterFirst);
    if (i < 0) return undefined;
    let block = this.cachedBlock(i);
    if (block === undefined && !filterFirst && !this.bloom.mayContainHash(keyHash ?? bloomHash(key)))
      return undefined;
    if (block === undefined && this.store.readIntoSync !== undefined) block = this.loadBlockSync(i);
    if (block === undefined) {
      block = await this.loadBlock(i, true);
      // Dropped by the cache (and its buffer reused) while this read waited its turn: read a private copy.
      if (block.released) block = await this.readBlock(i);
    }
    return this.lookup(block, i, key, snapshotLsn);
  }

  /** A point lookup in block `i`, verifying the restart interval it reads (in the same pass) if no read has yet. */
  private lookup(block: DataBlock, i: number, key: Uint8Array, snapshotLsn: number): Entry | undefined {
    const r = restartFor(block, key, snapshotLsn);
    if (isVerified(block, r)) return getFromInterval(block, r, key, snapshotLsn);
    const entry = verifyAndGet(
      block,
      r,
      key,
      snapshotLsn,
      this.lastKeys[i]!,
      this.lastLsns[i]!,
      this.scanner,
      this.objectKey,
      i,
      this.offsets[i]!,
    );
    this.noteVerified(block, i);
    return entry;
  }

  /**
   * Reads, verifies and caches block `i` synchronously into a recycled buffer (stores with `readIntoSync` only).
   * A block that fails verification is never cached, and its buffer goes back to the pool.
   */
  private loadBlockSync(i: number): DataBlock {
    const offset = this.offsets[i]!;
    const length = this.lengths[i]!;
    const pool = this.cache.buffers;
    const buffer = pool.take(length);
    let block: DataBlock;
    try {
      let got: number;
      try {
        got = this.store.readIntoSync!(this.objectKey, offset, buffer, length);
      } catch (error) {
        throw truncatedOr(error, this.objectKey, offset, length, `data block ${i}`);
      }
      if (got !== length) {
        throw sstCorruption(
          this.objectKey,
          `data block ${i} at bytes [${offset}, ${offset + length}) came back as ${got} bytes (truncated)`,
        );
      }
      block = this.decodeBlock(buffer, length, i);
    } catch (error) {
      pool.give(buffer);
      throw error;
    }
    block.buffer = buffer;
    this.cache.putLoaded(this.cached, i, block, block.memoryBytes);
    return block;
  }

  /** All versions of keys in [start, end), in internal order (or its exact reverse), fetched block by block. */
  iterate(options: SstIterateOptions = {}): SstCursor {
    return new SstCursor(this, options);
  }

  /** Drops this SST's blocks from the cache (after the object was deleted). */
  evictFromCache(): void {
    this.cache.evictObject(this.objectKey);
  }

  // ---- for SstCursor ------------------------------------------------------------------------------------------

  /** @internal */
  cachedBlock(i: number): DataBlock | undefined {
    return this.cache.get(this.cached, i) as DataBlock | undefined;
  }

  /** @internal */
  isCached(i: number): boolean {
    return this.cache.has(this.cached, i);
  }

  /** @internal Fetches and verifies block `i`; with `fillCache`, through the cache (deduplicated). */
  loadBlock(i: number, fillCache: boolean): Promise<DataBlock> {
    if (fillCache && this.store.readIntoSync !== undefined) {
      // A local store: read into a recycled buffer now, as point reads do, so that a scan turns the blocks it
      // evicts into the buffers of the blocks it loads instead of into garbage.
      const cached = this.cachedBlock(i);
      if (cached !== undefined) return Promise.resolve(cached);
      try {
        return Promise.resolve(this.loadBlockSync(i));
      } catch (error) {
        return Promise.reject(error);
      }
    }
    if (fillCache) {
      return this.cache.load(this.cached, i, async () => {
        const block = await this.readBlock(i);
        return { value: block, bytes: block.memoryBytes };
      });
    }
    const cached = this.cachedBlock(i);
    return cached !== undefined ? Promise.resolve(cached) : this.readBlock(i);
  }

  /** @internal Block `i` read into a buffer of its own, bypassing the cache. */
  readPrivate(i: number): Promise<DataBlock> {
    return this.readBlock(i);
  }

  private async readBlock(i: number): Promise<DataBlock> {
    const offset = this.offsets[i]!;
    const raw = await readExact(this.store, this.objectKey, offset, this.lengths[i]!, `data block ${i}`);
    return this.decodeBlock(raw, raw.length, i);
  }

  /** Load checks of block `i`, which is bytes[0, length) (see decodeDataBlock), or only its checksum when the
   * same bytes passed them before (`knownChecksums`). */
  private decodeBlock(bytes: Uint8Array, length: number, i: number): DataBlock {
    const known = this.knownVerified[i]!;
    if (known !== 0) {
      const again = redecodeDataBlock(
        bytes,
        length,
        this.offsets[i]!,
        this.objectKey,
        i,
        this.properties.formatVersion,
        this.knownChecksums[i]!,
        commonPrefix(i > 0 ? this.lastKeys[i - 1]! : this.properties.minKey, this.lastKeys[i]!),
        known === ALL_VERIFIED ? ALL_VERIFIED : known & ~knownBit,
      );
      if (again !== undefined) return again;
    }
    const block = decodeDataBlock(
      bytes,
      length,
      this.offsets[i]!,
      {
        prevLastKey: i > 0 ? this.lastKeys[i - 1] : undefined,
        prevLastLsn: i > 0 ? this.lastLsns[i - 1]! : 0,
        minKey: this.properties.minKey,
        lastKey: this.lastKeys[i]!,
        lastLsn: this.lastLsns[i]!,
      },
      this.scanner,
      this.objectKey,
      i,
      this.properties.formatVersion,
    );
    this.knownChecksums[i] = storedChecksum(bytes, length);
    this.noteVerified(block, i);
    return block;
  }

  /** Records the intervals verified in block `i` for its next load, if it holds the bytes last found good. */
  private noteVerified(block: DataBlock, i: number): void {
    if (storedChecksum(block.bytes, this.lengths[i]!) !== this.knownChecksums[i]) return;
    const v = block.verified;
    this.knownVerified[i] = v === ALL_VERIFIED ? ALL_VERIFIED : v | knownBit;
  }

  /** @internal First block a scan visits. */
  firstBlock(start: Uint8Array | undefined, end: Uint8Array | undefined, reverse: boolean): number {
    const bound = reverse ? end : start;
    const n = this.lastKeys.length;
    if (bound === undefined) return reverse ? n - 1 : 0;
    // First block whose last key is >= bound: it holds the first key >= bound (and, reversing, the last < bound).
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareBytes(this.lastKeys[mid]!, bound) < 0) lo = mid + 1;
      else hi = mid;
    }
    return reverse ? Math.min(lo, n - 1) : lo;
  }

  /** @internal Whether block `i` may hold keys in the scan range (blocks hold keys >= the previous last key). */
  blockInRange(
    i: number,
    start: Uint8Array | undefined,
    end: Uint8Array | undefined,
    reverse: boolean,
  ): boolean {
    if (reverse) return i >= 0 && !(start !== undefined && compareBytes(this.lastKeys[i]!, start) < 0);
    return (
      i < this.lastKeys.length &&
      !(end !== undefined && i > 0 && compareBytes(this.lastKeys[i - 1]!, end) >= 0)
    );
  }

  /** @internal Appends the entries of block `i` with keys in [start, end) to `out`, in scan order. */
  decodeRange(
    block: DataBlock,
    i: number,
    start: Uint8Array | undefined,
    end: Uint8Array | undefined,
    reverse: boolean,
    out: Entry[],
  ): void {
    const s = this.scanner;
    // A scan reads on past any one interval, so it checks them all first (most blocks it reads were loaded for
    // it, and so are checked once, here).
    if (block.verified !== ALL_VERIFIED) {
      verifyAll(block, this.lastKeys[i]!, this.lastLsns[i]!, s, this.objectKey, i, this.offsets[i]!);
      this.noteVerified(block, i);
    }
    if (start !== undefined && (i === 0 || compareBytes(this.lastKeys[i - 1]!, start) < 0)) {
      if (!s.seek(block, start, lsnMax)) return;
    } else {
      s.start(block, 0);
      if (!s.next()) return;
    }
    const checkEnd = end !== undefined && compareBytes(this.lastKeys[i]!, end) >= 0;
    do {
      if (checkEnd && compareRange(s.key, 0, s.keyLength, end) >= 0) break;
      out.push(s.entry());
    } while (s.next());
    if (reverse) out.reverse();
  }
}

/** A scan over one SST; see `SstReader.iterate`. Also an async iterator. */
export class SstCursor extends AsyncCursor<Entry> {
  private readonly start: Uint8Array | undefined;
  private readonly end: Uint8Array | undefined;
  private readonly reverse: boolean;
  private readonly readaheadBlocks: number;
  private readonly fillCache: boolean;
  private items: Entry[] = [];
  private pos = 0;
  private nextBlock: number;
  private finished = false;
  /** Block whose absence made `nextSync` return NEEDS_IO, or -1. */
  private pending = -1;
  /** Blocks fetched or being fetched ahead of the scan. */
  private readonly ahead = new Map<number, DataBlock | Promise<DataBlock>>();

  constructor(
    private readonly reader: SstReader,
    options: SstIterateOptions,
  ) {
    super();
    this.start = options.start;
    this.end = options.end;
    this.reverse = options.reverse ?? false;
    this.readaheadBlocks = Math.max(0, Math.floor(options.readaheadBlocks ?? 0));
    this.fillCache = options.fillCache ?? true;
    this.nextBlock = reader.firstBlock(this.start, this.end, this.reverse);
    if (this.start !== undefined && this.end !== undefined && compareBytes(this.start, this.end) >= 0) {
      this.finished = true;
    }
  }

  nextSync(): Entry | undefined | NeedsIo {
    for (;;) {
      if (this.pos < this.items.length) return this.items[this.pos++]!;
      if (this.finished) return undefined;
      const i = this.nextBlock;
      if (!this.reader.blockInRange(i, this.start, this.end, this.reverse)) {
        this.close();
        return undefined;
      }
      let block: DataBlock | undefined;
      const ahead = this.ahead.get(i);
      if (ahead instanceof DataBlock && !ahead.released) {
        this.ahead.delete(i);
        block = ahead;
        this.prefetch(i);
      } else if (ahead === undefined || ahead instanceof DataBlock) {
        // A fetched block the cache has since dropped (its buffer reused) counts as not fetched.
        if (ahead !== undefined) this.ahead.delete(i);
        block = this.reader.cachedBlock(i);
      }
      if (block === undefined) {
        this.pending = i;
        return NEEDS_IO;
      }
      this.items.length = 0;
      this.pos = 0;
      this.reader.decodeRange(block, i, this.start, this.end, this.reverse, this.items);
      this.nextBlock = this.reverse ? i - 1 : i + 1;
    }
  }

  async fill(): Promise<void> {
    const i = this.pending;
    if (i < 0) return;
    this.pending = -1;
    const ahead = this.ahead.get(i);
    const loading = ahead ?? this.reader.loadBlock(i, this.fillCache);
    this.prefetch(i);
    let block = await loading;
    // Dropped by the cache while this scan waited: a private copy, which nothing else can reuse.
    if (block.released) block = await this.reader.readPrivate(i);
    if (!this.finished) this.ahead.set(i, block);
  }

  /** Starts fetching up to `readaheadBlocks` blocks past `i` that are neither cached nor on their way. */
  private prefetch(i: number): void {
    for (let k = 1; k <= this.readaheadBlocks; k++) {
      const j = this.reverse ? i - k : i + k;
      if (!this.reader.blockInRange(j, this.start, this.end, this.reverse)) return;
      if (this.ahead.has(j) || this.reader.isCached(j)) continue;
      const loading = this.reader.loadBlock(j, this.fillCache);
      this.ahead.set(j, loading);
      loading.then(
        (block) => {
          if (this.ahead.get(j) === loading) this.ahead.set(j, block);
        },
        () => {
          // Forgotten, so that the block is fetched again when the scan reaches it and the error surfaces then.
          if (this.ahead.get(j) === loading) this.ahead.delete(j);
        },
      );
    }
  }

  override close(): void {
    this.finished = true;
    this.items = [];
    this.pos = 0;
    this.ahead.clear();
  }
}
