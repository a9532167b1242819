/**
 * WASM SIMD distance kernels for the HNSW graph, with the plain TypeScript kernels as the fallback.
 *
 * The module is assembled here from its bytes (no toolchain, no file to load). It exports one memory and two
 * functions over it, each `(nb: i32) → f32`:
 *   dot(nb)  = Σ A[i]·B[i]        l2sq(nb) = Σ (A[i] − B[i])²
 * where A is the f32 array at byte 0, B the one at byte `nb`, both `nb / 4` floats long, `nb` a multiple of 32
 * (two f32x4 accumulators per 32-byte step). Vectors of n dimensions are copied into slots of stride
 * ceil(n / 8)·8 floats whose tails stay zero, so padding adds nothing to either sum.
 *
 * Accumulation is in f32 (pgvector also accumulates in float); the graph only compares these distances with each
 * other, and SQL results recompute the operator's distance in float64 (vector-ops.ts).
 *
 * The A slot is sticky: `kernel(a, b)` copies `a` only when it is not the array copied last, so a search (one
 * query against many nodes) or a neighbour selection (one candidate against the kept ones) copies one vector
 * per call. Identity is the token: concurrent searches interleaving at an await simply recopy their query.
 * Measured on the shared 2-core machine at 384 dimensions, copy included: ~150–230 ns per distance against
 * ~540–750 ns for the unrolled TypeScript loop.
 *
 * The graph itself uses a second pair of kernels, `(a, b, nb: i32) → f32` over the arrays at byte offsets a and
 * b (four accumulators, 64 bytes a step, so `nb` a multiple of 64 and arena slots ceil(n / 16)·16 floats), through
 * a `VectorArena`: node vectors are copied into WASM memory once, into a slot of their own, and a
 * distance is then two offsets and the arithmetic (the copy cost ten times the arithmetic at 384 dimensions).
 * The arena is a cache of copies, never the owner of a vector:
 *   - each slot remembers the Float32Array it holds a copy of (`owners[slot]`), and a holder's `slot` is only a
 *     hint that is checked against it on every use, so a slot given to another vector is simply recopied;
 *   - vectors are never modified once they are in a graph (the graph copies what callers hand it), so an
 *     array's copy stays equal to it;
 *   - when the arena is full, slots are reused in FIFO order; eviction costs a copy, never a wrong distance.
 * Slot tails beyond n dimensions stay zero: every vector in one arena has the same n.
 *
 * Two batch kernels `(a, list, count, out, nb) → ()` (dotBatch, l2sqBatch) run the arena kernel of A at byte a
 * against each of `count` vectors whose byte offsets are the i32s at `list`, writing f32 results at `out`, two
 * vectors per pass (bit-identical to the single kernel; see `batchBody`). They serve `VectorSlab`, the vector
 * store of the direct in-memory index (memory-hnsw.ts), whose slots are owned rather than cached, and the
 * arena's `batch` (hnsw.ts's searches). Both keep the list and out regions in the first 8 KiB of their memory,
 * below the vector slots.
 */

import { ErrorCodes, TwillError } from "../errors.js";
import { dot, indexDistance, l2Squared, type Metric } from "./distance.js";

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}

const simd = (op: number) => [0xfd, ...leb(op)];
const V128_LOAD = 0;
const V128_CONST = 12;
const F32X4_EXTRACT_LANE = 31;
const F32X4_ADD = 228;
const F32X4_SUB = 229;
const F32X4_MUL = 230;

/**
 * One kernel body. `at`: the arena form, params (a, b, nb) with A at byte a and B at byte b; otherwise params
 * (nb) with A at 0 and B at nb. Locals after the params: i: i32, acc0, acc1, scratch: v128. `l2` selects (a−b)²
 * over a·b.
 */
