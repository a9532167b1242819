/**
 * SstWriter: turns entries in internal order into one SST object (layout in sst-format.ts).
 *
 * Invariants:
 *   - Input is asserted: every entry well-formed and strictly after the previous one in internal order; a breach
 *     is INTERNAL (a bug in the caller — flush or compaction), caught before any byte is written.
 *   - Memory is linear in the output: finished blocks (the output itself), 4 bytes of bloom hash per distinct
 *     key, the index, and one block under construction; `finish` adds one copy while concatenating, and
 *     `finishParts` none.
 *   - Data blocks are cut once they reach `blockBytesTarget`, so a block exceeds it by at most one entry.
 */

import { ErrorCodes, TwillError } from "../../errors.js";
import { FixedBufferPool } from "../../util/buffer-pool.js";
import { concatChunks } from "../../util/concat-chunks.js";
import { BloomBuilder, bloomHash } from "./bloom.js";
import { ByteWriter } from "./byte-io.js";
import { compareRange } from "./sst-block.js";
import {
  blockChecksum,
  CHECKSUM_BYTES,
  encodeFooter,
  encodeIndexEntry,
  encodeProperties,
  SST_FORMAT_VERSION,
  type SstProperties,
} from "./sst-format.js";
import { describeKey, type Entry, EntryKind, entryDefect } from "./types.js";

export interface SstWriterOptions {
  /** Data block size to aim for, in bytes. Default 32 KiB; 1 byte .. 16 MiB. */
  blockBytesTarget?: number;
  /** Entries between restart points (full keys) in a data block. Default 16. */
  restartInterval?: number;
  /** Bloom filter bits per distinct key. Default 10 (about 0.8% false positives). */
  bloomBitsPerKey?: number;
  /** Format version to write (sst-format.ts). Default the current one; 1 and 2 exist to test that old SSTs read. */
  formatVersion?: 1 | 2 | 4;
  /** Where full-size slabs come from (and go back to, via `releaseSlabs`); default: fresh ones. */
  slabs?: SlabPool;
}

/**
 * Recycled slabs of `slabBytesMax` for SST writers. V8 runs a full GC for about every 64 MB of new ArrayBuffers,
 * and a full GC marks the whole heap: a 200 MB ingest or compaction writing into fresh slabs paid several. Holds
 * at most `keepMax` idle slabs, and its owner clears it when its writing stops (the tree: when no flush, compaction
 * or ingest runs), so that idle slabs are not held for good.
 */
export class SlabPool extends FixedBufferPool {
  constructor(keepMax: number) {
    super(slabBytesMax, keepMax);
  }
}

export const sstWriterDefaults = {
  blockBytesTarget: 32 * 1024,
  restartInterval: 16,
  bloomBitsPerKey: 10,
} as const;

const blockBytesTargetMax = 16 * 1024 * 1024;
const restartIntervalMax = 1024;

function internal(message: string): TwillError {
  return new TwillError(ErrorCodes.Internal, message);
}

/** Slabs of finished blocks grow from 64 KiB to 1 MiB, so a small SST does not hold a large slab. */
const slabBytesFirst = 64 * 1024;
const slabBytesMax = 1024 * 1024;

export class SstWriter {
  readonly blockBytesTarget: number;
  readonly restartInterval: number;
  readonly formatVersion: number;

  /** Finished parts of the object: slabs of consecutive blocks. */
  private readonly chunks: Uint8Array[] = [];
  /**
   * Finished blocks are copied into slabs of `slabBytes` rather than each into an ArrayBuffer of its own: a 200 MB
   * bulk load made 50k ArrayBuffers, and V8's bookkeeping of them (allocation, external-memory GCs) cost more
   * than encoding the entries.
   */
  private slab: Uint8Array = new Uint8Array(0);
  private slabUsed = 0;
  private nextSlabBytes = slabBytesFirst;
  private readonly pool: SlabPool | undefined;
  /** Slabs taken from the pool, given back by `releaseSlabs`. */
  private readonly pooled: Uint8Array[] = [];
  private readonly block = new ByteWriter(64 * 1024);
  private readonly restarts: number[] = [];
  private blockEntries = 0;
  private readonly index = new ByteWriter(4 * 1024);
  private blockCount = 0;
  private dataBytes = 0;
  private readonly bloom: BloomBuilder;

  /** The previous key, copied (callers may reuse their buffers), and its lsn. */
  private prevKey = new Uint8Array(256);
  private prevKeyLength = 0;
  private prevLsn = 0;

