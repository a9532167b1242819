/**
 * Engine: a transactional, versioned key-value store over the storage seam. It owns the commit log, the LSM tree
 * and the commit pipeline.
 *
 * Commit protocol (log first, then ack):
 *   1. Conflict check (first committer wins): a key this transaction wrote must have no committed or queued
 *      version newer than its snapshot. The SST part of the check may await; the memtable and queue part runs
 *      synchronously right before the transaction is queued, so no commit can slip between check and queue.
 *   2. Group commit: queued transactions go to the log together in one `append` (one sync); while an append is in
 *      flight, the next group forms.
 *   3. Once the append is durable, each transaction's writes enter the memtable with its commit LSN (the LSN of
 *      its COMMIT frame) and its `commit()` resolves. Readers see it from then on.
 *
 * Ingest (a transaction whose writes pass `ingestBytesMin`, such as a bulk load): instead of log frames and
 * memtable entries it becomes SSTs, as in RocksDB's ingest of external files. It is a group of its own; with the
 * pipeline to itself its commit LSN is the log's next position, so its writes are stamped with it and written as
 * SSTs (durable), then one INGEST frame naming them is appended (durable: the commit point), then a manifest
 * taking them in is installed, and only then does `commit()` resolve. Recovery either finds the frame (and adds
 * the SSTs unless the manifest already took them in) or not (the SSTs are orphans, deleted at open). The tree
 * places the SSTs (LsmTree.ingest) so reads stay newest-first.
 *
 * Open: load the newest manifest; open the log (the writer lock); replay frames after the manifest's flushed LSN;
 * append an EPOCH frame and install a manifest with the next epoch, which fences any older writer.
 *
 * Branches (docs/BRANCHES.md; the logic lives in branch.ts): a branch's manifest carries an LSN base B, and engine
 * LSN = B + log LSN, so its own commits are all above its fork LSN. Reads go through a BranchView (own tree, then
 * the ancestors' as of each fork LSN); commits and conflict checks only ever involve the branch's own tree.
 *
 * Invariants:
 *   - `lastLsn` is the LSN of the newest frame applied; snapshots are taken there.
 *   - Engine LSN = lsnBase + log LSN everywhere; only the log calls speak log LSNs.
 *   - Every child branch's fork LSN is a live snapshot here, so compaction keeps what children read.
 *   - A failed log append leaves the outcome of its commits unknown, so the engine stops accepting commits
 *     (reads continue) until it is reopened and recovery decides from the log — the PostgreSQL answer to a
 *     failed fsync.
 */

import { z } from "zod";
import { ErrorCodes, isTwillError, TwillError } from "../errors.js";
import type { AppendResult, Log, Storage } from "../storage/types.js";
import { CountedNumbers } from "../util/counted-numbers.js";
import {
  type BranchInfo,
  type BranchOpenContext,
  type CreateBranchOptions,
  createBranch,
  type DropBranchOptions,
  dropBranch,
  listBranches,
  type MergeHooks,
  type MergeOptions,
  type MergeResult,
  mergeBranch,
  openBranchContext,
  sweepDroppedBranches,
  trackOpen,
  untrackOpen,
} from "./branch.js";
import { bloomHash } from "./lsm/bloom.js";
import type { VersionReader } from "./lsm/branch-view.js";
import { type AsyncCursor, LimitCursor } from "./lsm/cursor.js";
import { emptyManifest, installManifest, loadLatestManifest, type Manifest } from "./lsm/manifest.js";
import { keyString } from "./lsm/memtable.js";
import { type KeyValue, LsmTree, type ScanRange, type TreeStats } from "./lsm/tree.js";
import { type Entry, EntryKind, NEEDS_IO, type NeedsIo } from "./lsm/types.js";
import {
  decodeFrame,
  encodeCommit,
  encodeEpoch,
  encodeIngest,
  FrameType,
  type Write,
} from "./txn/commit-record.js";
import { PendingKeys } from "./txn/pending-keys.js";
import { resolveRange, Transaction, type TxnHost, type TxnScanOptions } from "./txn/transaction.js";
import { type BufferedWrite, stampEntries, stampEntry, type WriteList } from "./txn/write-buffer.js";

