/**
 * BlockCache: decoded SST blocks kept in memory, least recently used evicted first, bounded by bytes.
 *
 * This is the only place SST data stays in memory, so it is what lets a database be many times larger than RAM:
 * a reader asks the cache first and goes to storage only on a miss.
 *
 * Invariants:
 *   - `bytes <= cacheBytesMax` after every call; a value larger than the whole budget is handed to its caller
 *     but not kept.
 *   - Entries are keyed by (object, block index): `object(key)` gives the one `CachedObject` of an object key,
 *     which a reader keeps, so a lookup is an array read rather than a Map lookup by string and another by
 *     offset (those two Maps were ~10% of a point get that misses). SST objects are immutable and their keys
 *     never reused, so a cached block is never stale; a caller that deletes an SST may `evictObject` to free its
 *     blocks early (a reader that still holds the object afterwards may cache into it; the LRU drops those).
 *   - At most one load per block is in flight: concurrent misses of one block share one storage read. A failed
 *     load is forgotten (nothing cached), so the next request retries it.
 *   - get / put / evict are O(1): an array of nodes per object, one intrusive doubly linked recency list.
 *   - A value the cache drops (evicted, replaced, its object evicted, cleared) that has a `release` method is
 *     told so, exactly once; a buffer it hands back goes to `buffers` for the next miss to reuse (block-pool.ts).
 */

import { ErrorCodes, TwillError } from "../../errors.js";
import { BlockBufferPool } from "./block-pool.js";

/** A cached value that holds a recycled buffer: `release` returns it (once) when the cache drops the value. */
interface Releasable {
  release(): Uint8Array | undefined;
}

function isReleasable(value: unknown): value is Releasable {
  return typeof value === "object" && value !== null && typeof (value as Releasable).release === "function";
}

export interface BlockCacheOptions {
  /** Upper bound of the bytes of cached values (as reported to `put`). */
  cacheBytesMax: number;
}

export interface BlockCacheStats {
  /** Requests answered from memory. */
  hits: number;
  /** Requests that needed a load (including ones that joined a load already in flight). */
  misses: number;
  /** Loads actually started: storage reads. */
  loads: number;
  /** Misses that joined a load already in flight instead of starting one. */
  sharedLoads: number;
  /** Values dropped to stay within `cacheBytesMax`. */
  evictions: number;
  entries: number;
  bytes: number;
  cacheBytesMax: number;
  pendingLoads: number;
}

export interface LoadedBlock<T> {
  value: T;
  /** Memory the value holds, for the byte budget. */
  bytes: number;
}

interface Node {
  owner: CachedObject;
  index: number;
  value: unknown;
  bytes: number;
  prev: Node;
  next: Node;
}

/** The blocks of one object in a cache, by block index: a reader holds it (from `BlockCache.object`). */
export class CachedObject {
  /** Node of each cached block, by index; undefined where none. */
  readonly nodes: (Node | undefined)[];
  /** Loads in flight, by block index. */
  pending: Map<number, Promise<unknown>> | undefined = undefined;

  /** `blockCount`, when known, sizes the node array once (a packed array the lookups index directly). */
  constructor(
    readonly key: string,
    blockCount = 0,
  ) {
    this.nodes = new Array<Node | undefined>(blockCount).fill(undefined);
  }
}

const spareNodesMax = 64;

export class BlockCache {
  readonly cacheBytesMax: number;
  /** Buffers of dropped blocks, for the next load to fill instead of allocating. */
  readonly buffers = new BlockBufferPool();
  /** Objects by key, for `object` to hand out one per key and for `evictObject`. */
  private readonly objects = new Map<string, CachedObject>();
  /** Sentinel of the recency list: head.next is the most recently used, head.prev the least. */
  private readonly head: Node;
  /**
   * Nodes of dropped entries, for the next put: a full cache drops about one block per miss, and a node made per
   * miss lives as long as its block, so it is promoted and later collected by a full GC. Nodes are private to the
   * cache, so nothing else can hold one that is reused.
   */
  private readonly spareNodes: Node[] = [];
  private bytes = 0;
  private entries = 0;
  private pendingCount = 0;
  private hits = 0;
  private misses = 0;
  private loads = 0;
  private sharedLoads = 0;
  private evictions = 0;

  /** `options` may be the byte budget itself. */
  constructor(options: BlockCacheOptions | number) {
    const cacheBytesMax = typeof options === "number" ? options : options.cacheBytesMax;
    if (!Number.isSafeInteger(cacheBytesMax) || cacheBytesMax < 0) {
      throw new TwillError(
        ErrorCodes.InvalidArgument,
        `cacheBytesMax must be a non-negative integer, got ${cacheBytesMax}`,
      );
    }
    this.cacheBytesMax = cacheBytesMax;
    // The same fields in the same order as every node, so that the list code sees one shape.
    const head = {
      owner: new CachedObject(""),
      index: -1,
      value: undefined,
      bytes: 0,
      prev: null,
      next: null,
    } as unknown as Node;
    head.prev = head;
    head.next = head;
    this.head = head;
  }

  /** The cache's one `CachedObject` for `objectKey` (made on first use; `blockCount` sizes a new one). */
  object(objectKey: string, blockCount = 0): CachedObject {
    let object = this.objects.get(objectKey);
    if (object === undefined) {
      object = new CachedObject(objectKey, blockCount);
      this.objects.set(objectKey, object);
    }
    return object;
  }