function body(l2: boolean, at: boolean): number[] {
  // The arena kernels run the graph's searches: four accumulators (64 bytes a step) keep more loads in flight
  // and halve the loop overhead per float, which needs arena slots of 16-float multiples.
  const U = at ? 4 : 2;
  const P = at ? 3 : 1; // first local after the params
  const I = P;
  const ACC = (j: number) => P + 1 + j;
  const SCRATCH = P + 1 + U;
  const NB = at ? 2 : 0;
  const zero = [...simd(V128_CONST), ...new Array<number>(16).fill(0)];
  const GET = 0x20;
  const SET = 0x21;
  const TEE = 0x22;
  const combine = l2 ? [...simd(F32X4_SUB), TEE, SCRATCH, GET, SCRATCH, ...simd(F32X4_MUL)] : simd(F32X4_MUL);
  // the address of A[i] and of B[i] (i in bytes)
  const addrA = at ? [GET, 0, GET, I, 0x6a] : [GET, I];
  const addrB = at ? [GET, 1, GET, I, 0x6a] : [GET, I, GET, NB, 0x6a];
  // acc += f(A[i + offset], B[i + offset]) over one f32x4 lane group
  const term = (offset: number, acc: number) => [
    ...[GET, acc],
    ...[...addrA, ...simd(V128_LOAD), 4, offset],
    ...[...addrB, ...simd(V128_LOAD), 4, offset],
    ...combine,
    ...simd(F32X4_ADD),
    ...[SET, acc],
  ];
  const lane = (n: number) => [GET, ACC(0), ...simd(F32X4_EXTRACT_LANE), n];
  const init: number[] = [];
  const terms: number[] = [];
  const fold: number[] = [];
  for (let j = 0; j < U; j++) {
    init.push(...zero, SET, ACC(j));
    terms.push(...term(16 * j, ACC(j)));
    if (j > 0) fold.push(GET, ACC(0), GET, ACC(j), ...simd(F32X4_ADD), SET, ACC(0));
  }
  const code = [
    ...[0x02, 0x01, 0x7f, U + 1, 0x7b], // locals: 1 × i32 (i), U + 1 × v128 (the accumulators, scratch)
    ...[...init, 0x41, 0, SET, I], // accumulators = 0; i = 0
    ...[0x03, 0x40], // loop
    ...terms,
    ...[GET, I, 0x41, ...leb128s(16 * U), 0x6a, TEE, I], // i += 16·U (tee: i stays on the stack)
    ...[GET, NB, 0x49, 0x0d, 0], // br_if (i < nb)
    0x0b, // end loop
    ...fold, // acc0 += the others
    ...[...lane(0), ...lane(1), 0x92, ...lane(2), 0x92, ...lane(3), 0x92], // horizontal sum
    0x0b,
  ];
  return [...leb(code.length), ...code];
}

