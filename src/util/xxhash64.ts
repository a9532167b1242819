/**
 * XXH64 (Yann Collet's 64-bit xxHash, the reference algorithm), run in WebAssembly, with a BigInt fallback for
 * hosts without WebAssembly (`--jitless`). SST format 4 checksums data and meta blocks with its low 32 bits, as
 * RocksDB's kxxHash64 checksum type does.
 *
 * Why a 64-bit hash for a 32-bit checksum: XXH32 in JavaScript is bound by its dependent 32-bit multiplies (two
 * per 4 bytes, ~1.4 µs per 4 KiB block here, a tenth of a point read that misses the block cache); XXH64 does two
 * 64-bit multiplies per 8 bytes, which JavaScript has no fast way to do but WebAssembly does in one instruction.
 * Copying a block into the module's memory costs a memcpy, far less than the hashing saved: measured here
 * 0.55–0.65 µs per 4 KiB block with the copy, against 1.1–1.4 µs for XXH32 in JavaScript. (Each lane's chain
 * of two dependent multiplies per stripe still bounds it; XXH3 would go further, at several times the code.)
 * XXH64 passes SMHasher, so its low 32 bits detect random damage as any good 32-bit hash does (1 in 2^32).
 *
 * The module is assembled here from its bytes, as src/vector/simd.ts does (no toolchain, no file to load). It
 * exports one memory and four functions; the state of a hash in progress (the four lanes) lives in globals:
 *   init(seed: i32)                       lanes from the seed (taken as an unsigned 32-bit value)
 *   stripes(end: i32)                     the 32-byte stripes of memory[0, end), end a multiple of 32
 *   finish(p, end, total, seed: i32) → i32  merges the lanes (when total >= 32), the tail memory[p, end) and
 *                                         the length `total`; returns the low 32 bits
 *   whole(length, seed: i32) → i32        all three over memory[0, length)
 * Inputs larger than the memory are hashed in chunks of `chunkBytes` (a multiple of 32), so the memory never
 * grows with the input: a block holding a 64 MiB value costs a 64 MiB copy in pieces, never a 64 MiB module.
 */

import { ErrorCodes, TwillError } from "../errors.js";

/** Memory of the module (two 64 KiB pages): inputs up to this size are copied in whole. */
const memoryBytes = 128 * 1024;
/** Chunk of a larger input: a multiple of the 32-byte stripe. */
const chunkBytes = memoryBytes;

const M64 = (1n << 64n) - 1n;
const P1 = 0x9e3779b185ebca87n;
const P2 = 0xc2b2ae3d27d4eb4fn;
const P3 = 0x165667b19e3779f9n;
const P4 = 0x85ebca77c2b2ae63n;
const P5 = 0x27d4eb2f165667c5n;

// ---- the module's bytes ------------------------------------------------------------------------------------------

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

/** Signed LEB128 of a 64-bit constant given as its unsigned value. */
function sleb64(value: bigint): number[] {
  let v = BigInt.asIntN(64, value);
  const out: number[] = [];
  for (;;) {
    const b = Number(v & 0x7fn);
    v >>= 7n;
    const done = (v === 0n && (b & 0x40) === 0) || (v === -1n && (b & 0x40) !== 0);
    out.push(done ? b : b | 0x80);
    if (done) return out;
  }
}

const I32 = 0x7f;
const I64 = 0x7e;
const op = {
  block: 0x02,
  loop: 0x03,
  if: 0x04,
  else: 0x05,
  end: 0x0b,
  br: 0x0c,
  brIf: 0x0d,
  call: 0x10,
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  globalGet: 0x23,
  globalSet: 0x24,
  i64Load: 0x29,
  i64Load8u: 0x31,
  i64Load32u: 0x35,
  i32Const: 0x41,
  i64Const: 0x42,
  i32GeU: 0x4f,
  i32LtU: 0x49,
  i32GtU: 0x4b,
  i32Add: 0x6a,
  i32And: 0x71,
  i64Add: 0x7c,
  i64Sub: 0x7d,
  i64Mul: 0x7e,
  i64Xor: 0x85,
  i64ShrU: 0x88,
  i64Rotl: 0x89,
  i32WrapI64: 0xa7,
  i64ExtendI32u: 0xad,
} as const;
const EMPTY_TYPE = 0x40;

const k64 = (v: bigint): number[] => [op.i64Const, ...sleb64(v)];
const get = (l: number): number[] => [op.localGet, ...uleb(l)];
const set = (l: number): number[] => [op.localSet, ...uleb(l)];
const gget = (g: number): number[] => [op.globalGet, ...uleb(g)];
const gset = (g: number): number[] => [op.globalSet, ...uleb(g)];
/** i64.load at local `p` + `offset` (8-byte aligned: every stripe starts at a multiple of 32). */
const load64 = (p: number, offset: number): number[] => [...get(p), op.i64Load, 3, ...uleb(offset)];

