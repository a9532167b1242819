/**
 * SST (sorted string table) format: an immutable object holding entries in internal order, read by ranged reads
 * of single blocks so that a database many times larger than memory needs only its hot blocks in RAM.
 *
 * Object layout, all integers little-endian:
 *
 *   data block 0 | data block 1 | … | index block | bloom block | properties block | footer (40 bytes)
 *
 * Every block is its content followed by a u32 CRC-32C of the content, seeded with the low 32 bits of the
 * block's offset in the object: a block read from the wrong offset fails its check even when its own bytes are
 * intact.
 *
 * Data block (about `blockBytesTarget` bytes; the unit a point read fetches and the cache holds):
 *   entries, back to back, each:
 *     varint shared      bytes the key shares with the previous entry's key; 0 at every restart point
 *     varint unshared    bytes of the key that follow
 *     varint valueTag    0 = Delete; n + 1 = Put with an n-byte value
 *     varint lsn
 *     unshared key bytes, then the value bytes
 *   u32 × R   restart offsets: block-relative offsets of entries 0, r, 2r, … (r = restart interval, 16)
 *   u32       R, >= 1
 *   A lookup binary-searches the restart keys (stored whole) and then scans at most r entries.
 *
 * Index block: varint blockCount (>= 1), then per data block: varint lastKeyLength, last key, varint lastLsn,
 *   varint blockLength (including its CRC). Blocks are contiguous from offset 0, so offsets are implied. Holding
 *   the last (key, lsn) rather than only the key sends a point read to exactly one block even when the versions
 *   of a key straddle two.
 * Bloom block: a serialized `Bloom` over the distinct keys (bloom.ts).
 * Properties block, varints: entryCount, distinctKeyCount, putCount, deleteCount, minLsn, maxLsn, dataBytes,
 *   blockCount, keyBytesMax, valueBytesMax, restartInterval, minKeyLength, minKey, maxKeyLength, maxKey.
 *
 * Footer, fixed 40 bytes at the very end, so one ranged read of the tail finds everything else:
 *   0  u64  index block offset (= bytes of all data blocks)
 *   8  u32  index block length
 *   12 u32  bloom block length
 *   16 u32  properties block length
 *   20 u32  format version (1)
 *   24 u32  flags (0)
 *   28 u32  CRC-32C of footer bytes 0..28
 *   32 8 B  magic "TwillSST"
 *
 * Invariants (the writer asserts them before writing; the reader checks them after reading, and any breach is
 * CORRUPTION naming the object and the defect — a reader never returns bytes that failed a check):
 *   - Entries are in strictly increasing internal order across the whole object, with valid LSNs and kinds.
 *   - index, bloom, properties and footer are adjacent and end exactly at the object's end.
 *   - Block i's last entry is the index's (lastKey, lastLsn) for i, and its first entry follows block i-1's last.
 *   - The properties agree with the index: block count, data bytes, max key.
 */

import { ErrorCodes, TwillError } from "../../errors.js";
import { crc32c } from "../../storage/crc32c.js";
import { ByteReader, type ByteWriter } from "./byte-io.js";
import { type Entry, EntryKind, isValidLsn, LsmLimits } from "./types.js";

export const SST_FORMAT_VERSION = 1;
export const FOOTER_BYTES = 40;
/** "TwillSST" */
export const SST_MAGIC = new Uint8Array([0x54, 0x77, 0x69, 0x6c, 0x6c, 0x53, 0x53, 0x54]);
export const CHECKSUM_BYTES = 4;
/** A block can hold one entry of maximal size plus whatever the target put before it. */
export const dataBlockBytesMax = LsmLimits.valueBytesMax + LsmLimits.keyBytesMax + 32 * 1024 * 1024;
/** Smallest possible data block: one 4-byte-header entry with empty key, one restart, R, CRC. */
const dataBlockBytesMin = 4 + 4 + 4 + CHECKSUM_BYTES;

const EMPTY = new Uint8Array(0);
const TWO_32 = 2 ** 32;

export function blockChecksum(content: Uint8Array, blockOffset: number): number {
  return crc32c(content, blockOffset % TWO_32);
}

