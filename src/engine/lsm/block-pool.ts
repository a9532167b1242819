/**
 * Recycled memory for SST blocks read through the block cache, and the copies of values taken out of them.
 *
 * Why: creating an ArrayBuffer costs about 2 µs in V8 whatever its size (backing store, external-memory
 * accounting, later sweeping), more than the pread of the 4 KiB block it receives. A block-cache miss normally
 * evicts one block, so handing the evicted block's buffer to the next miss makes a miss allocation-free.
 *
 * Invariants (what makes reuse safe):
 *   - A pooled buffer has one owner at a time: a cached DataBlock, or the free list. The cache gives a block's
 *     buffer back only when it drops the block, and marks the block `released` first.
 *   - Nothing outside the block keeps a view of a pooled buffer: values leave it as copies (`copyValue`), and
 *     anyone holding a DataBlock across an await checks `released` before reading it.
 *   - Buffers are sized in 256-byte classes, so blocks of about the same size (the writer cuts them at a target)
 *     reuse each other's; the free list is bounded by `freeBytesMax` and the rest is left to the GC.
 *   - A cache cleared for good (its engine closed) hands all its buffers off (`handOff`) to whatever pool takes
 *     next in this process, held only through a WeakRef: a database reopened in the same process refills the
 *     closed one's blocks instead of allocating a second cache's worth while the first waits for a full GC (V8
 *     lets ~64 MiB of dead ArrayBuffers pile up first); if nothing takes them, the GC frees them as before.
 */

const classBytes = 256;

type FreeLists = Map<number, Uint8Array[]>;

/** The buffers of closed caches, by capacity, until a pool takes them or the GC frees them. */
let handedOff: WeakRef<FreeLists> | undefined;

function pop(lists: FreeLists, capacity: number): Uint8Array | undefined {
  return lists.get(capacity)?.pop();
}

// Sizes are read as `length`, which equals `byteLength` for a Uint8Array: V8 (Node 20) inlines `length` like a
// field but calls out for `byteLength` (~20 ns a read, measured), and these run on every block-cache miss.

function push(lists: FreeLists, buffer: Uint8Array): void {
  let list = lists.get(buffer.length);
  if (list === undefined) {
    list = [];
    lists.set(buffer.length, list);
  }
  list.push(buffer);
}

export class BlockBufferPool {
  private readonly free: FreeLists = new Map();
  private freeBytes = 0;
  /** Buffers handed out that were recycled rather than allocated (for tests and stats). */
  reused = 0;
  /** Of those, the ones a closed cache handed off. */
  adopted = 0;

  constructor(private readonly freeBytesMax = 1024 * 1024) {}

  /** Bytes a buffer for a block of `length` bytes holds. */
  static capacityFor(length: number): number {
    return Math.ceil(Math.max(1, length) / classBytes) * classBytes;
  }

  /** A buffer of at least `length` bytes (its capacity class); its contents are whatever it held before. */
  take(length: number): Uint8Array {
    const capacity = BlockBufferPool.capacityFor(length);
    const list = this.free.get(capacity);
    const recycled = list?.pop();
    if (recycled !== undefined) {
      this.freeBytes -= capacity;
      this.reused++;
      return recycled;
    }
    const lists = handedOff?.deref();
    const adopted = lists === undefined ? undefined : pop(lists, capacity);
    if (adopted !== undefined) {
      this.reused++;
      this.adopted++;
      return adopted;
    }
    return new Uint8Array(capacity);
  }

  /**
   * Hands buffers that nothing references any more (those of a cache cleared for good) to the next pool that
   * takes, in this process, held weakly (see the header).
   */
  static handOff(buffers: readonly Uint8Array[]): void {
    if (buffers.length === 0) return;
    const lists: FreeLists = handedOff?.deref() ?? new Map();
    for (const b of buffers) if (b.length % classBytes === 0) push(lists, b);
    handedOff = new WeakRef(lists);
  }

  /** Returns a buffer from `take` that nothing references any more. */
  give(buffer: Uint8Array): void {
    const capacity = buffer.length;
    if (capacity % classBytes !== 0 || this.freeBytes + capacity > this.freeBytesMax) return;
    push(this.free, buffer);
    this.freeBytes += capacity;
  }
}

// Values copied out of pooled blocks are carved from shared chunks: a view costs ~0.15 µs where a fresh
// ArrayBuffer costs ~2 µs. The price is that a value the caller keeps pins its chunk (as Node's Buffer pool does);
// values above `arenaValueMax` get their own buffer.
const arenaChunkBytes = 16 * 1024;
const arenaValueMax = 1024;
let arena = new ArrayBuffer(arenaChunkBytes);
let arenaUsed = 0;

/** A copy of bytes[start, start + length) that shares no memory with `bytes`. */
export function copyValue(bytes: Uint8Array, start: number, length: number): Uint8Array {
  if (length > arenaValueMax) return bytes.slice(start, start + length);
  if (arenaUsed + length > arenaChunkBytes) {
    arena = new ArrayBuffer(arenaChunkBytes);
    arenaUsed = 0;
  }
  const out = new Uint8Array(arena, arenaUsed, length);
  // Keep views 8-byte aligned, as a fresh buffer would be.
  arenaUsed += (length + 7) & ~7;
  if (length <= 64) for (let i = 0; i < length; i++) out[i] = bytes[start + i]!;
  else out.set(bytes.subarray(start, start + length));
  return out;
}