/** lane (local) = rotl(lane + word * P2, 31) * P1, the word at memory[p + offset]. */
const round = (lane: number, p: number, offset: number): number[] => [
  ...get(lane),
  ...load64(p, offset),
  ...k64(P2),
  op.i64Mul,
  op.i64Add,
  ...k64(31n),
  op.i64Rotl,
  ...k64(P1),
  op.i64Mul,
  ...set(lane),
];

/** h (local) = (h ^ round(0, lane)) * P1 + P4, with the lane in local `lane`. */
const mergeRound = (h: number, lane: number): number[] => [
  ...get(h),
  ...get(lane),
  ...k64(P2),
  op.i64Mul,
  ...k64(31n),
  op.i64Rotl,
  ...k64(P1),
  op.i64Mul,
  op.i64Xor,
  ...k64(P1),
  op.i64Mul,
  ...k64(P4),
  op.i64Add,
  ...set(h),
];

// init(seed): globals 0..3 = seed + P1 + P2, seed + P2, seed, seed - P1.
const initBody = [
  ...get(0),
  op.i64ExtendI32u,
  ...k64((P1 + P2) & M64),
  op.i64Add,
  ...gset(0),
  ...get(0),
  op.i64ExtendI32u,
  ...k64(P2),
  op.i64Add,
  ...gset(1),
  ...get(0),
  op.i64ExtendI32u,
  ...gset(2),
  ...get(0),
  op.i64ExtendI32u,
  ...k64(P1),
  op.i64Sub,
  ...gset(3),
];

// stripes(end): param 0 = end; locals 1 = p (i32), 2..5 = lanes (i64).
const stripesBody = [
  ...gget(0),
  ...set(2),
  ...gget(1),
  ...set(3),
  ...gget(2),
  ...set(4),
  ...gget(3),
  ...set(5),
  op.block,
  EMPTY_TYPE,
  op.loop,
  EMPTY_TYPE,
  ...get(1),
  ...get(0),
  op.i32GeU,
  op.brIf,
  1,
  ...round(2, 1, 0),
  ...round(3, 1, 8),
  ...round(4, 1, 16),
  ...round(5, 1, 24),
  ...get(1),
  op.i32Const,
  ...uleb(32),
  op.i32Add,
  ...set(1),
  op.br,
  0,
  op.end,
  op.end,
  ...get(2),
  ...gset(0),
  ...get(3),
  ...gset(1),
  ...get(4),
  ...gset(2),
  ...get(5),
  ...gset(3),
];

