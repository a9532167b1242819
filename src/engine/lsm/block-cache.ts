/**
 * BlockCache: decoded SST blocks kept in memory, least recently used evicted first, bounded by bytes.
 *
 * This is the only place SST data stays in memory, so it is what lets a database be many times larger than RAM:
 * a reader asks the cache first and goes to storage only on a miss.
 *
 * Invariants:
 *   - `bytes <= cacheBytesMax` after every call; a value larger than the whole budget is handed to its caller
 *     but not kept.
 *   - Entries are keyed by (object key, block offset). SST objects are immutable and their keys never reused, so
 *     a cached block is never stale; a caller that deletes an SST may `evictObject` to free its blocks early.
 *   - At most one load per block is in flight: concurrent misses of one block share one storage read. A failed
 *     load is forgotten (nothing cached), so the next request retries it.
 *   - get / put / evict are O(1): a Map per object key, one intrusive doubly linked recency list, and no string
 *     building on the lookup path (an SST reader's object key string is hashed once by V8 and reused).
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
  objectKey: string;
  /** The per-object map the node is in, so that dropping it needs no lookup by the object key's string. */
  table: Map<number, Node>;
  offset: number;
  value: unknown;
  bytes: number;
  prev: Node;
  next: Node;
}

const spareNodesMax = 64;

export class BlockCache {
  readonly cacheBytesMax: number;
  /** Buffers of dropped blocks, for the next load to fill instead of allocating. */
  readonly buffers = new BlockBufferPool();
  private readonly byObject = new Map<string, Map<number, Node>>();
  private readonly pending = new Map<string, Map<number, Promise<unknown>>>();
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
      objectKey: "",
      table: new Map(),
      offset: -1,
      value: undefined,
      bytes: 0,
      prev: null,
      next: null,
    } as unknown as Node;
    head.prev = head;
    head.next = head;
    this.head = head;
  }

  /** The cached value, made most recently used; undefined on a miss. Counts a hit; a miss is counted by `load`. */
  get(objectKey: string, blockOffset: number): unknown {
    const node = this.byObject.get(objectKey)?.get(blockOffset);
    if (node === undefined) return undefined;
    this.hits++;
    if (this.head.next !== node) {
      this.unlink(node);
      this.linkFront(node);
    }
    return node.value;
  }

  has(objectKey: string, blockOffset: number): boolean {
    return this.byObject.get(objectKey)?.has(blockOffset) ?? false;
  }

  put(objectKey: string, blockOffset: number, value: unknown, bytes: number): void {
    let perObject = this.byObject.get(objectKey);
    if (perObject !== undefined) {
      const old = perObject.get(blockOffset);
      // Dropping the last block of an object drops its map too: a fresh one is made below.
      if (old !== undefined) this.remove(old);
      if (perObject.size === 0) perObject = undefined;
    }
    if (bytes > this.cacheBytesMax) return;
    if (perObject === undefined) {
      perObject = new Map();
      this.byObject.set(objectKey, perObject);
    }
    let node = this.spareNodes.pop();
    if (node === undefined) {
      // Every field in the literal: a node has one shape and no out-of-object property store.
      const head = this.head;
      node = { objectKey, table: perObject, offset: blockOffset, value, bytes, prev: head, next: head };
    } else {
      node.objectKey = objectKey;
      node.table = perObject;
      node.offset = blockOffset;
      node.value = value;
      node.bytes = bytes;
    }
    perObject.set(blockOffset, node);
    this.linkFront(node);
    this.bytes += bytes;
    this.entries++;
    while (this.bytes > this.cacheBytesMax) {
      this.remove(this.head.prev);
      this.evictions++;
    }
  }

  /** Caches a value its caller loaded itself (synchronously), counting the miss and the load. */
  putLoaded(objectKey: string, blockOffset: number, value: unknown, bytes: number): void {
    this.misses++;
    this.loads++;
    this.put(objectKey, blockOffset, value, bytes);
  }

  /**
   * The cached value, or the result of `loader` (cached on success). Concurrent calls for one block while a load
   * is in flight share it; `loader` runs once.
   */
  load<T>(objectKey: string, blockOffset: number, loader: () => Promise<LoadedBlock<T>>): Promise<T> {
    const cached = this.get(objectKey, blockOffset);
    if (cached !== undefined) return Promise.resolve(cached as T);
    this.misses++;
    let perObject = this.pending.get(objectKey);
    const inFlight = perObject?.get(blockOffset);
    if (inFlight !== undefined) {
      this.sharedLoads++;
      return inFlight as Promise<T>;
    }
    if (perObject === undefined) {
      perObject = new Map();
      this.pending.set(objectKey, perObject);
    }
    this.loads++;
    const done = () => {
      const map = this.pending.get(objectKey);
      if (map === undefined || map.get(blockOffset) !== promise) return;
      map.delete(blockOffset);
      this.pendingCount--;
      if (map.size === 0) this.pending.delete(objectKey);
    };
    let resolve!: (value: T) => void;
    let reject!: (error: unknown) => void;
    const promise = new Promise<T>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // Registered before the loader runs, so that even a loader that throws synchronously finds it to remove.
    perObject.set(blockOffset, promise);
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
        this.put(objectKey, blockOffset, loaded.value, loaded.bytes);
        resolve(loaded.value);
      },
      (error: unknown) => {
        done();
        reject(error);
      },
    );
    return promise;
  }

  delete(objectKey: string, blockOffset: number): void {
    const node = this.byObject.get(objectKey)?.get(blockOffset);
    if (node !== undefined) this.remove(node);
  }

  /** Drops every cached block of one object (for example after compaction deleted the SST). */
  evictObject(objectKey: string): void {
    const perObject = this.byObject.get(objectKey);
    if (perObject === undefined) return;
    for (const node of perObject.values()) {
      this.unlink(node);
      this.bytes -= node.bytes;
      this.entries--;
      this.dropped(node.value);
    }
    this.byObject.delete(objectKey);
  }

  /** Drops every block for good (the engine closed): their buffers go to the next cache made (block-pool.ts). */
  clear(): void {
    const buffers: Uint8Array[] = [];
    for (const perObject of this.byObject.values()) {
      for (const node of perObject.values()) {
        const buffer = isReleasable(node.value) ? node.value.release() : undefined;
        if (buffer !== undefined) buffers.push(buffer);
      }
    }
    BlockBufferPool.handOff(buffers);
    this.byObject.clear();
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
    const perObject = node.table;
    perObject.delete(node.offset);
    if (perObject.size === 0 && this.byObject.get(node.objectKey) === perObject)
      this.byObject.delete(node.objectKey);
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
