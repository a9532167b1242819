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
 */

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

/** One kernel body: params (nb), locals i: i32, acc0, acc1: v128. `l2` selects (a−b)² over a·b. */
function body(l2: boolean): number[] {
  const zero = [...simd(V128_CONST), ...new Array<number>(16).fill(0)];
  const GET = 0x20;
  const SET = 0x21;
  const TEE = 0x22;
  const combine = l2 ? [...simd(F32X4_SUB), TEE, 4, GET, 4, ...simd(F32X4_MUL)] : simd(F32X4_MUL);
  // acc += f(A[i + offset], B[i + offset]) over one f32x4 lane group
  const term = (offset: number, acc: number) => [
    ...[GET, acc],
    ...[GET, 1, ...simd(V128_LOAD), 4, offset],
    ...[GET, 1, GET, 0, 0x6a, ...simd(V128_LOAD), 4, offset],
    ...combine,
    ...simd(F32X4_ADD),
    ...[SET, acc],
  ];
  const lane = (n: number) => [GET, 2, ...simd(F32X4_EXTRACT_LANE), n];
  const code = [
    ...[0x02, 0x01, 0x7f, 0x03, 0x7b], // locals: 1 × i32 (i), 3 × v128 (acc0, acc1, scratch)
    ...[...zero, SET, 2, ...zero, SET, 3, 0x41, 0, SET, 1], // acc0 = acc1 = 0; i = 0
    ...[0x03, 0x40], // loop
    ...term(0, 2),
    ...term(16, 3),
    ...[GET, 1, 0x41, 32, 0x6a, TEE, 1], // i += 32 (tee: i stays on the stack)
    ...[GET, 0, 0x49, 0x0d, 0], // br_if (i < nb)
    0x0b, // end loop
    ...[GET, 2, GET, 3, ...simd(F32X4_ADD), SET, 2], // acc0 += acc1
    ...[...lane(0), ...lane(1), 0x92, ...lane(2), 0x92, ...lane(3), 0x92], // horizontal sum
    0x0b,
  ];
  return [...leb(code.length), ...code];
}

function section(id: number, bytes: number[]): number[] {
  return [id, ...leb(bytes.length), ...bytes];
}

function moduleBytes(): Uint8Array {
  const name = (s: string) => [s.length, ...Array.from(s, (c) => c.charCodeAt(0))];
  const exports = [3, ...name("mem"), 2, 0, ...name("dot"), 0, 0, ...name("l2sq"), 0, 1];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0], // magic, version 1
    ...section(1, [1, 0x60, 1, 0x7f, 1, 0x7d]), // type 0: (i32) → f32
    ...section(3, [2, 0, 0]), // two functions of type 0
    ...section(5, [1, 0, 1]), // one memory, min 1 page
    ...section(7, exports),
    ...section(10, [2, ...body(false), ...body(true)]),
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
}

function instantiate(): Instance | undefined {
  try {
    const wa = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
    const bytes = moduleBytes();
    if (!wa?.validate(bytes)) return undefined;
    const inst = new wa.Instance(new wa.Module(bytes));
    const e = inst.exports as unknown as Instance;
    return { mem: e.mem, dot: e.dot, l2sq: e.l2sq };
  } catch {
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