export const engineOptionsSchema = z
  .object({
    branch: z
      .string()
      .regex(/^[A-Za-z0-9._~=+-]{1,64}$/)
      .default("main"),
    // 16 MiB: the active memtable and the one being flushed both live in arena chunks beside the block cache, and
    // at 32 MiB they put bench/engine/rss's load phase at 397-407 MiB (16 MiB: 363, at the same load rate).
    memtableBytesMax: z
      .number()
      .int()
      .min(64 * 1024)
      .default(16 * 1024 * 1024),
    blockCacheBytesMax: z
      .number()
      .int()
      .min(64 * 1024)
      .default(64 * 1024 * 1024),
    l0CompactionTrigger: z.number().int().min(2).max(64).default(4),
    /**
     * A flush stops while L0 holds this many sorted runs: it merges the newest runs the running compaction did not
     * take, or else waits for that compaction (commits then wait on the memtables). So a point get consults at most
     * this many L0 SSTs plus one of L1 however far writes outrun compaction. Default max(8, l0CompactionTrigger +
     * 4); must be above l0CompactionTrigger.
     */
    l0StopWritesTrigger: z.number().int().min(3).max(256).optional(),
    immutableMemtablesMax: z.number().int().min(1).max(16).default(1),
    // 8 MiB: an SST is written from memory whole (a compaction's output, and the writer's recycled slabs, hold
    // one); at 32 MiB that was 66 MiB of bench/engine/rss's peak. A point get still reads one L1 SST.
    sstBytesTarget: z
      .number()
      .int()
      .min(64 * 1024)
      .default(8 * 1024 * 1024),
    /**
     * Data block size. Default by where a block read goes: 4 KiB on file:// and memory://, where a read is a pread
     * or a copy and a point get that misses the cache pays to read and checksum the whole block (16 KiB blocks made
     * a get ~35% costlier, bench/README.md); 64 KiB on s3://, where each block read is a request whose latency
     * does not depend on its size, so a scan makes 16 times fewer of them.
     */
    blockBytesTarget: z
      .number()
      .int()
      .min(1024)
      .max(1024 * 1024)
      .optional(),
    autoMaintenance: z.boolean().default(true),
    /** A transaction writing at least this many key and value bytes is committed by ingest (see above). */
    ingestBytesMin: z
      .number()
      .int()
      .min(1)
      .default(16 * 1024 * 1024),
  })
  .strict()
  .refine((o) => o.l0StopWritesTrigger === undefined || o.l0StopWritesTrigger > o.l0CompactionTrigger, {
    message: "l0StopWritesTrigger must be above l0CompactionTrigger",
    path: ["l0StopWritesTrigger"],
  });

export type EngineOptions = z.input<typeof engineOptionsSchema>;

/** Most frames and bytes one group-commit append carries; beyond that the group is split. */
const GROUP_FRAMES_MAX = 4096;
const GROUP_BYTES_MAX = 48 * 1024 * 1024;
const OPEN_ATTEMPTS_MAX = 5;
/** Appends between two event-loop turns the pipeline yields (see `pump`). */
const YIELD_EVERY = 8;
/** Commits with at most this many writes are checked against queued ones through `pendingKeys`. */
const PENDING_KEYS_MAX = 256;

/** A commit waiting for (or in) a group append. */
class QueuedCommit {
  /** Removed from `pendingKeys` / `pendingLarge`. */
  settled = false;
  readonly resolve: (lsn: number) => void;
  readonly reject: (error: unknown) => void;
  readonly promise: Promise<number>;

  constructor(
    readonly txn: Transaction,
    /** For conflict checks; the ingest's is made one write at a time. */
    readonly writes: WriteList,
    /** What enters the memtable; empty for an ingest. */
    readonly entries: BufferedWrite[],
    /**
     * A one-write commit's key as a latin1 string and its hash, counted in `pendingKeys` and handed to the
     * memtable for its indexes (fields, not arrays of one: three objects fewer per commit); "" and 0 otherwise.
     */
    readonly key: string,
    readonly hash: number,
    /**
     * The same for a commit of 2..PENDING_KEYS_MAX writes (in `entries` order); undefined for one write and for a
     * large commit (`pendingLarge`).
     */
    readonly pending: PendingWrites | undefined,
    /** Checked against queued commits through `pendingLarge`, not `pendingKeys`. */
    readonly large: boolean,
    readonly frames: Uint8Array[],
    readonly bytes: number,
    /** Committed as SSTs plus one INGEST frame, in a group of its own. */
    readonly ingest: boolean,
  ) {
    // One executor for every commit, not a closure per commit: it hands the settle functions out through
    // `settlers`, read right after (the executor runs synchronously inside the constructor).
    this.promise = new Promise<number>(captureSettlers);
    this.resolve = settlers.resolve;
    this.reject = settlers.reject;
  }
}

const settlers: { resolve: (lsn: number) => void; reject: (error: unknown) => void } = {
  resolve: () => undefined,
  reject: () => undefined,
};
function captureSettlers(resolve: (lsn: number) => void, reject: (error: unknown) => void): void {
  settlers.resolve = resolve;
  settlers.reject = reject;
}

const NO_ENTRIES: BufferedWrite[] = [];
/** What a one-write commit hands `LsmTree.apply` (which reads them before returning), refilled per commit. */
const oneKey: string[] = [""];
const oneHash: number[] = [0];

/** The frames of a group's commits, in order, for one append. */
function groupFrames(group: readonly QueuedCommit[]): Uint8Array[] {
  if (group.length === 1) return group[0]!.frames;
  const frames: Uint8Array[] = [];
  for (const q of group) for (const f of q.frames) frames.push(f);
  return frames;
}

/** A small commit's keys as latin1 strings and their `bloomHash`es, by position in its sorted writes. */
interface PendingWrites {
  keys: string[];
  hashes: number[];
}

export interface EngineStats extends TreeStats {
  lastLsn: number;
  flushedLsn: number;
  epoch: number;
  commits: number;
  appends: number;
  conflicts: number;
  /** Transactions committed by ingest. */
  ingests: number;
  openTransactions: number;
}

/** Default data block size by backend (see `blockBytesTarget`). */
export function defaultBlockBytes(kind: Storage["kind"]): number {
  return kind === "s3" ? 64 * 1024 : 4 * 1024;
}