/** A signed LEB128 (i32.const immediates). */
function leb128s(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

function section(id: number, bytes: number[]): number[] {
  return [id, ...leb(bytes.length), ...bytes];
}

/**
 * A batch kernel `(a, list, count, out, nb) → ()`: for j < count, the f32 at out + 4j = the arena kernel of
 * (a, the i32 at list + 4j, nb). One JS → WASM call per expanded node's unvisited neighbours instead of one per
 * distance (the call and the JS around it cost as much as the 384-dim arithmetic), and two vectors at a time:
 * each distance waits on its vector's cache misses, and two independent streams of loads keep twice as many in
 * flight. Each of the pair has its own four accumulators folded exactly as the single kernel folds them, so a
 * batch result is bit-for-bit the arena kernel's (`callee`, function 2: dotAt or 3: l2sqAt, serves an odd last).
 * Params 0..4 as named; locals: 5 j (bytes into list), 6 i (bytes into the vectors), 7 b1, 8 b2, 9 end (count·4),
 * then v128: 10..13 the first's accumulators, 14..17 the second's, 18 the A lanes, 19 scratch.
 */
function batchBody(l2: boolean, callee: number): number[] {
  const GET = 0x20;
  const SET = 0x21;
  const TEE = 0x22;
  const [A, LIST, COUNT, OUT, NB, J, I, B1, B2, END, TA, S] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 18, 19];
  const acc = (pair: number, u: number) => 10 + 4 * pair + u;
  const zero = [...simd(V128_CONST), ...new Array<number>(16).fill(0)];
  const combine = l2 ? [...simd(F32X4_SUB), TEE, S, GET, S, ...simd(F32X4_MUL)] : simd(F32X4_MUL);
  const init: number[] = [];
  const terms: number[] = [];
  for (let u = 0; u < 4; u++) {
    init.push(...zero, SET, acc(0, u), ...zero, SET, acc(1, u));
    terms.push(...[GET, A, GET, I, 0x6a, ...simd(V128_LOAD), 4, 16 * u, SET, TA]);
    for (const [pair, b] of [
      [0, B1],
      [1, B2],
    ] as const) {
      terms.push(
        ...[GET, acc(pair, u), GET, TA],
        ...[GET, b, GET, I, 0x6a, ...simd(V128_LOAD), 4, 16 * u],
        ...combine,
        ...simd(F32X4_ADD),
        ...[SET, acc(pair, u)],
      );
    }
  }
  // acc0 += acc1, += acc2, += acc3, then lane 0 + lane 1 + lane 2 + lane 3: the single kernel's fold.
  const fold = (pair: number) => {
    const out: number[] = [];
    for (let u = 1; u < 4; u++)
      out.push(GET, acc(pair, 0), GET, acc(pair, u), ...simd(F32X4_ADD), SET, acc(pair, 0));
    const lane = (n: number) => [GET, acc(pair, 0), ...simd(F32X4_EXTRACT_LANE), n];
    out.push(...lane(0), ...lane(1), 0x92, ...lane(2), 0x92, ...lane(3), 0x92);
    return out;
  };
  // When another pair follows, load (and drop) the first two cache lines of both its vectors: WASM has no
  // prefetch, and this pair's ~1,000 instructions hide their misses from the out-of-order core otherwise.
  const touch = (entry: number, line: number) => [
    ...[GET, LIST, GET, J, 0x6a, 0x28, 2, entry, ...simd(V128_LOAD), 4, ...leb(line), 0x1a],
  ];
  const touchNext = [
    ...[GET, J, 0x41, 12, 0x6a, GET, END, 0x49, 0x04, 0x40], // if (j + 12 < end)
    ...touch(8, 0),
    ...touch(8, 64),
    ...touch(12, 0),
    ...touch(12, 64),
    0x0b,
  ];
  const code = [
    ...[0x02, 0x05, 0x7f, 0x0a, 0x7b], // locals: 5 × i32, 10 × v128
    ...[GET, COUNT, 0x41, 2, 0x74, SET, END], // end = count << 2
    ...[0x02, 0x40], // block (the tail)
    ...[0x03, 0x40], // loop over pairs
    ...[GET, J, 0x41, 4, 0x6a, GET, END, 0x4f, 0x0d, 1], // br_if (j + 4 ≥ end) to the tail
    ...[GET, LIST, GET, J, 0x6a, 0x28, 2, 0, SET, B1], // b1 = list[j]
    ...[GET, LIST, GET, J, 0x6a, 0x28, 2, 4, SET, B2], // b2 = list[j + 1]
    ...touchNext,
    ...[...init, 0x41, 0, SET, I],
    ...[0x03, 0x40], // loop over the vectors' 64-byte steps
    ...terms,
    ...[GET, I, 0x41, ...leb128s(64), 0x6a, TEE, I, GET, NB, 0x49, 0x0d, 0], // i += 64; br_if (i < nb)
    0x0b,
    ...[GET, OUT, GET, J, 0x6a, ...fold(0), 0x38, 2, 0], // out[j]
    ...[GET, OUT, GET, J, 0x6a, ...fold(1), 0x38, 2, 4], // out[j + 1]
    ...[GET, J, 0x41, 8, 0x6a, SET, J, 0x0c, 0], // j += 8; br to the pairs
    ...[0x0b, 0x0b], // end loop, block
    ...[GET, J, GET, END, 0x49, 0x04, 0x40], // if (j < end): the odd last one
    ...[
      GET,
      OUT,
      GET,
      J,
      0x6a,
      GET,
      A,
      GET,
      LIST,
      GET,
      J,
      0x6a,
      0x28,
      2,
      0,
      GET,
      NB,
      0x10,
      callee,
      0x38,
      2,
      0,
    ],
    ...[0x0b, 0x0b], // end if, function
  ];
  return [...leb(code.length), ...code];
}

