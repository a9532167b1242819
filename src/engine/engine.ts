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
 * Open: load the newest manifest; open the log (the writer lock); replay frames after the manifest's flushed LSN;
 * append an EPOCH frame and install a manifest with the next epoch, which fences any older writer.
 *
 * Invariants:
 *   - `lastLsn` is the LSN of the newest frame applied; snapshots are taken there.
 *   - A failed log append leaves the outcome of its commits unknown, so the engine stops accepting commits
 *     (reads continue) until it is reopened and recovery decides from the log — the PostgreSQL answer to a
 *     failed fsync.
 */

import { z } from "zod";
import { ErrorCodes, isTwillError, TwillError } from "../errors.js";
import type { Log, Storage } from "../storage/types.js";
import { type AsyncCursor, LimitCursor } from "./lsm/cursor.js";
import { emptyManifest, installManifest, loadLatestManifest, type Manifest } from "./lsm/manifest.js";
import { type KeyValue, LsmTree, type ScanRange, type TreeStats } from "./lsm/tree.js";
import { type Entry, EntryKind, NEEDS_IO, type NeedsIo } from "./lsm/types.js";
import { decodeFrame, encodeCommit, encodeEpoch, FrameType, type Write } from "./txn/commit-record.js";
import { resolveRange, Transaction, type TxnHost, type TxnScanOptions } from "./txn/transaction.js";
import { type BufferedWrite, stampEntries } from "./txn/write-buffer.js";

export const engineOptionsSchema = z
  .object({
    branch: z
      .string()
      .regex(/^[A-Za-z0-9._~=+-]{1,64}$/)
      .default("main"),
    memtableBytesMax: z
      .number()
      .int()
      .min(64 * 1024)
      .default(32 * 1024 * 1024),
    blockCacheBytesMax: z
      .number()
      .int()
      .min(64 * 1024)
      .default(64 * 1024 * 1024),
    l0CompactionTrigger: z.number().int().min(2).max(64).default(4),
    immutableMemtablesMax: z.number().int().min(1).max(16).default(1),
    sstBytesTarget: z
      .number()
      .int()
      .min(64 * 1024)
      .default(32 * 1024 * 1024),
    blockBytesTarget: z
      .number()
      .int()
      .min(1024)
      .max(1024 * 1024)
      .default(4 * 1024),
    autoMaintenance: z.boolean().default(true),
  })
  .strict();

export type EngineOptions = z.input<typeof engineOptionsSchema>;

/** Most frames and bytes one group-commit append carries; beyond that the group is split. */
const GROUP_FRAMES_MAX = 4096;
const GROUP_BYTES_MAX = 48 * 1024 * 1024;
const OPEN_ATTEMPTS_MAX = 5;

interface QueuedCommit {
  txn: Transaction;
  writes: BufferedWrite[];
  frames: Uint8Array[];
  bytes: number;
  resolve: (lsn: number) => void;
  reject: (error: unknown) => void;
}

export interface EngineStats extends TreeStats {
  lastLsn: number;
  flushedLsn: number;
  epoch: number;
  commits: number;
  appends: number;
  conflicts: number;
  openTransactions: number;
}

function parseOptions(options: EngineOptions | undefined) {
  const parsed = engineOptionsSchema.safeParse(options ?? {});
  if (!parsed.success) {
    const issues = parsed.error.issues
      .map((i) => `${i.path.join(".") || "options"}: ${i.message}`)
      .join("; ");
    throw new TwillError(ErrorCodes.InvalidArgument, `invalid engine options: ${issues}`, {
      hint: `accepted options: ${Object.keys(engineOptionsSchema.shape).join(", ")}`,
    });
  }
  return parsed.data;
}

export class Engine implements TxnHost {
  private lastLsn = 0;
  private queue: QueuedCommit[] = [];
  private appending = false;
  /** The group whose append is in flight. */
  private inflight: QueuedCommit[] = [];
  private failure: TwillError | undefined;
  private closed = false;
  private commits = 0;
  private appends = 0;
  private conflicts = 0;
  private openTxns = 0;
  private truncating: Promise<void> = Promise.resolve();

  private constructor(
    readonly storage: Storage,
    private readonly log: Log,
    private readonly tree: LsmTree,
    private readonly epoch: number,
    /** Live snapshot LSNs with how many transactions hold each; shared with the tree's compaction. */
    private readonly snapshots: Map<number, number>,
  ) {}

  static async open(storage: Storage, options?: EngineOptions): Promise<Engine> {
    const opts = parseOptions(options);
    for (let attempt = 1; ; attempt++) {
      try {
        return await Engine.openOnce(storage, opts);
      } catch (error) {
        // Another writer moved the log or manifest while we replayed: start over from its newer state.
        if (attempt < OPEN_ATTEMPTS_MAX && isTwillError(error, ErrorCodes.Fenced)) continue;
        throw error;
      }
    }
  }