function parseOptions(options: EngineOptions | undefined, kind: Storage["kind"]) {
  const parsed = engineOptionsSchema.safeParse(options ?? {});
  if (!parsed.success) {
    const issues = parsed.error.issues
      .map((i) => `${i.path.join(".") || "options"}: ${i.message}`)
      .join("; ");
    throw new TwillError(ErrorCodes.InvalidArgument, `invalid engine options: ${issues}`, {
      hint: `accepted options: ${Object.keys(engineOptionsSchema.shape).join(", ")}`,
    });
  }
  return { ...parsed.data, blockBytesTarget: parsed.data.blockBytesTarget ?? defaultBlockBytes(kind) };
}

export class Engine implements TxnHost {
  private lastLsn = 0;
  private queue: QueuedCommit[] = [];
  private appending = false;
  /** The group whose append is in flight on the fast path of `pump` (see there). */
  private inflight: QueuedCommit[] | undefined;
  /**
   * Keys written by queued and in-flight commits of at most PENDING_KEYS_MAX writes, with how many write each: a
   * commit checks its keys here, instead of probing each of up to 15 others' write sets (measured: 15% of a
   * 16-committer run). Larger commits are in `pendingLarge` and checked pair by pair.
   */
  private readonly pendingKeys = new PendingKeys();
  private readonly pendingLarge = new Set<QueuedCommit>();
  private appendsSinceYield = 0;
  private failure: TwillError | undefined;
  private closed = false;
  private commits = 0;
  private appends = 0;
  private conflicts = 0;
  private ingests = 0;
  private openTxns = 0;
  private truncating: Promise<void> = Promise.resolve();
  /** Child branches' fork LSNs by name (each also counted in `snapshots`). */
  private readonly childForks = new Map<string, number>();
  /** Child engines opened from this one in this process; closed before it. */
  private readonly openChildren = new Set<Engine>();

  private constructor(
    readonly storage: Storage,
    /** Undefined until the first commit of a branch this process just created. */
    private log: Log | undefined,
    private readonly logName: string,
    private readonly tree: LsmTree,
    private readonly epoch: number,
    /** Live snapshot LSNs with how many transactions (or child forks) hold each; shared with compaction. */
    private readonly snapshots: CountedNumbers,
    /** Where this branch sits: name, LSN base, parent, and what it reads through. */
    private readonly branchCtx: BranchOpenContext,
    readonly options: Readonly<ReturnType<typeof parseOptions>>,
  ) {
    this.reader = branchCtx.view ?? tree;
  }

  /** The tree for main, a BranchView over this tree and the ancestors' for a branch. */
  private readonly reader: VersionReader;

  /**
   * Opens branch `options.branch` (default main). A branch other than main must exist (see `createBranch`).
   * `internal` is for branch.ts: the live parent engine and the manifest just created.
   */
  static async open(
    storage: Storage,
    options?: EngineOptions,
    internal?: EngineOpenInternal,
  ): Promise<Engine> {
    const opts = parseOptions(options, storage.kind);
    for (let attempt = 1; ; attempt++) {
      try {
        return await Engine.openOnce(storage, opts, internal);
      } catch (error) {
        // Another writer moved the log or manifest while we replayed: start over from its newer state.
        if (attempt < OPEN_ATTEMPTS_MAX && isTwillError(error, ErrorCodes.Fenced)) continue;
        throw error;
      }
    }
  }

  private static async openOnce(
    storage: Storage,
    opts: ReturnType<typeof parseOptions>,
    internal: EngineOpenInternal | undefined,
  ): Promise<Engine> {
    const fresh = internal?.fresh;
    const loaded = fresh ?? (await loadLatestManifest(storage, opts.branch));
    if (!loaded && opts.branch !== "main") {
      throw new TwillError(ErrorCodes.NotFound, `branch ${JSON.stringify(opts.branch)} does not exist`, {
        hint: "create it with db.branch(name) or `twill branch create`; list them with db.branches()",
      });
    }
    const manifest: Manifest = loaded ?? emptyManifest(opts.branch);
    const base = manifest.lsnBase ?? 0;
    const branchCtx = await openBranchContext(storage, manifest, opts, internal?.parent, Engine.replay);
    // A branch this process just created has an empty log: it is opened (and its writer lock taken) at the first
    // commit, so a fork costs one object write and nothing else.
    let log: Log | undefined;
    try {
      if (!fresh) log = await storage.openLog(manifest.log);
    } catch (error) {
      await branchCtx.close();
      throw error;
    }
    try {
      if (log && log.nextLsn() <= manifest.flushedLsn - base && manifest.flushedLsn > base) {
        throw new TwillError(
          ErrorCodes.Corruption,
          `log ${manifest.log} ends at lsn ${log.nextLsn() - 1} but the manifest says lsn ${manifest.flushedLsn} was flushed`,
          { hint: "the log was removed or replaced; restore it from a backup" },
        );
      }
      const snapshots = new CountedNumbers();
      const tree = new LsmTree(
        storage,
        opts.branch,
        manifest,
        opts,
        () => snapshots.sorted(),
        branchCtx.sstPrefix,
      );
      branchCtx.attach(tree);
      tree.hasLayersBelow = manifest.parent !== undefined;
      const lastLsn = log ? await Engine.replay(log, tree, manifest.flushedLsn, base) : manifest.flushedLsn;
      let epoch: number;
      let lastApplied = lastLsn;
      if (!log) {
        // Just created by this process: there is no older writer to fence (docs/BRANCHES.md, creation step 5).
        epoch = manifest.epoch;
      } else {
        epoch = manifest.epoch + 1;
        const { firstLsn } = await log.append([encodeEpoch(epoch)]);
        lastApplied = Math.max(lastLsn, base + firstLsn);
        // From the tree's manifest: replay may have taken in ingested SSTs.
        const next: Manifest = {
          ...tree.currentManifest,
          version: manifest.version + 1,
          epoch,
          createdAt: new Date().toISOString(),
        };
        await installManifest(storage, opts.branch, next);
        // The tree was built from the previous manifest object; it must now extend the installed one.
        tree.adoptManifest(next);
      }
      const engine = new Engine(storage, log, manifest.log, tree, epoch, snapshots, branchCtx, opts);
      engine.lastLsn = lastApplied;
      tree.onFlushed = (flushedLsn) => engine.truncateLog(flushedLsn);
      // A branch just created has no children yet: skipping the listing keeps a fork's cost independent of how
      // many branches exist.
      if (!fresh) {
        for (const child of await listBranches(storage)) {
          if (child.parent === opts.branch) engine.registerChild(child.name, child.forkLsn);
        }
      }
      if (opts.autoMaintenance && !fresh) {
        await tree.deleteOrphans();
        if (opts.branch === "main") await sweepDroppedBranches(storage);
      }
      internal?.parent?.openChildren.add(engine);
      trackOpen(engine);
      tree.startMaintenance();
      return engine;
    } catch (error) {
      await log?.close();
      await branchCtx.close();
      throw error;
    }
  }

