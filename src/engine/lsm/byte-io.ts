/**
 * Little-endian byte writer and reader for the LSM file formats.
 *
 * Varint: unsigned LEB128, 7 bits per byte, low group first, high bit set on every byte but the last. Values are
 * integers in [0, 2^53), so a varint is at most 8 bytes; the reader rejects longer or larger ones, and a varint
 * that overruns its buffer, as CORRUPTION: these bytes come from storage, never from a trusted caller.
 *
 * u64 fields are two u32 words (low, then high) and hold integers below 2^53, like the log frame's LSN.
 */

import { ErrorCodes, TwillError } from "../../errors.js";

const TWO_32 = 2 ** 32;
const varintBytesMax = 8;

/** A growable output buffer. Capacity doubles, so appending n bytes costs O(n) in total. */
export class ByteWriter {
  private buf: Uint8Array;
  private view: DataView;
  /** Bytes written so far. */
  length = 0;

  constructor(initialBytes = 256) {
    this.buf = new Uint8Array(Math.max(16, initialBytes));
    this.view = new DataView(this.buf.buffer);
  }

  private ensure(extra: number): void {
    const need = this.length + extra;
    if (need <= this.buf.length) return;
    let capacity = this.buf.length * 2;
    while (capacity < need) capacity *= 2;
    const next = new Uint8Array(capacity);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): this {
    this.ensure(1);
    this.buf[this.length++] = v;
    return this;
  }

  u32(v: number): this {
    this.ensure(4);
    this.view.setUint32(this.length, v, true);
    this.length += 4;
    return this;
  }

  /** An integer in [0, 2^53) as two u32 words, low first. */
  u64(v: number): this {
    this.ensure(8);
    this.view.setUint32(this.length, v % TWO_32, true);
    this.view.setUint32(this.length + 4, Math.floor(v / TWO_32), true);
    this.length += 8;
    return this;
  }

  /** An integer in [0, 2^53) as unsigned LEB128. */
  varint(v: number): this {
    this.ensure(varintBytesMax);
    const buf = this.buf;
    let at = this.length;
    if (v < 0x80) {
      buf[at++] = v;
    } else if (v <= 0xffffffff) {
      // Bit operations are exact below 2^32 and much faster than division.
      let x = v >>> 0;
      while (x >= 0x80) {
        buf[at++] = (x & 0x7f) | 0x80;
        x >>>= 7;
      }
      buf[at++] = x;
    } else {
      let x = v;
      while (x >= 0x80) {
        buf[at++] = (x % 0x80) | 0x80;
        x = Math.floor(x / 0x80);
      }
      buf[at++] = x;
    }
    this.length = at;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
    return this;
  }

  /** Bytes [start, end) of `b`, without making a subarray. */
  bytesRange(b: Uint8Array, start: number, end: number): this {
    const n = end - start;
    this.ensure(n);
    const buf = this.buf;
    let at = this.length;
    if (n < 32) {
      for (let i = start; i < end; i++) buf[at++] = b[i]!;
    } else {
      buf.set(b.subarray(start, end), at);
    }
    this.length += n;
    return this;
  }

  /** The bytes written so far, without copying: valid until the next write or `reset`. */
  peek(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }

  /** A copy of exactly the bytes written. The writer stays usable. */
  finish(): Uint8Array {
    return this.buf.slice(0, this.length);
  }

  /** Forgets the contents but keeps the capacity, so a writer reused per block allocates once. */
  reset(): void {
    this.length = 0;
  }
}

/** Bytes of `v` as a varint. */
export function varintBytes(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 0x80);
    n++;
  }
  return n;
}

/** A bounds-checked reader: every overrun is CORRUPTION naming `what`. */
export class ByteReader {
  private readonly view: DataView;
  pos: number;

  constructor(
    readonly bytes: Uint8Array,
    /** What these bytes are, for error messages ("SST sst/0001.sst index block"). */
    readonly what: string,
    start = 0,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = start;
  }

  get remaining(): number {
    return this.bytes.length - this.pos;
  }

  corrupt(reason: string): TwillError {
    return new TwillError(ErrorCodes.Corruption, `${this.what} is corrupt: ${reason}`);
  }

  private need(n: number): void {
    if (this.pos + n > this.bytes.length) {
      throw this.corrupt(`needs ${n} more bytes at byte ${this.pos} but ends at ${this.bytes.length}`);
    }
  }

  u8(): number {
    this.need(1);
    return this.bytes[this.pos++]!;
  }

  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  u64(): number {
    this.need(8);
    const lo = this.view.getUint32(this.pos, true);
    const hi = this.view.getUint32(this.pos + 4, true);
    if (hi >= 2 ** 21) throw this.corrupt(`u64 at byte ${this.pos} is 2^53 or more`);
    this.pos += 8;
    return hi * TWO_32 + lo;
  }

  varint(): number {
    const bytes = this.bytes;
    let result = 0;
    let scale = 1;
    for (let i = 0; i < varintBytesMax; i++) {
      if (this.pos >= bytes.length) throw this.corrupt(`varint runs past the end at byte ${this.pos}`);
      const b = bytes[this.pos++]!;
      result += (b & 0x7f) * scale;
      if (b < 0x80) {
        if (result >= 2 ** 53) throw this.corrupt(`varint ending at byte ${this.pos} is 2^53 or more`);
        return result;
      }
      scale *= 0x80;
    }
    throw this.corrupt(`varint at byte ${this.pos - varintBytesMax} is longer than ${varintBytesMax} bytes`);
  }

  /** `n` bytes as a view into the underlying buffer (no copy). */
  bytesView(n: number): Uint8Array {
    this.need(n);
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  expectEnd(): void {
    if (this.pos !== this.bytes.length)
      throw this.corrupt(`${this.bytes.length - this.pos} unexpected trailing bytes`);
  }
}
