/**
 * SST data blocks: verifying one after it is read, and the two ways of reading one — a point lookup that walks
 * the bytes without building keys, and a scanner that decodes entries one by one for scans. Layout in
 * sst-format.ts.
 *
 * Invariants a block has once `decodeDataBlock` accepted it (and that the lookups rely on instead of
 * re-checking bounds on every byte):
 *   - Its checksum matched, every entry lies within the block, varints are at most 8 bytes and below 2^53,
 *     restarts point at entry boundaries and at entries with shared = 0.
 *   - `shared` is maximal except at restarts (where it is 0): where a key differs from the previous one, the
 *     first differing byte is at `shared`. This lets a lookup track how much of the target key the current key
 *     matches without rebuilding the key.
 *   - Entries are in strictly increasing internal order, the first follows the previous block's last entry (for
 *     block 0: its key is >= the SST's min key), and the last is the index's (lastKey, lastLsn) for the block.
 *     So every key in the block, and every key a lookup is sent to the block for, starts with the `prefixBytes`
 *     bytes that the block's lower bound and last key share, and comparisons may skip them.
 */

import { ErrorCodes, TwillError } from "../../errors.js";
import { copyValue } from "./block-pool.js";
import { blockChecksum, CHECKSUM_BYTES, dataBlockBytesMin, sstCorruption } from "./sst-format.js";
import { type Entry, EntryKind, LsmLimits } from "./types.js";

const EMPTY = new Uint8Array(0);

/** A verified data block, as the cache holds it. */
export class DataBlock {
  /**
   * The recycled buffer `bytes` lives in (block-pool.ts), or undefined when the block owns a buffer of its own.
   * Values leave a pooled block only as copies, since the buffer is reused once the cache drops the block.
   */
  buffer: Uint8Array | undefined = undefined;
  /** Set when the cache dropped this pooled block and gave its buffer back: its bytes are no longer its own. */
  released = false;

  constructor(
    /** The entries region (restart array and CRC cut off). */
    readonly bytes: Uint8Array,
    readonly entryCount: number,
    /** Leading key bytes shared by every key in the block and every key looked up in it (see the header). */
    readonly prefixBytes: number,
    /**
     * The restart table, decoded once at load so that the binary search over restarts reads no varints: for
     * restart r, [3r] is the entry's offset, [3r + 1] where its (whole) key starts and [3r + 2] its length. One
     * array rather than one per column: a miss allocates it, and with the 2-3 restarts of a 4 KiB block it lives
     * on the V8 heap (a column each was 4 typed arrays and their buffers per miss, all promoted with the block).
     * The restart entries' lsns are not kept: only a key tie needs one, and `restartLsn` reads it then.
     */
    readonly restartTable: Uint32Array,
  ) {}

  get restartCount(): number {
    return this.restartTable.length / 3;
  }

  /** Memory held, for the cache's byte budget (the buffer, the restart table and object overhead). */
  get memoryBytes(): number {
    return (this.buffer ?? this.bytes).byteLength + this.restartTable.length * 4 + 256;
  }

  /** Called by the cache when it drops the block: the pooled buffer to recycle, if any (once). */
  release(): Uint8Array | undefined {
    const buffer = this.buffer;
    if (buffer === undefined || this.released) return undefined;
    this.released = true;
    return buffer;
  }
}

