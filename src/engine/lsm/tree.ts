/**
 * LsmTree: the versioned sorted store under the transactions. It owns the memtables, the SSTs listed by the
 * manifest, the block cache, flushing and compaction. It knows nothing of logs or transactions: the engine applies
 * durable commits to it and asks it for versions at a snapshot LSN.
 *
 * Read order (newest data first): active memtable → immutable memtables (newest first) → L0 SSTs (newest first) →
 * the one L1 SST whose key range holds the key. The first source with a version <= the snapshot answers.
 *
 * Invariants:
 *   - Every commit with lsn <= manifest.flushedLsn is in the SSTs; every later applied commit is in a memtable.
 *   - A memtable is frozen (made immutable) only between two applied commits, at an LSN boundary.
 *   - Manifest changes (flush, compaction) are serialised by one mutex; each installs version N+1 with a CAS.
 *   - An SST object is deleted only after a manifest without it is installed and no read that started on an
 *     older view is still running.
 *   - L1 SSTs never overlap, and all versions of one key live in one L1 SST.
 *   - Ingest (`ingest`, one huge committed transaction written straight to SSTs at its commit LSN) keeps the
 *     newest-first read order: its SSTs go to L1 when their key range overlaps nothing in the tree (no memtable,
 *     no SST: no key of theirs has another version), else to the front of L0 after every memtable whose range
 *     overlaps was flushed (so no older version of one of their keys sits above them). The SSTs of one ingest
 *     do not overlap one another and all carry its one LSN, so their order among themselves does not matter. An
 *     ingest goes to L1 only when no compaction merges, and none starts until it is installed, so the overlap
 *     check and the install see the same L1.
 */

import { ErrorCodes, TwillError } from "../../errors.js";
import type { Storage } from "../../storage/types.js";
import { CountedNumbers } from "../../util/counted-numbers.js";
import { BlockCache } from "./block-cache.js";
import { bloomHash } from "./bloom.js";
import { AsyncCursor, ConcatCursor, type Cursor, type EntrySource } from "./cursor.js";
import { installManifest, type Manifest, pruneManifests, type SstMeta } from "./manifest.js";
import { ArenaPool, Memtable } from "./memtable.js";
import { compactEntries, mergeIterators, visibleEntries } from "./merge.js";
import { SlabPool, SstReader, SstWriter } from "./sst.js";
import { compareBytes, type Entry, EntryKind, lsnMax, NEEDS_IO, type NeedsIo } from "./types.js";

export interface TreeOptions {
  /** Freeze and flush the memtable past this size. */
  memtableBytesMax: number;
  blockCacheBytesMax: number;
  /** Compact L0 into L1 once this many L0 SSTs exist. */
  l0CompactionTrigger: number;
  /** Flushes stop at this many L0 sorted runs (see `waitForL0Room`). Default max(8, l0CompactionTrigger + 4). */
  l0StopWritesTrigger?: number;
  /** Stall commits while this many memtables wait to be flushed. */
  immutableMemtablesMax: number;
  /** Target size of one L1 SST. */
  sstBytesTarget: number;
  blockBytesTarget: number;
  /** Run flushes and compactions on their own when thresholds are passed. */
  autoMaintenance: boolean;
}

/** Entries by position (an array, or a list that makes each entry when asked). */
export interface EntryList {
  readonly length: number;
  at(index: number): Entry | undefined;
}

export interface KeyValue {
  key: Uint8Array;
  value: Uint8Array;
}

export interface ScanRange {
  /** Inclusive lower bound. */
  start?: Uint8Array;
  /** Exclusive upper bound. */
  end?: Uint8Array;
  reverse?: boolean;
}

interface SstHandle {
  meta: SstMeta;
  minKey: Uint8Array;
  maxKey: Uint8Array;
  reader: SstReader | undefined;
  opening: Promise<SstReader> | undefined;
}

/** An immutable picture of what a read consults; replaced wholesale by flush and compaction. */
interface View {
  seq: number;
  active: Memtable;
  /** Frozen memtables waiting for their flush, newest first, each with the highest LSN it holds. */
  immutables: { table: Memtable; upToLsn: number }[];
  l0: SstHandle[];
  l1: SstHandle[];
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}

function unhex(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, "hex"));
}

/** One turn of the event loop, so that background work lets commits and reads in. */
function yieldTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Entries a flush adds to its SST between yields: a few MiB of work, a few milliseconds. */
const flushEntriesPerTurn = 16_384;

function inRange(handle: SstHandle, key: Uint8Array): boolean {
  return compareBytes(key, handle.minKey) >= 0 && compareBytes(key, handle.maxKey) <= 0;
}

function overlaps(handle: SstHandle, start: Uint8Array | undefined, end: Uint8Array | undefined): boolean {
  if (start && compareBytes(handle.maxKey, start) < 0) return false;
  if (end && compareBytes(handle.minKey, end) >= 0) return false;
  return true;
}

/** Binary search for the L1 SST whose range may hold `key`. */
function findL1(l1: SstHandle[], key: Uint8Array): SstHandle | undefined {
  let lo = 0;
  let hi = l1.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const h = l1[mid]!;
    if (compareBytes(key, h.minKey) < 0) hi = mid - 1;
    else if (compareBytes(key, h.maxKey) > 0) lo = mid + 1;
    else return h;
  }
  return undefined;
}

export interface TreeStats {
  memtableBytes: number;
  immutableMemtables: number;
  l0Ssts: number;
  l1Ssts: number;
  sstBytes: number;
  flushes: number;
  compactions: number;
  /** Flushes held back while L0 was at its stop trigger (see `l0StopWritesTrigger`). */
  l0Stalls: number;
  /** Merges of L0 runs into one while an L0 -> L1 compaction ran. */
  l0Merges: number;
  /** L0 sorted runs: what a point get may probe in L0 (an L0 merge's SSTs are one run). */
  l0Runs: number;
  deletedObjects: number;
  /** Bytes of recycled SST-writer slabs held while no SST is being written (0 once background work stops). */
  idleSlabBytes: number;
  /** Flushed memtables a running scan can still reach (their arenas are recycled when it ends). */
  retiredMemtables: number;
  blockCache: ReturnType<BlockCache["stats"]>;
}