function moduleBytes(): Uint8Array {
  const name = (s: string) => [s.length, ...Array.from(s, (c) => c.charCodeAt(0))];
  const exports = [
    ...[7, ...name("mem"), 2, 0, ...name("dot"), 0, 0, ...name("l2sq"), 0, 1],
    ...[...name("dotAt"), 0, 2, ...name("l2sqAt"), 0, 3],
    ...[...name("dotBatch"), 0, 4, ...name("l2sqBatch"), 0, 5],
  ];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0], // magic, version 1
    // type 0: (i32) → f32; type 1: (i32, i32, i32) → f32; type 2: (i32 × 5) → ()
    ...section(1, [
      3,
      ...[0x60, 1, 0x7f, 1, 0x7d],
      ...[0x60, 3, 0x7f, 0x7f, 0x7f, 1, 0x7d],
      ...[0x60, 5, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0],
    ]),
    ...section(3, [6, 0, 0, 1, 1, 2, 2]), // dot, l2sq: type 0; dotAt, l2sqAt: type 1; the batches: type 2
    ...section(5, [1, 0, 1]), // one memory, min 1 page
    ...section(7, exports),
    ...section(10, [
      6,
      ...body(false, false),
      ...body(true, false),
      ...body(false, true),
      ...body(true, true),
      ...batchBody(false, 2),
      ...batchBody(true, 3),
    ]),
  ]);
}

/** The slice of the WebAssembly API used here (the project's TypeScript lib has no DOM types). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: unknown };
}

interface Instance {
  mem: WasmMemory;
  dot: (nb: number) => number;
  l2sq: (nb: number) => number;
  dotAt: (a: number, b: number, nb: number) => number;
  l2sqAt: (a: number, b: number, nb: number) => number;
  dotBatch: (a: number, list: number, count: number, out: number, nb: number) => void;
  l2sqBatch: (a: number, list: number, count: number, out: number, nb: number) => void;
}

let compiled: { wa: WasmApi; module: object } | null | undefined;

/** A fresh instance (its own memory) of the kernel module, or undefined without WebAssembly SIMD. */
function instantiate(): Instance | undefined {
  try {
    if (compiled === undefined) {
      const wa = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
      const bytes = moduleBytes();
      compiled = wa?.validate(bytes) ? { wa, module: new wa.Module(bytes) } : null;
    }
    if (compiled === null) return undefined;
    const inst = new compiled.wa.Instance(compiled.module);
    const e = inst.exports as unknown as Instance;
    return {
      mem: e.mem,
      dot: e.dot,
      l2sq: e.l2sq,
      dotAt: e.dotAt,
      l2sqAt: e.l2sqAt,
      dotBatch: e.dotBatch,
      l2sqBatch: e.l2sqBatch,
    };
  } catch {
    compiled = null;
    return undefined; // no WebAssembly or no SIMD: the TypeScript kernels serve
  }
}

class SimdKernels {
  private view: Float32Array;
  private dims = -1;
  private stride = 0;
  private a: Float32Array | undefined;

  constructor(private readonly w: Instance) {
    this.view = new Float32Array(w.mem.buffer);
  }

  private configure(n: number): void {
    const stride = Math.ceil(n / 8) * 8;
    const need = 8 * stride;
    if (need > this.w.mem.buffer.byteLength)
      this.w.mem.grow(Math.ceil((need - this.w.mem.buffer.byteLength) / 65536));
    this.view = new Float32Array(this.w.mem.buffer);
    this.view.fill(0, 0, 2 * stride);
    this.dims = n;
    this.stride = stride;
    this.a = undefined;
  }

  private load(a: Float32Array, b: Float32Array): number {
    if (a.length !== this.dims) this.configure(a.length);
    if (a !== this.a) {
      this.view.set(a, 0);
      this.a = a;
    }
    this.view.set(b, this.stride);
    return this.stride * 4;
  }

  dot = (a: Float32Array, b: Float32Array): number => this.w.dot(this.load(a, b));
  l2sq = (a: Float32Array, b: Float32Array): number => this.w.l2sq(this.load(a, b));
}

let shared: SimdKernels | null | undefined;

function kernels(): SimdKernels | null {
  if (shared === undefined) {
    const w = instantiate();
    shared = w ? new SimdKernels(w) : null;
  }
  return shared;
}

/** Whether the WASM SIMD kernels are in use (false: the TypeScript ones). */
export function simdAvailable(): boolean {
  return kernels() !== null;
}

/**
 * The graph distance of `metric` (as `indexDistance`), on WASM SIMD when available. Cheapest when the first
 * argument repeats across calls.
 */
