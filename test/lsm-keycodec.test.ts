import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  decodeKey,
  encodeKey,
  type KeyPart,
  prefixEnd,
  tuplePrefixRange,
} from "../src/engine/lsm/keycodec.js";
import { compareBytes } from "../src/engine/lsm/types.js";
import { isTwillError } from "../src/errors.js";

// ---- the model: tuple order written the obvious way -------------------------------------------------------------

function rank(p: KeyPart): number {
  if (p === null) return 0;
  if (typeof p === "boolean") return 1;
  if (typeof p === "number" || typeof p === "bigint") return 2;
  if (typeof p === "string") return 3;
  return 4;
}

/** Exact comparison of a bigint with a finite or infinite non-NaN number. */
function compareBigNum(b: bigint, n: number): number {
  if (n === Number.POSITIVE_INFINITY) return -1;
  if (n === Number.NEGATIVE_INFINITY) return 1;
  const f = Math.floor(n);
  const fb = BigInt(f);
  if (b < fb) return -1;
  if (b > fb) return 1;
  return n === f ? 0 : -1;
}

function compareNumbers(a: number | bigint, b: number | bigint): number {
  const aNaN = typeof a === "number" && Number.isNaN(a);
  const bNaN = typeof b === "number" && Number.isNaN(b);
  if (aNaN || bNaN) return aNaN === bNaN ? 0 : aNaN ? 1 : -1;
  if (typeof a === "number" && typeof b === "number") return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === "bigint" && typeof b === "bigint") return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === "bigint") return compareBigNum(a, b as number);
  return -compareBigNum(b as bigint, a);
}

const utf8 = new TextEncoder();

function comparePart(a: KeyPart, b: KeyPart): number {
  const r = rank(a) - rank(b);
  if (r !== 0) return r;
  if (a === null) return 0;
  if (typeof a === "boolean") return Number(a) - Number(b as boolean);
  if (typeof a === "number" || typeof a === "bigint") return compareNumbers(a, b as number | bigint);
  // Code point order is UTF-8 byte order.
  if (typeof a === "string") return Buffer.compare(utf8.encode(a), utf8.encode(b as string));
  return Buffer.compare(a as Uint8Array, b as Uint8Array);
}

const sign = (x: number): number => Math.sign(x) || 0;

function compareTuples(a: KeyPart[], b: KeyPart[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const c = comparePart(a[i]!, b[i]!);
    if (c !== 0) return c;
  }
  return a.length - b.length;
}

/** What decodeKey is documented to return for a part. */
function normalize(p: KeyPart): KeyPart {
  if (typeof p === "number") {
    if (Object.is(p, -0)) return 0;
    if (Number.isInteger(p) && !Number.isSafeInteger(p) && p >= -(2 ** 63) && p < 2 ** 63) return BigInt(p);
    return p;
  }
  if (typeof p === "bigint") {
    if (p >= BigInt(Number.MIN_SAFE_INTEGER) && p <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(p);
    const n = Number(p);
    return BigInt(n) === p ? BigInt(n) : p;
  }
  return p;
}

// ---- arbitraries ------------------------------------------------------------------------------------------------

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

const edgeNumbers = [
  0,
  -0,
  1,
  -1,
  0.5,
  -0.5,
  Number.MIN_VALUE,
  -Number.MIN_VALUE,
  Number.MAX_VALUE,
  -Number.MAX_VALUE,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  Number.NaN,
  2 ** 53,
  -(2 ** 53),
  2 ** 53 + 2,
  2 ** 63,
  -(2 ** 63),
  2 ** 62,
  1e300,
];
const edgeBigints = [
  0n,
  2n ** 53n - 1n,
  2n ** 53n,
  2n ** 53n + 1n,
  -(2n ** 53n) - 1n,
  2n ** 62n + 1n,
  2n ** 62n - 1n,
  INT64_MAX,
  INT64_MIN,
  INT64_MIN + 1n,
  -(2n ** 62n) - 1n,
];

const numberPart: fc.Arbitrary<KeyPart> = fc.oneof(
  fc.double(),
  fc.integer(),
  fc.constantFrom(...edgeNumbers),
  fc.bigInt({ min: INT64_MIN, max: INT64_MAX }),
  fc.constantFrom(...edgeBigints),
  // Big integers next to floats: exercise the remainder.
  fc
    .tuple(fc.integer({ min: 53, max: 62 }), fc.bigInt({ min: -4096n, max: 4096n }), fc.boolean())
    .map(([e, d, neg]) => {
      const v = (neg ? -1n : 1n) * 2n ** BigInt(e) + d;
      return v < INT64_MIN ? INT64_MIN : v > INT64_MAX ? INT64_MAX : v;
    }),
);

const stringPart: fc.Arbitrary<KeyPart> = fc.oneof(
  fc.string({ unit: "binary", maxLength: 6 }),
  fc.string({
    unit: fc.constantFrom("\0", "\u0001", "a", "\u00ff", "\uffff", "\u{1f600}", "\ue000"),
    maxLength: 5,
  }),
);

const bytesPart: fc.Arbitrary<KeyPart> = fc
  .array(fc.constantFrom(0, 1, 2, 0x7f, 0xfe, 0xff), { maxLength: 5 })
  .map((a) => new Uint8Array(a));

const part: fc.Arbitrary<KeyPart> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  numberPart,
  numberPart,
  stringPart,
  bytesPart,
);
const tuple = fc.array(part, { maxLength: 4 });