export class LsmTree {
  private view: View;
  private manifest: Manifest;
  private readonly cache: BlockCache;
  private readonly slabs: SlabPool;
  /** Arena chunks of flushed memtables, for the next ones (memtable.ts). */
  private readonly arenas: ArenaPool;
  /**
   * Flushed memtables out of the view: in views [fromSeq, afterSeq), recycled once no scan that began on one of
   * those views runs. Only scans hold memtable cursors; a compaction's read (SSTs only) must not hold them back:
   * it runs for minutes during a load, and the memtables flushed meanwhile piled up (675 MiB in bench/engine/rss).
   */
  private retired: { table: Memtable; fromSeq: number; afterSeq: number }[] = [];
  /** The view seq each memtable first appeared in. */
  private readonly bornSeq = new Map<Memtable, number>();
  /** Running scans (the reads that iterate memtables) by the view seq they began on. */
  private readonly scansBySeq = new CountedNumbers();
  /** Running reads (point reads, scans, compactions' reads) by the view seq they began on. */
  private readonly readsBySeq = new CountedNumbers();
  /** SST objects dropped from the manifest, deletable once no read older than `afterSeq` runs. */
  private obsolete: { key: string; afterSeq: number }[] = [];
  private manifestLock: Promise<unknown> = Promise.resolve();
  private flushing: Promise<void> | undefined;
  private compacting: Promise<void> | undefined;
  /** The L0 SSTs the running L0 -> L1 compaction took (its merge removes them when it installs). */
  private compactingL0: ReadonlySet<string> | undefined;
  /** Set while an ingest runs: a compaction waits for it before it picks its inputs. */
  private ingesting: Promise<void> | undefined;
  /** Set while a compaction merges (after it passed any ingest): an ingest then goes to L0. */
  private merging: Promise<void> | undefined;
  private failure: TwillError | undefined;
  private closed = false;
  private flushes = 0;
  private compactions = 0;
  /** Flushes held back by `waitForL0Room` (each wait for a compaction or an L0 merge counts once). */
  private l0Stalls = 0;
  /** L0 runs merged into one while an L0 -> L1 compaction ran (`mergeL0Runs`). */
  private l0Merges = 0;
  private deletedObjects = 0;

  constructor(
    private readonly storage: Storage,
    private readonly branch: string,
    manifest: Manifest,
    private readonly options: TreeOptions,
    /** Live snapshot LSNs (ascending) that compaction must keep versions for (child branches' fork LSNs too). */
    private readonly liveSnapshots: () => number[],
    /** This branch's SST namespace: `sst/` for main, `bsst/<log>/` for a branch (docs/BRANCHES.md). */
    private readonly sstPrefix = "sst/",
  ) {
    this.manifest = manifest;
    this.gcHorizon = manifest.gcHorizonLsn ?? 0;
    this.cache = new BlockCache(options.blockCacheBytesMax);
    // One SST's worth: flushes, compactions and ingests write one SST at a time.
    this.slabs = new SlabPool(Math.ceil(options.sstBytesTarget / (1024 * 1024)) + 2);
    // One memtable's worth: the active memtable refills what the last flush gave back.
    this.arenas = new ArenaPool(ArenaPool.chunksFor(options.memtableBytesMax) + 2);
    const handles = manifest.ssts.map((meta) => this.handleFor(meta));
    this.view = {
      seq: 1,
      active: this.newMemtable(1),
      immutables: [],
      l0: handles.filter((h) => h.meta.level === 0),
      l1: handles.filter((h) => h.meta.level === 1),
    };
  }

  /** Continues from `next`, a newer version of the same manifest that the engine installed (an epoch change). */
  adoptManifest(next: Manifest): void {
    if (next.version <= this.manifest.version || next.ssts.length !== this.manifest.ssts.length) {
      throw new TwillError(ErrorCodes.Internal, "adoptManifest: not a newer version of the same SST set");
    }
    this.manifest = next;
  }

  get currentManifest(): Manifest {
    return this.manifest;
  }

  private handleFor(meta: SstMeta): SstHandle {
    return {
      meta,
      minKey: unhex(meta.minKey),
      maxKey: unhex(meta.maxKey),
      reader: undefined,
      opening: undefined,
    };
  }

  /** Opens an SST on first use: opening a database reads no SST. */
  private openReader(handle: SstHandle): Promise<SstReader> {
    if (handle.reader) return Promise.resolve(handle.reader);
    handle.opening ??= SstReader.open(this.storage, handle.meta.key, this.cache, {
      sizeBytes: handle.meta.sizeBytes,
    }).then(
      (reader) => {
        handle.reader = reader;
        return reader;
      },
      (error: unknown) => {
        handle.opening = undefined;
        throw error;
      },
    );
    return handle.opening;
  }

  private checkUsable(): void {
    if (this.closed) throw new TwillError(ErrorCodes.Closed, "the database is closed");
    if (this.failure) throw this.failure;
  }

  // ---- writes -------------------------------------------------------------------------------------------------

  /**
   * Adds one durable commit's versions. Synchronous: callers apply a whole commit between two awaits. `keys` and
   * `hashes`, if given, are the entries' keys as latin1 strings and their `bloomHash`es (the commit's conflict
   * check made them), so the memtable need not make them again.
   */
  apply(entries: readonly Entry[], keys?: readonly string[], hashes?: readonly number[]): void {
    const active = this.view.active;
    if (keys === undefined || hashes === undefined)
      for (let i = 0; i < entries.length; i++) active.put(entries[i]!);
    else for (let i = 0; i < entries.length; i++) active.put(entries[i]!, keys[i], hashes[i]);
  }

  /** True when commits should wait for a flush before appending more (the memtables are full). */
  get needsBackPressure(): boolean {
    return this.view.immutables.length >= this.options.immutableMemtablesMax;
  }

  /**
   * Resolves when commits may go on: at once unless the memtables are full; otherwise when the flush that drains
   * them is done (starting it if none runs). Without automatic maintenance the caller flushes, and commits never
   * wait here: waiting for a flush nobody starts would hang them.
   */
  waitForFlush(): Promise<void> {
    if (!this.needsBackPressure || !this.options.autoMaintenance || this.closed) return Promise.resolve();
    return this.flushInBackground();
  }

  /**
   * Called after commits up to `appliedLsn` were applied: freezes the memtable when it is full and starts a flush.
   */
  maybeFreeze(appliedLsn: number, startFlush = true): void {
    if (this.view.active.approximateBytes < this.options.memtableBytesMax) return;
    this.freeze(appliedLsn);
    if (startFlush && this.options.autoMaintenance) void this.flushInBackground();
  }

