/**
 * Commit records: how a transaction's writes travel through the log.
 *
 * A commit is one or more log frames appended in one `append`. Every frame starts with a 1-byte type:
 *   0x01 PART    writes of a transaction too large for one frame; more frames follow
 *   0x02 COMMIT  the last (often only) frame of a transaction; its LSN is the commit LSN of every write in it
 *                and in the PART frames right before it
 *   0x03 EPOCH   written by a writer when it opens the database: claims the log's next position, so a stale
 *                writer's append collides with it (s3://) and replay knows which writer came when
 *   0x04 INGEST  a transaction too large for the memtable, committed as SSTs written before this frame (the
 *                engine's ingest path); its LSN is the commit LSN stamped on every entry of those SSTs
 * then, for PART and COMMIT, a varint write count and per write:
 *   u8 kind (1 put, 2 delete) · varint key length · key · (put only) varint value length · value
 * for EPOCH: varint epoch; for INGEST: UTF-8 JSON `{"ssts": SstMeta[]}` (the manifest's SST records).
 *
 * A one-write COMMIT frame is `0x02 · 0x01 · record`: the write buffer lays every write out as that record with two
 * bytes of headroom before it (see write-buffer.ts), so a one-row commit's frame is a view of the bytes its `put`
 * copied (`sealOneWriteCommit`), not a second copy of them.
 *
 * Invariants: PART frames are only ever followed, within the same append, by more PART frames and one COMMIT.
 * Replay applies PART frames only when their COMMIT arrives; PART frames at the end of the log with no COMMIT
 * (a torn append) are dropped, so a transaction is all or nothing. An INGEST frame is appended alone, only after
 * every SST it names is durable, so a log that holds the frame holds the whole transaction and one that lost it
 * holds none of it (its SSTs are then unreferenced objects, deleted at open).
 */

import { ErrorCodes, TwillError } from "../../errors.js";
import type { SstMeta } from "../lsm/manifest.js";

export const FrameType = { Part: 1, Commit: 2, Epoch: 3, Ingest: 4 } as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

export const WriteKind = { Put: 1, Delete: 2 } as const;
export type WriteKind = (typeof WriteKind)[keyof typeof WriteKind];

export interface Write {
  key: Uint8Array;
  kind: WriteKind;
  /** Empty for a delete. */
  value: Uint8Array;
}

/** Aim for frames of about 4 MiB: well under the 64 MiB frame limit, large enough to amortise headers. */
export const COMMIT_FRAME_BYTES_TARGET = 4 * 1024 * 1024;

export function varintBytes(n: number): number {
  let bytes = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    bytes++;
  }
  return bytes;
}