// finish(p, end, total, seed) → i32: params 0..3; locals 4 = h (i64), 5 = lane scratch (i64).
const [fP, fEnd, fTotal, fSeed, fH, fLane] = [0, 1, 2, 3, 4, 5];
const finishBody = [
  // h = total >= 32 ? merged lanes : seed + P5
  ...get(fTotal),
  op.i32Const,
  ...uleb(32),
  op.i32GeU,
  op.if,
  EMPTY_TYPE,
  ...gget(0),
  ...k64(1n),
  op.i64Rotl,
  ...gget(1),
  ...k64(7n),
  op.i64Rotl,
  op.i64Add,
  ...gget(2),
  ...k64(12n),
  op.i64Rotl,
  op.i64Add,
  ...gget(3),
  ...k64(18n),
  op.i64Rotl,
  op.i64Add,
  ...set(fH),
  ...gget(0),
  ...set(fLane),
  ...mergeRound(fH, fLane),
  ...gget(1),
  ...set(fLane),
  ...mergeRound(fH, fLane),
  ...gget(2),
  ...set(fLane),
  ...mergeRound(fH, fLane),
  ...gget(3),
  ...set(fLane),
  ...mergeRound(fH, fLane),
  op.else,
  ...get(fSeed),
  op.i64ExtendI32u,
  ...k64(P5),
  op.i64Add,
  ...set(fH),
  op.end,
  // h += total
  ...get(fH),
  ...get(fTotal),
  op.i64ExtendI32u,
  op.i64Add,
  ...set(fH),
  // 8-byte words: while p + 8 <= end
  op.block,
  EMPTY_TYPE,
  op.loop,
  EMPTY_TYPE,
  ...get(fP),
  op.i32Const,
  ...uleb(8),
  op.i32Add,
  ...get(fEnd),
  op.i32GtU,
  op.brIf,
  1,
  ...get(fH),
  ...get(fP),
  op.i64Load,
  0,
  0,
  ...k64(P2),
  op.i64Mul,
  ...k64(31n),
  op.i64Rotl,
  ...k64(P1),
  op.i64Mul,
  op.i64Xor,
  ...k64(27n),
  op.i64Rotl,
  ...k64(P1),
  op.i64Mul,
  ...k64(P4),
  op.i64Add,
  ...set(fH),
  ...get(fP),
  op.i32Const,
  ...uleb(8),
  op.i32Add,
  ...set(fP),
  op.br,
  0,
  op.end,
  op.end,
  // one 4-byte word: if p + 4 <= end
  ...get(fP),
  op.i32Const,
  ...uleb(4),
  op.i32Add,
  ...get(fEnd),
  op.i32GtU,
  op.if,
  EMPTY_TYPE,
  op.else,
  ...get(fH),
  ...get(fP),
  op.i64Load32u,
  0,
  0,
  ...k64(P1),
  op.i64Mul,
  op.i64Xor,
  ...k64(23n),
  op.i64Rotl,
  ...k64(P2),
  op.i64Mul,
  ...k64(P3),
  op.i64Add,
  ...set(fH),
  ...get(fP),
  op.i32Const,
  ...uleb(4),
  op.i32Add,
  ...set(fP),
  op.end,
  // single bytes: while p < end
  op.block,
  EMPTY_TYPE,
  op.loop,
  EMPTY_TYPE,
  ...get(fP),
  ...get(fEnd),
  op.i32GeU,
  op.brIf,
  1,
  ...get(fH),
  ...get(fP),
  op.i64Load8u,
  0,
  0,
  ...k64(P5),
  op.i64Mul,
  op.i64Xor,
  ...k64(11n),
  op.i64Rotl,
  ...k64(P1),
  op.i64Mul,
  ...set(fH),
  ...get(fP),
  op.i32Const,
  ...uleb(1),
  op.i32Add,
  ...set(fP),
  op.br,
  0,
  op.end,
  op.end,
  // avalanche
  ...get(fH),
  ...get(fH),
  ...k64(33n),
  op.i64ShrU,
  op.i64Xor,
  ...k64(P2),
  op.i64Mul,
  op.localTee,
  ...uleb(fH),
  ...get(fH),
  ...k64(29n),
  op.i64ShrU,
  op.i64Xor,
  ...k64(P3),
  op.i64Mul,
  op.localTee,
  ...uleb(fH),
  ...get(fH),
  ...k64(32n),
  op.i64ShrU,
  op.i64Xor,
  op.i32WrapI64,
];

// whole(length, seed) → i32: init(seed); stripes(length & ~31); finish(length & ~31, length, length, seed).
const wholeBody = [
  ...get(1),
  op.call,
  0,
  ...get(0),
  op.i32Const,
  ...sleb32(-32),
  op.i32And,
  op.call,
  1,
  ...get(0),
  op.i32Const,
  ...sleb32(-32),
  op.i32And,
  ...get(0),
  ...get(0),
  ...get(1),
  op.call,
  2,
];

function sleb32(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    const done = (n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0);
    out.push(done ? b : b | 0x80);
    if (done) return out;
  }
}

const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const section = (id: number, content: number[]): number[] => [id, ...uleb(content.length), ...content];
const name = (s: string): number[] => vec([...s].map((c) => [c.charCodeAt(0)]));
/** A code entry: local declarations (count, type) and the body. */
const code = (locals: Array<[number, number]>, body: number[]): number[] => {
  const content = [...vec(locals.map(([n, t]) => [...uleb(n), t])), ...body, op.end];
  return [...uleb(content.length), ...content];
};

function moduleBytes(): Uint8Array {
  const types = [
    [0x60, ...vec([[I32]]), ...vec([])], // 0: (i32) -> ()
    [0x60, ...vec([[I32], [I32], [I32], [I32]]), ...vec([[I32]])], // 1: (i32 x4) -> i32
    [0x60, ...vec([[I32], [I32]]), ...vec([[I32]])], // 2: (i32, i32) -> i32
  ];
  const bytes = [
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, vec(types)),
    ...section(3, vec([[0], [0], [1], [2]])),
    ...section(5, vec([[0x00, ...uleb(memoryBytes / 65536)]])),
    ...section(6, vec(Array.from({ length: 4 }, () => [I64, 0x01, op.i64Const, 0, op.end]))),
    ...section(
      7,
      vec([
        [...name("memory"), 0x02, 0],
        [...name("init"), 0x00, 0],
        [...name("stripes"), 0x00, 1],
        [...name("finish"), 0x00, 2],
        [...name("whole"), 0x00, 3],
      ]),
    ),
    ...section(
      10,
      vec([
        code([], initBody),
        code(
          [
            [1, I32],
            [4, I64],
          ],
          stripesBody,
        ),
        code([[2, I64]], finishBody),
        code([], wholeBody),
      ]),
    ),
  ];
  return new Uint8Array(bytes);
}