  /**
   * Starts the background work that recovery deferred. Recovery only freezes full memtables: a flush racing the
   * open would install manifest versions under it (and lose to its epoch CAS) or write SSTs that its orphan sweep
   * deletes.
   */
  startMaintenance(): void {
    if (!this.options.autoMaintenance) return;
    if (this.view.immutables.length > 0) void this.flushInBackground();
    else if (this.view.l0.length >= this.options.l0CompactionTrigger) void this.compactInBackground();
  }

  private freeze(appliedLsn: number): void {
    if (this.view.active.entryCount === 0) return;
    this.view = {
      ...this.view,
      seq: this.view.seq + 1,
      active: this.newMemtable(this.view.seq + 1),
      immutables: [{ table: this.view.active, upToLsn: appliedLsn }, ...this.view.immutables],
    };
  }

  private newMemtable(seq: number): Memtable {
    const table = new Memtable({ arena: this.arenas });
    this.bornSeq.set(table, seq);
    return table;
  }

  private flushInBackground(): Promise<void> {
    this.flushing ??= this.runBackground("flush", () => this.flushImmutables()).finally(() => {
      this.flushing = undefined;
      this.releaseIdleSlabs();
    });
    return this.flushing;
  }

  /**
   * Runs a background job; its failure poisons the tree (reads and writes report it) instead of escaping as an
   * unhandled rejection, because a failed flush or compaction leaves the manifest, not the data, behind.
   */
  private runBackground(job: string, work: () => Promise<void>): Promise<void> {
    return work().catch((error: unknown) => {
      this.failure =
        error instanceof TwillError
          ? error
          : new TwillError(ErrorCodes.Io, `${job} failed: ${String(error)}`, { cause: error });
    });
  }

  /** Flushes everything applied so far (up to `appliedLsn`) to SSTs. Returns the new flushed LSN. */
  async flush(appliedLsn: number): Promise<number> {
    this.checkUsable();
    this.freeze(appliedLsn);
    while (this.flushing) await this.flushing;
    await this.flushInBackground();
    if (this.failure) throw this.failure;
    return this.manifest.flushedLsn;
  }

  /**
   * Installs the manifest's next version with `change` (under the manifest lock: the version is this one's + 1,
   * and a CAS by version refuses a second writer's) and makes it current.
   */
  private async installNext(change: Partial<Omit<Manifest, "version" | "createdAt">>): Promise<void> {
    const next: Manifest = {
      ...this.manifest,
      ...change,
      version: this.manifest.version + 1,
      createdAt: new Date().toISOString(),
    };
    await installManifest(this.storage, this.branch, next);
    this.manifest = next;
  }

  /** Serialises manifest changes. */
  private withManifestLock<T>(work: () => Promise<T>): Promise<T> {
    const result = this.manifestLock.then(work);
    this.manifestLock = result.catch(() => undefined);
    return result;
  }

  private async flushImmutables(): Promise<void> {
    // Not in the tick of the commit that froze the memtable: that commit's caller runs first.
    await yieldTurn();
    while (this.view.immutables.length > 0 && !this.closed) {
      await this.waitForL0Room();
      if (this.closed) break;
      const oldest = this.view.immutables.at(-1)!;
      // Views, not copies: the writer copies every entry into its SST before the memtable can be recycled.
      const meta = await this.writeSst(0, oldest.table.iterate({ views: true }));
      await this.withManifestLock(async () => {
        await this.installNext({
          flushedLsn: Math.max(this.manifest.flushedLsn, oldest.upToLsn),
          nextSstId: Math.max(this.manifest.nextSstId, meta ? meta.id + 1 : 0),
          ssts: meta ? [meta, ...this.manifest.ssts] : this.manifest.ssts,
        });
        this.view = {
          ...this.view,
          seq: this.view.seq + 1,
          immutables: this.view.immutables.slice(0, -1),
          l0: meta ? [this.handleFor(meta), ...this.view.l0] : this.view.l0,
        };
        const fromSeq = this.bornSeq.get(oldest.table) ?? 1;
        this.bornSeq.delete(oldest.table);
        this.retired.push({ table: oldest.table, fromSeq, afterSeq: this.view.seq });
        this.recycleRetired();
      });
      this.flushes++;
      this.onFlushed?.(this.manifest.flushedLsn);
    }
    if (this.options.autoMaintenance && this.view.l0.length >= this.options.l0CompactionTrigger) {
      void this.compactInBackground();
    }
  }

  /**
   * Holds a flush back while L0 holds its stop trigger's worth of sorted runs: a point get probes every L0 SST
   * whose range holds its key, one per run, so this is what bounds its reads when writes outrun compaction (the
   * memtables then fill and commits wait in `waitForFlush`). While an L0 -> L1 compaction runs, the runs it did
   * not take are first merged into one (`mergeL0Runs`): that rewrites only those, where waiting for the next
   * L0 -> L1 would rewrite the L1 they overlap (with random keys, all of it) once per few flushes. Not while an
   * ingest runs: a compaction waits for it, which may be waiting for this flush; an ingest's L0 SSTs do not
   * overlap one another. Not without automatic maintenance: nothing would compact.
   */
  private async waitForL0Room(): Promise<void> {
    const stop = this.options.l0StopWritesTrigger ?? Math.max(8, this.options.l0CompactionTrigger + 4);
    while (
      this.options.autoMaintenance &&
      l0Runs(this.view.l0) >= stop &&
      this.ingesting === undefined &&
      !this.closed
    ) {
      this.l0Stalls++;
      const taken = this.compactingL0;
      const untaken = taken === undefined ? [] : this.view.l0.filter((h) => !taken.has(h.meta.key));
      const runs = runsToMerge(untaken);
      if (runs !== undefined) await this.withMergeGuard(() => this.mergeL0Runs(runs));
      else {
        // Started now, a compaction reaches its merge at once (no ingest runs: checked above). One started earlier
        // may still wait for an ingest — which may be waiting for this very flush (`ingest` flushes memtables
        // that overlap it): a flush waits only for a compaction that is merging.
        if (this.compacting === undefined) void this.compactInBackground();
        const merging = this.merging;
        if (merging === undefined) return;
        await merging;
      }
      if (this.failure) throw this.failure;
    }
  }

  /** Runs an L0 merge as background work: its failure poisons the tree like a compaction's. */
  private withMergeGuard(work: () => Promise<void>): Promise<void> {
    return this.runBackground("L0 merge", work);
  }