export function putVarint(out: Uint8Array, at: number, n: number): number {
  while (n >= 0x80) {
    out[at++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  out[at++] = n;
  return at;
}

/** Copies `src` into `out` at `at`; short arrays by a loop, which V8 runs faster than a `set` call. */
function copyInto(out: Uint8Array, at: number, src: Uint8Array): number {
  const n = src.length;
  if (n <= 32) for (let i = 0; i < n; i++) out[at + i] = src[i]!;
  else out.set(src, at);
  return at + n;
}

function writeBytes(w: Write): number {
  const key = varintBytes(w.key.length) + w.key.length;
  return 1 + key + (w.kind === WriteKind.Put ? varintBytes(w.value.length) + w.value.length : 0);
}

/**
 * Small frames are carved from a shared 256 KiB slab, filled front to back and never written twice: a frame is
 * only read until its append is durable, and an ArrayBuffer per commit cost ~2 µs of a ~20 µs commit.
 */
const frameSlabBytes = 256 * 1024;
const frameSharedBytesMax = 16 * 1024;
let frameSlab = new ArrayBuffer(0);
let frameSlabUsed = 0;

function allocFrame(length: number): Uint8Array {
  if (length > frameSharedBytesMax) return new Uint8Array(length);
  if (frameSlabUsed + length > frameSlab.byteLength) {
    frameSlab = new ArrayBuffer(frameSlabBytes);
    frameSlabUsed = 0;
  }
  // A view made from the ArrayBuffer: `subarray` of a Uint8Array costs about twice as much.
  const out = new Uint8Array(frameSlab, frameSlabUsed, length);
  frameSlabUsed += length;
  return out;
}

function encodeFrame(
  type: FrameType,
  writes: readonly Write[],
  from: number,
  to: number,
  bytes: number,
): Uint8Array {
  const out = allocFrame(1 + varintBytes(to - from) + bytes);
  out[0] = type;
  let at = putVarint(out, 1, to - from);
  for (let i = from; i < to; i++) {
    const w = writes[i]!;
    out[at++] = w.kind;
    at = putVarint(out, at, w.key.length);
    at = copyInto(out, at, w.key);
    if (w.kind === WriteKind.Put) {
      at = putVarint(out, at, w.value.length);
      at = copyInto(out, at, w.value);
    }
  }
  return out;
}

/** Bytes a write record needs before it to become a one-write COMMIT frame in place: the type and the count. */
export const ONE_WRITE_HEADROOM = 2;

/**
 * The one-write COMMIT frame around the write record at bytes [recordAt, end) of `buffer`, whose ONE_WRITE_HEADROOM
 * bytes before it belong to the record's owner: writes the frame type and the count there and returns a view of
 * the frame. The same bytes as `encodeCommit([thatWrite])[0]`.
 */
export function sealOneWriteCommit(buffer: ArrayBuffer, recordAt: number, end: number): Uint8Array {
  const frame = new Uint8Array(buffer, recordAt - ONE_WRITE_HEADROOM, end - recordAt + ONE_WRITE_HEADROOM);
  frame[0] = FrameType.Commit;
  frame[1] = 1;
  return frame;
}

/** Encodes a transaction's writes as PART… COMMIT frames of about `frameBytesTarget` each. */
export function encodeCommit(
  writes: readonly Write[],
  frameBytesTarget = COMMIT_FRAME_BYTES_TARGET,
): Uint8Array[] {
  // Made only once a PART frame is needed: most commits are one frame, returned in an array of exactly one.
  let frames: Uint8Array[] | undefined;
  let from = 0;
  let bytes = 0;
  for (let i = 0; i < writes.length; i++) {
    const size = writeBytes(writes[i]!);
    if (bytes > 0 && bytes + size > frameBytesTarget) {
      frames ??= [];
      frames.push(encodeFrame(FrameType.Part, writes, from, i, bytes));
      from = i;
      bytes = 0;
    }
    bytes += size;
  }
  const last = encodeFrame(FrameType.Commit, writes, from, writes.length, bytes);
  if (frames === undefined) return [last];
  frames.push(last);
  return frames;
}

export function encodeEpoch(epoch: number): Uint8Array {
  const out = new Uint8Array(1 + varintBytes(epoch));
  out[0] = FrameType.Epoch;
  putVarint(out, 1, epoch);
  return out;
}

export function encodeIngest(ssts: readonly SstMeta[]): Uint8Array {
  const body = new TextEncoder().encode(JSON.stringify({ ssts }));
  const out = new Uint8Array(1 + body.length);
  out[0] = FrameType.Ingest;
  out.set(body, 1);
  return out;
}

export type DecodedFrame =
  | { type: typeof FrameType.Part | typeof FrameType.Commit; writes: Write[] }
  | { type: typeof FrameType.Epoch; epoch: number }
  | { type: typeof FrameType.Ingest; ssts: SstMeta[] };

function isSstMeta(m: unknown): m is SstMeta {
  if (typeof m !== "object" || m === null) return false;
  const r = m as Record<string, unknown>;
  const int = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  const hexText = (v: unknown) => typeof v === "string" && /^(?:[0-9a-f]{2})+$/.test(v);
  return (
    int(r.id) &&
    typeof r.key === "string" &&
    r.key.length > 0 &&
    (r.level === 0 || r.level === 1) &&
    int(r.sizeBytes) &&
    hexText(r.minKey) &&
    hexText(r.maxKey) &&
    int(r.minLsn) &&
    int(r.maxLsn) &&
    int(r.entries)
  );
}

function decodeIngest(frame: Uint8Array, fail: (why: string) => TwillError): DecodedFrame {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(frame.subarray(1)));
  } catch (error) {
    throw fail(`INGEST body is not JSON (${String(error)})`);
  }
  const ssts = (parsed as { ssts?: unknown } | null)?.ssts;
  if (!Array.isArray(ssts) || ssts.length === 0 || !ssts.every(isSstMeta)) {
    throw fail("INGEST body does not list SSTs");
  }
  return { type: FrameType.Ingest, ssts };
}

/** Decodes one frame; any defect is CORRUPTION naming the LSN (frames passed the log's CRC, so this is a bug or tampering). */
export function decodeFrame(frame: Uint8Array, lsn: number): DecodedFrame {
  let at = 0;
  const fail = (why: string) =>
    new TwillError(ErrorCodes.Corruption, `log frame at lsn ${lsn} is not a valid commit record: ${why}`);
  const varint = (): number => {
    let n = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      if (at >= frame.length) throw fail("truncated varint");
      const b = frame[at++]!;
      n += (b & 0x7f) * scale;
      if (b < 0x80) return n;
      scale *= 128;
    }
    throw fail("varint too long");
  };
  const bytes = (length: number): Uint8Array => {
    if (at + length > frame.length) throw fail("a key or value runs past the end of the frame");
    const out = frame.subarray(at, at + length);
    at += length;
    return out;
  };
  const type = frame[at++];
  if (type === FrameType.Epoch) return { type, epoch: varint() };
  if (type === FrameType.Ingest) return decodeIngest(frame, fail);
  if (type !== FrameType.Part && type !== FrameType.Commit) throw fail(`unknown frame type ${String(type)}`);
  const count = varint();
  if (count > frame.length) throw fail(`write count ${count} exceeds the frame size`);
  const writes: Write[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const kind = frame[at++];
    if (kind !== WriteKind.Put && kind !== WriteKind.Delete) throw fail(`unknown write kind ${String(kind)}`);
    const key = bytes(varint());
    const value = kind === WriteKind.Put ? bytes(varint()) : EMPTY;
    writes[i] = { key, kind, value };
  }
  if (at !== frame.length) throw fail(`${frame.length - at} trailing bytes`);
  return { type, writes };
}

const EMPTY = new Uint8Array(0);
