/**
 * Log frame and batch formats, shared by the file:// and s3:// logs.
 *
 * Frame (little-endian), 20-byte header then payload:
 *   0  u32  magic 0x464c5754 ("TWLF")
 *   4  u32  payload length (<= StorageLimits.frameBytesMax)
 *   8  u32  lsn, low 32 bits
 *   12 u32  lsn, high 21 bits (LSNs stay below 2^53)
 *   16 u32  CRC-32C over bytes 4..16 of the header and then the payload
 *   20 ...  payload
 *
 * Batch (s3:// stores one group-commit append as one object), 20-byte header then frames back to back:
 *   0  u32  magic 0x424c5754 ("TWLB")
 *   4  u32  format version (1)
 *   8  u32  frame count (>= 1)
 *   12 u32  first lsn, low 32 bits
 *   16 u32  first lsn, high bits
 *
 * Invariants: frames in a log have consecutive LSNs; a frame is valid only if its magic, length and CRC check and
 * its LSN is the one expected next. Recovery stops at the first invalid frame: if no valid frame follows it, it is
 * a torn tail (dropped); if one does, the log is corrupt in the middle (an error naming the position).
 */

import { ErrorCodes, TwillError } from "../errors.js";
import { crc32c, crc32cRange } from "./crc32c.js";
import type { LogFrame } from "./types.js";
import { StorageLimits } from "./types.js";

export const FRAME_MAGIC = 0x464c5754;
export const BATCH_MAGIC = 0x424c5754;
export const FRAME_HEADER_BYTES = 20;
export const BATCH_HEADER_BYTES = 20;
const BATCH_VERSION = 1;
const TWO_32 = 2 ** 32;

function writeLsn(view: DataView, at: number, lsn: number): void {
  view.setUint32(at, lsn % TWO_32, true);
  view.setUint32(at + 4, Math.floor(lsn / TWO_32), true);
}

function readLsn(view: DataView, at: number): number {
  return view.getUint32(at, true) + view.getUint32(at + 4, true) * TWO_32;
}

export function encodedFrameBytes(frames: readonly Uint8Array[]): number {
  let total = 0;
  for (const f of frames) total += FRAME_HEADER_BYTES + f.length;
  return total;
}

/** The 20-byte header of the frame holding `payload` at `lsn` (what `encodeFramesInto` puts before it). */
export function encodeFrameHeader(lsn: number, payload: Uint8Array): Uint8Array {
  const header = new Uint8Array(FRAME_HEADER_BYTES);
  const view = new DataView(header.buffer);
  view.setUint32(0, FRAME_MAGIC, true);
  view.setUint32(4, payload.length, true);
  writeLsn(view, 8, lsn);
  view.setUint32(16, crc32c(payload, crc32c(header.subarray(4, 16))), true);
  return header;
}

/**
 * Encodes frames with LSNs firstLsn, firstLsn+1, … into `out` at `at`; returns the offset after them. `words`, if
 * given, views all of `out.buffer` as int32s from byte 0 (see `crc32cRange`): the checksums then make no views;
 * `outView`, if given, is a DataView of exactly `out`, for a caller that encodes into one buffer many times.
 */
export function encodeFramesInto(
  out: Uint8Array,
  at: number,
  firstLsn: number,
  frames: readonly Uint8Array[],
  words?: Int32Array,
  outView?: DataView,
): number {
  const view = outView ?? new DataView(out.buffer, out.byteOffset, out.byteLength);
  let pos = at;
  let lsn = firstLsn;
  for (const payload of frames) {
    const n = payload.length;
    view.setUint32(pos, FRAME_MAGIC, true);
    view.setUint32(pos + 4, n, true);
    writeLsn(view, pos + 8, lsn);
    const body = pos + FRAME_HEADER_BYTES;
    // Short payloads by a loop: V8 runs it faster than a `set` call.
    if (n <= 64) for (let i = 0; i < n; i++) out[body + i] = payload[i]!;
    else out.set(payload, body);
    if (words === undefined) {
      const headerCrc = crc32c(out.subarray(pos + 4, pos + 16));
      view.setUint32(pos + 16, crc32c(payload, headerCrc), true);
    } else {
      // Header fields, then the payload's copy: one pass over `out`, the same CRC.
      view.setUint32(
        pos + 16,
        crc32cRange(out, body, body + n, crc32cRange(out, pos + 4, pos + 16, 0, words), words),
        true,
      );
    }
    pos = body + n;
    lsn++;
  }
  return pos;
}