export function sstCorruption(objectKey: string, defect: string, cause?: unknown): TwillError {
  return new TwillError(ErrorCodes.Corruption, `SST ${objectKey} is corrupt: ${defect}`, {
    hint: "the object was damaged or is not an SST; restore it from a backup or rebuild it from the log",
    cause,
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Data blocks

/** A verified data block, as the cache holds it: the entry bytes and the restart offsets. */
export class DataBlock {
  constructor(
    /** The entries region (restart array and CRC cut off). */
    readonly bytes: Uint8Array,
    readonly restarts: Uint32Array,
    readonly entryCount: number,
  ) {}

  /** Memory held, for the cache's byte budget (the bytes, the restarts and object overhead). */
  get memoryBytes(): number {
    return this.bytes.byteLength + this.restarts.byteLength + 128;
  }
}

function defect(at: number, reason: string): TwillError {
  return new TwillError(ErrorCodes.Corruption, `entry at byte ${at}: ${reason}`);
}

/**
 * Decodes the entries of a data block one at a time into reusable fields (no allocation per entry). Used
 * synchronously only, so one scanner per reader serves every lookup and cursor.
 */
export class BlockScanner {
  bytes: Uint8Array = EMPTY;
  /** Offset of the next entry to decode. */
  pos = 0;
  /** Offset of the current entry. */
  entryStart = 0;
  /** The current key is key[0, keyLength). */
  key: Uint8Array;
  keyLength = 0;
  lsn = 0;
  kind: EntryKind = EntryKind.Put;
  valueStart = 0;
  valueLength = 0;
  /** `shared` of the current entry (validation checks it is 0 at restarts). */
  shared = 0;

  constructor(keyBytesHint = 64) {
    this.key = new Uint8Array(Math.max(16, keyBytesHint));
  }

  /** Positions before the entry at restart `r` (whose key is stored whole). */
  start(block: DataBlock, restartIndex: number): void {
    this.bytes = block.bytes;
    this.pos = block.restarts[restartIndex]!;
    this.keyLength = 0;
  }

  private varint(): number {
    const bytes = this.bytes;
    let b = bytes[this.pos++];
    if (b === undefined) throw defect(this.entryStart, "varint runs past the end of the entries");
    if (b < 0x80) return b;
    let result = b & 0x7f;
    let scale = 0x80;
    for (let i = 1; i < 8; i++) {
      b = bytes[this.pos++];
      if (b === undefined) throw defect(this.entryStart, "varint runs past the end of the entries");
      result += (b & 0x7f) * scale;
      if (b < 0x80) return result;
      scale *= 0x80;
    }
    throw defect(this.entryStart, "varint longer than 8 bytes");
  }

  /** Decodes the next entry into the fields; false at the end of the block. */
  next(): boolean {
    const bytes = this.bytes;
    const end = bytes.length;
    if (this.pos >= end) return false;
    this.entryStart = this.pos;
    const shared = this.varint();
    const unshared = this.varint();
    const valueTag = this.varint();
    const lsn = this.varint();
    if (shared > this.keyLength)
      throw defect(this.entryStart, `shares ${shared} bytes of a ${this.keyLength}-byte key`);
    const keyLength = shared + unshared;
    if (keyLength > LsmLimits.keyBytesMax) throw defect(this.entryStart, `key of ${keyLength} bytes`);
    const valueLength = valueTag === 0 ? 0 : valueTag - 1;
    const keyStart = this.pos;
    const valueStart = keyStart + unshared;
    if (valueStart + valueLength > end)
      throw defect(this.entryStart, "key or value runs past the end of the entries");
    if (!isValidLsn(lsn)) throw defect(this.entryStart, `lsn ${lsn} is outside [1, 2^53)`);
    if (keyLength > this.key.length) {
      const grown = new Uint8Array(Math.max(keyLength, this.key.length * 2));
      grown.set(this.key.subarray(0, shared));
      this.key = grown;
    }
    const key = this.key;
    if (unshared < 32) {
      for (let i = 0; i < unshared; i++) key[shared + i] = bytes[keyStart + i]!;
    } else {
      key.set(bytes.subarray(keyStart, valueStart), shared);
    }
    this.shared = shared;
    this.keyLength = keyLength;
    this.lsn = lsn;
    this.kind = valueTag === 0 ? EntryKind.Delete : EntryKind.Put;
    this.valueStart = valueStart;
    this.valueLength = valueLength;
    this.pos = valueStart + valueLength;
    return true;
  }

  /** Internal order of the current entry against (key, lsn). */
  compareCurrent(key: Uint8Array, lsn: number): number {
    const c = compareRange(this.key, 0, this.keyLength, key);
    return c !== 0 ? c : lsn - this.lsn;
  }

  currentKeyEquals(key: Uint8Array): boolean {
    if (this.keyLength !== key.length) return false;
    const k = this.key;
    for (let i = this.keyLength - 1; i >= 0; i--) if (k[i] !== key[i]) return false;
    return true;
  }

  /** The current entry as a fresh Entry. The key is copied; the value is a view into the (immutable) block. */
  entry(): Entry {
    return {
      key: this.key.slice(0, this.keyLength),
      lsn: this.lsn,
      kind: this.kind,
      value:
        this.valueLength === 0
          ? EMPTY
          : this.bytes.subarray(this.valueStart, this.valueStart + this.valueLength),
    };
  }

  /** Internal order of the entry at restart `r` against (key, lsn), read in place. */
  private compareRestart(block: DataBlock, r: number, key: Uint8Array, lsn: number): number {
    this.bytes = block.bytes;
    this.pos = block.restarts[r]!;
    this.entryStart = this.pos;
    this.varint(); // shared, 0 at a restart (checked when the block was loaded)
    const unshared = this.varint();
    this.varint(); // value tag
    const restartLsn = this.varint();
    const c = compareRange(this.bytes, this.pos, unshared, key);
    return c !== 0 ? c : lsn - restartLsn;
  }

  /**
   * Positions on the first entry >= (key, lsn) in internal order and returns true, or returns false when every
   * entry of the block is smaller. Binary search over restarts, then a scan of at most one restart interval.
   */
  seek(block: DataBlock, key: Uint8Array, lsn: number): boolean {
    let lo = 0;
    let hi = block.restarts.length - 1;
    let from = 0;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.compareRestart(block, mid, key, lsn) < 0) {
        from = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    this.start(block, from);
    while (this.next()) {
      if (this.compareCurrent(key, lsn) >= 0) return true;
    }
    return false;
  }
}

/** Unsigned byte order of a[start, start + length) against b. */
export function compareRange(a: Uint8Array, start: number, length: number, b: Uint8Array): number {
  const n = Math.min(length, b.length);
  for (let i = 0; i < n; i++) {
    const d = a[start + i]! - b[i]!;
    if (d !== 0) return d;
  }
  return length - b.length;
}

/** What a data block must agree with, from the index. */
export interface BlockBounds {
  /** Last (key, lsn) of the previous block; the block's first entry must follow it. */
  prevLastKey: Uint8Array | undefined;
  prevLastLsn: number;
  /** The block's own last (key, lsn). */
  lastKey: Uint8Array;
  lastLsn: number;
}

/**
 * Verifies a data block read from storage (checksum, restarts, every entry, order, agreement with the index)
 * and returns it decoded. Errors name the object and the block.
 */
export function decodeDataBlock(
  raw: Uint8Array,
  blockOffset: number,
  bounds: BlockBounds,
  scanner: BlockScanner,
  objectKey: string,
  blockIndex: number,
): DataBlock {
  const fail = (reason: string, cause?: unknown): TwillError =>
    sstCorruption(objectKey, `data block ${blockIndex} (at byte ${blockOffset}): ${reason}`, cause);
  if (raw.length < dataBlockBytesMin) throw fail(`${raw.length} bytes is too short for a data block`);
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const contentEnd = raw.length - CHECKSUM_BYTES;
  if (blockChecksum(raw.subarray(0, contentEnd), blockOffset) !== view.getUint32(contentEnd, true)) {
    throw fail("checksum mismatch");
  }
  const restartCount = view.getUint32(contentEnd - 4, true);
  const entriesEnd = contentEnd - 4 - restartCount * 4;
  if (restartCount < 1 || entriesEnd < 1) throw fail(`restart count ${restartCount} does not fit the block`);
  const restarts = new Uint32Array(restartCount);
  for (let r = 0; r < restartCount; r++) {
    const offset = view.getUint32(entriesEnd + r * 4, true);
    if ((r === 0 && offset !== 0) || (r > 0 && offset <= restarts[r - 1]!) || offset >= entriesEnd) {
      throw fail(`restart ${r} has bad offset ${offset}`);
    }
    restarts[r] = offset;
  }
  const block = new DataBlock(raw.subarray(0, entriesEnd), restarts, 0);
  let count = 0;
  let prevKey = new Uint8Array(64);
  let prevKeyLength = -1;
  let prevLsn = 0;
  let nextRestart = 0;
  try {
    scanner.start(block, 0);
    for (;;) {
      const at = scanner.pos;
      if (!scanner.next()) break;
      if (nextRestart < restartCount && at >= restarts[nextRestart]!) {
        if (at !== restarts[nextRestart])
          throw defect(at, `restart ${nextRestart} is not at an entry boundary`);
        if (scanner.shared !== 0) throw defect(at, "a restart entry shares key bytes");
        nextRestart++;
      }
      if (prevKeyLength >= 0) {
        const c = compareRange(scanner.key, 0, scanner.keyLength, prevKey.subarray(0, prevKeyLength));
        if (c < 0 || (c === 0 && scanner.lsn >= prevLsn)) throw defect(at, "entries out of order");
      } else if (
        bounds.prevLastKey !== undefined &&
        scanner.compareCurrent(bounds.prevLastKey, bounds.prevLastLsn) <= 0
      ) {
        throw defect(at, "first entry does not follow the previous block's last entry");
      }
      if (scanner.keyLength > prevKey.length) prevKey = new Uint8Array(scanner.keyLength * 2);
      prevKey.set(scanner.key.subarray(0, scanner.keyLength));
      prevKeyLength = scanner.keyLength;
      prevLsn = scanner.lsn;
      count++;
    }
  } catch (error) {
    if (error instanceof TwillError && error.code === ErrorCodes.Corruption) throw fail(error.message, error);
    throw error;
  }
  if (nextRestart !== restartCount) throw fail(`restart ${nextRestart} is not at an entry boundary`);
  if (
    prevKeyLength < 0 ||
    compareRange(prevKey, 0, prevKeyLength, bounds.lastKey) !== 0 ||
    prevLsn !== bounds.lastLsn
  ) {
    throw fail("last entry does not match the index");
  }
  return new DataBlock(block.bytes, restarts, count);
}

// ---------------------------------------------------------------------------------------------------------------
// Index

export interface SstIndex {
  blockCount: number;
  lastKeys: Uint8Array[];
  lastLsns: Float64Array;
  offsets: Float64Array;
  lengths: Float64Array;
}

export function encodeIndexEntry(
  out: ByteWriter,
  lastKey: Uint8Array,
  lastLength: number,
  lastLsn: number,
  blockBytes: number,
): void {
  out.varint(lastLength).bytesRange(lastKey, 0, lastLength).varint(lastLsn).varint(blockBytes);
}

export function decodeIndex(content: Uint8Array, dataBytes: number, what: string): SstIndex {
  const r = new ByteReader(content, what);
  const blockCount = r.varint();
  // Each entry takes at least 3 bytes, which bounds the allocation below by the block's size.
  if (blockCount < 1 || blockCount * 3 > content.length)
    throw r.corrupt(`block count ${blockCount} does not fit`);
  const lastKeys: Uint8Array[] = new Array(blockCount);
  const lastLsns = new Float64Array(blockCount);
  const offsets = new Float64Array(blockCount);
  const lengths = new Float64Array(blockCount);
  let offset = 0;
  for (let i = 0; i < blockCount; i++) {
    const keyLength = r.varint();
    if (keyLength > LsmLimits.keyBytesMax) throw r.corrupt(`block ${i} last key of ${keyLength} bytes`);
    const key = r.bytesView(keyLength);
    const lsn = r.varint();
    const length = r.varint();
    if (!isValidLsn(lsn)) throw r.corrupt(`block ${i} last lsn ${lsn} is not valid`);
    if (length < dataBlockBytesMin || length > dataBlockBytesMax)
      throw r.corrupt(`block ${i} length ${length}`);
    if (i > 0) {
      const c = compareRange(lastKeys[i - 1]!, 0, lastKeys[i - 1]!.length, key);
      if (c > 0 || (c === 0 && lsn >= lastLsns[i - 1]!)) throw r.corrupt(`block ${i} last key out of order`);
    }
    lastKeys[i] = key;
    lastLsns[i] = lsn;
    offsets[i] = offset;
    lengths[i] = length;
    offset += length;
  }
  r.expectEnd();
  if (offset !== dataBytes)
    throw r.corrupt(`data blocks cover ${offset} bytes but the index starts at ${dataBytes}`);
  return { blockCount, lastKeys, lastLsns, offsets, lengths };
}

// ---------------------------------------------------------------------------------------------------------------
// Properties

export interface SstProperties {
  formatVersion: number;
  entryCount: number;
  distinctKeyCount: number;
  putCount: number;
  deleteCount: number;
  minLsn: number;
  maxLsn: number;
  /** Bytes of all data blocks (the offset of the index block). */
  dataBytes: number;
  blockCount: number;
  /** Longest key and value, in bytes. */
  keyBytesMax: number;
  valueBytesMax: number;
  restartInterval: number;
  /** Smallest and largest key (each key appears in several versions; these are user keys). */
  minKey: Uint8Array;
  maxKey: Uint8Array;
}

export function encodeProperties(out: ByteWriter, p: SstProperties): void {
  out
    .varint(p.entryCount)
    .varint(p.distinctKeyCount)
    .varint(p.putCount)
    .varint(p.deleteCount)
    .varint(p.minLsn)
    .varint(p.maxLsn)
    .varint(p.dataBytes)
    .varint(p.blockCount)
    .varint(p.keyBytesMax)
    .varint(p.valueBytesMax)
    .varint(p.restartInterval)
    .varint(p.minKey.length)
    .bytes(p.minKey)
    .varint(p.maxKey.length)
    .bytes(p.maxKey);
}

export function decodeProperties(content: Uint8Array, formatVersion: number, what: string): SstProperties {
  const r = new ByteReader(content, what);
  const entryCount = r.varint();
  const distinctKeyCount = r.varint();
  const putCount = r.varint();
  const deleteCount = r.varint();
  const minLsn = r.varint();
  const maxLsn = r.varint();
  const dataBytes = r.varint();
  const blockCount = r.varint();
  const keyBytesMax = r.varint();
  const valueBytesMax = r.varint();
  const restartInterval = r.varint();
  const minKeyLength = r.varint();
  if (minKeyLength > LsmLimits.keyBytesMax) throw r.corrupt(`min key of ${minKeyLength} bytes`);
  const minKey = r.bytesView(minKeyLength).slice();
  const maxKeyLength = r.varint();
  if (maxKeyLength > LsmLimits.keyBytesMax) throw r.corrupt(`max key of ${maxKeyLength} bytes`);
  const maxKey = r.bytesView(maxKeyLength).slice();
  r.expectEnd();
  const p: SstProperties = {
    formatVersion,
    entryCount,
    distinctKeyCount,
    putCount,
    deleteCount,
    minLsn,
    maxLsn,
    dataBytes,
    blockCount,
    keyBytesMax,
    valueBytesMax,
    restartInterval,
    minKey,
    maxKey,
  };
  const bad =
    entryCount < 1
      ? "no entries"
      : putCount + deleteCount !== entryCount
        ? "put and delete counts do not add up to the entry count"
        : distinctKeyCount < 1 || distinctKeyCount > entryCount
          ? "distinct key count is outside 1..entryCount"
          : !isValidLsn(minLsn) || !isValidLsn(maxLsn) || minLsn > maxLsn
            ? "bad lsn range"
            : blockCount < 1 || blockCount > entryCount
              ? "block count is outside 1..entryCount"
              : keyBytesMax > LsmLimits.keyBytesMax || valueBytesMax > LsmLimits.valueBytesMax
                ? "key or value size over the limits"
                : minKey.length > keyBytesMax || maxKey.length > keyBytesMax
                  ? "min or max key longer than keyBytesMax"
                  : compareRange(minKey, 0, minKey.length, maxKey) > 0
                    ? "min key is above max key"
                    : restartInterval < 1
                      ? "restart interval is 0"
                      : undefined;
  if (bad !== undefined) throw r.corrupt(bad);
  return p;
}

// ---------------------------------------------------------------------------------------------------------------
// Footer

export interface SstFooter {
  indexOffset: number;
  indexLength: number;
  bloomLength: number;
  propertiesLength: number;
  formatVersion: number;
}

export function encodeFooter(f: SstFooter): Uint8Array {
  const out = new Uint8Array(FOOTER_BYTES);
  const view = new DataView(out.buffer);
  view.setUint32(0, f.indexOffset % TWO_32, true);
  view.setUint32(4, Math.floor(f.indexOffset / TWO_32), true);
  view.setUint32(8, f.indexLength, true);
  view.setUint32(12, f.bloomLength, true);
  view.setUint32(16, f.propertiesLength, true);
  view.setUint32(20, f.formatVersion, true);
  view.setUint32(24, 0, true);
  view.setUint32(28, crc32c(out.subarray(0, 28)), true);
  out.set(SST_MAGIC, 32);
  return out;
}

/** Parses and checks the footer at the end of an object of `sizeBytes`; throws CORRUPTION naming `objectKey`. */
export function decodeFooter(bytes: Uint8Array, sizeBytes: number, objectKey: string): SstFooter {
  if (bytes.length !== FOOTER_BYTES)
    throw sstCorruption(objectKey, `footer is ${bytes.length} bytes, not ${FOOTER_BYTES}`);
  for (let i = 0; i < SST_MAGIC.length; i++) {
    if (bytes[32 + i] !== SST_MAGIC[i]) {
      throw sstCorruption(objectKey, "bad magic at the end of the object (not an SST, or truncated)");
    }
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (crc32c(bytes.subarray(0, 28)) !== view.getUint32(28, true))
    throw sstCorruption(objectKey, "footer checksum mismatch");
  const hi = view.getUint32(4, true);
  if (hi >= 2 ** 21) throw sstCorruption(objectKey, "footer index offset is 2^53 or more");
  const footer: SstFooter = {
    indexOffset: hi * TWO_32 + view.getUint32(0, true),
    indexLength: view.getUint32(8, true),
    bloomLength: view.getUint32(12, true),
    propertiesLength: view.getUint32(16, true),
    formatVersion: view.getUint32(20, true),
  };
  if (footer.formatVersion !== SST_FORMAT_VERSION) {
    throw sstCorruption(
      objectKey,
      `unknown format version ${footer.formatVersion} (this build reads ${SST_FORMAT_VERSION})`,
    );
  }
  if (view.getUint32(24, true) !== 0) throw sstCorruption(objectKey, "unknown footer flags");
  const metaEnd =
    footer.indexOffset + footer.indexLength + footer.bloomLength + footer.propertiesLength + FOOTER_BYTES;
  if (metaEnd !== sizeBytes) {
    throw sstCorruption(
      objectKey,
      `footer describes an object of ${metaEnd} bytes but it has ${sizeBytes} (truncated?)`,
    );
  }
  if (
    footer.indexLength <= CHECKSUM_BYTES ||
    footer.bloomLength <= CHECKSUM_BYTES ||
    footer.propertiesLength <= CHECKSUM_BYTES ||
    footer.indexOffset < dataBlockBytesMin
  ) {
    throw sstCorruption(objectKey, "footer has an empty block");
  }
  return footer;
}

/** Checks a meta block's CRC and returns its content (a view). */
export function checkedContent(
  block: Uint8Array,
  blockOffset: number,
  objectKey: string,
  name: string,
): Uint8Array {
  const contentEnd = block.length - CHECKSUM_BYTES;
  const view = new DataView(block.buffer, block.byteOffset, block.byteLength);
  const content = block.subarray(0, contentEnd);
  if (blockChecksum(content, blockOffset) !== view.getUint32(contentEnd, true)) {
    throw sstCorruption(objectKey, `${name} block checksum mismatch`);
  }
  return content;
}