  private static async openOnce(storage: Storage, opts: ReturnType<typeof parseOptions>): Promise<Engine> {
    const manifest: Manifest = (await loadLatestManifest(storage, opts.branch)) ?? emptyManifest(opts.branch);
    const log = await storage.openLog(manifest.log);
    try {
      if (log.nextLsn() <= manifest.flushedLsn && manifest.flushedLsn > 0) {
        throw new TwillError(
          ErrorCodes.Corruption,
          `log ${manifest.log} ends at lsn ${log.nextLsn() - 1} but the manifest says lsn ${manifest.flushedLsn} was flushed`,
          { hint: "the log was removed or replaced; restore it from a backup" },
        );
      }
      const snapshots = new Map<number, number>();
      const tree = new LsmTree(storage, opts.branch, manifest, opts, () =>
        [...snapshots.keys()].sort((a, b) => a - b),
      );
      const lastLsn = await Engine.replay(log, tree, manifest.flushedLsn);
      const epoch = manifest.epoch + 1;
      const { firstLsn } = await log.append([encodeEpoch(epoch)]);
      const next: Manifest = {
        ...manifest,
        version: manifest.version + 1,
        epoch,
        createdAt: new Date().toISOString(),
      };
      await installManifest(storage, opts.branch, next);
      // The tree was built from the previous manifest object; it must now extend the installed one.
      tree.adoptManifest(next);
      const engine = new Engine(storage, log, tree, epoch, snapshots);
      engine.lastLsn = Math.max(lastLsn, firstLsn);
      tree.onFlushed = (flushedLsn) => engine.truncateLog(flushedLsn);
      if (opts.autoMaintenance) await tree.deleteOrphans();
      tree.startMaintenance();
      return engine;
    } catch (error) {
      await log.close();
      throw error;
    }
  }