interface Kernel {
  memory: Uint8Array;
  init(seed: number): void;
  stripes(end: number): void;
  finish(p: number, end: number, total: number, seed: number): number;
  whole(length: number, seed: number): number;
}

/** The slice of the WebAssembly API used here (the project's TypeScript lib has no DOM types). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: unknown };
}

function instantiate(): Kernel | undefined {
  const wa = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  if (wa === undefined) return undefined;
  try {
    const e = new wa.Instance(new wa.Module(moduleBytes())).exports as {
      memory: { buffer: ArrayBuffer };
    } & Omit<Kernel, "memory">;
    return {
      memory: new Uint8Array(e.memory.buffer),
      init: e.init,
      stripes: e.stripes,
      finish: e.finish,
      whole: e.whole,
    };
  } catch {
    // A host that refuses the module (a restricted embedder): the fallback gives the same values.
    return undefined;
  }
}

const kernel = instantiate();

/**
 * Low 32 bits of XXH64(bytes[0, length), seed), as an unsigned number; the seed is taken modulo 2^32 (as an
 * unsigned value). `bytes` may run past `length` (a pooled buffer).
 */
export function xxhash64Low32(bytes: Uint8Array, length: number, seed: number): number {
  if (!(length >= 0 && length <= bytes.length))
    throw new TwillError(
      ErrorCodes.InvalidArgument,
      `cannot hash ${length} bytes of a ${bytes.length}-byte buffer`,
    );
  if (kernel === undefined) return xxhash64Reference(bytes.subarray(0, length), seed >>> 0);
  const memory = kernel.memory;
  const s = seed | 0;
  if (bytes.length <= memoryBytes) {
    // The whole buffer in one copy (a pooled buffer runs at most a size class past the block): no subarray.
    memory.set(bytes);
    return kernel.whole(length, s) >>> 0;
  }
  kernel.init(s);
  const stripeBytes = length - (length % 32);
  let p = 0;
  while (p < stripeBytes) {
    const n = Math.min(chunkBytes, stripeBytes - p);
    memory.set(bytes.subarray(p, p + n));
    kernel.stripes(n);
    p += n;
  }
  for (let i = 0; p + i < length; i++) memory[i] = bytes[p + i]!;
  return kernel.finish(0, length - p, length, s) >>> 0;
}

/** Whether the WebAssembly kernel is in use (false: the BigInt fallback). */
export const xxhash64Native = kernel !== undefined;

/**
 * Low 32 bits of XXH64(bytes, seed) in BigInt arithmetic, straight from the specification: the fallback where
 * WebAssembly is missing, and the tests' second implementation.
 */
export function xxhash64Reference(bytes: Uint8Array, seed: number): number {
  const s = BigInt(seed >>> 0);
  const n = bytes.length;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const rotl = (x: bigint, r: bigint): bigint => ((x << r) | (x >> (64n - r))) & M64;
  const round = (acc: bigint, input: bigint): bigint => (rotl((acc + input * P2) & M64, 31n) * P1) & M64;
  const merge = (acc: bigint, lane: bigint): bigint => ((acc ^ round(0n, lane)) * P1 + P4) & M64;
  let p = 0;
  let h: bigint;
  if (n >= 32) {
    let v1 = (s + P1 + P2) & M64;
    let v2 = (s + P2) & M64;
    let v3 = s;
    let v4 = (s - P1) & M64;
    for (; p + 32 <= n; p += 32) {
      v1 = round(v1, view.getBigUint64(p, true));
      v2 = round(v2, view.getBigUint64(p + 8, true));
      v3 = round(v3, view.getBigUint64(p + 16, true));
      v4 = round(v4, view.getBigUint64(p + 24, true));
    }
    h = (rotl(v1, 1n) + rotl(v2, 7n) + rotl(v3, 12n) + rotl(v4, 18n)) & M64;
    h = merge(merge(merge(merge(h, v1), v2), v3), v4);
  } else {
    h = (s + P5) & M64;
  }
  h = (h + BigInt(n)) & M64;
  for (; p + 8 <= n; p += 8) h = (rotl(h ^ round(0n, view.getBigUint64(p, true)), 27n) * P1 + P4) & M64;
  if (p + 4 <= n) {
    h = (rotl(h ^ ((BigInt(view.getUint32(p, true)) * P1) & M64), 23n) * P2 + P3) & M64;
    p += 4;
  }
  for (; p < n; p++) h = (rotl(h ^ ((BigInt(bytes[p]!) * P5) & M64), 11n) * P1) & M64;
  h ^= h >> 33n;
  h = (h * P2) & M64;
  h ^= h >> 29n;
  h = (h * P3) & M64;
  h ^= h >> 32n;
  return Number(h & 0xffffffffn);
}