  /**
   * Replays committed transactions after `flushedLsn` (an engine LSN) into the memtable; returns the last LSN
   * seen. Frames are numbered by the log from 1; `base` turns them into engine LSNs. With `upTo`, stops after
   * that LSN (a read-only ancestor replays only up to a child's fork point). @internal: also used by branch.ts.
   */
  static async replay(
    log: Log,
    tree: LsmTree,
    flushedLsn: number,
    base = 0,
    upTo = Number.POSITIVE_INFINITY,
  ): Promise<number> {
    let last = flushedLsn;
    let parts: Write[] = [];
    const gap = (found: number) =>
      new TwillError(
        ErrorCodes.Corruption,
        `log ${log.name} continues at lsn ${found - base}, but the manifest needs every frame from lsn ${flushedLsn - base + 1}`,
        {
          hint: "the manifest is missing or older than the log (frames were truncated after a newer flush); restore the manifest objects",
        },
      );
    if (last >= upTo) return last;
    for await (const logFrame of log.read(flushedLsn - base + 1)) {
      const frame = { lsn: logFrame.lsn + base, data: logFrame.data };
      if (frame.lsn !== last + 1) throw gap(frame.lsn);
      if (frame.lsn > upTo) return last;
      const decoded = decodeFrame(frame.data, frame.lsn);
      last = frame.lsn;
      if (decoded.type === FrameType.Epoch) {
        parts = [];
        continue;
      }
      if (decoded.type === FrameType.Ingest) {
        parts = [];
        tree.adoptIngested(decoded.ssts, frame.lsn);
        if (frame.lsn === upTo) return last;
        continue;
      }
      if (decoded.type === FrameType.Part) {
        for (const w of decoded.writes) parts.push(w);
        continue;
      }
      const writes = parts.length > 0 ? [...parts, ...decoded.writes] : decoded.writes;
      parts = [];
      tree.apply(toEntries(writes, frame.lsn));
      tree.maybeFreeze(frame.lsn, false);
      if (frame.lsn === upTo) return last;
    }
    if (upTo === Number.POSITIVE_INFINITY && log.nextLsn() + base !== last + 1)
      throw gap(log.nextLsn() + base);
    return last;
  }

  private checkWritable(): void {
    if (this.closed) throw new TwillError(ErrorCodes.Closed, "the database is closed");
    if (this.failure) throw this.failure;
  }

  /** LSN of the newest commit visible to a transaction begun now. */
  get lastCommittedLsn(): number {
    return this.lastLsn;
  }

  /** Starts a transaction whose snapshot is the current committed state. */
  begin(): Transaction {
    if (this.closed) throw new TwillError(ErrorCodes.Closed, "the database is closed");
    const txn = new Transaction(this, this.lastLsn);
    this.snapshots.acquire(txn.snapshotLsn);
    this.openTxns++;
    return txn;
  }

  /** @internal TxnHost: called once when a transaction ends. */
  release(txn: Transaction): void {
    this.snapshots.release(txn.snapshotLsn);
    this.openTxns--;
  }

  /** @internal TxnHost */
  get(key: Uint8Array, snapshotLsn: number = this.lastLsn): Promise<Uint8Array | undefined> {
    return this.reader.get(key, snapshotLsn);
  }

  /** @internal TxnHost */
  scan(range: ScanRange, snapshotLsn: number = this.lastLsn): AsyncCursor<KeyValue> {
    return this.reader.scan(range, snapshotLsn);
  }

  /**
   * The latest committed value of one key from memory and cached blocks only, or NEEDS_IO when a block must be
   * read (then call `read`). Lets hot point reads, such as a prepared primary-key SELECT, skip a promise.
   */
  readSync(key: Uint8Array): Uint8Array | undefined | NeedsIo {
    if (this.closed) throw new TwillError(ErrorCodes.Closed, "the database is closed");
    return this.getSync(key, this.lastLsn);
  }

