/**
 * The manifest: which SSTs make up a database (later: a branch), up to which LSN they hold every commit, and which
 * writer epoch owns it. Each version is a new immutable object written with `writeIfAbsent`, so two writers can
 * never both install version N+1: the loser learns it was fenced.
 *
 * Object: `manifest/<branch>/<version as 16 decimal digits>`, bytes:
 *   0  u32  magic 0x464d5754 ("TWMF")
 *   4  u32  CRC-32C of the body
 *   8  ...  body: UTF-8 JSON of `Manifest`
 *
 * Invariants:
 *   - Versions are consecutive from 1; the newest is the one with the highest number.
 *   - Every commit with lsn <= flushedLsn is in the listed SSTs; replay starts at flushedLsn + 1.
 *   - SST ids are unique and below nextSstId; L1 SSTs do not overlap and are sorted by key.
 *   - Branch fields (docs/BRANCHES.md) are optional, so manifests written before branches load unchanged: a
 *     branch has `parent`, `forkLsn` = `lsnBase` (engine LSN = lsnBase + log LSN, so its own commits are all
 *     > forkLsn) and `branchCreatedAt`. `gcHorizonLsn`: the highest LSN any compaction merged; snapshots below it
 *     may have lost versions, so no branch may be forked there.
 *   - `ingestedLsn` (optional, absent = 0): the commit LSN of the newest ingested transaction (an INGEST log frame,
 *     see txn/commit-record.ts) whose SSTs this manifest took in. Replay skips INGEST frames at or below it: their
 *     SSTs are listed here, or were since compacted away, and must not be added twice.
 */

import { ErrorCodes, TwillError } from "../../errors.js";
import { crc32c } from "../../storage/crc32c.js";
import type { Storage } from "../../storage/types.js";

const MAGIC = 0x464d5754;
const DIGITS = 16;

export interface SstMeta {
  id: number;
  /** Object key of the SST. */
  key: string;
  level: 0 | 1;
  sizeBytes: number;
  /** Smallest and largest user key, hex. */
  minKey: string;
  maxKey: string;
  minLsn: number;
  maxLsn: number;
  entries: number;
  /**
   * L0 only: the sorted run the SST belongs to (the id of the run's first SST), when a merge of L0 SSTs wrote it
   * as one of several: the SSTs of one run never overlap, so a point get meets at most one of them.
   */
  run?: number;
}

export interface Manifest {
  format: 1;
  version: number;
  /** Incremented by every writer that opens the database; the newest epoch owns the log. */
  epoch: number;
  /** Name of the commit log of this branch. */
  log: string;
  flushedLsn: number;
  nextSstId: number;
  /** L0 newest first, then L1 in key order. */
  ssts: SstMeta[];
  createdAt: string;
  /** Branch this one was forked from; absent for main. */
  parent?: string;
  /** The parent's LSN the branch was forked at. */
  forkLsn?: number;
  /** Engine LSN = lsnBase + log LSN. Absent = 0. */
  lsnBase?: number;
  branchCreatedAt?: string;
  /** Highest LSN merged by a compaction of this branch (absent = 0). */
  gcHorizonLsn?: number;
  /** Commit LSN of the newest ingested transaction taken into this manifest (absent = 0). */
  ingestedLsn?: number;
}

export const MANIFEST_ROOT = "manifest/";

export function emptyManifest(log: string): Manifest {
  return {
    format: 1,
    version: 0,
    epoch: 0,
    log,
    flushedLsn: 0,
    nextSstId: 1,
    ssts: [],
    createdAt: new Date().toISOString(),
  };
}

export function manifestPrefix(branch: string): string {
  return `${MANIFEST_ROOT}${branch}/`;
}

/** Names of every branch that has a manifest (main included), in key order. */
export async function listBranchNames(storage: Storage): Promise<string[]> {
  const names: string[] = [];
  for await (const key of storage.list(MANIFEST_ROOT)) {
    const name = key.slice(MANIFEST_ROOT.length, key.indexOf("/", MANIFEST_ROOT.length));
    if (name.length > 0 && names.at(-1) !== name) names.push(name);
  }
  return names;
}

export function manifestKey(branch: string, version: number): string {
  return `${manifestPrefix(branch)}${String(version).padStart(DIGITS, "0")}`;
}

export function encodeManifest(manifest: Manifest): Uint8Array {
  const body = new TextEncoder().encode(JSON.stringify(manifest));
  const out = new Uint8Array(8 + body.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, crc32c(body), true);
  out.set(body, 8);
  return out;
}

export function decodeManifest(bytes: Uint8Array, key: string): Manifest {
  const corrupt = (why: string) =>
    new TwillError(ErrorCodes.Corruption, `manifest ${key} is corrupt: ${why}`, {
      hint: "restore the object from a backup; older manifest versions may still be present",
    });
  if (bytes.length < 8) throw corrupt("shorter than its header");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== MAGIC) throw corrupt("bad magic");
  const body = bytes.subarray(8);
  if (crc32c(body) !== view.getUint32(4, true)) throw corrupt("checksum mismatch");
  let parsed: Manifest;
  try {
    parsed = JSON.parse(new TextDecoder().decode(body)) as Manifest;
  } catch (error) {
    throw corrupt(`body is not JSON (${String(error)})`);
  }
  if (parsed.format !== 1 || !Number.isSafeInteger(parsed.version) || !Array.isArray(parsed.ssts)) {
    throw corrupt("unknown format or missing fields");
  }
  return parsed;
}

/** The newest manifest of a branch, or undefined when the branch has none yet. */
export async function loadLatestManifest(storage: Storage, branch: string): Promise<Manifest | undefined> {
  let latest: string | undefined;
  for await (const key of storage.list(manifestPrefix(branch))) latest = key;
  if (!latest) return undefined;
  const manifest = decodeManifest(await storage.read(latest), latest);
  const expected = Number(latest.slice(manifestPrefix(branch).length));
  if (manifest.version !== expected) {
    throw new TwillError(ErrorCodes.Corruption, `manifest ${latest} says it is version ${manifest.version}`);
  }
  return manifest;
}

/**
 * Installs `next` (whose version must be current + 1) with a CAS. Losing the race means another writer owns the
 * database now: FENCED, with the message users see.
 */
export async function installManifest(storage: Storage, branch: string, next: Manifest): Promise<void> {
  const key = manifestKey(branch, next.version);
  const won = await storage.writeIfAbsent(key, encodeManifest(next));
  if (!won) {
    throw new TwillError(ErrorCodes.Fenced, "database is locked by another writer", {
      detail: `manifest version ${next.version} of branch ${branch} was written by another writer`,
      hint: "another process opened this database for writing; reopen to continue with its state",
    });
  }
}

/** Deletes manifest versions older than the newest `keep`. */
export async function pruneManifests(storage: Storage, branch: string, keep: number): Promise<number> {
  const keys: string[] = [];
  for await (const key of storage.list(manifestPrefix(branch))) keys.push(key);
  const doomed = keys.slice(0, Math.max(0, keys.length - keep));
  for (const key of doomed) await storage.delete(key);
  return doomed.length;
}