// ---- tests ------------------------------------------------------------------------------------------------------

describe("keycodec", () => {
  it("orders encodings exactly as the tuples they encode", () => {
    fc.assert(
      fc.property(tuple, tuple, (a, b) => {
        expect(sign(compareBytes(encodeKey(a), encodeKey(b)))).toBe(sign(compareTuples(a, b)));
      }),
      { numRuns: 20_000 },
    );
  });

  it("orders single numbers of mixed types numerically", () => {
    fc.assert(
      fc.property(numberPart, numberPart, (a, b) => {
        expect(sign(compareBytes(encodeKey([a]), encodeKey([b])))).toBe(
          sign(compareNumbers(a as number, b as number)),
        );
      }),
      { numRuns: 20_000 },
    );
  });

  it("round-trips, normalizing numbers as documented", () => {
    fc.assert(
      fc.property(tuple, (t) => {
        const decoded = decodeKey(encodeKey(t));
        expect(decoded).toEqual(t.map(normalize));
        // A decoded tuple encodes to the same bytes (the encoding is canonical).
        expect(encodeKey(decoded)).toEqual(encodeKey(t));
      }),
      { numRuns: 10_000 },
    );
  });

  it("treats -0 as 0, 5n as 5, and sorts NaN after +Infinity", () => {
    expect(encodeKey([-0])).toEqual(encodeKey([0]));
    expect(encodeKey([5n])).toEqual(encodeKey([5]));
    expect(encodeKey([2n ** 60n])).toEqual(encodeKey([2 ** 60]));
    expect(compareBytes(encodeKey([Number.NaN]), encodeKey([Number.POSITIVE_INFINITY]))).toBeGreaterThan(0);
    expect(encodeKey([Number.NaN])).toEqual(encodeKey([-Number.NaN]));
    expect(decodeKey(encodeKey([Number.NaN]))).toEqual([Number.NaN]);
    expect(decodeKey(encodeKey([2n ** 53n + 1n]))).toEqual([2n ** 53n + 1n]);
    expect(decodeKey(encodeKey([2 ** 60]))).toEqual([2n ** 60n]);
  });

  it("puts a big integer between its float neighbours whatever follows", () => {
    const f = 2 ** 60;
    const a = encodeKey([f, "zzz"]);
    const b = encodeKey([2n ** 60n + 1n]);
    const c = encodeKey([2 ** 60 + 256]);
    expect(compareBytes(a, b)).toBeLessThan(0);
    expect(compareBytes(b, c)).toBeLessThan(0);
  });

  it("sorts a string before its extensions and handles embedded zero bytes", () => {
    const keys = ["", "\0", "\0\0", "\u0001", "a", "a\0", "a\0b", "ab", "b"].map((s) => encodeKey([s]));
    for (let i = 1; i < keys.length; i++) expect(compareBytes(keys[i - 1]!, keys[i]!)).toBeLessThan(0);
    expect(decodeKey(encodeKey(["a\0b", new Uint8Array([0, 0xff, 0])]))).toEqual([
      "a\0b",
      new Uint8Array([0, 0xff, 0]),
    ]);
  });

  it("refuses lone surrogates, out-of-range bigints and unsupported types", () => {
    const bad: unknown[] = ["\ud800", "a\udc00b", 2n ** 63n, -(2n ** 63n) - 1n, undefined, {}, [1]];
    for (const part of bad) {
      let error: unknown;
      try {
        encodeKey([part as KeyPart]);
      } catch (e) {
        error = e;
      }
      expect(isTwillError(error, "INVALID_ARGUMENT")).toBe(true);
    }
  });

  it("reports malformed encodings as corruption", () => {
    const bad = [
      [0x99],
      [0x10, 1, 2],
      [0x20, 0x61],
      [0x20, 0x61, 0x00, 0x05],
      [0x20, 0xff, 0x00, 0x01],
      [0x10, 0xc3, 0x40, 0, 0, 0, 0, 0, 0, 0xff, 0, 0], // 2^53 with a zero remainder
      [0x10, 0xc3, 0x40, 0, 0, 0, 0, 0, 0, 0xff, 0],
    ];
    for (const bytes of bad) {
      let error: unknown;
      try {
        decodeKey(new Uint8Array(bytes));
      } catch (e) {
        error = e;
      }
      expect(isTwillError(error, "CORRUPTION"), JSON.stringify(bytes)).toBe(true);
    }
  });

  it("prefixEnd bounds every key with the prefix", () => {
    expect(prefixEnd(new Uint8Array([1, 2, 3]))).toEqual(new Uint8Array([1, 2, 4]));
    expect(prefixEnd(new Uint8Array([1, 0xff, 0xff]))).toEqual(new Uint8Array([2]));
    expect(prefixEnd(new Uint8Array([0xff, 0xff]))).toBeUndefined();
    expect(prefixEnd(new Uint8Array([]))).toBeUndefined();
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 4 }),
        fc.uint8Array({ maxLength: 4 }),
        fc.uint8Array({ maxLength: 6 }),
        (p, rest, other) => {
          const end = prefixEnd(p);
          const withPrefix = new Uint8Array([...p, ...rest]);
          if (end !== undefined) {
            expect(compareBytes(withPrefix, end)).toBeLessThan(0);
            // Anything at or above `end` does not start with the prefix.
            if (compareBytes(other, end) >= 0)
              expect(Buffer.from(other.subarray(0, p.length)).equals(Buffer.from(p))).toBe(false);
          }
        },
      ),
    );
  });

  it("tuplePrefixRange holds exactly the tuples that start with the prefix", () => {
    fc.assert(
      fc.property(tuple, tuple, (prefix, other) => {
        const { start, end } = tuplePrefixRange(prefix);
        const enc = encodeKey(other);
        const inside = compareBytes(enc, start) >= 0 && compareBytes(enc, end) < 0;
        const startsWith =
          other.length >= prefix.length && compareTuples(other.slice(0, prefix.length), prefix) === 0;
        expect(inside).toBe(startsWith);
        const extended = encodeKey([...prefix, ...other]);
        expect(compareBytes(extended, start) >= 0 && compareBytes(extended, end) < 0).toBe(true);
      }),
      { numRuns: 5_000 },
    );
    // The case a byte prefix gets wrong: a big integer just above a float.
    const { end } = tuplePrefixRange([2 ** 60]);
    expect(compareBytes(encodeKey([2n ** 60n + 1n]), end)).toBeGreaterThan(0);
  });
});