export function graphDistance(metric: Metric): (a: Float32Array, b: Float32Array) => number {
  const k = kernels();
  if (!k) return indexDistance(metric);
  switch (metric) {
    case "l2":
      return k.l2sq;
    case "cosine":
      return (a, b) => 1 - k.dot(a, b);
    case "ip":
      return (a, b) => -k.dot(a, b);
  }
}

// Re-exported for tests comparing the two implementations.
export { dot as dotTs, l2Squared as l2SquaredTs };

// ---- the arena: vectors resident in WASM memory ----------------------------------------------------------------

/**
 * Entries of a batch list: more than any node's links (2M ≤ 200) or a pruned list plus one. The arena and the
 * slab keep the list region (i32 byte offsets) and the out region (f32 results) below their vector slots.
 */
export const SLAB_BATCH_MAX = 1024;
const SLAB_LIST = 0;
const SLAB_OUT = 4 * SLAB_BATCH_MAX;
const SLAB_HEADER = 8 * SLAB_BATCH_MAX;

/** Something with a vector and an arena slot hint (an HNSW node, or a search's query). */
export interface ArenaHolder {
  readonly vector: Float32Array;
  /** The slot last holding a copy of `vector` in the arena, or −1; checked on every use. */
  slot: number;
  /**
   * The arena epoch in which `slot` was checked or loaded (0: none). While it equals the arena's epoch the hint
   * is trusted without reading the slot's owner, so copy it only together with `slot` onto a holder of the same
   * vector (a node's next version).
   */
  epoch: number;
}

/** Epochs come from one counter, so one arena's epoch never equals another's and a foreign hint is never trusted. */
let lastEpoch = 0;

/** A distance between two holders' vectors in one graph's metric. */
export interface GraphKernel {
  distance(a: ArenaHolder, b: ArenaHolder): number;
  /**
   * out[j] = distance(a, bs[j]) for j < count, bit-identical to `distance`, in one WASM call when the arena can
   * hold them all at once (a search's distances from its query to one expanded node's unvisited neighbours).
   */
  distances(a: ArenaHolder, bs: readonly ArenaHolder[], count: number, out: Float64Array): void;
  /** Gives back the slot of a holder that is done (a search's query), so queries do not churn the arena. */
  release(h: ArenaHolder): void;
}

/** Upper bound of one arena's WASM memory; beyond it slots are reused (FIFO). */
export const ARENA_BYTES_MAX = 256 * 1024 * 1024;
const PAGE = 65536;

/** Vectors of one dimension count resident in one WASM instance's memory (see the header). */
export class VectorArena {
  readonly stride: number;
  private readonly strideBytes: number;
  private view: Float32Array;
  private list: Int32Array;
  private out: Float32Array;
  /** Slot numbers of a batch, gathered before any is written to `list` (a load may grow the memory). */
  private readonly batchSlots = new Int32Array(SLAB_BATCH_MAX);
  private readonly owners: (Float32Array | undefined)[] = [];
  private capacity: number;
  private readonly maxSlots: number;
  private next = 0;
  private readonly free: number[] = [];
  /**
   * Changes whenever a slot is given to another vector while a hint may still name it (the FIFO reuse of a
   * full arena). Slots freed by `release` are reused without a change: the released holder was their only
   * hint. Reading a node's owner entry was a cache miss per visited node in a search.
   */
  private epoch = ++lastEpoch;
  /** Vectors copied in so far (a search over resident nodes copies only its query): for profiles and tests. */
  copies = 0;

  constructor(
    private readonly w: Instance,
    readonly dims: number,
    bytesMax = ARENA_BYTES_MAX,
  ) {
    this.stride = Math.ceil(dims / 16) * 16; // the arena kernels step 16 floats
    this.strideBytes = this.stride * 4;
    // At least a few slots, so the two operands of one distance never evict each other.
    this.maxSlots = Math.max(8, Math.floor(bytesMax / this.strideBytes));
    if (w.mem.buffer.byteLength < SLAB_HEADER + 8 * this.strideBytes)
      w.mem.grow(Math.ceil((SLAB_HEADER + 8 * this.strideBytes - w.mem.buffer.byteLength) / PAGE));
    this.capacity = Math.min(this.maxSlots, this.slotsIn(w.mem.buffer.byteLength));
    this.view = new Float32Array(w.mem.buffer);
    this.list = new Int32Array(w.mem.buffer, SLAB_LIST, SLAB_BATCH_MAX);
    this.out = new Float32Array(w.mem.buffer, SLAB_OUT, SLAB_BATCH_MAX);
  }

