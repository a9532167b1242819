/**
 * SST data blocks: verifying one after it is read, and the two ways of reading one — a point lookup that walks
 * the bytes without building keys, and a scanner that decodes entries one by one for scans. Layout in
 * sst-format.ts.
 *
 * Verification is in two steps, so that a point read that misses the cache pays for the entries it reads rather
 * than for the whole block:
 *   - At load (`decodeDataBlock`): the checksum, the restart offsets, and every restart entry (its bounds, and the
 *     restart entries' order from the block's lower bound up to the index's last (key, lsn) for the block).
 *   - Per restart interval, before anything reads inside it (`verifyInterval`): every entry of the interval, their
 *     order, maximal sharing, and that the interval's last entry sits below the next restart entry (the last
 *     interval: that it is the index's (lastKey, lastLsn)). `DataBlock.verified` records the intervals checked;
 *     a scan checks every interval of a block before it decodes any (`verifyAll`). Blocks with more than
 *     `lazyRestartsMax` restarts are checked whole at load.
 * A point read that reaches an unchecked interval checks it and searches it in one pass (`verifyAndGet`: the
 * check rebuilds each key anyway, so the search costs a few compares more), and returns its answer only once the
 * whole interval passed; a read of a checked interval walks it without checks (`getFromInterval`). Restart
 * entries are checked at load where they lie (restart keys are stored whole), without copying a key.
 * A defect found at either step is CORRUPTION naming the object and the block, and nothing from the interval is
 * returned; a block stays cached after a failed interval check, and every read of that interval fails again.
 *
 * Invariants of a verified interval (that the lookups rely on instead of re-checking bounds on every byte):
 *   - Every entry lies within the interval, varints are at most 8 bytes and below 2^53, and it starts with a
 *     restart entry (shared = 0, spelled as the one byte 0).
 *   - `shared` is maximal except at restarts (where it is 0): where a key differs from the previous one, the
 *     first differing byte is at `shared`. This lets a lookup track how much of the target key the current key
 *     matches without rebuilding the key.
 *   - Entries are in strictly increasing internal order and below the next restart entry; the block's restart
 *     entries follow the previous block's last entry (block 0: the first is the SST's min key), and the last
 *     entry is the index's (lastKey, lastLsn) for the block. So every key in a verified interval, and every key
 *     a lookup is sent to the block for, starts with the `prefixBytes` bytes that the block's lower bound and
 *     last key share, and comparisons may skip them.
 */

import { ErrorCodes, TwillError } from "../../errors.js";
import { copyValue } from "./block-pool.js";
import { blockChecksumOf, CHECKSUM_BYTES, dataBlockBytesMin, sstCorruption } from "./sst-format.js";
import { type Entry, EntryKind, LsmLimits } from "./types.js";

const EMPTY = new Uint8Array(0);

/** Blocks with at most this many restarts are verified interval by interval (one bit each in `verified`). */
export const lazyRestartsMax = 30;
/** `DataBlock.verified` once every interval is. */
export const ALL_VERIFIED = -1;

/** A data block that passed its load checks, as the cache holds it. */
export class DataBlock {
  /**
   * The recycled buffer `bytes` lives in (block-pool.ts), or undefined when the block owns a buffer of its own.
   * Values leave a pooled block only as copies, since the buffer is reused once the cache drops the block.
   */
  buffer: Uint8Array | undefined = undefined;
  /** Set when the cache dropped this pooled block and gave its buffer back: its bytes are no longer its own. */
  released = false;
  /** Bit r: restart interval r passed `verifyInterval`; ALL_VERIFIED once all did. */
  verified: number;

  constructor(
    /**
     * The block's bytes from offset 0 (a pooled buffer may run past the block's end). The block itself is kept
     * rather than a view of its entries: a view per miss was one more object promoted with every cached block.
     */
    readonly bytes: Uint8Array,
    /** Where the entries end and the restart offsets (u32 each) begin. */
    readonly entriesEnd: number,
    readonly restartCount: number,
    /** Leading key bytes shared by every key in the block and every key looked up in it (see the header). */
    readonly prefixBytes: number,
    verified: number,
  ) {
    this.verified = verified;
  }