  /**
   * @internal TxnHost: the value of one key at a snapshot from memory and cached blocks only, or NEEDS_IO (then
   * call `get`). Lets a transaction's index lookups fetch their rows without a promise per row.
   */
  getSync(key: Uint8Array, snapshotLsn: number): Uint8Array | undefined | NeedsIo {
    const e = this.reader.getVersionSync(key, snapshotLsn);
    if (e === NEEDS_IO) return e;
    return e && e.kind === EntryKind.Put ? e.value : undefined;
  }

  /** Reads the latest committed value of one key, outside any transaction. */
  read(key: Uint8Array): Promise<Uint8Array | undefined> {
    return this.reader.get(key, this.lastLsn);
  }

  /**
   * Scans the latest committed state, outside any transaction. The result is a cursor: a plain `for await`
   * works, and callers that care can drain it synchronously while its blocks are cached.
   */
  readRange(options: TxnScanOptions = {}): AsyncCursor<KeyValue> {
    const range = resolveRange(options);
    const cursor = this.reader.scan(
      range ? { ...range, reverse: options.reverse ?? false } : EMPTY_RANGE,
      this.lastLsn,
    );
    return new LimitCursor(cursor, range ? (options.limit ?? Number.POSITIVE_INFINITY) : 0);
  }

  /**
   * @internal TxnHost: conflict check, then queue for the next group append. Not an async function: a commit that
   * needs no SST check (no SST holds a version newer than its snapshot, the common case) goes from here to the
   * queue without an await, and its promise is the one the group append settles.
   */
  commit(txn: Transaction): Promise<number> {
    try {
      this.checkWritable();
      // A transaction for ingest never has all its write objects made at once (see write-buffer.ts).
      const ingest = txn.ownByteCount >= this.options.ingestBytesMin;
      const entries = ingest ? NO_ENTRIES : txn.ownWrites();
      const writes = ingest ? txn.ownWriteList() : entries;
      if (writes.length === 0) {
        txn.finishCommit(true);
        return Promise.resolve(txn.snapshotLsn);
      }
      if (this.tree.sstMaxLsn > txn.snapshotLsn)
        return this.commitAfterSstCheck(txn, entries, writes, ingest);
      return this.enqueue(txn, entries, writes, ingest);
    } catch (error) {
      txn.finishCommit(false);
      return Promise.reject(error);
    }
  }

  /**
   * The SST part of the conflict check: only SSTs holding versions newer than the snapshot matter. Re-run if a
   * flush or compaction changed the SST set while we awaited.
   */
  private async commitAfterSstCheck(
    txn: Transaction,
    entries: BufferedWrite[],
    writes: WriteList,
    ingest: boolean,
  ): Promise<number> {
    try {
      const snapshot = txn.snapshotLsn;
      for (;;) {
        const seq = this.tree.viewSeq;
        if (this.tree.sstMaxLsn > snapshot) {
          for (let i = 0; i < writes.length; i++) {
            const key = writes.at(i)!.key;
            if ((await this.tree.newestSstLsn(key, snapshot)) > snapshot) throw this.conflict(key);
          }
        }
        if (seq === this.tree.viewSeq) break;
      }
      this.checkWritable();
      return await this.enqueue(txn, entries, writes, ingest);
    } catch (error) {
      txn.finishCommit(false);
      throw error;
    }
  }

  /**
   * The memtable and queue part of the conflict check, synchronous up to the enqueue so no commit slips between
   * check and queue; then queues the commit. Throws only before queueing.
   */
  private enqueue(
    txn: Transaction,
    entries: BufferedWrite[],
    writes: WriteList,
    ingest: boolean,
  ): Promise<number> {
    const snapshot = txn.snapshotLsn;
    // Memtables with nothing newer than the snapshot cannot conflict, which spares a bulk load a probe per write.
    if (this.tree.memMaxLsn > snapshot) {
      for (let i = 0; i < writes.length; i++) {
        const key = writes.at(i)!.key;
        if (this.tree.newestMemLsn(key) > snapshot) throw this.conflict(key);
      }
    }
    let key = "";
    let hash = 0;
    let pending: PendingWrites | undefined;
    const large = writes.length > PENDING_KEYS_MAX;
    if (writes.length === 1) {
      const bytes = writes.at(0)!.key;
      key = keyString(bytes);
      hash = bloomHash(bytes);
      if (this.pendingKeys.has(key, hash)) throw this.conflict(bytes);
      this.checkPendingLarge(txn, writes);
    } else pending = this.checkPending(txn, writes);
    // A one-row commit's frame is already laid out in its write buffer.
    const one = ingest || entries.length !== 1 ? undefined : txn.oneWriteFrame();
    const frames = ingest ? [] : one !== undefined ? [one] : encodeCommit(entries);
    let bytes = 0;
    for (let i = 0; i < frames.length; i++) bytes += frames[i]!.length;
    const q = new QueuedCommit(txn, writes, entries, key, hash, pending, large, frames, bytes, ingest);
    if (large) this.pendingLarge.add(q);
    else if (pending === undefined) this.pendingKeys.add(key, hash);
    else
      for (let i = 0; i < pending.keys.length; i++)
        this.pendingKeys.add(pending.keys[i]!, pending.hashes[i]!);
    this.queue.push(q);
    this.pump();
    return q.promise;
  }