  /** Slots of `bytes` of memory: the batch regions come first. */
  private slotsIn(bytes: number): number {
    return Math.floor((bytes - SLAB_HEADER) / this.strideBytes);
  }

  /** The byte offset of slot s. */
  private at(s: number): number {
    return SLAB_HEADER + s * this.strideBytes;
  }

  /** How many slots exist now (grows up to the byte bound). */
  get slots(): number {
    return this.capacity;
  }

  /** The slot holding a copy of `h.vector`, copying it in when the hint is stale. */
  slotOf(h: ArenaHolder): number {
    if (h.epoch === this.epoch) return h.slot;
    const s = h.slot;
    if (s >= 0 && this.owners[s] === h.vector) {
      h.epoch = this.epoch;
      return s;
    }
    return this.load(h);
  }

  private load(h: ArenaHolder): number {
    let s = this.free.pop();
    if (s === undefined) {
      if (this.next >= this.capacity) {
        if (this.capacity < this.maxSlots) this.grow();
        else this.next = 0; // full: reuse the oldest slot
      }
      s = this.next++;
      // Another vector's copy is overwritten: every hint must be checked against its owner again.
      if (this.owners[s] !== undefined) this.epoch = ++lastEpoch;
    }
    this.view.set(h.vector, this.at(s) >> 2);
    this.copies++;
    this.owners[s] = h.vector;
    h.slot = s;
    h.epoch = this.epoch;
    return s;
  }

  private grow(): void {
    const want = Math.min(this.maxSlots, Math.max(64, this.capacity * 2));
    const bytes = this.at(want);
    const have = this.w.mem.buffer.byteLength;
    if (bytes > have) this.w.mem.grow(Math.ceil((bytes - have) / PAGE));
    this.view = new Float32Array(this.w.mem.buffer);
    this.list = new Int32Array(this.w.mem.buffer, SLAB_LIST, SLAB_BATCH_MAX);
    this.out = new Float32Array(this.w.mem.buffer, SLAB_OUT, SLAB_BATCH_MAX);
    this.capacity = Math.min(this.maxSlots, this.slotsIn(this.w.mem.buffer.byteLength));
  }

  /**
   * Frees `h`'s slot for the next copy; `h` must not be used with this arena again, and no other holder may
   * carry its hint (a search's private query).
   */
  release(h: ArenaHolder): void {
    const s = h.slot;
    if (s >= 0 && this.owners[s] === h.vector) {
      this.owners[s] = undefined;
      this.free.push(s);
    }
    h.slot = -1;
    h.epoch = 0;
  }

  /** The byte offsets of both holders' copies (re-checking `a`: loading `b` may have reused its slot). */
  private pair(a: ArenaHolder, b: ArenaHolder, k: (x: number, y: number, nb: number) => number): number {
    let sa = this.slotOf(a);
    const sb = this.slotOf(b);
    if (a.epoch !== this.epoch) sa = this.slotOf(a);
    return k(this.at(sa), this.at(sb), this.strideBytes);
  }

  /**
   * raw[j] = the kernel (dot, or l2sq when `l2`) of a and bs[j], j < count, into `raw`: one WASM call when no slot
   * was reused while gathering them (then every gathered slot still holds its vector), else one call per pair.
   */
  batch(a: ArenaHolder, bs: readonly ArenaHolder[], count: number, l2: boolean, raw: Float64Array): void {
    const epoch = this.epoch;
    const slots = this.batchSlots;
    let sa = -1;
    if (count <= SLAB_BATCH_MAX) {
      sa = this.slotOf(a);
      for (let j = 0; j < count; j++) slots[j] = this.slotOf(bs[j]!);
    }
    if (sa < 0 || this.epoch !== epoch || a.epoch !== epoch) {
      const k = l2 ? this.w.l2sqAt : this.w.dotAt;
      for (let j = 0; j < count; j++) raw[j] = this.pair(a, bs[j]!, k);
      return;
    }
    const list = this.list;
    for (let j = 0; j < count; j++) list[j] = this.at(slots[j]!);
    (l2 ? this.w.l2sqBatch : this.w.dotBatch)(this.at(sa), SLAB_LIST, count, SLAB_OUT, this.strideBytes);
    const out = this.out;
    for (let j = 0; j < count; j++) raw[j] = out[j]!;
  }