  /**
   * Merges L0 runs (`runs`, newer than everything the running compaction took) into one sorted run of L0 SSTs
   * of ~sstBytesTarget, keeping every version and tombstone (L0 is not the bottom, and no snapshot or fork may
   * lose a version here: nothing is dropped, so the compaction horizon is untouched). The run takes the inputs'
   * place in L0's newest-first order: SSTs flushed meanwhile stay in front of it, the compaction's behind.
   */
  private async mergeL0Runs(runs: SstHandle[][]): Promise<void> {
    const seq = this.beginRead();
    const outputs: SstMeta[] = [];
    try {
      // A run's SSTs are disjoint and in key order (`groupRuns`): one concatenating cursor per run.
      const sources: EntrySource[] = runs.map((run) => this.sstCursor(run, {}, { compaction: true }));
      outputs.push(...(await this.writeRun(0, mergeIterators(sources, { reverse: false }))));
    } finally {
      this.endRead(seq);
    }
    if (outputs.length > 1) for (const m of outputs) m.run = outputs[0]!.id;
    const inputKeys = new Set(runs.flatMap((run) => run.map((h) => h.meta.key)));
    await this.withManifestLock(async () => {
      // A compaction asked for meanwhile (`compact()`) takes all of L0, these inputs too: their versions are in
      // L1 now, and the outputs, copies of them, are dropped unused.
      if (this.manifest.ssts.filter((m) => inputKeys.has(m.key)).length !== inputKeys.size) {
        for (const m of outputs) this.obsolete.push({ key: m.key, afterSeq: this.view.seq });
        return;
      }
      await this.installNext({
        nextSstId: Math.max(this.manifest.nextSstId, this.nextSstId),
        ssts: replaceFirst(this.manifest.ssts, (m) => inputKeys.has(m.key), outputs),
      });
      this.view = {
        ...this.view,
        seq: this.view.seq + 1,
        l0: replaceFirst(
          this.view.l0,
          (h) => inputKeys.has(h.meta.key),
          outputs.map((m) => this.handleFor(m)),
        ),
      };
      for (const key of inputKeys) this.obsolete.push({ key, afterSeq: this.view.seq });
    });
    this.l0Merges++;
    await this.collectGarbage();
  }

  /** Set by the engine: truncates the log once a flush made a prefix of it redundant. */
  onFlushed: ((flushedLsn: number) => void) | undefined;

  /** Allocates an SST id; ids come from the manifest so they stay unique across restarts. */
  private nextSstId = 0;
  private allocateSstId(): number {
    this.nextSstId = Math.max(this.nextSstId, this.manifest.nextSstId);
    return this.nextSstId++;
  }

  /** Starts an SST at `level`: add entries in internal order, then `finish` writes it (undefined when empty). */
  private startSst(level: 0 | 1) {
    const writer = new SstWriter({ blockBytesTarget: this.options.blockBytesTarget, slabs: this.slabs });
    let count = 0;
    let minKey: Uint8Array | undefined;
    let maxKey: Uint8Array | undefined;
    let minLsn = lsnMax;
    let maxLsn = 0;
    return {
      get estimatedBytes() {
        return writer.estimatedBytes;
      },
      get lastKey() {
        return maxKey;
      },
      add(entry: Entry): void {
        writer.add(entry);
        count++;
        minKey ??= entry.key;
        maxKey = entry.key;
        if (entry.lsn < minLsn) minLsn = entry.lsn;
        if (entry.lsn > maxLsn) maxLsn = entry.lsn;
      },
      finish: async (): Promise<SstMeta | undefined> => {
        if (count === 0 || !minKey || !maxKey) return undefined;
        const storage = this.storage;
        const id = this.allocateSstId();
        const key = `${this.sstPrefix}${String(id).padStart(12, "0")}.sst`;
        let sizeBytes = 0;
        if (storage.writeChunks !== undefined) {
          // The blocks go out as they are: the SST never exists twice in memory.
          const parts = writer.finishParts();
          for (const p of parts) sizeBytes += p.length;
          try {
            await storage.writeChunks(key, parts);
          } finally {
            writer.releaseSlabs();
          }
        } else {
          const bytes = writer.finish();
          writer.releaseSlabs();
          sizeBytes = bytes.length;
          await storage.write(key, bytes);
        }
        return {
          id,
          key,
          level,
          sizeBytes,
          minKey: hex(minKey),
          maxKey: hex(maxKey),
          minLsn,
          maxLsn,
          entries: count,
        };
      },
    };
  }

  /**
   * Writes entries (internal order) as SSTs of ~sstBytesTarget, cut only at key boundaries so that no key's
   * versions straddle two SSTs: the outputs of a merge, which do not overlap one another.
   */
  private async writeRun(level: 0 | 1, entries: AsyncIterable<Entry>): Promise<SstMeta[]> {
    const outputs: SstMeta[] = [];
    let out = this.startSst(level);
    for await (const entry of entries) {
      if (
        out.estimatedBytes >= this.options.sstBytesTarget &&
        out.lastKey &&
        compareBytes(out.lastKey, entry.key) !== 0
      ) {
        const meta = await out.finish();
        if (meta) outputs.push(meta);
        out = this.startSst(level);
      }
      out.add(entry);
    }
    const meta = await out.finish();
    if (meta) outputs.push(meta);
    return outputs;
  }

  /** Writes the entries (internal order) as one SST; undefined when there are none. */
  private async writeSst(level: 0 | 1, entries: Iterable<Entry>): Promise<SstMeta | undefined> {
    const out = this.startSst(level);
    let sinceYield = 0;
    for (const entry of entries) {
      out.add(entry);
      if (++sinceYield === flushEntriesPerTurn) {
        sinceYield = 0;
        await yieldTurn();
      }
    }
    return out.finish();
  }

  /**
   * Gives the SST writers' idle slabs back once no flush, compaction or ingest runs. While they run back to back
   * (a load) the slabs are reused from one SST to the next; kept after that, they were one SST's worth of memory
   * (34 MiB by default) held for good, by a closed engine too, in every read phase of bench/engine/rss.
   */
  private releaseIdleSlabs(): void {
    if (this.flushing === undefined && this.compacting === undefined && this.ingesting === undefined) {
      this.slabs.clear();
      // Idle arena chunks wait for the active memtable only while writes come in.
      if (this.view.active.entryCount === 0) this.arenas.clear();
    }
  }

  private compactInBackground(): Promise<void> {
    this.compacting ??= this.runBackground("compaction", () => this.compactL0()).finally(() => {
      this.compacting = undefined;
      this.releaseIdleSlabs();
    });
    return this.compacting;
  }

  /** Compacts every L0 SST into L1 now (and waits for a running compaction first). */
  async compact(): Promise<void> {
    this.checkUsable();
    while (this.compacting) await this.compacting;
    await this.compactInBackground();
    if (this.failure) throw this.failure;
  }