  /** The cached value, made most recently used; undefined on a miss. Counts a hit; a miss is counted by `load`. */
  get(object: CachedObject, index: number): unknown {
    const node = object.nodes[index];
    if (node === undefined) return undefined;
    this.hits++;
    if (this.head.next !== node) {
      this.unlink(node);
      this.linkFront(node);
    }
    return node.value;
  }

  has(object: CachedObject, index: number): boolean {
    return object.nodes[index] !== undefined;
  }

  put(object: CachedObject, index: number, value: unknown, bytes: number): void {
    checkIndex(index);
    const old = object.nodes[index];
    if (old !== undefined) this.remove(old);
    if (bytes > this.cacheBytesMax) return;
    let node = this.spareNodes.pop();
    if (node === undefined) {
      // Every field in the literal: a node has one shape and no out-of-object property store.
      const head = this.head;
      node = { owner: object, index, value, bytes, prev: head, next: head };
    } else {
      node.owner = object;
      node.index = index;
      node.value = value;
      node.bytes = bytes;
    }
    object.nodes[index] = node;
    this.linkFront(node);
    this.bytes += bytes;
    this.entries++;
    while (this.bytes > this.cacheBytesMax) {
      this.remove(this.head.prev);
      this.evictions++;
    }
  }

  /** Caches a value its caller loaded itself (synchronously), counting the miss and the load. */
  putLoaded(object: CachedObject, index: number, value: unknown, bytes: number): void {
    this.misses++;
    this.loads++;
    this.put(object, index, value, bytes);
  }

  /**
   * The cached value, or the result of `loader` (cached on success). Concurrent calls for one block while a load
   * is in flight share it; `loader` runs once.
   */
  load<T>(object: CachedObject, index: number, loader: () => Promise<LoadedBlock<T>>): Promise<T> {
    const cached = this.get(object, index);
    if (cached !== undefined) return Promise.resolve(cached as T);
    checkIndex(index);
    this.misses++;
    object.pending ??= new Map();
    const pending = object.pending;
    const inFlight = pending.get(index);
    if (inFlight !== undefined) {
      this.sharedLoads++;
      return inFlight as Promise<T>;
    }
    this.loads++;
    const done = () => {
      if (pending.get(index) !== promise) return;
      pending.delete(index);
      this.pendingCount--;
    };
    let resolve!: (value: T) => void;
    let reject!: (error: unknown) => void;
    const promise = new Promise<T>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // Registered before the loader runs, so that even a loader that throws synchronously finds it to remove.
    pending.set(index, promise);
    this.pendingCount++;
    let started: Promise<LoadedBlock<T>>;
    try {
      started = loader();
    } catch (error) {
      started = Promise.reject(error);
    }
    started.then(
      (loaded) => {
        done();
        this.put(object, index, loaded.value, loaded.bytes);
        resolve(loaded.value);
      },
      (error: unknown) => {
        done();
        reject(error);
      },
    );
    return promise;
  }

  delete(object: CachedObject, index: number): void {
    const node = object.nodes[index];
    if (node !== undefined) this.remove(node);
  }

  /** Drops every cached block of one object (for example after compaction deleted the SST). */
  evictObject(objectKey: string): void {
    const object = this.objects.get(objectKey);
    if (object === undefined) return;
    this.objects.delete(objectKey);
    const nodes = object.nodes;
    for (let i = 0; i < nodes.length; i++) {
      const node = nodes[i];
      if (node !== undefined) this.remove(node);
    }
  }

  /** Drops every block for good (the engine closed): their buffers go to the next cache made (block-pool.ts). */
  clear(): void {
    const buffers: Uint8Array[] = [];
    for (let node = this.head.next; node !== this.head; node = node.next) {
      const buffer = isReleasable(node.value) ? node.value.release() : undefined;
      if (buffer !== undefined) buffers.push(buffer);
      node.owner.nodes[node.index] = undefined;
      node.value = undefined;
    }
    BlockBufferPool.handOff(buffers);
    this.objects.clear();
    this.head.next = this.head;
    this.head.prev = this.head;
    this.bytes = 0;
    this.entries = 0;
  }

  stats(): BlockCacheStats {
    return {
      hits: this.hits,
      misses: this.misses,
      loads: this.loads,
      sharedLoads: this.sharedLoads,
      evictions: this.evictions,
      entries: this.entries,
      bytes: this.bytes,
      cacheBytesMax: this.cacheBytesMax,
      pendingLoads: this.pendingCount,
    };
  }

  private dropped(value: unknown): void {
    if (!isReleasable(value)) return;
    const buffer = value.release();
    if (buffer !== undefined) this.buffers.give(buffer);
  }

  private remove(node: Node): void {
    this.unlink(node);
    this.bytes -= node.bytes;
    this.entries--;
    this.dropped(node.value);
    node.owner.nodes[node.index] = undefined;
    node.value = undefined;
    if (this.spareNodes.length < spareNodesMax) this.spareNodes.push(node);
  }

  private unlink(node: Node): void {
    node.prev.next = node.next;
    node.next.prev = node.prev;
  }

  private linkFront(node: Node): void {
    const first = this.head.next;
    node.prev = this.head;
    node.next = first;
    first.prev = node;
    this.head.next = node;
  }
}

/** Block indexes are array indexes: a fractional or huge one would turn an object's node array into a dictionary. */
function checkIndex(index: number): void {
  if (!Number.isInteger(index) || index < 0 || index >= 2 ** 31) {
    throw new TwillError(
      ErrorCodes.InvalidArgument,
      `block index must be an integer in [0, 2^31), got ${index}`,
    );
  }
}