  private count = 0;
  private distinctKeys = 0;
  private puts = 0;
  private deletes = 0;
  private minLsn = Number.POSITIVE_INFINITY;
  private maxLsn = 0;
  private keyBytesMax = 0;
  private valueBytesMax = 0;
  private minKey: Uint8Array | undefined;
  private finished = false;

  constructor(options: SstWriterOptions = {}) {
    this.blockBytesTarget = options.blockBytesTarget ?? sstWriterDefaults.blockBytesTarget;
    this.restartInterval = options.restartInterval ?? sstWriterDefaults.restartInterval;
    this.formatVersion = options.formatVersion ?? SST_FORMAT_VERSION;
    const bloomBitsPerKey = options.bloomBitsPerKey ?? sstWriterDefaults.bloomBitsPerKey;
    if (
      !Number.isInteger(this.blockBytesTarget) ||
      this.blockBytesTarget < 1 ||
      this.blockBytesTarget > blockBytesTargetMax
    ) {
      throw new TwillError(
        ErrorCodes.InvalidArgument,
        `blockBytesTarget must be 1..${blockBytesTargetMax}, got ${this.blockBytesTarget}`,
      );
    }
    if (
      !Number.isInteger(this.restartInterval) ||
      this.restartInterval < 1 ||
      this.restartInterval > restartIntervalMax
    ) {
      throw new TwillError(
        ErrorCodes.InvalidArgument,
        `restartInterval must be 1..${restartIntervalMax}, got ${this.restartInterval}`,
      );
    }
    this.bloom = new BloomBuilder(bloomBitsPerKey);
    this.pool = options.slabs;
    // With a pool, start at full-size slabs: those are the ones recycled.
    if (this.pool !== undefined) this.nextSlabBytes = slabBytesMax;
  }

  /**
   * Gives the pooled slabs back. Only once nothing reads the parts `finishParts` returned any more (the store
   * wrote them, or `finish` copied them).
   */
  releaseSlabs(): void {
    if (this.pool === undefined) return;
    for (const slab of this.pooled.splice(0)) this.pool.give(slab);
  }

  get entryCount(): number {
    return this.count;
  }

  /** Bytes the object would have if finished now, minus the meta blocks: for cutting SSTs at a target size. */
  get estimatedBytes(): number {
    return this.dataBytes + this.block.length + this.restarts.length * 4 + 8;
  }

  /** A copy of the last key added, or undefined before the first: lets a caller cut SSTs only between keys. */
  get lastKey(): Uint8Array | undefined {
    return this.count === 0 ? undefined : this.prevKey.slice(0, this.prevKeyLength);
  }

  add(entry: Entry): void {
    if (this.finished) throw internal("SstWriter.add after finish");
    const bad = entryDefect(entry);
    if (bad !== undefined) throw internal(`SstWriter got a malformed entry: ${bad}`);
    const key = entry.key;
    let distinct = true;
    if (this.count > 0) {
      const c = compareRange(this.prevKey, 0, this.prevKeyLength, key);
      if (c > 0 || (c === 0 && entry.lsn >= this.prevLsn)) {
        throw internal(
          `SstWriter got entries out of internal order: (${describeKey(key)}, lsn ${entry.lsn}) after ` +
            `(${describeKey(this.prevKey.subarray(0, this.prevKeyLength))}, lsn ${this.prevLsn})`,
        );
      }
      distinct = c !== 0;
    } else {
      this.minKey = key.slice();
    }
    if (distinct) {
      this.bloom.addHash(bloomHash(key));
      this.distinctKeys++;
    }

    let shared = 0;
    if (this.blockEntries % this.restartInterval === 0) {
      this.restarts.push(this.block.length);
    } else {
      const prev = this.prevKey;
      const n = Math.min(this.prevKeyLength, key.length);
      while (shared < n && prev[shared] === key[shared]) shared++;
    }
    const isPut = entry.kind === EntryKind.Put;
    const value = entry.value;
    this.block
      .varint(shared)
      .varint(key.length - shared)
      .varint(isPut ? value.length + 1 : 0)
      .varint(entry.lsn)
      .bytesRange(key, shared, key.length);
    if (isPut) this.block.bytes(value);
    this.blockEntries++;

    if (distinct) {
      if (key.length > this.prevKey.length)
        this.prevKey = new Uint8Array(Math.max(key.length, this.prevKey.length * 2));
      this.prevKey.set(key);
    }
    this.prevKeyLength = key.length;
    this.prevLsn = entry.lsn;

    this.count++;
    if (isPut) this.puts++;
    else this.deletes++;
    if (entry.lsn < this.minLsn) this.minLsn = entry.lsn;
    if (entry.lsn > this.maxLsn) this.maxLsn = entry.lsn;
    if (key.length > this.keyBytesMax) this.keyBytesMax = key.length;
    if (value.length > this.valueBytesMax) this.valueBytesMax = value.length;

    if (this.block.length + this.restarts.length * 4 + 4 + CHECKSUM_BYTES >= this.blockBytesTarget)
      this.cutBlock();
  }