  /**
   * Conflict check against queued and in-flight commits (those are newer than any snapshot): throws on a key one of
   * them writes too; returns this commit's key strings and hashes for `pendingKeys` (undefined when it is large).
   * Large write sets are intersected from the smaller side, so a bulk load alone pays nothing and small commits
   * never walk a large one. For two writes or more (`enqueue` checks a single write itself).
   */
  private checkPending(txn: Transaction, writes: WriteList): PendingWrites | undefined {
    let pending: PendingWrites | undefined;
    if (writes.length <= PENDING_KEYS_MAX) {
      const n = writes.length;
      pending = { keys: new Array<string>(n), hashes: new Array<number>(n) };
      for (let i = 0; i < n; i++) {
        const key = writes.at(i)!.key;
        const k = keyString(key);
        const h = bloomHash(key);
        if (this.pendingKeys.has(k, h)) throw this.conflict(key);
        pending.keys[i] = k;
        pending.hashes[i] = h;
      }
    } else if (this.pendingKeys.size > 0) {
      for (const k of this.pendingKeys.all()) {
        if (txn.hasWriteString(k)) throw this.conflict(Buffer.from(k, "latin1"));
      }
    }
    this.checkPendingLarge(txn, writes);
    return pending;
  }

  /** The part of `checkPending` against queued large commits. */
  private checkPendingLarge(txn: Transaction, writes: WriteList): void {
    // The size test keeps the Set's iterator off a small commit's path when no large commit is queued.
    if (this.pendingLarge.size > 0) {
      for (const q of this.pendingLarge) {
        const [probe, other] = q.writes.length <= writes.length ? [q.writes, txn] : [writes, q.txn];
        for (let i = 0; i < probe.length; i++) {
          const key = probe.at(i)!.key;
          if (other.hasWrite(key)) throw this.conflict(key);
        }
      }
    }
  }

  /** The commit left the queue (applied or failed): its keys no longer conflict through `pendingKeys`. */
  private settlePending(q: QueuedCommit): void {
    if (q.settled) return;
    q.settled = true;
    const pending = q.pending;
    if (q.large) {
      this.pendingLarge.delete(q);
      return;
    }
    if (pending === undefined) {
      this.pendingKeys.remove(q.key, q.hash);
      return;
    }
    for (let i = 0; i < pending.keys.length; i++)
      this.pendingKeys.remove(pending.keys[i]!, pending.hashes[i]!);
  }

  private conflict(key: Uint8Array): TwillError {
    this.conflicts++;
    return new TwillError(
      ErrorCodes.SerializationFailure,
      "could not serialize access due to concurrent update",
      {
        detail: `key ${Buffer.from(key).toString("hex").slice(0, 64)} was committed by another transaction after this one began`,
        hint: "retry the transaction",
      },
    );
  }

  /** Starts the next group append unless one is in flight. */
  private pump(): void {
    if (this.appending || this.queue.length === 0) return;
    this.appending = true;
    let frames = 0;
    let bytes = 0;
    let take = 0;
    while (take < this.queue.length) {
      const q = this.queue[take]!;
      if (
        take > 0 &&
        (q.ingest || frames + q.frames.length > GROUP_FRAMES_MAX || bytes + q.bytes > GROUP_BYTES_MAX)
      )
        break;
      frames += q.frames.length;
      bytes += q.bytes;
      take++;
      // An ingest has the pipeline to itself: its commit LSN is the log position it finds.
      if (q.ingest) break;
    }
    const group = this.queue.splice(0, take);
    const log = this.log;
    if (log === undefined || group[0]!.ingest || this.tree.needsBackPressure) {
      void this.appendGroup(group).finally(this.afterAppend);
      return;
    }
    // Nothing to wait for before the append: no async function (and its promises) per group, the log's promise
    // settles through two handlers made once, and the group waits in `inflight` (one append is in flight at most).
    let appended: Promise<AppendResult>;
    try {
      this.checkWritable();
      this.appends++;
      appended = log.append(groupFrames(group));
    } catch (error) {
      this.failGroup(group, error);
      this.afterAppend();
      return;
    }
    this.inflight = group;
    appended.then(this.onAppended, this.onAppendFailed);
  }

  private readonly onAppended = (result: AppendResult): void => {
    const group = this.inflight!;
    this.inflight = undefined;
    try {
      this.applyGroup(group, result.firstLsn + this.branchCtx.lsnBase);
    } catch (error) {
      this.failGroup(group, error);
    }
    this.afterAppend();
  };

  private readonly onAppendFailed = (error: unknown): void => {
    const group = this.inflight!;
    this.inflight = undefined;
    this.failGroup(group, error);
    this.afterAppend();
  };

  // Both made once: under a keepNames build (tsx, tsup) every closure created per append also costs a
  // defineProperty call.
  private readonly afterAppend = (): void => {
    // Let the committers just resolved run first: they come back with their next commits a few microtasks later,
    // and pumping at once would send the one commit that beat them to disk alone (measured: groups alternated
    // 1, 15, 1, 15 … with 16 writers). A nextTick scheduled from here runs once the microtask queue is drained,
    // which is when they are back; an event-loop turn (setImmediate) waits as long, but cost a single writer
    // ~10 µs per commit. Every YIELD_EVERY appends take the turn anyway: on file:// and memory:// a commit
    // cycle is all microtasks, and without it a stream of commits would starve I/O callbacks and timers.
    if (++this.appendsSinceYield < YIELD_EVERY) process.nextTick(this.pumpNext);
    else {
      this.appendsSinceYield = 0;
      setImmediate(this.pumpNext);
    }
  };