  /** Waits for a running ingest, then compacts. */
  private async compactL0(): Promise<void> {
    while (this.ingesting) await this.ingesting;
    const merge = this.mergeL0();
    this.merging = merge.then(
      () => undefined,
      () => undefined,
    );
    try {
      await merge;
    } finally {
      this.merging = undefined;
      this.compactingL0 = undefined;
    }
  }

  /**
   * Merges all current L0 SSTs with the L1 SSTs they overlap into new, non-overlapping L1 SSTs. Versions no live
   * snapshot can see are dropped, and so are deletes (L1 is the bottom level; not on a branch, see hasLayersBelow).
   */
  private async mergeL0(): Promise<void> {
    const view = this.view;
    const inputsL0 = view.l0;
    if (inputsL0.length === 0) return;
    let lo = inputsL0[0]!.minKey;
    let hi = inputsL0[0]!.maxKey;
    for (const h of inputsL0) {
      if (compareBytes(h.minKey, lo) < 0) lo = h.minKey;
      if (compareBytes(h.maxKey, hi) > 0) hi = h.maxKey;
    }
    const inputsL1 = view.l1.filter(
      (h) => compareBytes(h.maxKey, lo) >= 0 && compareBytes(h.minKey, hi) <= 0,
    );
    this.compactingL0 = new Set(inputsL0.map((h) => h.meta.key));
    // Raised before the live snapshots are read (synchronously): a fork either is in that list or is checked
    // against this horizon, so no fork can land on a snapshot this compaction does not keep.
    for (const h of [...inputsL0, ...inputsL1])
      if (h.meta.maxLsn > this.gcHorizon) this.gcHorizon = h.meta.maxLsn;
    const seq = this.beginRead();
    const outputs: SstMeta[] = [];
    try {
      const sources: EntrySource[] = inputsL0.map((h) => this.sstCursor([h], {}, { compaction: true }));
      if (inputsL1.length > 0) sources.push(this.sstCursor(inputsL1, {}, { compaction: true }));
      const merged = mergeIterators(sources, { reverse: false });
      const kept = compactEntries(merged, {
        retainLsns: this.liveSnapshots(),
        dropTombstones: !this.hasLayersBelow,
      });
      outputs.push(...(await this.writeRun(1, kept)));
    } finally {
      this.endRead(seq);
    }
    const inputKeys = new Set([...inputsL0, ...inputsL1].map((h) => h.meta.key));
    await this.withManifestLock(async () => {
      const remaining = this.manifest.ssts.filter((m) => !inputKeys.has(m.key));
      const l0 = remaining.filter((m) => m.level === 0);
      const l1 = [...remaining.filter((m) => m.level === 1), ...outputs].sort((a, b) =>
        compareBytes(unhex(a.minKey), unhex(b.minKey)),
      );
      await this.installNext({
        nextSstId: Math.max(this.manifest.nextSstId, this.nextSstId),
        ssts: [...l0, ...l1],
        gcHorizonLsn: Math.max(this.manifest.gcHorizonLsn ?? 0, this.gcHorizon),
      });
      const keepHandles = (hs: SstHandle[]) => hs.filter((h) => !inputKeys.has(h.meta.key));
      const newHandles = outputs.map((m) => this.handleFor(m));
      this.view = {
        ...this.view,
        seq: this.view.seq + 1,
        l0: keepHandles(this.view.l0),
        l1: [...keepHandles(this.view.l1), ...newHandles].sort((a, b) => compareBytes(a.minKey, b.minKey)),
      };
      for (const key of inputKeys) this.obsolete.push({ key, afterSeq: this.view.seq });
    });
    this.compactions++;
    await this.collectGarbage();
    await pruneManifests(this.storage, this.branch, 5);
  }

  // ---- ingest -------------------------------------------------------------------------------------------------

  /** Whether a memtable holds a key in [lo, hi]. */
  private memOverlaps(lo: Uint8Array, hi: Uint8Array): boolean {
    for (const table of [this.view.active, ...this.view.immutables.map((i) => i.table)]) {
      if (table.entryCount === 0) continue;
      const first = table.iterate({}).nextSync();
      const last = table.iterate({ reverse: true }).nextSync();
      if (first && last && compareBytes(last.key, lo) >= 0 && compareBytes(first.key, hi) <= 0) return true;
    }
    return false;
  }

  /** Whether an SST's key range meets [lo, hi]. */
  private sstOverlaps(lo: Uint8Array, hi: Uint8Array): boolean {
    const meets = (h: SstHandle) => compareBytes(h.maxKey, lo) >= 0 && compareBytes(h.minKey, hi) <= 0;
    return this.view.l0.some(meets) || this.view.l1.some(meets);
  }

  private get memtablesEmpty(): boolean {
    return this.view.active.entryCount === 0 && this.view.immutables.length === 0;
  }

  /** The manifest's SST list and the view with `metas` (all of one level) added where they belong. */
  private withIngested(metas: SstMeta[]): { ssts: SstMeta[]; view: View } {
    const handles = metas.map((m) => this.handleFor(m));
    if (metas[0]!.level === 0) {
      return {
        ssts: [...metas, ...this.manifest.ssts],
        view: { ...this.view, seq: this.view.seq + 1, l0: [...handles, ...this.view.l0] },
      };
    }
    const l1 = [...this.manifest.ssts.filter((m) => m.level === 1), ...metas].sort((a, b) =>
      compareBytes(unhex(a.minKey), unhex(b.minKey)),
    );
    return {
      ssts: [...this.manifest.ssts.filter((m) => m.level === 0), ...l1],
      view: {
        ...this.view,
        seq: this.view.seq + 1,
        l1: [...this.view.l1, ...handles].sort((a, b) => compareBytes(a.minKey, b.minKey)),
      },
    };
  }