export function encodeFrames(firstLsn: number, frames: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(encodedFrameBytes(frames));
  encodeFramesInto(out, 0, firstLsn, frames);
  return out;
}

export type FrameCheck = { ok: true; frame: LogFrame; end: number } | { ok: false; reason: string };

/**
 * Checks the frame at `at`. `expectedLsn` undefined accepts any LSN (used when scanning for a valid frame after a
 * bad one). The payload is a view into `buf`, not a copy.
 */
export function checkFrame(buf: Uint8Array, at: number, expectedLsn: number | undefined): FrameCheck {
  if (buf.length - at < FRAME_HEADER_BYTES) return { ok: false, reason: "incomplete frame header" };
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (view.getUint32(at, true) !== FRAME_MAGIC) return { ok: false, reason: "bad frame magic" };
  const length = view.getUint32(at + 4, true);
  if (length > StorageLimits.frameBytesMax)
    return { ok: false, reason: `frame length ${length} over the limit` };
  const end = at + FRAME_HEADER_BYTES + length;
  if (end > buf.length) return { ok: false, reason: "frame runs past the end of the log" };
  const lsn = readLsn(view, at + 8);
  const payload = buf.subarray(at + FRAME_HEADER_BYTES, end);
  const crc = crc32c(payload, crc32c(buf.subarray(at + 4, at + 16)));
  if (crc !== view.getUint32(at + 16, true)) return { ok: false, reason: "frame checksum mismatch" };
  if (expectedLsn !== undefined && lsn !== expectedLsn) {
    return { ok: false, reason: `frame has lsn ${lsn}, expected ${expectedLsn}` };
  }
  return { ok: true, frame: { lsn, data: payload }, end };
}

/** Offset of the first valid frame that starts after `from`, or -1. Used to tell a torn tail from corruption. */
export function findValidFrameAfter(buf: Uint8Array, from: number): number {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  for (let at = from + 1; at + FRAME_HEADER_BYTES <= buf.length; at++) {
    if (view.getUint32(at, true) === FRAME_MAGIC && checkFrame(buf, at, undefined).ok) return at;
  }
  return -1;
}

export function encodeBatch(firstLsn: number, frames: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(BATCH_HEADER_BYTES + encodedFrameBytes(frames));
  const view = new DataView(out.buffer);
  view.setUint32(0, BATCH_MAGIC, true);
  view.setUint32(4, BATCH_VERSION, true);
  view.setUint32(8, frames.length, true);
  writeLsn(view, 12, firstLsn);
  encodeFramesInto(out, BATCH_HEADER_BYTES, firstLsn, frames);
  return out;
}

/** Decodes a whole batch object; any defect is CORRUPTION naming `where`, because object writes are atomic. */
export function decodeBatch(buf: Uint8Array, where: string): { firstLsn: number; frames: LogFrame[] } {
  const corrupt = (reason: string) =>
    new TwillError(ErrorCodes.Corruption, `log batch ${where} is corrupt: ${reason}`, {
      hint: "the object was damaged or written by something else; restore it from a backup or remove the log",
    });
  if (buf.length < BATCH_HEADER_BYTES) throw corrupt("shorter than its header");
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (view.getUint32(0, true) !== BATCH_MAGIC) throw corrupt("bad magic");
  if (view.getUint32(4, true) !== BATCH_VERSION) throw corrupt(`unknown version ${view.getUint32(4, true)}`);
  const count = view.getUint32(8, true);
  const firstLsn = readLsn(view, 12);
  if (count < 1 || count > StorageLimits.appendFramesMax) throw corrupt(`bad frame count ${count}`);
  const frames: LogFrame[] = [];
  let at = BATCH_HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    const check = checkFrame(buf, at, firstLsn + i);
    if (!check.ok) throw corrupt(`frame ${i} at byte ${at}: ${check.reason}`);
    frames.push(check.frame);
    at = check.end;
  }
  if (at !== buf.length) throw corrupt(`${buf.length - at} trailing bytes after the last frame`);
  return { firstLsn, frames };
}