  /** Replays committed transactions after `flushedLsn` into the memtable; returns the last LSN seen. */
  private static async replay(log: Log, tree: LsmTree, flushedLsn: number): Promise<number> {
    let last = flushedLsn;
    let parts: Write[] = [];
    const gap = (found: number) =>
      new TwillError(
        ErrorCodes.Corruption,
        `log ${log.name} continues at lsn ${found}, but the manifest needs every frame from lsn ${flushedLsn + 1}`,
        {
          hint: "the manifest is missing or older than the log (frames were truncated after a newer flush); restore the manifest objects",
        },
      );
    for await (const frame of log.read(flushedLsn + 1)) {
      if (frame.lsn !== last + 1) throw gap(frame.lsn);
      const decoded = decodeFrame(frame.data, frame.lsn);
      last = frame.lsn;
      if (decoded.type === FrameType.Epoch) {
        parts = [];
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
    }
    if (log.nextLsn() !== last + 1) throw gap(log.nextLsn());
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
    this.snapshots.set(txn.snapshotLsn, (this.snapshots.get(txn.snapshotLsn) ?? 0) + 1);
    this.openTxns++;
    return txn;
  }

  /** @internal TxnHost: called once when a transaction ends. */
  release(txn: Transaction): void {
    const n = (this.snapshots.get(txn.snapshotLsn) ?? 1) - 1;
    if (n <= 0) this.snapshots.delete(txn.snapshotLsn);
    else this.snapshots.set(txn.snapshotLsn, n);
    this.openTxns--;
  }

  /** @internal TxnHost */
  get(key: Uint8Array, snapshotLsn: number = this.lastLsn): Promise<Uint8Array | undefined> {
    return this.tree.get(key, snapshotLsn);
  }

  /** @internal TxnHost */
  scan(range: ScanRange, snapshotLsn: number = this.lastLsn): AsyncCursor<KeyValue> {
    return this.tree.scan(range, snapshotLsn);
  }

  /**
   * The latest committed value of one key from memory and cached blocks only, or NEEDS_IO when a block must be
   * read (then call `read`). Lets hot point reads, such as a prepared primary-key SELECT, skip a promise.
   */
  readSync(key: Uint8Array): Uint8Array | undefined | NeedsIo {
    const e = this.tree.getVersionSync(key, this.lastLsn);
    if (e === NEEDS_IO) return e;
    return e && e.kind === EntryKind.Put ? e.value : undefined;
  }

  /** Reads the latest committed value of one key, outside any transaction. */
  read(key: Uint8Array): Promise<Uint8Array | undefined> {
    return this.tree.get(key, this.lastLsn);
  }

  /**
   * Scans the latest committed state, outside any transaction. The result is a cursor: a plain `for await`
   * works, and callers that care can drain it synchronously while its blocks are cached.
   */
  readRange(options: TxnScanOptions = {}): AsyncCursor<KeyValue> {
    const range = resolveRange(options);
    const cursor = this.tree.scan(
      range ? { ...range, reverse: options.reverse ?? false } : EMPTY_RANGE,
      this.lastLsn,
    );
    return new LimitCursor(cursor, range ? (options.limit ?? Number.POSITIVE_INFINITY) : 0);
  }

  /** @internal TxnHost: conflict check, then queue for the next group append. */
  async commit(txn: Transaction): Promise<number> {
    this.checkWritable();
    const writes = txn.ownWrites();
    if (writes.length === 0) return txn.snapshotLsn;
    const snapshot = txn.snapshotLsn;
    // SST part of the check: only SSTs holding versions newer than the snapshot matter. Re-run if a flush or
    // compaction changed the SST set while we awaited.
    for (;;) {
      const seq = this.tree.viewSeq;
      if (this.tree.sstMaxLsn > snapshot) {
        for (const w of writes) {
          if ((await this.tree.newestSstLsn(w.key, snapshot)) > snapshot) throw this.conflict(w.key);
        }
      }
      if (seq === this.tree.viewSeq) break;
    }
    this.checkWritable();
    // Memtable and queue part, synchronous up to the enqueue. Memtables with nothing newer than the snapshot
    // cannot conflict, which spares a bulk load a probe per write.
    if (this.tree.memMaxLsn > snapshot) {
      for (const w of writes) {
        if (this.tree.newestMemLsn(w.key) > snapshot) throw this.conflict(w.key);
      }
    }
    const queuedConflict = this.conflictWithQueued(txn);
    if (queuedConflict) throw this.conflict(queuedConflict);
    const frames = encodeCommit(writes);
    let bytes = 0;
    for (const f of frames) bytes += f.length;
    return new Promise<number>((resolve, reject) => {
      this.queue.push({ txn, writes, frames, bytes, resolve, reject });
      this.pump();
    });
  }

  /**
   * A key this transaction writes that a queued or in-flight commit also writes (those commits are newer than any
   * snapshot). Each pair of write sets is intersected from its smaller side, so a bulk load alone pays nothing and
   * small commits never walk a large one.
   */
  private conflictWithQueued(txn: Transaction): Uint8Array | undefined {
    for (const group of [this.inflight, this.queue]) {
      for (const q of group) {
        if (q.writes.length <= txn.writeCount) {
          for (const w of q.writes) if (txn.hasWrite(w.key)) return w.key;
        } else {
          for (const w of txn.ownWrites()) if (q.txn.hasWrite(w.key)) return w.key;
        }
      }
    }
    return undefined;
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
      if (take > 0 && (frames + q.frames.length > GROUP_FRAMES_MAX || bytes + q.bytes > GROUP_BYTES_MAX))
        break;
      frames += q.frames.length;
      bytes += q.bytes;
      take++;
    }
    const group = this.queue.splice(0, take);
    this.inflight = group;
    void this.appendGroup(group).finally(() => {
      this.inflight = [];
      // Let the committers just resolved run first: they come back with their next commits a few microtasks later,
      // and pumping at once would send the one commit that beat them to disk alone (measured: groups alternated
      // 1, 15, 1, 15 … with 16 writers; waiting one turn gives groups of 16 and half the syncs).
      setImmediate(() => {
        this.appending = false;
        this.pump();
      });
    });
  }

  private async appendGroup(group: QueuedCommit[]): Promise<void> {
    try {
      if (this.tree.needsBackPressure) await this.tree.waitForFlush();
      this.checkWritable();
      const frames = group.length === 1 ? group[0]!.frames : group.flatMap((q) => q.frames);
      this.appends++;
      const { firstLsn } = await this.log.append(frames);
      // Durable: apply every commit of the group before yielding, so readers see the group at once.
      let lsn = firstLsn;
      for (const q of group) {
        lsn += q.frames.length;
        const commitLsn = lsn - 1;
        this.tree.apply(stampEntries(q.writes, commitLsn));
        this.lastLsn = commitLsn;
        this.commits++;
        q.resolve(commitLsn);
      }
      this.tree.maybeFreeze(this.lastLsn);
    } catch (error) {
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
      for (const q of group) q.reject(this.failure ?? error);
    }
  }

  private truncateLog(flushedLsn: number): void {
    this.truncating = this.truncating.then(() => this.log.truncate(flushedLsn + 1)).catch(() => undefined); // a failed truncation only keeps log bytes around longer
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
      openTransactions: this.openTxns,
    };
  }

  /** Waits for queued commits and background work, then releases the log. The storage stays open. */
  async close(): Promise<void> {
    if (this.closed) return;
    while (this.appending || this.queue.length > 0) await new Promise((r) => setTimeout(r, 1));
    this.closed = true;
    await this.tree.close();
    await this.truncating;
    await this.log.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

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