  private cutBlock(): void {
    const block = this.block;
    for (const r of this.restarts) block.u32(r);
    block.u32(this.restarts.length);
    block.u32(blockChecksum(block.peek(), this.dataBytes, this.formatVersion));
    const bytes = block.peek();
    if (this.slabUsed + bytes.length > this.slab.length) {
      if (this.slabUsed > 0) this.chunks.push(this.slab.subarray(0, this.slabUsed));
      if (this.pool !== undefined && this.nextSlabBytes === slabBytesMax && bytes.length <= slabBytesMax) {
        this.slab = this.pool.take();
        this.pooled.push(this.slab);
      } else {
        this.slab = new Uint8Array(Math.max(this.nextSlabBytes, bytes.length));
      }
      this.slabUsed = 0;
      this.nextSlabBytes = Math.min(slabBytesMax, this.nextSlabBytes * 2);
    }
    this.slab.set(bytes, this.slabUsed);
    this.slabUsed += bytes.length;
    encodeIndexEntry(this.index, this.prevKey, this.prevKeyLength, this.prevLsn, bytes.length);
    this.blockCount++;
    this.dataBytes += bytes.length;
    block.reset();
    this.restarts.length = 0;
    this.blockEntries = 0;
  }

  /** The whole SST object. The writer cannot be used afterwards. */
  finish(): Uint8Array {
    return concatChunks(this.finishParts());
  }

  /**
   * The SST object as consecutive parts (its blocks, then the meta blocks and the footer), for a store that
   * writes parts without concatenating them. The writer cannot be used afterwards.
   */
  finishParts(): Uint8Array[] {
    if (this.finished) throw internal("SstWriter.finish called twice");
    if (this.count === 0) throw internal("an SST needs at least one entry; skip writing an empty one");
    if (this.blockEntries > 0) this.cutBlock();
    this.finished = true;

    let offset = this.dataBytes;
    const indexContent = new ByteWriter(this.index.length + 16)
      .varint(this.blockCount)
      .bytes(this.index.peek());
    const indexBlock = indexContent
      .u32(blockChecksum(indexContent.peek(), offset, this.formatVersion))
      .finish();
    offset += indexBlock.length;

    const bloomContent = new ByteWriter(16);
    bloomContent.bytes(this.bloom.finish().serialize());
    const bloomBlock = bloomContent
      .u32(blockChecksum(bloomContent.peek(), offset, this.formatVersion))
      .finish();
    offset += bloomBlock.length;

    const properties: SstProperties = {
      formatVersion: this.formatVersion,
      entryCount: this.count,
      distinctKeyCount: this.distinctKeys,
      putCount: this.puts,
      deleteCount: this.deletes,
      minLsn: this.minLsn,
      maxLsn: this.maxLsn,
      dataBytes: this.dataBytes,
      blockCount: this.blockCount,
      keyBytesMax: this.keyBytesMax,
      valueBytesMax: this.valueBytesMax,
      restartInterval: this.restartInterval,
      minKey: this.minKey!,
      maxKey: this.prevKey.slice(0, this.prevKeyLength),
    };
    const propertiesContent = new ByteWriter(128);
    encodeProperties(propertiesContent, properties);
    const propertiesBlock = propertiesContent
      .u32(blockChecksum(propertiesContent.peek(), offset, this.formatVersion))
      .finish();
    offset += propertiesBlock.length;

    const footer = encodeFooter({
      indexOffset: this.dataBytes,
      indexLength: indexBlock.length,
      bloomLength: bloomBlock.length,
      propertiesLength: propertiesBlock.length,
      formatVersion: this.formatVersion,
    });
    if (this.slabUsed > 0) this.chunks.push(this.slab.subarray(0, this.slabUsed));
    this.slab = new Uint8Array(0);
    this.slabUsed = 0;
    const parts = this.chunks.splice(0);
    parts.push(indexBlock, bloomBlock, propertiesBlock, footer);
    return parts;
  }
}

/** Builds an SST from entries already in internal order. */
export function buildSst(entries: Iterable<Entry>, options?: SstWriterOptions): Uint8Array {
  const writer = new SstWriter(options);
  for (const entry of entries) writer.add(entry);
  return writer.finish();
}