  dot(a: ArenaHolder, b: ArenaHolder): number {
    return this.pair(a, b, this.w.dotAt);
  }

  l2sq(a: ArenaHolder, b: ArenaHolder): number {
    return this.pair(a, b, this.w.l2sqAt);
  }
}

const arenas = new Map<number, VectorArena | null>();

/** The shared arena for vectors of `dims` dimensions, or null without WebAssembly SIMD. */
export function arenaFor(dims: number): VectorArena | null {
  let a = arenas.get(dims);
  if (a === undefined) {
    const w = instantiate();
    a = w ? new VectorArena(w, dims) : null;
    arenas.set(dims, a);
  }
  return a;
}

/** A private arena with its own byte bound (tests of slot reuse). */
export function newArena(dims: number, bytesMax: number): VectorArena | null {
  const w = instantiate();
  return w ? new VectorArena(w, dims, bytesMax) : null;
}

const sharedKernels = new Map<string, GraphKernel>();

/**
 * The graph kernel of `metric` for vectors of `dims` dimensions: on the arena when WebAssembly SIMD is there,
 * else the TypeScript kernels on the holders' arrays. Every vector given to one kernel must have `dims` floats.
 * Over the shared arena there is one kernel per metric and dimension count: the SQL layer makes a graph per
 * statement, and fresh closures per insert and per query left the search loop's distance call megamorphic.
 */
export function graphKernel(metric: Metric, dims: number, arena?: VectorArena | null): GraphKernel {
  if (arena !== undefined) return makeKernel(metric, arena);
  const key = `${metric}:${dims}`;
  let k = sharedKernels.get(key);
  if (k === undefined) {
    k = makeKernel(metric, arenaFor(dims));
    sharedKernels.set(key, k);
  }
  return k;
}

function makeKernel(metric: Metric, arena: VectorArena | null): GraphKernel {
  if (!arena) {
    const f = indexDistance(metric);
    return {
      distance: (a, b) => f(a.vector, b.vector),
      distances: (a, bs, count, out) => {
        for (let j = 0; j < count; j++) out[j] = f(a.vector, bs[j]!.vector);
      },
      release: () => {},
    };
  }
  const release = (h: ArenaHolder) => arena.release(h);
  switch (metric) {
    case "l2":
      return {
        distance: (a, b) => arena.l2sq(a, b),
        distances: (a, bs, count, out) => arena.batch(a, bs, count, true, out),
        release,
      };
    case "cosine":
      return {
        distance: (a, b) => 1 - arena.dot(a, b),
        distances: (a, bs, count, out) => {
          arena.batch(a, bs, count, false, out);
          for (let j = 0; j < count; j++) out[j] = 1 - out[j]!;
        },
        release,
      };
    case "ip":
      return {
        distance: (a, b) => -arena.dot(a, b),
        distances: (a, bs, count, out) => {
          arena.batch(a, bs, count, false, out);
          for (let j = 0; j < count; j++) out[j] = -out[j]!;
        },
        release,
      };
  }
}

// ---- the slab: a graph's own vectors, slot = handle ------------------------------------------------------------

/** WebAssembly memory is 32-bit: a slab's memory cannot exceed 4 GiB (65,536 pages). */
const WASM_PAGES_MAX = 65536;

/**
 * The vectors of one in-memory graph (memory-hnsw.ts) in a WASM memory of their own. Unlike the shared arena it
 * is their owner, not a cache: vector h lives at byte `nodeBase + h · strideBytes` for the graph's life, so the
 * search loop turns a handle into an operand by arithmetic (no holder object, no slot hint, no epoch to read per
 * visited node). Layout of the memory:
 *   [0, 4·B)          list: i32 byte offsets of a batch's second operands (B = SLAB_BATCH_MAX)
 *   [4·B, 8·B)        out: the batch's f32 results
 *   [8·B, +stride)    the scratch slot (the query of the running search or insert)
 *   nodeBase + h·s    vector h (s = strideBytes = ceil(dims / 16) · 64; tails beyond dims stay zero)
 * `raw` and `batch` return the kernel's raw value (a·b, or Σ(a − b)² for l2) in f32, exactly the value the
 * arena kernel gives for the same two vectors. Without WebAssembly SIMD the same layout lives in an ArrayBuffer
 * and the TypeScript kernels serve.
 */