  /**
   * Commits one transaction as SSTs: `entries` (strictly increasing keys, one per key, every lsn = `lsn`, which is
   * above every applied commit, `appliedLsn` being the newest) are placed per the header, written durably, made
   * the commit by `makeDurable` (the engine appends its INGEST frame), then installed in a manifest recording
   * `ingestedLsn`. Resolves once readers see them. A failure leaves at most unreferenced SST objects.
   */
  async ingest(
    entries: EntryList,
    lsn: number,
    appliedLsn: number,
    makeDurable: (ssts: SstMeta[]) => Promise<void>,
  ): Promise<void> {
    this.checkUsable();
    if (entries.length === 0) throw new TwillError(ErrorCodes.Internal, "ingest of no entries");
    let open = () => {};
    this.ingesting = new Promise<void>((resolve) => {
      open = resolve;
    });
    try {
      const lo = entries.at(0)!.key;
      const hi = entries.at(entries.length - 1)!.key;
      if (this.memOverlaps(lo, hi)) await this.flush(appliedLsn);
      // L1 only while no compaction merges (its outputs could cover the range); none can start until we are done.
      // At L0 a compaction running alongside is harmless: it keeps L0 SSTs it did not take as inputs, and its
      // outputs hold only older versions.
      const level = this.merging === undefined && !this.sstOverlaps(lo, hi) ? 1 : 0;
      const metas = await this.writeIngestSsts(level, entries);
      await makeDurable(metas);
      await this.withManifestLock(async () => {
        const emptied = this.memtablesEmpty;
        const { ssts, view } = this.withIngested(metas);
        await this.installNext({
          flushedLsn: emptied ? Math.max(this.manifest.flushedLsn, lsn) : this.manifest.flushedLsn,
          nextSstId: Math.max(this.manifest.nextSstId, this.nextSstId),
          ssts,
          ingestedLsn: lsn,
        });
        this.view = view;
        if (emptied) this.onFlushed?.(this.manifest.flushedLsn);
      });
    } finally {
      this.ingesting = undefined;
      open();
      this.releaseIdleSlabs();
    }
    if (this.options.autoMaintenance && this.view.l0.length >= this.options.l0CompactionTrigger) {
      void this.compactInBackground();
    }
  }

  /**
   * SSTs of ~sstBytesTarget (every key is distinct, so any cut is a key boundary), at L0 as at L1: they do not
   * overlap one another, so a read still consults one of them, and one SST's worth is in memory at a time.
   */
  private async writeIngestSsts(level: 0 | 1, entries: EntryList): Promise<SstMeta[]> {
    const metas: SstMeta[] = [];
    // One SST's write is in flight while the next is encoded: the store's I/O runs off the main thread, and
    // waiting for it cost a 200 MB load ~0.3 s.
    let writing: Promise<SstMeta | undefined> | undefined;
    const settle = async () => {
      const meta = await writing;
      writing = undefined;
      if (meta) metas.push(meta);
    };
    let out = this.startSst(level);
    let sinceYield = 0;
    try {
      for (let i = 0; i < entries.length; i++) {
        if (out.estimatedBytes >= this.options.sstBytesTarget) {
          await settle();
          writing = out.finish();
          out = this.startSst(level);
        }
        out.add(entries.at(i)!);
        if (++sinceYield === flushEntriesPerTurn) {
          sinceYield = 0;
          await yieldTurn();
        }
      }
      await settle();
      writing = out.finish();
      await settle();
    } finally {
      // An abandoned write (the loop threw) must not surface as an unhandled rejection; its object is an orphan.
      writing?.catch(() => undefined);
    }
    return metas;
  }

  /**
   * Replay of an INGEST frame at `lsn`: takes its SSTs into the tree and the in-memory manifest (the engine's next
   * manifest install makes that durable), unless the manifest already took them in. CORRUPTION when the frame
   * does not fit the tree as the ingest left it.
   */
  adoptIngested(metas: SstMeta[], lsn: number): void {
    if (lsn <= (this.manifest.ingestedLsn ?? 0)) return;
    const corrupt = (why: string) =>
      new TwillError(ErrorCodes.Corruption, `the INGEST frame at lsn ${lsn} ${why}`, {
        hint: "the log or the manifest objects were altered; restore them from a backup",
      });
    const level = metas[0]!.level;
    let lo = unhex(metas[0]!.minKey);
    let hi = unhex(metas[0]!.maxKey);
    for (const m of metas) {
      if (m.level !== level || m.minLsn !== lsn || m.maxLsn !== lsn) {
        throw corrupt(`lists SST ${m.key} with level ${m.level} and lsns ${m.minLsn}..${m.maxLsn}`);
      }
      if (this.manifest.ssts.some((s) => s.key === m.key || s.id === m.id))
        throw corrupt(`names SST ${m.key}, which the manifest already lists`);
      const min = unhex(m.minKey);
      const max = unhex(m.maxKey);
      if (compareBytes(min, lo) < 0) lo = min;
      if (compareBytes(max, hi) > 0) hi = max;
    }
    if (this.memOverlaps(lo, hi)) throw corrupt("overlaps versions replayed before it");
    if (level === 1 && this.sstOverlaps(lo, hi)) throw corrupt("overlaps the SSTs of the manifest");
    const emptied = this.memtablesEmpty;
    const { ssts, view } = this.withIngested(metas);
    this.manifest = {
      ...this.manifest,
      flushedLsn: emptied ? Math.max(this.manifest.flushedLsn, lsn) : this.manifest.flushedLsn,
      nextSstId: Math.max(this.manifest.nextSstId, ...metas.map((m) => m.id + 1)),
      ssts,
      ingestedLsn: lsn,
    };
    this.view = view;
  }

  /** The seq of the oldest view a running read began on (the current one when none runs). */
  private get oldestReadSeq(): number {
    return Math.min(this.view.seq, this.readsBySeq.min() ?? Number.POSITIVE_INFINITY);
  }

  /** Recycles the arenas of flushed memtables that no running scan can still reach. */
  private recycleRetired(): void {
    const kept: typeof this.retired = [];
    for (const r of this.retired) {
      if (this.scansBySeq.anyIn(r.fromSeq, r.afterSeq)) kept.push(r);
      else r.table.recycle();
    }
    this.retired = kept;
  }

  /** Deletes obsolete SSTs that no running read can still reach. */
  private async collectGarbage(): Promise<void> {
    const oldestRead = this.oldestReadSeq;
    const ready = this.obsolete.filter((o) => o.afterSeq <= oldestRead);
    this.obsolete = this.obsolete.filter((o) => o.afterSeq > oldestRead);
    for (const o of ready) {
      this.cache.evictObject(o.key);
      await this.storage.delete(o.key);
      this.deletedObjects++;
    }
  }

  /**
   * Set for a branch: its L1 is not the bottom, since the parent's versions lie beneath, so a delete must survive
   * compaction to keep hiding them.
   */
  hasLayersBelow = false;

  /**
   * Snapshots below this LSN may have lost versions to compaction; a branch can only be forked at or above it.
   */
  get compactionHorizon(): number {
    return this.gcHorizon;
  }
  private gcHorizon: number;