/** Length of the common prefix of a and b. */
export function commonPrefix(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** Unsigned byte order of a[start, start + length) against b[from, b.length), both past a shared prefix. */
export function compareRange(a: Uint8Array, start: number, length: number, b: Uint8Array, from = 0): number {
  const n = Math.min(length, b.length - from);
  for (let i = 0; i < n; i++) {
    const d = a[start + i]! - b[from + i]!;
    if (d !== 0) return d;
  }
  return length - (b.length - from);
}

/** Where the last `varintAt` call ended. Module state rather than an object: this sits on the hottest path. */
let varintEnd = 0;

/** Decodes a varint of a verified block at `p` (no bounds checks); the end goes to `varintEnd`. */
function varintAt(bytes: Uint8Array, p: number): number {
  let b = bytes[p++]!;
  if (b < 0x80) {
    varintEnd = p;
    return b;
  }
  let result = b & 0x7f;
  let scale = 0x80;
  do {
    b = bytes[p++]!;
    result += (b & 0x7f) * scale;
    scale *= 0x80;
  } while (b >= 0x80);
  varintEnd = p;
  return result;
}

/** The lsn of restart `r`'s entry: past its shared, unshared and value-tag varints. */
function restartLsn(block: DataBlock, r: number): number {
  const bytes = block.bytes;
  let p = block.restartTable[3 * r]!;
  for (let v = 0; v < 3; v++) {
    while (bytes[p]! >= 0x80) p++;
    p++;
  }
  return varintAt(bytes, p);
}

/**
 * The newest version of `key` with lsn <= snapshotLsn in `block`, or undefined; the entry's key is `key` itself.
 * The caller (the index search) guarantees the block is the one that would hold it. No key is rebuilt: `m`
 * tracks how many leading bytes of the current key equal the target's, using the maximal-shared invariant.
 */
export function getFromBlock(block: DataBlock, key: Uint8Array, snapshotLsn: number): Entry | undefined {
  const bytes = block.bytes;
  const table = block.restartTable;
  const skip = block.prefixBytes;
  // Last restart whose entry is < (key, snapshot) in internal order; restart entries hold whole keys.
  let lo = 0;
  let hi = table.length / 3 - 1;
  let from = 0;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    let c = compareRange(bytes, table[3 * mid + 1]! + skip, table[3 * mid + 2]! - skip, key, skip);
    if (c === 0) c = snapshotLsn - restartLsn(block, mid);
    if (c < 0) {
      from = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  const end = bytes.length;
  const target = key.length;
  let p = table[3 * from]!;
  let m = skip;
  while (p < end) {
    // Varints inline where they are one byte (shared, unshared and value tag nearly always are).
    let shared = bytes[p]!;
    if (shared < 0x80) p++;
    else {
      shared = varintAt(bytes, p);
      p = varintEnd;
    }
    let unshared = bytes[p]!;
    if (unshared < 0x80) p++;
    else {
      unshared = varintAt(bytes, p);
      p = varintEnd;
    }
    let valueTag = bytes[p]!;
    if (valueTag < 0x80) p++;
    else {
      valueTag = varintAt(bytes, p);
      p = varintEnd;
    }
    const lsnAt = p;
    while (bytes[p]! >= 0x80) p++;
    p++;
    const keyStart = p;
    const keyLength = shared + unshared;
    const valueLength = valueTag === 0 ? 0 : valueTag - 1;
    p = keyStart + unshared + valueLength;
    if (shared === 0) {
      // A whole key (every restart entry): match it afresh, past the prefix all keys here share with the target.
      m = skip;
      const n = Math.min(keyLength, target);
      while (m < n && bytes[keyStart + m] === key[m]) m++;
    } else if (shared < m) {
      // It differs from the previous key at `shared`, upwards, where the previous key still equalled the target.
      return undefined;
    } else if (shared > m) {
      // It agrees with the previous key beyond where that one left the target: it is below the target too.
      continue;
    } else {
      const n = Math.min(keyLength, target);
      while (m < n && bytes[keyStart + m - shared] === key[m]) m++;
    }
    if (m === keyLength) {
      if (m === target) {
        const lsn = varintAt(bytes, lsnAt);
        if (lsn <= snapshotLsn) {
          return {
            // The lookup key itself (the same bytes): point reads hand entries to callers that read only their
            // lsn, kind and value, and a copy here was one allocation per read.
            key,
            lsn,
            kind: valueTag === 0 ? EntryKind.Delete : EntryKind.Put,
            value:
              valueLength === 0
                ? EMPTY
                : block.buffer === undefined
                  ? bytes.subarray(p - valueLength, p)
                  : copyValue(bytes, p - valueLength, valueLength),
          };
        }
      }
      // A version too new, or a proper prefix of the target: below it, keep going.
      continue;
    }
    if (m === target || bytes[keyStart + m - shared]! > key[m]!) return undefined;
  }
  return undefined;
}

function defect(at: number, reason: string): TwillError {
  return new TwillError(ErrorCodes.Corruption, `entry at byte ${at}: ${reason}`);
}

/**
 * Decodes the entries of a data block one at a time into reusable fields (no allocation per entry), checking
 * bounds as it goes (it also reads blocks not yet verified). Used synchronously only, so one per reader serves
 * every scan.
 */
export class BlockScanner {
  bytes: Uint8Array = EMPTY;
  /** Whether `bytes` is a pooled buffer, whose values must be copied out. */
  pooled = false;
  /** Offset of the next entry to decode. */
  pos = 0;
  /** The current key is key[0, keyLength). */
  key: Uint8Array;
  keyLength = 0;
  lsn = 0;
  kind: EntryKind = EntryKind.Put;
  valueStart = 0;
  valueLength = 0;
  /** `shared` of the current entry, and the previous key's byte it replaced at that position (-1: none). */
  shared = 0;
  displaced = -1;

  constructor(keyBytesHint = 64) {
    this.key = new Uint8Array(Math.max(16, keyBytesHint));
  }

  /** A scratch key buffer for `decodeDataBlock`, kept so that verifying a block allocates none. */
  spare = new Uint8Array(64);

  /** Positions before the entry at restart `r` (whose key is stored whole). */
  start(block: DataBlock, restartIndex: number): void {
    this.bytes = block.bytes;
    this.pooled = block.buffer !== undefined;
    this.pos = block.restartTable[3 * restartIndex]!;
    this.keyLength = 0;
  }

  /** Positions before the entry at `pos` of an entries region not yet verified (values are not taken). */
  startBytes(bytes: Uint8Array, pos: number): void {
    this.bytes = bytes;
    this.pooled = true;
    this.pos = pos;
    this.keyLength = 0;
  }

  private checkedVarint(p: number, entryStart: number): number {
    const bytes = this.bytes;
    const end = bytes.length;
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      if (p >= end) throw defect(entryStart, "varint runs past the end of the entries");
      const b = bytes[p++]!;
      result += (b & 0x7f) * scale;
      if (b < 0x80) {
        varintEnd = p;
        return result;
      }
      scale *= 0x80;
    }
    throw defect(entryStart, "varint longer than 8 bytes");
  }

  /** Decodes the next entry into the fields; false at the end of the block. */
  next(): boolean {
    const bytes = this.bytes;
    const end = bytes.length;
    const entryStart = this.pos;
    if (entryStart >= end) return false;
    // One-byte varints inline (nearly all are); a byte past the end reads undefined and takes the checked path.
    let p = entryStart;
    let shared = bytes[p]!;
    if (shared < 0x80) p++;
    else {
      shared = this.checkedVarint(p, entryStart);
      p = varintEnd;
    }
    let unshared = bytes[p]!;
    if (unshared < 0x80) p++;
    else {
      unshared = this.checkedVarint(p, entryStart);
      p = varintEnd;
    }
    let valueTag = bytes[p]!;
    if (valueTag < 0x80) p++;
    else {
      valueTag = this.checkedVarint(p, entryStart);
      p = varintEnd;
    }
    let lsn = bytes[p]!;
    if (lsn < 0x80) p++;
    else {
      lsn = this.checkedVarint(p, entryStart);
      p = varintEnd;
    }
    const keyStart = p;
    if (shared > this.keyLength)
      throw defect(entryStart, `shares ${shared} bytes of a ${this.keyLength}-byte key`);
    const keyLength = shared + unshared;
    if (keyLength > LsmLimits.keyBytesMax) throw defect(entryStart, `key of ${keyLength} bytes`);
    const valueLength = valueTag === 0 ? 0 : valueTag - 1;
    const valueStart = keyStart + unshared;
    if (valueStart + valueLength > end)
      throw defect(entryStart, "key or value runs past the end of the entries");
    if (!Number.isSafeInteger(lsn) || lsn < 1) throw defect(entryStart, `lsn ${lsn} is outside [1, 2^53)`);
    if (keyLength > this.key.length) {
      const grown = new Uint8Array(Math.max(keyLength, this.key.length * 2));
      grown.set(this.key.subarray(0, this.keyLength));
      this.key = grown;
    }
    const key = this.key;
    this.displaced = shared < this.keyLength ? key[shared]! : -1;
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

  /**
   * The current entry as a fresh Entry. The key is copied; the value is a view into the (immutable) block, or a
   * copy when the block's buffer is pooled.
   */
  entry(): Entry {
    return {
      key: this.key.slice(0, this.keyLength),
      lsn: this.lsn,
      kind: this.kind,
      value:
        this.valueLength === 0
          ? EMPTY
          : this.pooled
            ? copyValue(this.bytes, this.valueStart, this.valueLength)
            : this.bytes.subarray(this.valueStart, this.valueStart + this.valueLength),
    };
  }

  /**
   * Positions on the first entry >= (key, lsn) in internal order and returns true, or returns false when every
   * entry of the block is smaller. Binary search over restarts, then a scan of at most one restart interval.
   */
  seek(block: DataBlock, key: Uint8Array, lsn: number): boolean {
    const bytes = block.bytes;
    const table = block.restartTable;
    let lo = 0;
    let hi = table.length / 3 - 1;
    let from = 0;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      let c = compareRange(bytes, table[3 * mid + 1]!, table[3 * mid + 2]!, key);
      if (c === 0) c = lsn - restartLsn(block, mid);
      if (c < 0) {
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

/** What a data block must agree with, from the index and the properties. */
export interface BlockBounds {
  /** Last (key, lsn) of the previous block, which the first entry must follow; undefined for block 0. */
  prevLastKey: Uint8Array | undefined;
  prevLastLsn: number;
  /** Block 0: the SST's min key, which its first entry must equal. */
  minKey: Uint8Array;
  /** The block's own last (key, lsn). */
  lastKey: Uint8Array;
  lastLsn: number;
}

function blockDefect(
  objectKey: string,
  blockIndex: number,
  blockOffset: number,
  reason: string,
  cause?: unknown,
): TwillError {
  return sstCorruption(objectKey, `data block ${blockIndex} (at byte ${blockOffset}): ${reason}`, cause);
}

function u32le(bytes: Uint8Array, p: number): number {
  return (bytes[p]! | (bytes[p + 1]! << 8) | (bytes[p + 2]! << 16) | (bytes[p + 3]! << 24)) >>> 0;
}

/** Unsigned byte order of a[0, aLength) against b[0, bLength). */
function compareRanges(a: Uint8Array, aLength: number, b: Uint8Array, bLength: number): number {
  const n = Math.min(aLength, bLength);
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return aLength - bLength;
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
  formatVersion: number,
): DataBlock {
  // No closure here: under a keepNames build each one costs a defineProperty per call, on every cache miss.
  if (raw.length < dataBlockBytesMin)
    throw blockDefect(
      objectKey,
      blockIndex,
      blockOffset,
      `${raw.length} bytes is too short for a data block`,
    );
  const contentEnd = raw.length - CHECKSUM_BYTES;
  if (blockChecksum(raw.subarray(0, contentEnd), blockOffset, formatVersion) !== u32le(raw, contentEnd)) {
    throw blockDefect(objectKey, blockIndex, blockOffset, "checksum mismatch");
  }
  const restartCount = u32le(raw, contentEnd - 4);
  const entriesEnd = contentEnd - 4 - restartCount * 4;
  if (restartCount < 1 || entriesEnd < 1)
    throw blockDefect(
      objectKey,
      blockIndex,
      blockOffset,
      `restart count ${restartCount} does not fit the block`,
    );
  const table = new Uint32Array(restartCount * 3);
  for (let r = 0; r < restartCount; r++) {
    const offset = u32le(raw, entriesEnd + r * 4);
    if ((r === 0 && offset !== 0) || (r > 0 && offset <= table[3 * r - 3]!) || offset >= entriesEnd) {
      throw blockDefect(objectKey, blockIndex, blockOffset, `restart ${r} has bad offset ${offset}`);
    }
    table[3 * r] = offset;
  }
  const lower = bounds.prevLastKey ?? bounds.minKey;
  const entries = raw.subarray(0, entriesEnd);
  let count = 0;
  let prevLength = -1;
  let prevLsn = 0;
  let nextRestart = 0;
  /** The key before a restart entry, which shares nothing with it and so must be compared whole. */
  let beforeRestart = scanner.spare;
  try {
    scanner.startBytes(entries, 0);
    for (;;) {
      const at = scanner.pos;
      const atRestart = nextRestart < restartCount && at === table[3 * nextRestart];
      if (atRestart && prevLength > 0) {
        if (prevLength > beforeRestart.length) {
          beforeRestart = new Uint8Array(prevLength * 2);
          scanner.spare = beforeRestart;
        }
        const key = scanner.key;
        for (let k = 0; k < prevLength; k++) beforeRestart[k] = key[k]!;
      }
      if (!scanner.next()) break;
      const { shared, keyLength, key } = scanner;
      if (nextRestart < restartCount && at >= table[3 * nextRestart]!) {
        if (!atRestart) throw defect(at, `restart ${nextRestart} is not at an entry boundary`);
        if (shared !== 0) throw defect(at, "a restart entry shares key bytes");
        table[3 * nextRestart + 1] = scanner.valueStart - keyLength;
        table[3 * nextRestart + 2] = keyLength;
        nextRestart++;
      }
      if (atRestart && prevLength >= 0) {
        const c = compareRanges(key, keyLength, beforeRestart, prevLength);
        if (c < 0 || (c === 0 && scanner.lsn >= prevLsn)) throw defect(at, "entries out of order");
      } else if (prevLength < 0) {
        if (bounds.prevLastKey === undefined) {
          if (compareRange(key, 0, keyLength, bounds.minKey) !== 0)
            throw defect(at, "first key is not the SST's min key");
        } else if (scanner.compareCurrent(bounds.prevLastKey, bounds.prevLastLsn) <= 0) {
          throw defect(at, "first entry does not follow the previous block's last entry");
        }
      } else if (shared < prevLength && shared < keyLength) {
        // Differs from the previous key first at `shared` (maximal sharing), and upwards (order).
        if (key[shared]! <= scanner.displaced)
          throw defect(at, "entries out of order or key sharing not maximal");
      } else if (shared === prevLength && shared === keyLength) {
        if (scanner.lsn >= prevLsn) throw defect(at, "versions of a key out of order");
      } else if (!(shared === prevLength && keyLength > prevLength)) {
        throw defect(at, "entries out of order");
      }
      prevLength = keyLength;
      prevLsn = scanner.lsn;
      count++;
    }
  } catch (error) {
    if (error instanceof TwillError && error.code === ErrorCodes.Corruption)
      throw blockDefect(objectKey, blockIndex, blockOffset, error.message, error);
    throw error;
  }
  if (nextRestart !== restartCount)
    throw blockDefect(
      objectKey,
      blockIndex,
      blockOffset,
      `restart ${nextRestart} is not at an entry boundary`,
    );
  if (compareRange(scanner.key, 0, prevLength, bounds.lastKey) !== 0 || prevLsn !== bounds.lastLsn) {
    throw blockDefect(objectKey, blockIndex, blockOffset, "last entry does not match the index");
  }
  return new DataBlock(entries, count, commonPrefix(lower, bounds.lastKey), table);
}