export class VectorSlab {
  readonly stride: number;
  readonly strideBytes: number;
  readonly scratch = SLAB_HEADER;
  readonly nodeBase: number;
  /** Views of the memory; replaced when it grows (only `ensure` grows it). */
  f32!: Float32Array;
  list!: Int32Array;
  out!: Float32Array;
  private readonly w: Instance | undefined;
  private buf: ArrayBuffer | undefined;
  private readonly batchFn:
    | ((a: number, list: number, count: number, out: number, nb: number) => void)
    | undefined;
  private readonly rawFn: ((a: number, b: number, nb: number) => number) | undefined;
  private readonly l2: boolean;
  private nodes = 0;

  constructor(
    readonly dims: number,
    metric: Metric,
  ) {
    this.stride = Math.ceil(dims / 16) * 16;
    this.strideBytes = this.stride * 4;
    this.nodeBase = SLAB_HEADER + this.strideBytes;
    this.l2 = metric === "l2";
    this.w = instantiate();
    if (this.w) {
      this.batchFn = this.l2 ? this.w.l2sqBatch : this.w.dotBatch;
      this.rawFn = this.l2 ? this.w.l2sqAt : this.w.dotAt;
    }
    this.ensure(64);
  }

  private bytes(): number {
    return this.w ? this.w.mem.buffer.byteLength : (this.buf?.byteLength ?? 0);
  }

  /** Room for vectors 0..n−1 (grows by doubling; copies nothing when WASM memory grows in place). */
  ensure(n: number): void {
    if (n <= this.nodes && this.f32 !== undefined) return;
    const want = Math.max(n, 2 * this.nodes, 64);
    const need = this.nodeBase + want * this.strideBytes;
    const have = this.bytes();
    if (need > have) {
      const pages = Math.ceil((need - have) / PAGE);
      if (this.w) {
        if (have / PAGE + pages > WASM_PAGES_MAX) this.full(n);
        try {
          this.w.mem.grow(pages);
        } catch {
          this.full(n);
        }
      } else {
        const next = new ArrayBuffer(have + pages * PAGE);
        if (this.buf) new Uint8Array(next).set(new Uint8Array(this.buf));
        this.buf = next;
      }
    }
    const buffer = this.w ? this.w.mem.buffer : this.buf!;
    this.f32 = new Float32Array(buffer);
    this.list = new Int32Array(buffer, SLAB_LIST, SLAB_BATCH_MAX);
    this.out = new Float32Array(buffer, SLAB_OUT, SLAB_BATCH_MAX);
    this.nodes = Math.floor((buffer.byteLength - this.nodeBase) / this.strideBytes);
  }

  private full(n: number): never {
    throw new TwillError(
      ErrorCodes.Unsupported,
      `feature not supported: an in-memory HNSW graph of ${n} vectors of ${this.dims} dimensions (more than the 4 GiB of one WebAssembly memory)`,
    );
  }

  /** Copies `v` into the slot at byte `at` (a node's, or the scratch slot). */
  write(at: number, v: Float32Array): void {
    this.f32.set(v, at >> 2);
  }

  /** The raw kernel value between the vectors at bytes a and b. */
  raw(a: number, b: number): number {
    if (this.rawFn) return this.rawFn(a, b, this.strideBytes);
    const x = this.f32.subarray(a >> 2, (a >> 2) + this.dims);
    const y = this.f32.subarray(b >> 2, (b >> 2) + this.dims);
    return Math.fround(this.l2 ? l2Squared(x, y) : dot(x, y));
  }

  /** out[j] = raw(a, list[j]) for j < count (count ≤ SLAB_BATCH_MAX). */
  batch(a: number, count: number): void {
    if (this.batchFn) {
      this.batchFn(a, SLAB_LIST, count, SLAB_OUT, this.strideBytes);
      return;
    }
    for (let j = 0; j < count; j++) this.out[j] = this.raw(a, this.list[j]!);
  }
}