  /** Memory held, for the cache's byte budget: the buffer (its whole capacity when pooled) and object overhead. */
  get memoryBytes(): number {
    return (this.buffer ?? this.bytes).length + 256;
  }

  /** Called by the cache when it drops the block: the pooled buffer to recycle, if any (once). */
  release(): Uint8Array | undefined {
    const buffer = this.buffer;
    if (buffer === undefined || this.released) return undefined;
    this.released = true;
    return buffer;
  }
}

/** Whether restart interval `r` of `block` passed `verifyInterval`. */
export function isVerified(block: DataBlock, r: number): boolean {
  const v = block.verified;
  return v === ALL_VERIFIED || ((v >>> r) & 1) === 1;
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

/** Unsigned byte order of a[aStart, aStart + aLength) against b[bStart, bStart + bLength). */
function compareSpans(
  a: Uint8Array,
  aStart: number,
  aLength: number,
  b: Uint8Array,
  bStart: number,
  bLength: number,
): number {
  const n = Math.min(aLength, bLength);
  for (let i = 0; i < n; i++) {
    const d = a[aStart + i]! - b[bStart + i]!;
    if (d !== 0) return d;
  }
  return aLength - bLength;
}

function u32le(bytes: Uint8Array, p: number): number {
  return (bytes[p]! | (bytes[p + 1]! << 8) | (bytes[p + 2]! << 16) | (bytes[p + 3]! << 24)) >>> 0;
}

/** Offset of restart `r`'s entry. */
function restartOffset(block: DataBlock, r: number): number {
  return u32le(block.bytes, block.entriesEnd + 4 * r);
}

/** Where restart `r`'s interval ends: the next restart entry, or the end of the entries. */
function intervalEnd(block: DataBlock, r: number): number {
  return r + 1 < block.restartCount ? restartOffset(block, r + 1) : block.entriesEnd;
}

/** Where the last `varintAt` call ended. Module state rather than an object: this sits on the hottest path. */
let varintEnd = 0;

/** Decodes a varint of a verified entry at `p` (no bounds checks); the end goes to `varintEnd`. */
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

/**
 * What the last `readRestart` found: where the restart entry's (whole) key starts, its length, its value tag and
 * its lsn's offset.
 */
let restartKeyStart = 0;
let restartKeyLength = 0;
let restartValueTag = 0;
let restartLsnAt = 0;

/**
 * Decodes the header of the (load-checked) restart entry at `p`: shared is 0, so the key is stored whole. A few
 * varint bytes per binary-search step, against a table of them decoded and allocated per cached block.
 */
function readRestart(bytes: Uint8Array, p: number): void {
  restartKeyLength = varintAt(bytes, p + 1);
  restartValueTag = varintAt(bytes, varintEnd);
  restartLsnAt = varintEnd;
  p = restartLsnAt;
  while (bytes[p]! >= 0x80) p++;
  restartKeyStart = p + 1;
}

/**
 * A varint of an entry not yet checked, at `p` below `end`: at most 8 bytes (so below 2^56; callers bound the
 * values). The end goes to `varintEnd`; a defect names the entry at `entryStart`.
 */
function checkedVarintAt(bytes: Uint8Array, p: number, end: number, entryStart: number): number {
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

/** What the last `checkRestart` found: the entry's key start and length, and its lsn. */
let checkedKeyStart = 0;
let checkedKeyLength = 0;
let checkedLsn = 0;

/**
 * Checks the header and bounds of the restart entry at `at`, which must end by `end` (its interval's end): no
 * shared bytes (the one-byte 0), a key within the limit, key and value inside the interval, a valid lsn. The key is compared in
 * place by the caller (restart keys are stored whole), so nothing is copied.
 */
function checkRestart(bytes: Uint8Array, at: number, end: number): void {
  // The single byte 0, as the writer puts it: `readRestart` reads the key length from the next byte, so a 0
  // spelled in more bytes (a valid varint) would shift every field the restart search reads.
  if (bytes[at] !== 0) throw defect(at, "a restart entry's shared count is not the single byte 0");
  const keyLength = checkedVarintAt(bytes, at + 1, end, at);
  if (keyLength > LsmLimits.keyBytesMax) throw defect(at, `key of ${keyLength} bytes`);
  const valueTag = checkedVarintAt(bytes, varintEnd, end, at);
  const lsn = checkedVarintAt(bytes, varintEnd, end, at);
  const keyStart = varintEnd;
  if (keyStart + keyLength + (valueTag === 0 ? 0 : valueTag - 1) > end)
    throw defect(at, "key or value runs past the end of the entries");
  if (!Number.isSafeInteger(lsn) || lsn < 1) throw defect(at, `lsn ${lsn} is outside [1, 2^53)`);
  checkedKeyStart = keyStart;
  checkedKeyLength = keyLength;
  checkedLsn = lsn;
}

/**
 * The restart interval a point lookup of (key, snapshot) scans: the last restart whose entry is below
 * (key, snapshotLsn) in internal order, or 0. Reads restart entries only, which the load checks covered.
 */
export function restartFor(block: DataBlock, key: Uint8Array, snapshotLsn: number): number {
  const bytes = block.bytes;
  const skip = block.prefixBytes;
  let lo = 0;
  let hi = block.restartCount - 1;
  let from = 0;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    readRestart(bytes, restartOffset(block, mid));
    let c = compareRange(bytes, restartKeyStart + skip, restartKeyLength - skip, key, skip);
    if (c === 0) c = snapshotLsn - varintAt(bytes, restartLsnAt);
    if (c < 0) {
      from = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return from;
}

/**
 * The newest version of `key` with lsn <= snapshotLsn in restart interval `from` of `block` (from `restartFor`,
 * and verified), or undefined; the entry's key is `key` itself. The caller (the index search) guarantees the
 * block is the one that would hold it. No key is rebuilt: `m` tracks how many leading bytes of the current key
 * equal the target's, using the maximal-shared invariant. The walk reads at most the interval and the next
 * restart entry (the answer may be that entry: it is the first at or above (key, snapshotLsn)).
 */
export function getFromInterval(
  block: DataBlock,
  from: number,
  key: Uint8Array,
  snapshotLsn: number,
): Entry | undefined {
  const bytes = block.bytes;
  const skip = block.prefixBytes;
  const stop = intervalEnd(block, from);
  const end = block.entriesEnd;
  const target = key.length;
  let p = restartOffset(block, from);
  let m = skip;
  while (p <= stop && p < end) {
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
 * bounds as it goes (it also reads entries not yet verified). Used synchronously only, so one per reader serves
 * every scan.
 */
export class BlockScanner {
  bytes: Uint8Array = EMPTY;
  /** Entries are decoded up to here (the end of the entries, or of one restart interval). */
  end = 0;
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

  /** Positions before the entry at restart `r` (whose key is stored whole) of a fully verified block. */
  start(block: DataBlock, restartIndex: number): void {
    this.bytes = block.bytes;
    this.end = block.entriesEnd;
    this.pooled = block.buffer !== undefined;
    this.pos = restartOffset(block, restartIndex);
    this.keyLength = 0;
  }

  /** Positions before the entry at `pos` of bytes[pos, end) not yet verified (values are not taken). */
  startBytes(bytes: Uint8Array, pos: number, end: number): void {
    this.bytes = bytes;
    this.end = end;
    this.pooled = true;
    this.pos = pos;
    this.keyLength = 0;
  }

  private checkedVarint(p: number, entryStart: number): number {
    return checkedVarintAt(this.bytes, p, this.end, entryStart);
  }

  /** Decodes the next entry into the fields; false at `end`. */
  next(): boolean {
    const bytes = this.bytes;
    const end = this.end;
    const entryStart = this.pos;
    if (entryStart >= end) return false;
    // One-byte varints inline (nearly all are). A header byte at or past `end` puts the key's start past `end`,
    // which the bounds check below refuses (and a byte past the buffer reads undefined: the checked path).
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
   * Positions on the first entry >= (key, lsn) in internal order of a fully verified block and returns true, or
   * returns false when every entry of the block is smaller. Binary search over restarts, then a scan of at most
   * one restart interval.
   */
  seek(block: DataBlock, key: Uint8Array, lsn: number): boolean {
    const bytes = block.bytes;
    let lo = 0;
    let hi = block.restartCount - 1;
    let from = 0;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      readRestart(bytes, restartOffset(block, mid));
      let c = compareRange(bytes, restartKeyStart, restartKeyLength, key);
      if (c === 0) c = lsn - varintAt(bytes, restartLsnAt);
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

/** An entry-level defect (from `defect` or the scanner) restated with the object and the block. */
function located(error: unknown, objectKey: string, blockIndex: number, blockOffset: number): unknown {
  if (error instanceof TwillError && error.code === ErrorCodes.Corruption)
    return blockDefect(objectKey, blockIndex, blockOffset, error.message, error);
  return error;
}

/**
 * Checks a data block read from storage — checksum, restart offsets and restart entries (see the header) — and
 * returns it; its intervals are verified entry by entry when first read (`verifyInterval`), or here for blocks
 * with more than `lazyRestartsMax` restarts. `bytes[0, length)` is the block. Errors name the object and block.
 */
export function decodeDataBlock(
  bytes: Uint8Array,
  length: number,
  blockOffset: number,
  bounds: BlockBounds,
  scanner: BlockScanner,
  objectKey: string,
  blockIndex: number,
  formatVersion: number,
): DataBlock {
  // No closure here: under a keepNames build each one costs a defineProperty per call, on every cache miss.
  if (length < dataBlockBytesMin)
    throw blockDefect(objectKey, blockIndex, blockOffset, `${length} bytes is too short for a data block`);
  const contentEnd = length - CHECKSUM_BYTES;
  if (blockChecksumOf(bytes, contentEnd, blockOffset, formatVersion) !== u32le(bytes, contentEnd)) {
    throw blockDefect(objectKey, blockIndex, blockOffset, "checksum mismatch");
  }
  const restartCount = u32le(bytes, contentEnd - 4);
  const entriesEnd = contentEnd - 4 - restartCount * 4;
  if (restartCount < 1 || entriesEnd < 1)
    throw blockDefect(
      objectKey,
      blockIndex,
      blockOffset,
      `restart count ${restartCount} does not fit the block`,
    );
  let previous = -1;
  for (let r = 0; r < restartCount; r++) {
    const offset = u32le(bytes, entriesEnd + r * 4);
    if ((r === 0 && offset !== 0) || offset <= previous || offset >= entriesEnd) {
      throw blockDefect(objectKey, blockIndex, blockOffset, `restart ${r} has bad offset ${offset}`);
    }
    previous = offset;
  }
  const lower = bounds.prevLastKey ?? bounds.minKey;
  const block = new DataBlock(bytes, entriesEnd, restartCount, commonPrefix(lower, bounds.lastKey), 0);
  // The restart entries, in order from the block's lower bound to its last (key, lsn): the restart search and
  // every interval check lean on them. Restart keys are stored whole, so each is compared where it lies.
  const lastKey = bounds.lastKey;
  let prevStart = 0;
  let prevLength = 0;
  let prevLsn = 0;
  try {
    for (let r = 0; r < restartCount; r++) {
      const at = restartOffset(block, r);
      checkRestart(bytes, at, intervalEnd(block, r));
      const keyStart = checkedKeyStart;
      const keyLength = checkedKeyLength;
      const lsn = checkedLsn;
      if (r === 0) {
        const prevLastKey = bounds.prevLastKey;
        if (prevLastKey === undefined) {
          const minKey = bounds.minKey;
          if (compareSpans(bytes, keyStart, keyLength, minKey, 0, minKey.length) !== 0)
            throw defect(at, "first key is not the SST's min key");
        } else {
          const c = compareSpans(bytes, keyStart, keyLength, prevLastKey, 0, prevLastKey.length);
          if (c < 0 || (c === 0 && lsn >= bounds.prevLastLsn))
            throw defect(at, "first entry does not follow the previous block's last entry");
        }
      } else {
        const c = compareSpans(bytes, keyStart, keyLength, bytes, prevStart, prevLength);
        if (c < 0 || (c === 0 && lsn >= prevLsn)) throw defect(at, "entries out of order");
      }
      const c = compareSpans(bytes, keyStart, keyLength, lastKey, 0, lastKey.length);
      if (c > 0 || (c === 0 && lsn < bounds.lastLsn))
        throw defect(at, "restart entry is past the index's last entry for the block");
      prevStart = keyStart;
      prevLength = keyLength;
      prevLsn = lsn;
    }
  } catch (error) {
    throw located(error, objectKey, blockIndex, blockOffset);
  }
  if (restartCount > lazyRestartsMax)
    verifyAll(block, bounds.lastKey, bounds.lastLsn, scanner, objectKey, blockIndex, blockOffset);
  return block;
}

/**
 * Checks every entry of restart interval `r` (see the header) and marks it verified, or throws CORRUPTION naming
 * the object and block. `lastKey` / `lastLsn` are the index's for the block, which the last interval must end on.
 */
export function verifyInterval(
  block: DataBlock,
  r: number,
  lastKey: Uint8Array,
  lastLsn: number,
  scanner: BlockScanner,
  objectKey: string,
  blockIndex: number,
  blockOffset: number,
): void {
  checkInterval(block, r, lastKey, lastLsn, scanner, objectKey, blockIndex, blockOffset, undefined, 0);
}

/**
 * `verifyInterval` of interval `r` (from `restartFor`) and `getFromInterval`'s answer for (key, snapshotLsn), in
 * one pass over the entries: what a point read does the first time it reaches an interval. The answer is
 * returned only once the whole interval passed, as if the two ran one after the other.
 */
export function verifyAndGet(
  block: DataBlock,
  r: number,
  key: Uint8Array,
  snapshotLsn: number,
  lastKey: Uint8Array,
  lastLsn: number,
  scanner: BlockScanner,
  objectKey: string,
  blockIndex: number,
  blockOffset: number,
): Entry | undefined {
  return checkInterval(
    block,
    r,
    lastKey,
    lastLsn,
    scanner,
    objectKey,
    blockIndex,
    blockOffset,
    key,
    snapshotLsn,
  );
}

/** Lookup states of `checkInterval`. */
const SEARCHING = 0;
const FOUND = 1;
const PASSED = 2;

/**
 * The interval check, entry by entry with bounds checked on every byte (the entries are not trusted yet), and,
 * with a `target`, the point lookup `getFromInterval` would make in the same interval. Keys are rebuilt in
 * `scanner.spare` (the previous key is needed for the order and maximal-sharing checks); the lookup tracks `m`,
 * how many leading bytes of the current key equal the target's, as `getFromInterval` does. Until the interval
 * has passed, the lookup's state may rest on entries a later check refuses; it is used only after they all pass.
 */
function checkInterval(
  block: DataBlock,
  r: number,
  lastKey: Uint8Array,
  lastLsn: number,
  scanner: BlockScanner,
  objectKey: string,
  blockIndex: number,
  blockOffset: number,
  target: Uint8Array | undefined,
  snapshotLsn: number,
): Entry | undefined {
  const bytes = block.bytes;
  const stop = intervalEnd(block, r);
  const skip = block.prefixBytes;
  const targetLength = target === undefined ? 0 : target.length;
  let state = target === undefined ? PASSED : SEARCHING;
  let m = skip;
  let foundLsn = 0;
  let foundTag = 0;
  let foundEnd = 0;
  let k = scanner.spare;
  try {
    // The restart entry passed its checks at load (header, bounds, lsn, order): decoded without them.
    readRestart(bytes, restartOffset(block, r));
    let prevLength = restartKeyLength;
    let prevLsn = varintAt(bytes, restartLsnAt);
    if (prevLength > k.length) {
      k = new Uint8Array(Math.max(prevLength, k.length * 2));
      scanner.spare = k;
    }
    for (let i = 0; i < prevLength; i++) k[i] = bytes[restartKeyStart + i]!;
    let p = restartKeyStart + prevLength + (restartValueTag === 0 ? 0 : restartValueTag - 1);
    if (state === SEARCHING) {
      const t = target!;
      const n = Math.min(prevLength, targetLength);
      while (m < n && k[m] === t[m]) m++;
      if (m === prevLength) {
        if (m === targetLength && prevLsn <= snapshotLsn) {
          state = FOUND;
          foundLsn = prevLsn;
          foundTag = restartValueTag;
          foundEnd = p;
        }
      } else if (m === targetLength || k[m]! > t[m]!) {
        state = PASSED;
      }
    }
    while (p < stop) {
      const at = p;
      // One-byte varints inline (nearly all are). A header byte at or past `stop` puts the key's start past
      // `stop`, which the bounds check below refuses (a byte past the buffer reads undefined: the checked path).
      let shared = bytes[p]!;
      if (shared < 0x80) p++;
      else {
        shared = checkedVarintAt(bytes, p, stop, at);
        p = varintEnd;
      }
      let unshared = bytes[p]!;
      if (unshared < 0x80) p++;
      else {
        unshared = checkedVarintAt(bytes, p, stop, at);
        p = varintEnd;
      }
      let valueTag = bytes[p]!;
      if (valueTag < 0x80) p++;
      else if (p + 1 < stop && bytes[p + 1]! < 0x80) {
        // Two bytes: the tag of a value of 127 to 16,382 bytes (a row of a few hundred bytes).
        valueTag = (valueTag & 0x7f) | (bytes[p + 1]! << 7);
        p += 2;
      } else {
        valueTag = checkedVarintAt(bytes, p, stop, at);
        p = varintEnd;
      }
      let lsn = bytes[p]!;
      if (lsn < 0x80) {
        p++;
        if (lsn === 0) throw defect(at, "lsn 0 is outside [1, 2^53)");
      } else {
        lsn = checkedVarintAt(bytes, p, stop, at);
        p = varintEnd;
        if (lsn < 1 || !Number.isSafeInteger(lsn)) throw defect(at, `lsn ${lsn} is outside [1, 2^53)`);
      }
      const keyStart = p;
      if (shared > prevLength) throw defect(at, `shares ${shared} bytes of a ${prevLength}-byte key`);
      const keyLength = shared + unshared;
      if (keyLength > LsmLimits.keyBytesMax) throw defect(at, `key of ${keyLength} bytes`);
      const valueEnd = keyStart + unshared + (valueTag === 0 ? 0 : valueTag - 1);
      if (valueEnd > stop) throw defect(at, "key or value runs past the end of the entries");
      if (shared < prevLength && shared < keyLength) {
        // Differs from the previous key first at `shared` (maximal sharing), and upwards (order).
        if (bytes[keyStart]! <= k[shared]!)
          throw defect(at, "entries out of order or key sharing not maximal");
      } else if (shared === prevLength && shared === keyLength) {
        if (lsn >= prevLsn) throw defect(at, "versions of a key out of order");
      } else if (!(shared === prevLength && keyLength > prevLength)) {
        throw defect(at, "entries out of order");
      }
      if (keyLength > k.length) {
        const grown = new Uint8Array(Math.max(keyLength, k.length * 2));
        grown.set(k.subarray(0, prevLength));
        k = grown;
        scanner.spare = grown;
      }
      for (let i = 0; i < unshared; i++) k[shared + i] = bytes[keyStart + i]!;
      prevLength = keyLength;
      prevLsn = lsn;
      p = valueEnd;
      if (state !== SEARCHING) continue;
      // The lookup, as in getFromInterval (see there), over the rebuilt key.
      const t = target!;
      if (shared === 0) {
        m = skip;
        const n = Math.min(keyLength, targetLength);
        while (m < n && k[m] === t[m]) m++;
      } else if (shared < m) {
        state = PASSED;
        continue;
      } else if (shared > m) {
        continue;
      } else {
        const n = Math.min(keyLength, targetLength);
        while (m < n && k[m] === t[m]) m++;
      }
      if (m === keyLength) {
        if (m === targetLength && lsn <= snapshotLsn) {
          state = FOUND;
          foundLsn = lsn;
          foundTag = valueTag;
          foundEnd = valueEnd;
        }
      } else if (m === targetLength || k[m]! > t[m]!) {
        state = PASSED;
      }
    }
    if (r + 1 < block.restartCount) {
      readRestart(bytes, stop);
      const nextLsn = varintAt(bytes, restartLsnAt);
      const c = compareSpans(k, 0, prevLength, bytes, restartKeyStart, restartKeyLength);
      if (c > 0 || (c === 0 && prevLsn <= nextLsn)) throw defect(stop, "entries out of order");
      // Every entry of the interval is below (target, snapshot): the answer may be the next restart entry, the
      // first at or above it (restartFor chose r).
      if (
        state === SEARCHING &&
        restartKeyLength === targetLength &&
        nextLsn <= snapshotLsn &&
        compareSpans(bytes, restartKeyStart, restartKeyLength, target!, 0, targetLength) === 0
      ) {
        state = FOUND;
        foundLsn = nextLsn;
        foundTag = restartValueTag;
        foundEnd = restartKeyStart + restartKeyLength + (restartValueTag === 0 ? 0 : restartValueTag - 1);
      }
    } else if (compareSpans(k, 0, prevLength, lastKey, 0, lastKey.length) !== 0 || prevLsn !== lastLsn) {
      throw defect(stop, "last entry does not match the index");
    }
  } catch (error) {
    throw located(error, objectKey, blockIndex, blockOffset);
  }
  // Larger blocks are verified whole by `verifyAll` at load, which marks them itself.
  if (block.verified !== ALL_VERIFIED && block.restartCount <= lazyRestartsMax) {
    const v = block.verified | (1 << r);
    block.verified = v === 2 ** block.restartCount - 1 ? ALL_VERIFIED : v;
  }
  if (state !== FOUND) return undefined;
  const valueLength = foundTag === 0 ? 0 : foundTag - 1;
  return {
    // The lookup key itself, as getFromInterval returns it.
    key: target!,
    lsn: foundLsn,
    kind: foundTag === 0 ? EntryKind.Delete : EntryKind.Put,
    value:
      valueLength === 0
        ? EMPTY
        : block.buffer === undefined
          ? bytes.subarray(foundEnd - valueLength, foundEnd)
          : copyValue(bytes, foundEnd - valueLength, valueLength),
  };
}

/** `verifyInterval` for every interval not yet verified (before a scan decodes the block). */
export function verifyAll(
  block: DataBlock,
  lastKey: Uint8Array,
  lastLsn: number,
  scanner: BlockScanner,
  objectKey: string,
  blockIndex: number,
  blockOffset: number,
): void {
  if (block.verified === ALL_VERIFIED) return;
  for (let r = 0; r < block.restartCount; r++) {
    if (r < lazyRestartsMax && isVerified(block, r)) continue;
    verifyInterval(block, r, lastKey, lastLsn, scanner, objectKey, blockIndex, blockOffset);
  }
  block.verified = ALL_VERIFIED;
}

/** The checksum stored in the trailer of block bytes[0, length) (not checked: `decodeDataBlock` checks it). */
export function storedChecksum(bytes: Uint8Array, length: number): number {
  return u32le(bytes, length - CHECKSUM_BYTES);
}

/**
 * A block read again after bytes at the same offset of the same SST passed `decodeDataBlock` (and the intervals
 * in `verified`), whose trailer then held `knownChecksum`. When these bytes' checksum matches their trailer and
 * the trailer is `knownChecksum`, the bytes are the ones that passed, with the assurance of the checksum itself
 * (a 32-bit hash: damage goes unseen 1 time in 2^32, as it would at a first read), and the structure checks,
 * which depend only on the bytes and the index, would pass again: they are not repeated. A different trailer
 * (the object changed) returns undefined, for the caller to check the block in full; a checksum that does not
 * match the trailer is CORRUPTION as at any load.
 */
export function redecodeDataBlock(
  bytes: Uint8Array,
  length: number,
  blockOffset: number,
  objectKey: string,
  blockIndex: number,
  formatVersion: number,
  knownChecksum: number,
  prefixBytes: number,
  verified: number,
): DataBlock | undefined {
  if (length < dataBlockBytesMin) return undefined;
  const contentEnd = length - CHECKSUM_BYTES;
  const stored = u32le(bytes, contentEnd);
  if (stored !== knownChecksum) return undefined;
  if (blockChecksumOf(bytes, contentEnd, blockOffset, formatVersion) !== stored)
    throw blockDefect(objectKey, blockIndex, blockOffset, "checksum mismatch");
  const restartCount = u32le(bytes, contentEnd - 4);
  return new DataBlock(bytes, contentEnd - 4 - restartCount * 4, restartCount, prefixBytes, verified);
}