  /**
   * Deletes SST objects of this branch's namespace that its manifest does not reference (left by a flush or
   * compaction that crashed). Nested namespaces belong to other branches and are never touched here.
   */
  async deleteOrphans(): Promise<number> {
    const live = new Set(this.manifest.ssts.map((m) => m.key));
    let deleted = 0;
    for await (const key of this.storage.list(this.sstPrefix)) {
      if (!live.has(key) && !key.slice(this.sstPrefix.length).includes("/")) {
        await this.storage.delete(key);
        deleted++;
      }
    }
    this.deletedObjects += deleted;
    return deleted;
  }

  // ---- reads --------------------------------------------------------------------------------------------------

  private beginRead(): number {
    const seq = this.view.seq;
    this.readsBySeq.acquire(seq);
    return seq;
  }

  private endRead(seq: number): void {
    if (this.readsBySeq.release(seq) > 0) return;
    if (this.retired.length > 0) this.recycleRetired();
    if (this.obsolete.length > 0) void this.collectGarbage().catch(() => undefined);
  }

  /**
   * Newest version of `key` with lsn <= snapshot from memory and cached blocks only, or NEEDS_IO. With
   * `loadSync`, a block that is not cached is read synchronously where the store can (file://, memory://), so
   * NEEDS_IO means only that an SST is not open yet or the store reads asynchronously.
   */
  getVersionSync(
    key: Uint8Array,
    snapshotLsn: number,
    keyHash: number = bloomHash(key),
    loadSync = false,
  ): Entry | undefined | NeedsIo {
    const view = this.view;
    const hit = view.active.get(key, snapshotLsn, keyHash);
    if (hit) return hit;
    for (const { table } of view.immutables) {
      const e = table.get(key, snapshotLsn, keyHash);
      if (e) return e;
    }
    for (const h of view.l0) {
      if (h.meta.minLsn > snapshotLsn || !inRange(h, key)) continue;
      if (!h.reader) return NEEDS_IO;
      const e = h.reader.getCached(key, snapshotLsn, keyHash, loadSync);
      if (e !== undefined) return e;
    }
    // L1 is the bottom and holds one candidate: its filter is probed only when the block is not cached.
    const h = findL1(view.l1, key);
    if (!h || h.meta.minLsn > snapshotLsn) return undefined;
    if (!h.reader) return NEEDS_IO;
    return h.reader.getCached(key, snapshotLsn, keyHash, loadSync, false);
  }

  /** Newest version of `key` with lsn <= snapshot (a Delete entry when the key was deleted). */
  async getVersion(key: Uint8Array, snapshotLsn: number): Promise<Entry | undefined> {
    this.checkUsable();
    const keyHash = bloomHash(key);
    const fast = this.getVersionSync(key, snapshotLsn, keyHash, true);
    if (fast !== NEEDS_IO) return fast;
    const seq = this.beginRead();
    const view = this.view;
    try {
      // The memtables of this same view were just probed by getVersionSync, with no await in between: only the
      // SSTs are left to read.
      for (const h of view.l0) {
        if (h.meta.minLsn > snapshotLsn || !inRange(h, key)) continue;
        const e = await (await this.openReader(h)).get(key, snapshotLsn, keyHash);
        if (e) return e;
      }
      const h = findL1(view.l1, key);
      if (!h || h.meta.minLsn > snapshotLsn) return undefined;
      return await (await this.openReader(h)).get(key, snapshotLsn, keyHash, false);
    } finally {
      this.endRead(seq);
    }
  }

  /** Value of `key` at the snapshot, or undefined. Settles without an await when no read has to wait. */
  get(key: Uint8Array, snapshotLsn: number): Promise<Uint8Array | undefined> {
    let e: Entry | undefined | NeedsIo;
    try {
      this.checkUsable();
      e = this.getVersionSync(key, snapshotLsn, bloomHash(key), true);
    } catch (error) {
      return Promise.reject(error);
    }
    if (e !== NEEDS_IO) return Promise.resolve(e && e.kind === EntryKind.Put ? e.value : undefined);
    return this.getVersion(key, snapshotLsn).then((v) =>
      v && v.kind === EntryKind.Put ? v.value : undefined,
    );
  }

  /** LSN of the newest version of `key` in any SST with versions newer than `afterLsn` (conflict checks). */
  async newestSstLsn(key: Uint8Array, afterLsn: number): Promise<number> {
    const view = this.view;
    const candidates = [...view.l0, ...view.l1].filter((h) => h.meta.maxLsn > afterLsn && inRange(h, key));
    let newest = 0;
    for (const h of candidates) {
      const e = await (await this.openReader(h)).get(key, lsnMax - 1);
      if (e && e.lsn > newest) newest = e.lsn;
    }
    return newest;
  }

  /** Newest version LSN of `key` held in memtables (0 if none). Synchronous, for the commit's conflict check. */
  newestMemLsn(key: Uint8Array): number {
    const view = this.view;
    const a = view.active.newestLsn(key);
    if (a !== 0) return a;
    for (const { table } of view.immutables) {
      const lsn = table.newestLsn(key);
      if (lsn !== 0) return lsn;
    }
    return 0;
  }

  /** Changes whenever SSTs are added or removed; a conflict check re-runs if it changed under it. */
  get viewSeq(): number {
    return this.view.seq;
  }

  /** Highest LSN held in memtables (0 when they are empty): a commit's check skips them when it is old. */
  get memMaxLsn(): number {
    let max = this.view.active.maxLsn;
    for (const { table } of this.view.immutables) if (table.maxLsn > max) max = table.maxLsn;
    return max;
  }

  /** Highest LSN held in SSTs. */
  get sstMaxLsn(): number {
    let max = 0;
    for (const h of this.view.l0) if (h.meta.maxLsn > max) max = h.meta.maxLsn;
    for (const h of this.view.l1) if (h.meta.maxLsn > max) max = h.meta.maxLsn;
    return max;
  }

  /** A lazily opening cursor over SSTs in order (L1 files, or one L0 file), without a promise per entry. */
  private sstCursor(
    handles: SstHandle[],
    range: ScanRange,
    options: { compaction?: boolean } = {},
  ): ConcatCursor<Entry> {
    const ordered = range.reverse ? [...handles].reverse() : handles;
    // Compaction reads each block once: read ahead, and keep its blocks out of the cache of hot reads.
    const iterateOptions = options.compaction ? { ...range, fillCache: false, readaheadBlocks: 4 } : range;
    return new ConcatCursor(
      ordered.map(
        (h) => () =>
          h.reader
            ? h.reader.iterate(iterateOptions)
            : this.openReader(h).then((r) => r.iterate(iterateOptions)),
      ),
    );
  }

