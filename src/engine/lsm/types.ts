/**
 * The data model of the LSM page store, shared by the memtable, SSTs and merges.
 *
 * An internal entry is one version of one key: `{ key, lsn, kind, value }`.
 *
 * Invariants:
 *   - Internal order: key ascending by unsigned bytes, then lsn DESCENDING, so the newest version of a key comes
 *     first and a forward scan meets the version a snapshot sees before the versions it shadows.
 *   - (key, lsn) identifies a version: two entries with the same key and lsn are the same version.
 *   - LSNs are integers in [1, 2^53): JavaScript numbers hold them exactly, and `lsnMax` (2^53) sorts before
 *     every real version of a key, which makes `(key, lsnMax)` the "first version of key" seek target.
 *   - A Delete carries an empty value.
 *   - A reader at snapshot `s` sees, per key, the newest version with lsn <= s; a Delete there means "absent".
 *   - Entries handed out by readers may share memory with cached blocks: treat keys and values as read-only.
 */

export const EntryKind = {
  Put: 1,
  Delete: 2,
} as const;

export type EntryKind = (typeof EntryKind)[keyof typeof EntryKind];

export interface Entry {
  key: Uint8Array;
  lsn: number;
  kind: EntryKind;
  value: Uint8Array;
}

/** Exclusive upper bound of LSNs; as a seek target it sorts before every version of its key. */
export const lsnMax = 2 ** 53;

/**
 * Returned by the synchronous fast paths (`getCached`, `Cursor.nextSync`) when the answer needs a block that is
 * not in memory; the caller then takes the async path (`get`, `Cursor.fill`). Keeps hot reads free of promises.
 */
export const NEEDS_IO: unique symbol = Symbol("twilldb.lsm.needsIo");
export type NeedsIo = typeof NEEDS_IO;

/** Limits every LSM structure enforces, so that a bug or bad bytes cannot ask for unbounded memory. */
export const LsmLimits = {
  /** One key: 64 KiB. Keys are short encoded tuples; this is far above any real one. */
  keyBytesMax: 64 * 1024,
  /** One value: 64 MiB, the size of the largest log frame that can carry it. */
  valueBytesMax: 64 * 1024 * 1024,
} as const;

/** Unsigned lexicographic order of byte strings: negative, zero or positive (not normalized to -1/0/1). */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  // Compare from the end: keys sharing a table / index prefix differ last.
  for (let i = a.length - 1; i >= 0; i--) if (a[i] !== b[i]) return false;
  return true;
}

/** Internal order: key ascending, then lsn descending (newest first). */
export function compareEntries(a: Entry, b: Entry): number {
  const c = compareBytes(a.key, b.key);
  if (c !== 0) return c;
  return b.lsn - a.lsn;
}

export function isValidLsn(lsn: number): boolean {
  return Number.isSafeInteger(lsn) && lsn >= 1;
}

/** Why `entry` is not a well-formed entry, or undefined when it is. Used on both sides of every boundary. */
export function entryDefect(entry: Entry): string | undefined {
  if (!(entry.key instanceof Uint8Array)) return "key is not a Uint8Array";
  if (entry.key.length > LsmLimits.keyBytesMax) {
    return `key of ${entry.key.length} bytes is over the limit of ${LsmLimits.keyBytesMax}`;
  }
  if (!isValidLsn(entry.lsn)) return `lsn ${entry.lsn} is not an integer in [1, 2^53)`;
  if (!(entry.value instanceof Uint8Array)) return "value is not a Uint8Array";
  if (entry.kind === EntryKind.Put) {
    if (entry.value.length > LsmLimits.valueBytesMax) {
      return `value of ${entry.value.length} bytes is over the limit of ${LsmLimits.valueBytesMax}`;
    }
    return undefined;
  }
  if (entry.kind === EntryKind.Delete)
    return entry.value.length === 0 ? undefined : "a Delete carries a value";
  return `unknown kind ${String(entry.kind)}`;
}

/** Readable form of a key for error messages: hex, cut at 64 bytes. */
export function describeKey(key: Uint8Array): string {
  const shown = key.length > 64 ? key.subarray(0, 64) : key;
  let hex = "";
  for (let i = 0; i < shown.length; i++) hex += shown[i]!.toString(16).padStart(2, "0");
  return key.length > 64 ? `0x${hex}… (${key.length} bytes)` : `0x${hex}`;
}