  private readonly pumpNext = (): void => {
    this.appending = false;
    this.pump();
  };

  /** The group append when something must be awaited first: back-pressure, the log's opening, an ingest. */
  private async appendGroup(group: QueuedCommit[]): Promise<void> {
    try {
      if (this.tree.needsBackPressure) await this.tree.waitForFlush();
      this.checkWritable();
      const log = this.log ?? (await this.openLogForFirstCommit());
      if (group.length === 1 && group[0]!.ingest) {
        await this.ingestOne(log, group[0]!);
        return;
      }
      this.appends++;
      const firstLsn = (await log.append(groupFrames(group))).firstLsn + this.branchCtx.lsnBase;
      this.applyGroup(group, firstLsn);
    } catch (error) {
      this.failGroup(group, error);
    }
  }

  /**
   * The group's append is durable from `firstLsn` on: applies every commit of it before yielding, so readers see
   * the group at once, and resolves them.
   */
  private applyGroup(group: QueuedCommit[], firstLsn: number): void {
    let lsn = firstLsn;
    for (const q of group) {
      lsn += q.frames.length;
      const commitLsn = lsn - 1;
      const pending = q.pending;
      const entries = stampEntries(q.entries, commitLsn);
      if (pending !== undefined) this.tree.apply(entries, pending.keys, pending.hashes);
      else if (q.large) this.tree.apply(entries);
      else {
        oneKey[0] = q.key;
        oneHash[0] = q.hash;
        this.tree.apply(entries, oneKey, oneHash);
      }
      // In the memtable now, where later commits' checks find it.
      this.settlePending(q);
      this.lastLsn = commitLsn;
      this.commits++;
      q.txn.finishCommit(true);
      q.resolve(commitLsn);
    }
    this.tree.maybeFreeze(this.lastLsn);
  }

  /** The group's append (or applying it) failed: the engine is poisoned for writes, and every commit fails. */
  private failGroup(group: QueuedCommit[], error: unknown): void {
    if (!this.failure && !(isTwillError(error) && error.code === ErrorCodes.Closed)) {
      this.failure = isTwillError(error, ErrorCodes.Fenced)
        ? new TwillError(ErrorCodes.Fenced, "database is locked by another writer", {
            cause: error,
            hint: "another process opened this database for writing; reopen to continue with its state",
          })
        : new TwillError(
            ErrorCodes.Io,
            `commit outcome unknown: the log write failed (${(error as Error).message})`,
            {
              cause: error,
              hint: "the database accepts no more commits until it is reopened; recovery keeps whatever reached the log",
            },
          );
    }
    for (const q of group) {
      this.settlePending(q);
      q.txn.finishCommit(false);
      q.reject(this.failure ?? error);
    }
  }

  /** Commits one transaction by ingest (see the header); the caller handles failures as for an append. */
  private async ingestOne(log: Log, q: QueuedCommit): Promise<void> {
    const base = this.branchCtx.lsnBase;
    const lsn = base + log.nextLsn();
    const writes = q.writes;
    // Stamped as they are made: the entries of an ingest are made one at a time, while its SSTs are written.
    const entries = {
      length: writes.length,
      at: (i: number): Entry | undefined => {
        const w = writes.at(i);
        return w === undefined ? undefined : stampEntry(w, lsn);
      },
    };
    await this.tree.ingest(entries, lsn, this.lastLsn, async (ssts) => {
      this.appends++;
      const { firstLsn } = await log.append([encodeIngest(ssts)]);
      if (base + firstLsn !== lsn) {
        throw new TwillError(
          ErrorCodes.Internal,
          `ingest expected lsn ${lsn} but the log appended at ${base + firstLsn}`,
        );
      }
    });
    this.settlePending(q);
    this.lastLsn = lsn;
    this.commits++;
    this.ingests++;
    q.txn.finishCommit(true);
    q.resolve(lsn);
  }

  /**
   * Opens the log of a freshly created branch at its first commit. Another process that opened the branch since
   * holds it now (file:// and memory:// refuse the lock; on s3:// its EPOCH frame makes this append collide), so a
   * refusal fences this handle like any displaced writer.
   */
  private async openLogForFirstCommit(): Promise<Log> {
    let log: Log;
    try {
      log = await this.storage.openLog(this.logName);
    } catch (error) {
      if (isTwillError(error, ErrorCodes.Locked)) {
        throw new TwillError(ErrorCodes.Fenced, "branch is locked by another writer", { cause: error });
      }
      throw error;
    }
    // With the log open, make sure nobody else took the branch before: another writer's EPOCH frame is in the
    // log (s3:// has no lock, and a fresh handle appends at the current end, so this check is the fence there),
    // its epoch in the manifest, and a drop leaves no manifest (a drop takes the same lock on file://).
    const current = await loadLatestManifest(this.storage, this.options.branch).catch(() => undefined);
    if (log.nextLsn() !== 1 || current?.log !== this.logName || current.epoch !== this.epoch) {
      await log.close();
      throw new TwillError(
        ErrorCodes.Fenced,
        current?.log === this.logName
          ? `branch ${this.options.branch} was opened by another writer`
          : `branch ${this.options.branch} was dropped by another handle`,
      );
    }
    this.log = log;
    return log;
  }