  /**
   * Visible key/value pairs in [start, end) at the snapshot, in key order (descending when reverse). The result is
   * a cursor: synchronous while blocks are cached, and an async iterator for everyone else.
   */
  scan(range: ScanRange, snapshotLsn: number): AsyncCursor<KeyValue> {
    const { entries, release } = this.scanEntries(range, snapshotLsn);
    const visible = visibleEntries(entries, snapshotLsn, { reverse: range.reverse ?? false });
    return new ReleasingCursor(visible, release);
  }

  /**
   * Every version in [start, end) from the layers that may hold one <= snapshot, merged in internal order (or
   * reversed), not yet collapsed: versions newer than the snapshot may appear. `release` must be called once when
   * done (branch views merge several trees' streams before collapsing them once).
   */
  scanEntries(range: ScanRange, snapshotLsn: number): { entries: AsyncCursor<Entry>; release: () => void } {
    this.checkUsable();
    const seq = this.beginRead();
    this.scansBySeq.acquire(seq);
    const view = this.view;
    const reverse = range.reverse ?? false;
    const sources: EntrySource[] = [view.active.iterate(range)];
    for (const { table } of view.immutables) sources.push(table.iterate(range));
    for (const h of view.l0) {
      if (h.meta.minLsn <= snapshotLsn && overlaps(h, range.start, range.end))
        sources.push(this.sstCursor([h], range));
    }
    const l1 = view.l1.filter((h) => h.meta.minLsn <= snapshotLsn && overlaps(h, range.start, range.end));
    if (l1.length > 0) sources.push(this.sstCursor(l1, range));
    let released = false;
    return {
      entries: mergeIterators(sources, { reverse }),
      release: () => {
        if (released) return;
        released = true;
        this.scansBySeq.release(seq);
        this.endRead(seq);
      },
    };
  }

  stats(): TreeStats {
    const view = this.view;
    return {
      memtableBytes:
        view.active.approximateBytes + view.immutables.reduce((n, m) => n + m.table.approximateBytes, 0),
      immutableMemtables: view.immutables.length,
      l0Ssts: view.l0.length,
      l1Ssts: view.l1.length,
      sstBytes: this.manifest.ssts.reduce((n, m) => n + m.sizeBytes, 0),
      flushes: this.flushes,
      compactions: this.compactions,
      l0Stalls: this.l0Stalls,
      l0Merges: this.l0Merges,
      l0Runs: l0Runs(view.l0),
      deletedObjects: this.deletedObjects,
      idleSlabBytes: this.slabs.idleBytes,
      retiredMemtables: this.retired.length,
      blockCache: this.cache.stats(),
    };
  }

  /** Waits for background work to settle. */
  async idle(): Promise<void> {
    while (this.flushing || this.compacting) {
      await this.flushing;
      await this.compacting;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.idle();
    this.closed = true;
    // A closed tree answers no reads: its cached blocks (blockCacheBytesMax of them) are memory for the next
    // engine, not this one, while anything still holds a reference to it.
    this.cache.clear();
    this.slabs.clear();
    this.arenas.clear();
    // And the open SSTs' index blocks and bloom filters (~14 MiB for 1 GB of SSTs): reopened, the handles open again.
    for (const h of [...this.view.l0, ...this.view.l1]) {
      h.reader = undefined;
      h.opening = undefined;
    }
  }
}

/** Delegates to a cursor and calls `release` once, when the cursor ends or is closed early. */
class ReleasingCursor<T> extends AsyncCursor<T> {
  private released = false;

  constructor(
    private readonly inner: Cursor<T> & { close?: () => void },
    private readonly release: () => void,
  ) {
    super();
  }

  nextSync() {
    if (this.released) return undefined;
    const item = this.inner.nextSync();
    if (item === undefined) this.done();
    return item;
  }

  fill(): Promise<void> {
    return this.inner.fill().catch((error: unknown) => {
      this.done();
      throw error;
    });
  }

  override close(): void {
    this.inner.close?.();
    this.done();
  }

  private done(): void {
    if (this.released) return;
    this.released = true;
    this.release();
  }
}

/** L0 sorted runs among `handles`: SSTs of one merge's run count once, any other SST on its own. */
function l0Runs(handles: readonly SstHandle[]): number {
  return groupRuns(handles).length;
}

/**
 * The newest L0 runs of `untaken` (newest first, as L0 is kept) to merge into one: the newest two, and each older
 * run after them while it is at most twice the size of those before it. Tiered by size, so that a run that earlier
 * merges made large is rewritten only once the new ones add up to it: while one L0 -> L1 compaction runs for K
 * flushes, merges rewrite O(K log K) flushes' worth, not O(K^2). Undefined when fewer than two runs are there.
 */
function runsToMerge(untaken: readonly SstHandle[]): SstHandle[][] | undefined {
  const runs = groupRuns(untaken);
  if (runs.length < 2) return undefined;
  const bytes = (run: SstHandle[]) => run.reduce((n, h) => n + h.meta.sizeBytes, 0);
  let total = bytes(runs[0]!) + bytes(runs[1]!);
  let j = 2;
  while (j < runs.length && bytes(runs[j]!) <= 2 * total) total += bytes(runs[j++]!);
  return runs.slice(0, j);
}

/**
 * `handles` grouped by sorted run (a lone SST is a run of its own), in the order runs first appear (newest first
 * for L0, whose runs lie together), each run's SSTs in key order.
 */
function groupRuns(handles: readonly SstHandle[]): SstHandle[][] {
  const byRun = new Map<number, SstHandle[]>();
  const out: SstHandle[][] = [];
  for (const h of handles) {
    const run = h.meta.run;
    if (run === undefined) {
      out.push([h]);
      continue;
    }
    let group = byRun.get(run);
    if (group === undefined) {
      group = [];
      byRun.set(run, group);
      out.push(group);
    }
    group.push(h);
  }
  for (const g of out) if (g.length > 1) g.sort((a, b) => compareBytes(a.minKey, b.minKey));
  return out;
}

/** `items` with those matching `taken` removed and `replacement` put where the first of them was. */
function replaceFirst<T, R extends T>(
  items: readonly T[],
  taken: (item: T) => boolean,
  replacement: R[],
): T[] {
  const out: T[] = [];
  let placed = false;
  for (const item of items) {
    if (!taken(item)) out.push(item);
    else if (!placed) {
      out.push(...replacement);
      placed = true;
    }
  }
  return out;
}