  private truncateLog(flushedLsn: number): void {
    this.truncating = this.truncating
      .then(() => this.log?.truncate(flushedLsn - this.branchCtx.lsnBase + 1))
      .catch(() => undefined); // a failed truncation only keeps log bytes around longer
  }

  /** Flushes the memtable to an SST now. */
  async flush(): Promise<void> {
    this.checkWritable();
    await this.tree.flush(this.lastLsn);
    await this.truncating;
  }

  /** Compacts L0 into L1 now. */
  async compact(): Promise<void> {
    this.checkWritable();
    await this.tree.compact();
  }

  stats(): EngineStats {
    return {
      ...this.tree.stats(),
      lastLsn: this.lastLsn,
      flushedLsn: this.tree.currentManifest.flushedLsn,
      epoch: this.epoch,
      commits: this.commits,
      appends: this.appends,
      conflicts: this.conflicts,
      ingests: this.ingests,
      openTransactions: this.openTxns,
    };
  }

  /**
   * Waits for queued commits and background work, then releases the log. The storage stays open. Child branches
   * opened from this engine read through its tree, so they are closed first.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    for (const child of [...this.openChildren]) await child.close();
    while (this.appending || this.queue.length > 0) await new Promise((r) => setTimeout(r, 1));
    this.closed = true;
    await this.tree.close();
    await this.truncating;
    await this.log?.close();
    await this.branchCtx.close();
    this.branchCtx.parent?.openChildren.delete(this);
    untrackOpen(this);
  }

  // ---- branches (docs/BRANCHES.md; the protocol is in branch.ts) ------------------------------------------------

  /** This branch's name ("main" for the base). */
  get branchName(): string {
    return this.options.branch;
  }

  /** The parent branch and fork LSN; undefined for main. */
  get parentBranch(): { name: string; forkLsn: number } | undefined {
    return this.branchCtx.parentInfo;
  }

  /** @internal The LSN base of this branch (engine LSN = base + log LSN). */
  get lsnBase(): number {
    return this.branchCtx.lsnBase;
  }

  /** @internal branch.ts: the live parent engine, when this branch was opened from it. */
  get liveParent(): Engine | undefined {
    return this.branchCtx.parent;
  }

  /** @internal branch.ts */
  get view(): VersionReader {
    return this.reader;
  }

  /** @internal branch.ts: this engine's own tree (versions above its LSN base only). */
  get ownTree(): LsmTree {
    return this.tree;
  }

  /** Oldest LSN a branch can still be forked at. */
  get oldestForkableLsn(): number {
    return Math.max(this.branchCtx.lsnBase, this.tree.compactionHorizon);
  }

  /** @internal branch.ts: keeps every version visible at `forkLsn` through compaction. */
  registerChild(name: string, forkLsn: number): boolean {
    if (this.childForks.has(name)) return false;
    this.childForks.set(name, forkLsn);
    this.snapshots.acquire(forkLsn);
    return true;
  }

  /** @internal branch.ts: the child was dropped. */
  unregisterChild(name: string): void {
    const forkLsn = this.childForks.get(name);
    if (forkLsn === undefined) return;
    this.childForks.delete(name);
    this.snapshots.release(forkLsn);
  }

  /** @internal */
  checkOpen(): void {
    if (this.closed) throw new TwillError(ErrorCodes.Closed, "the database is closed");
  }

  /**
   * Forks branch `name` off this one at `at` (default: the newest commit) and opens it. Writes one object.
   */
  async branch(name: string, options?: CreateBranchOptions): Promise<Engine> {
    this.checkWritable();
    const fresh = await createBranch(this, name, options);
    return Engine.open(this.storage, { ...this.options, branch: name }, { parent: this, fresh });
  }

  /** Every branch of this database (main excluded), with parent, fork LSN and creation time. */
  branches(): Promise<BranchInfo[]> {
    return listBranches(this.storage);
  }

  /** Drops branch `name` (and with `cascade`, its descendants). */
  dropBranch(name: string, options?: DropBranchOptions): Promise<string[]> {
    this.checkOpen();
    return dropBranch(this.storage, name, options);
  }

  /** Drops branch `name` of the database in `storage` without opening any branch of it. */
  static dropBranchOn(storage: Storage, name: string, options?: DropBranchOptions): Promise<string[]> {
    return dropBranch(storage, name, options);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Applies this branch's own changes since its fork onto its parent in one transaction. */
  merge(options?: MergeOptions, hooks?: MergeHooks): Promise<MergeResult> {
    this.checkWritable();
    return mergeBranch(this, options, hooks, (parent) =>
      Engine.open(this.storage, { ...this.options, branch: parent }),
    );
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** @internal What branch.ts passes to `Engine.open`. */
export interface EngineOpenInternal {
  parent?: Engine;
  fresh?: Manifest;
}

export type ParsedEngineOptions = ReturnType<typeof parseOptions>;

/** An empty range: start == end. */
const EMPTY_RANGE: ScanRange = { start: new Uint8Array([0]), end: new Uint8Array([0]) };

function toEntries(writes: readonly Write[], lsn: number): Entry[] {
  const entries: Entry[] = new Array(writes.length);
  for (let i = 0; i < writes.length; i++) {
    const w = writes[i]!;
    entries[i] = { key: w.key, lsn, kind: w.kind === 1 ? EntryKind.Put : EntryKind.Delete, value: w.value };
  }
  return entries;
}
