/**
 * Differential test (issue #4): one random workload, run statement by statement on Twill DB (memory://) and on
 * PostgreSQL 17 (PGlite, WASM), must give the same answers.
 *
 * Schema (identical DDL on both sides; PGlite's database uses the "C" collation and a UTC time zone, as Twill):
 *   acct (id int4 PK, email text UNIQUE NULL, name text NOT NULL, score int8 [index], balance numeric,
 *         ratio float8, active bool NOT NULL DEFAULT true, created timestamptz, meta jsonb)
 *   post (pid int8 PK, acct_id int4 [index], title text, votes int4 NOT NULL CHECK (votes > -1000),
 *         price numeric(8,2), at timestamptz)
 *   tag  (post_id int8, label text, weight float8, PRIMARY KEY (post_id, label))
 * Column names are unique across the tables, so unqualified references are never ambiguous in joins.
 *
 * Workload: a seed INSERT of up to 12 rows per table, then up to TWILL_DIFF_COMMANDS statements or BEGIN …
 * COMMIT/ROLLBACK blocks: CREATE [UNIQUE]/DROP INDEX; INSERT (single and multi-row, column subsets, DEFAULT, ON
 * CONFLICT DO NOTHING / DO UPDATE … WHERE, INSERT … SELECT, RETURNING); UPDATE/DELETE … WHERE (… RETURNING);
 * SELECT with WHERE (comparisons, AND/OR/NOT, IN, BETWEEN, LIKE/ILIKE, IS [NOT] NULL, IS DISTINCT FROM, jsonb
 * operators, IN/NOT IN/EXISTS subqueries, correlated EXISTS, scalar subqueries), ORDER BY ending in the primary
 * key, LIMIT/OFFSET, GROUP BY/HAVING with count/sum/avg/min/max/bool_and/bool_or, INNER/LEFT/RIGHT/FULL joins of
 * two and three tables, DISTINCT, UNION [ALL]/INTERSECT [ALL]/EXCEPT [ALL], and table-less constant expressions
 * (arithmetic and overflow, casts, numeric/float/text/date/jsonb functions). About a third of the values are
 * bound as parameters ($n). After the workload every table is compared in full.
 *
 * Comparison, per statement:
 *   - both succeed: same column names and type OIDs, same rows in the same order (RETURNING of UPDATE/DELETE
 *     and INSERT … SELECT compares as a multiset: PostgreSQL returns those in heap order), same affected-row
 *     count for INSERT/UPDATE/DELETE. Values are normalised per type OID: integers as decimal strings (PGlite
 *     gives int8 as number or bigint; Twill runs with int8: "bigint"), numeric as its text, float4/float8 as
 *     numbers compared with a relative tolerance of 1e-12 (aggregates may add in a different order; -0 equals
 *     0 there, and signs of zero are compared through ::text expressions), NaN/±Infinity exactly, timestamps and
 *     dates as ISO strings, jsonb as canonical JSON (key order sorted; the text form is compared separately
 *     through meta::text, which must match exactly).
 *   - both fail: same SQLSTATE (messages may differ), except the documented pair below.
 *   - one fails, the other does not: a mismatch. A Twill error that is not a TwillError, or an XX000, is
 *     always a mismatch; so is a 0A000 (the generator sticks to what Twill supports).
 *
 * Documented differences (not Twill bugs), which the generator or the comparison allows for:
 *   - Expressions that can raise an error are kept out of WHERE, out of the select lists of table queries and
 *     out of AND/OR/CASE/COALESCE: PostgreSQL may reorder quals, constant-fold both arms, or evaluate a select
 *     list for rows a LIMIT later drops, so which error (if any) is raised depends on the plan. Errors come from
 *     DML and from table-less constant SELECTs (one expression each), where the order is fixed.
 *   - An UPDATE assigns at most one expression that can fail, and never rewrites a uniquely indexed column from
 *     itself; generated UNIQUE indexes only cover columns that UPDATE sets to constants. Otherwise the outcome
 *     depends on the order rows are visited (heap order in PostgreSQL, which checks uniqueness row by row; key
 *     order in Twill). INSERT … SELECT has an ORDER BY for the same reason.
 *   - Order-sensitive aggregates (string_agg, jsonb_agg) are not generated: PostgreSQL needs ORDER BY inside
 *     the call, which Twill refuses (0A000, listed under "Not yet"). avg(float8) is not generated either:
 *     PostgreSQL's float8_accum also sums squares and fails with 22003 once they overflow (values near 1e300).
 *   - Values that are equal but print differently (numeric 1.5 vs 1.50, float 0 vs -0) never meet in GROUP BY,
 *     DISTINCT, min/max or set operations, where the surviving representative is an accident of order.
 *   - jsonb's `?` operator always takes its key as a parameter: Twill reads a bare `?` as a placeholder unless
 *     the statement uses $n (src/engine/sql/parser.ts).
 *   - SQLSTATE 22007 (invalid datetime format) and 22008 (datetime field out of range) count as the same
 *     failure on malformed date/time input: for '99999999999'::timestamptz PostgreSQL's field parser reports the
 *     range, Twill the syntax.
 *
 * Known bugs: each disagreement found so far has a failing test in "sql regressions (found by the differential
 * test)" at the end of this file, and the generator steps around it (the *_FIXED switches below, or a narrowed
 * value set, each with a comment) so that the random search keeps finding new ones. When a regression passes,
 * flip its switch.
 *
 * Sizes (environment, so that scripts/sql-stress.ts can run the same test longer):
 *   TWILL_DIFF_RUNS      workloads (default 500)         TWILL_DIFF_COMMANDS  longest workload (default 30)
 *   TWILL_DIFF_SEED      fast-check seed (default: fixed under CI, random otherwise; printed)
 *   TWILL_DIFF_PATH      fast-check replay path (with the seed, replays one failure without searching)
 *   TWILL_DIFF_STATS=1   print what the workloads did (statement kinds, outcomes, SQLSTATEs, rows returned)
 * A failure prints the seed, the replay path and the shrunk statement list as a runnable SQL script.
 */

import { PGlite } from "@electric-sql/pglite";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Database, open } from "../src/database.js";
import { TwillError } from "../src/errors.js";

function envInt(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === "") return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got ${v}`);
  return n;
}

const RUNS = envInt("TWILL_DIFF_RUNS", 500);
const COMMANDS = Math.max(1, envInt("TWILL_DIFF_COMMANDS", 30));
// CI replays one fixed seed, so a landing never depends on the draw; local runs and `npm run stress:sql` draw a new
// one each time to keep searching (a failure prints the seed to replay).
const CI_SEED = 756486911;
const SEED = envInt("TWILL_DIFF_SEED", process.env.CI ? CI_SEED : Math.floor(Math.random() * 2 ** 31));
const REPLAY_PATH = process.env.TWILL_DIFF_PATH || undefined;
/** Set to true once the regression "takes the arbiter's action …" passes, to generate ON CONFLICT (email). */
const ARBITER_BUG_FIXED = true;
/** Set to true once the regressions on CASE expressions (aggregates, ORDER BY, DISTINCT) pass. */
const CASE_TEXT_FIXED = true;
/** Set to true once the regression "compares IN-list items without the column's typmod" passes. */
const IN_TYPMOD_FIXED = true;
/** Set to true once the regression "orders jsonb as PostgreSQL does" passes. */
const JSONB_ORDER_FIXED = true;
/** Set to true once the regression "divides float8 NaN by zero …" passes. */
const FLOAT_NAN_DIV_FIXED = true;
/** Set to true once the regressions on infinite timestamps (extract, date_trunc) pass. */
const INFINITE_TS_FIXED = true;
/** Set to true once the regression on the scale of extract(second/epoch) passes. */
const EXTRACT_SCALE_FIXED = true;
/** Generous: a slow shared machine, plus shrinking after a failure (scripts/sql-stress.ts passes no timeout). */
const TIMEOUT_MS = 120_000 + RUNS * COMMANDS * 10;
const STATS = !["", "0", "false"].includes(process.env.TWILL_DIFF_STATS ?? "");

// ─────────────────────────────────────────────────────────────────────────── schema

const SCHEMA = [
  `CREATE TABLE acct (id int4 PRIMARY KEY, email text UNIQUE, name text NOT NULL, score int8, balance numeric,
     ratio float8, active bool NOT NULL DEFAULT true, created timestamptz, meta jsonb)`,
  "CREATE INDEX acct_score ON acct (score)",
  `CREATE TABLE post (pid int8 PRIMARY KEY, acct_id int4, title text, votes int4 NOT NULL CHECK (votes > -1000),
     price numeric(8,2), at timestamptz)`,
  "CREATE INDEX post_acct ON post (acct_id)",
  "CREATE TABLE tag (post_id int8, label text, weight float8, PRIMARY KEY (post_id, label))",
];

type Ty = "int4" | "int8" | "text" | "bool" | "numeric" | "numeric82" | "float8" | "ts" | "jsonb";

interface Col {
  name: string;
  ty: Ty;
  nullable: boolean;
}

interface Table {
  name: string;
  alias: string;
  cols: Col[];
  pk: string[];
}

const col = (name: string, ty: Ty, nullable = true): Col => ({ name, ty, nullable });

const ACCT: Table = {
  name: "acct",
  alias: "a",
  cols: [
    col("id", "int4", false),
    col("email", "text"),
    col("name", "text", false),
    col("score", "int8"),
    col("balance", "numeric"),
    col("ratio", "float8"),
    col("active", "bool", false),
    col("created", "ts"),
    col("meta", "jsonb"),
  ],
  pk: ["id"],
};
const POST: Table = {
  name: "post",
  alias: "p",
  cols: [
    col("pid", "int8", false),
    col("acct_id", "int4"),
    col("title", "text"),
    col("votes", "int4", false),
    col("price", "numeric82"),
    col("at", "ts"),
  ],
  pk: ["pid"],
};
const TAG: Table = {
  name: "tag",
  alias: "g",
  cols: [col("post_id", "int8", false), col("label", "text", false), col("weight", "float8")],
  pk: ["post_id", "label"],
};
const TABLES = [ACCT, POST, TAG];

const ORDERABLE: ReadonlySet<Ty> = new Set([
  "int4",
  "int8",
  "text",
  "bool",
  "numeric",
  "numeric82",
  "float8",
  "ts",
]);
/** Types whose equal values always print the same (safe as GROUP BY / DISTINCT keys). */
const GROUPABLE: ReadonlySet<Ty> = new Set(["int4", "int8", "text", "bool", "ts"]);

// ─────────────────────────────────────────────────────────────────────────── fragments

/** A statement under construction: parameters are numbered in the order fragments render. */
interface Ctx {
  params: unknown[];
}
type Frag = (c: Ctx) => string;

interface Stmt {
  sql: string;
  params: unknown[];
  /** Rows form a multiset: compare them sorted. */
  unordered?: boolean;
}

const k =
  (s: string): Frag =>
  () =>
    s;

/** Template tag joining strings and fragments left to right. */
function S(strings: TemplateStringsArray, ...parts: (Frag | string)[]): Frag {
  return (c) => {
    let out = strings[0]!;
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      out += (typeof p === "string" ? p : p(c)) + strings[i + 1]!;
    }
    return out;
  };
}

const join =
  (frags: Frag[], sep: string): Frag =>
  (c) =>
    frags.map((f) => f(c)).join(sep);

const render = (f: Frag, extra: Partial<Stmt> = {}): Stmt => {
  const c: Ctx = { params: [] };
  const sql = f(c);
  return { sql, params: c.params, ...extra };
};

// ─────────────────────────────────────────────────────────────────────────── values

const TEXTS = ["a", "b", "ab", "abc", "B", "Abc", "é", "", "a%b", "x_y", "zz", "it's", "a b", "😀", "ÿ"];
const NUMERICS = ["0", "1.50", "-2.5", "100", "0.001", "12345.678", "-0.10", "999999.99", "1e3", "7"];
const NUMERICS_2DP = NUMERICS.filter((n) => !/\.\d{3}/.test(n));
const FLOATS = [0, 0.5, -1.25, 3, 0.1, 1e10, 1e300, -0, Number.NaN, Number.POSITIVE_INFINITY, -2.5e-7];
const TIMES = [
  "2024-01-01 00:00:00+00",
  "2024-02-29 12:34:56.789+02",
  "1999-12-31 23:59:59.999999+00",
  "2024-06-30 23:00:00-05",
  "1970-01-01 00:00:00+00",
  "2000-01-01 00:00:00.5+00",
  "2024-01-01 02:00:00+02",
  "1900-03-04 05:06:07+00",
  "infinity",
];
const JSONS = [
  '{"a": 1}',
  '{"a": "x", "b": [1, 2]}',
  '[1, "a", null]',
  '"str"',
  "3.5",
  "null",
  "true",
  '{"b": {"c": null}, "aa": 2}',
  "{}",
  "[]",
  '{"a": 2, "ab": {"a": 1}}',
];

function valuesOf(ty: Ty): fc.Arbitrary<unknown> {
  switch (ty) {
    case "int4":
      return fc.oneof(
        { weight: 9, arbitrary: fc.integer({ min: -2, max: 12 }) },
        { weight: 1, arbitrary: fc.constantFrom(2147483647, -2147483648, -999, 1000) },
      );
    case "int8":
      return fc.oneof(
        { weight: 9, arbitrary: fc.bigInt({ min: -2n, max: 12n }) },
        {
          weight: 1,
          arbitrary: fc.constantFrom(9007199254740993n, -9007199254740993n, 4611686018427387904n),
        },
      );
    case "text":
      return fc.constantFrom(...TEXTS);
    case "bool":
      return fc.boolean();
    case "numeric":
    case "numeric82":
      return fc.constantFrom(...NUMERICS);
    case "float8":
      return fc.constantFrom(...FLOATS);
    case "ts":
      return fc.constantFrom(...TIMES);
    case "jsonb":
      return fc.constantFrom(...JSONS);
  }
}

const quote = (s: string) => `'${s.replaceAll("'", "''")}'`;
const floatText = (v: number) => (Object.is(v, -0) ? "-0" : Number.isNaN(v) ? "NaN" : String(v));

function literal(ty: Ty, v: unknown): string {
  if (v === null) return "NULL";
  switch (ty) {
    case "int4":
    case "int8": {
      const s = String(v);
      return s.startsWith("-") ? `(${s})` : s;
    }
    case "numeric":
    case "numeric82": {
      const s = String(v);
      return s.startsWith("-") ? `(${s})` : s;
    }
    case "bool":
      return v ? "TRUE" : "FALSE";
    case "float8":
      return `'${floatText(v as number)}'::float8`;
    case "text":
    case "ts":
    case "jsonb":
      return quote(String(v));
  }
}

function paramValue(ty: Ty, v: unknown): unknown {
  if (v === null) return null;
  if (ty === "jsonb") return JSON.parse(v as string);
  // PGlite sends numbers as String(n), and String(-0) is "0".
  if (ty === "float8" && Object.is(v, -0)) return "-0";
  return v;
}

/** A value of `ty` as a literal or (about one time in three) a parameter; `from` narrows the value set. */
function valueArb(ty: Ty, nullable = false, from?: readonly unknown[]): fc.Arbitrary<Frag> {
  const base = from ? fc.constantFrom(...from) : valuesOf(ty);
  const v = nullable ? fc.option(base, { nil: null, freq: 6 }) : base;
  return fc.tuple(v, fc.nat(2)).map(([x, p]): Frag => {
    // jsonb scalars as parameters are ambiguous in JS (a string is JSON text or a JSON string), so literals only.
    const asParam = p === 0 && !(ty === "jsonb" && x !== null && !/^[[{]/.test(x as string));
    if (!asParam) return () => literal(ty, x);
    return (c) => {
      c.params.push(paramValue(ty, x));
      return `$${c.params.length}`;
    };
  });
}

// ─────────────────────────────────────────────────────────────────────────── predicates and expressions

const pick = <T>(xs: readonly T[]) => fc.constantFrom(...xs);
const colsOf = (t: Table, f: (c: Col) => boolean = () => true) => t.cols.filter(f);

/** A reference to a column, qualified by `q` ("a.", "acct." or ""). */
const ref = (q: string, c: Col) => `${q}${c.name}`;

/** jsonb `?` with its key bound as a parameter. */
const jsonbHas =
  (r: string, key: string): Frag =>
  (c) => {
    c.params.push(key);
    return `${r} ? $${c.params.length}`;
  };

const CMP_OPS = ["=", "<>", "<", "<=", ">", ">="] as const;
const LIKE_PATTERNS = ["a%", "%b", "_", "%", "a_c", "%\\%%", "A%", "", "%é%", "x\\_y", "%'%", "__"];

/** An error-free predicate over table `t` (columns qualified with `q`); `sub` allows subqueries. */
function predArb(
  t: Table,
  q: string,
  depth: number,
  sub: boolean,
  outer = q === "" ? `${t.name}.` : q,
): fc.Arbitrary<Frag> {
  const leaves: fc.Arbitrary<Frag>[] = [];
  const orderable = colsOf(t, (c) => ORDERABLE.has(c.ty));
  const pkCol = t.cols.find((c) => c.name === t.pk[0])!;
  // Primary-key equality (the point-lookup path), weighted up.
  leaves.push(valueArb(pkCol.ty).map((v) => S`${ref(q, pkCol)} = ${v}`));
  leaves.push(
    pick(orderable).chain((c) =>
      fc.tuple(pick(CMP_OPS), valueArb(c.ty, true)).map(([op, v]) => S`${ref(q, c)} ${op} ${v}`),
    ),
  );
  leaves.push(
    pick(orderable).chain((c) => {
      const same = orderable.filter((d) => d.ty === c.ty);
      return fc.tuple(pick(CMP_OPS), pick(same)).map(([op, d]) => k(`${ref(q, c)} ${op} ${ref(q, d)}`));
    }),
  );
  // Until the IN-typmod regression passes, IN lists on numeric(8,2) hold values that fit the scale (a known bug).
  const inValues = (c: Col) =>
    c.ty === "numeric82" && !IN_TYPMOD_FIXED ? valueArb(c.ty, true, NUMERICS_2DP) : valueArb(c.ty, true);
  leaves.push(
    pick(colsOf(t, (c) => c.ty !== "jsonb")).chain((c) =>
      fc
        .tuple(fc.boolean(), fc.array(inValues(c), { minLength: 1, maxLength: 4 }))
        .map(([not, vs]) => S`${ref(q, c)} ${not ? "NOT IN" : "IN"} (${join(vs, ", ")})`),
    ),
  );
  // = ANY / <> ALL over an array of the column's type (a primary key makes it a key lookup per element).
  const ARRAY_TYPE: Partial<Record<Ty, string>> = {
    int4: "int4[]",
    int8: "int8[]",
    text: "text[]",
    numeric: "numeric[]",
    numeric82: "numeric[]",
    float8: "float8[]",
  };
  leaves.push(
    pick(colsOf(t, (c) => ARRAY_TYPE[c.ty] !== undefined)).chain((c) =>
      fc
        .tuple(fc.boolean(), fc.array(valueArb(c.ty, true), { minLength: 0, maxLength: 4 }))
        .map(([all, vs]) =>
          all
            ? S`${ref(q, c)} <> ALL (ARRAY[${join(vs, ", ")}]::${ARRAY_TYPE[c.ty]!})`
            : S`${ref(q, c)} = ANY (ARRAY[${join(vs, ", ")}]::${ARRAY_TYPE[c.ty]!})`,
        ),
    ),
  );
  leaves.push(
    pick(orderable).chain((c) =>
      fc
        .tuple(fc.boolean(), valueArb(c.ty), valueArb(c.ty))
        .map(([not, lo, hi]) => S`${ref(q, c)} ${not ? "NOT BETWEEN" : "BETWEEN"} ${lo} AND ${hi}`),
    ),
  );
  const texts = colsOf(t, (c) => c.ty === "text");
  leaves.push(
    fc
      .tuple(pick(texts), pick(["LIKE", "NOT LIKE", "ILIKE", "NOT ILIKE"]), pick(LIKE_PATTERNS), fc.nat(3))
      .map(([c, op, pat, p]): Frag => {
        if (p > 0) return k(`${ref(q, c)} ${op} ${quote(pat)}`);
        return (cx) => {
          cx.params.push(pat);
          return `${ref(q, c)} ${op} $${cx.params.length}`;
        };
      }),
  );
  leaves.push(
    fc.tuple(pick(t.cols), fc.boolean()).map(([c, not]) => k(`${ref(q, c)} IS ${not ? "NOT " : ""}NULL`)),
  );
  leaves.push(
    pick(colsOf(t, (c) => c.ty !== "jsonb")).chain((c) =>
      fc
        .tuple(fc.boolean(), valueArb(c.ty, true))
        .map(([not, v]) => S`${ref(q, c)} IS ${not ? "NOT " : ""}DISTINCT FROM ${v}`),
    ),
  );
  // Error-free computed comparisons.
  for (const c of t.cols) {
    const r = ref(q, c);
    switch (c.ty) {
      case "int8":
        leaves.push(valueArb("int8").map((v) => S`${r} + 1 > ${v}`));
        break;
      case "int4":
        leaves.push(valueArb("int8").map((v) => S`${r}::int8 * 2 <= ${v}`));
        leaves.push(valueArb("int4").map((v) => S`${r} % 3 = ${v}`));
        break;
      case "numeric":
      case "numeric82":
        leaves.push(valueArb("numeric").map((v) => S`${r} * 2 < ${v}`));
        leaves.push(valueArb("numeric").map((v) => S`round(${r}, 1) = ${v}`));
        break;
      case "text":
        leaves.push(valueArb("int4").map((v) => S`length(${r}) > ${v}`));
        leaves.push(valueArb("text").map((v) => S`upper(${r}) = upper(${v})`));
        leaves.push(valueArb("text").map((v) => S`coalesce(${r}, 'zz') >= ${v}`));
        break;
      case "bool":
        leaves.push(
          pick(["", "NOT ", "IS TRUE", "IS NOT FALSE", "IS NOT TRUE"]).map((m) =>
            k(m.startsWith("IS") ? `${r} ${m}` : `${m}${r}`),
          ),
        );
        break;
      case "float8":
        leaves.push(valueArb("float8").map((v) => S`${r} + 0.5 >= ${v}`));
        break;
      case "ts":
        leaves.push(valueArb("ts").map((v) => S`${r} < ${v}`));
        break;
      case "jsonb":
        leaves.push(
          fc
            .tuple(pick(["a", "b", "aa"]), valueArb("text", true))
            .map(([key, v]) => S`${r} ->> '${key}' = ${v}`),
        );
        leaves.push(pick(['{"a": 1}', "[1]", '{"b": {}}', '"str"', "{}"]).map((j) => k(`${r} @> '${j}'`)));
        // `?` is also a placeholder: Twill leaves it alone only in statements that use $n (parser.ts), so the
        // key is always a parameter here.
        leaves.push(pick(["a", "b", "x"]).map((key) => jsonbHas(r, key)));
        leaves.push(
          pick(["object", "array", "string", "number", "null", "boolean"]).map((ty) =>
            k(`jsonb_typeof(${r}) = '${ty}'`),
          ),
        );
        leaves.push(pick(JSONS).map((j) => k(`${r} = ${quote(j)}`)));
        break;
    }
  }
  if (sub) leaves.push(...subqueryPreds(t, q, outer));
  const leaf = fc.oneof(...leaves);
  if (depth <= 0) return leaf;
  const inner = predArb(t, q, depth - 1, sub, outer);
  return fc.oneof(
    { weight: 4, arbitrary: leaf },
    { weight: 1, arbitrary: fc.tuple(inner, inner).map(([x, y]) => S`(${x} AND ${y})`) },
    { weight: 1, arbitrary: fc.tuple(inner, inner).map(([x, y]) => S`(${x} OR ${y})`) },
    { weight: 1, arbitrary: inner.map((x) => S`NOT (${x})`) },
  );
}

/** Subquery predicates on `t`; correlated ones reference the outer row through `outer` ("a." or "acct."). */
function subqueryPreds(t: Table, q: string, outer: string): fc.Arbitrary<Frag>[] {
  const out: fc.Arbitrary<Frag>[] = [];
  const postPred = predArb(POST, "", 0, false);
  const tagPred = predArb(TAG, "", 0, false);
  const acctPred = predArb(ACCT, "", 0, false);
  if (t === ACCT) {
    out.push(
      fc
        .tuple(fc.boolean(), postPred)
        .map(([not, p]) => S`${q}id ${not ? "NOT IN" : "IN"} (SELECT acct_id FROM post WHERE ${p})`),
      fc
        .tuple(fc.boolean(), postPred)
        .map(
          ([not, p]) =>
            S`${not ? "NOT " : ""}EXISTS (SELECT 1 FROM post WHERE post.acct_id = ${outer}id AND ${p})`,
        ),
      tagPred.map((p) => S`${q}score > (SELECT count(*) FROM tag WHERE ${p})`),
    );
  } else if (t === POST) {
    out.push(
      fc
        .tuple(fc.boolean(), acctPred)
        .map(([not, p]) => S`${q}acct_id ${not ? "NOT IN" : "IN"} (SELECT id FROM acct WHERE ${p})`),
      fc
        .tuple(fc.boolean(), tagPred)
        .map(
          ([not, p]) =>
            S`${not ? "NOT " : ""}EXISTS (SELECT 1 FROM tag WHERE tag.post_id = ${outer}pid AND ${p})`,
        ),
      acctPred.map((p) => S`${q}votes >= (SELECT max(id) FROM acct WHERE ${p})`),
    );
  } else {
    out.push(
      fc
        .tuple(fc.boolean(), postPred)
        .map(([not, p]) => S`${q}post_id ${not ? "NOT IN" : "IN"} (SELECT pid FROM post WHERE ${p})`),
    );
  }
  return out;
}

/** An error-free select-list expression over `t`. */
/**
 * An error-free select-list expression over `t`. `forOrder`: the expression is an ORDER BY key, so no jsonb
 * values until the jsonb-ordering regression passes (a known bug).
 */
function exprArb(t: Table, q: string, forOrder = false): fc.Arbitrary<Frag> {
  const noJsonb = forOrder && !JSONB_ORDER_FIXED;
  const cols = noJsonb ? colsOf(t, (c) => c.ty !== "jsonb") : t.cols;
  const options: fc.Arbitrary<Frag>[] = [pick(cols).map((c) => k(ref(q, c)))];
  // Two columns of one type: greatest/least/coalesce/nullif, and CASE over a predicate.
  const pairs = colsOf(t, (c) => ORDERABLE.has(c.ty) && c.ty !== "bool");
  options.push(
    fc
      .tuple(pick(pairs), pick(["greatest", "least", "coalesce", "nullif"]))
      .chain(([c, f]) =>
        pick(pairs.filter((d) => d.ty === c.ty)).map((d) => k(`${f}(${ref(q, c)}, ${ref(q, d)})`)),
      ),
    fc.tuple(predArb(t, q, 0, false), pick(cols)).map(([p, c]) => S`CASE WHEN ${p} THEN ${ref(q, c)} END`),
  );
  // Correlated scalar subqueries (one value per outer row).
  if (t === ACCT) {
    options.push(
      pick([
        `(SELECT count(*) FROM post WHERE post.acct_id = ${q}id)`,
        `(SELECT max(votes) FROM post WHERE post.acct_id = ${q}id)`,
        `(SELECT sum(price) FROM post WHERE post.acct_id = ${q}id AND votes > 0)`,
      ]).map(k),
    );
  } else if (t === POST) {
    options.push(
      pick([
        `(SELECT name FROM acct WHERE acct.id = ${q}acct_id)`,
        `(SELECT count(*) FROM tag WHERE tag.post_id = ${q}pid)`,
      ]).map(k),
    );
  }
  for (const c of t.cols) {
    const r = ref(q, c);
    const forms: string[] = [];
    switch (c.ty) {
      case "int4":
        forms.push(`${r}::int8 + 1`, `${r}::numeric / 3`, `${r}::text`, `-(${r}::int8)`, `${r}::float8 / 2`);
        break;
      case "int8":
        forms.push(`${r} - 1`, `${r} / 2`, `${r} % 5`, `${r}::text`, `${r}::numeric * 1.5`);
        break;
      case "numeric":
      case "numeric82":
        forms.push(
          `${r} + 1.25`,
          `${r} * 2`,
          `${r} / 3`,
          `round(${r}, 1)`,
          `${r}::text`,
          `trunc(${r})`,
          `-${r}`,
        );
        forms.push(`abs(${r})`, `${r}::float8`, `ceil(${r})`);
        break;
      case "float8":
        forms.push(`${r} * 2`, `${r} + 0.5`, `${r}::text`, `abs(${r})`, `floor(${r})`);
        break;
      case "text":
        forms.push(`upper(${r})`, `length(${r})`, `${r} || '!'`, `substr(${r}, 2)`, `coalesce(${r}, 'none')`);
        forms.push(`lower(${r})`, `reverse(${r})`, `left(${r}, 1)`, `${r} = 'a'`, `nullif(${r}, 'a')`);
        break;
      case "bool":
        forms.push(`NOT ${r}`, `${r}::text`, `CASE WHEN ${r} THEN 'y' ELSE 'n' END`);
        break;
      case "ts": {
        // Known bugs (see the regressions) are stepped around until fixed: extract and date_trunc('month') of an
        // infinite timestamp (guarded with nullif), and the scale of extract(second/epoch) (fixed with round).
        const fin = INFINITE_TS_FIXED ? r : `nullif(${r}, 'infinity')`;
        forms.push(
          `${r}::text`,
          `date_trunc('day', ${r})`,
          `${r}::date`,
          `date_trunc('month', ${fin})::text`,
        );
        for (const unit of ["year", "month", "day", "hour", "minute", "dow", "doy", "quarter"]) {
          forms.push(`extract(${unit} from ${fin})`);
        }
        for (const unit of ["second", "epoch"]) {
          forms.push(
            EXTRACT_SCALE_FIXED ? `extract(${unit} from ${fin})` : `round(extract(${unit} from ${fin}), 6)`,
          );
        }
        forms.push(`date_part('epoch', ${fin})`);
        break;
      }
      case "jsonb":
        forms.push(`${r}::text`, `${r} ->> 'a'`, `jsonb_typeof(${r})`);
        if (!noJsonb) forms.push(`${r} -> 'a'`, `${r} -> 1`);
        options.push(pick(["a", "b"]).map((key) => jsonbHas(r, key)));
        break;
    }
    if (forms.length > 0) options.push(pick(forms).map(k));
  }
  return fc.oneof(...options);
}

// ─────────────────────────────────────────────────────────────────────────── statements

function orderKey(r: string, dir: number): string {
  return `${r}${["", " DESC", " NULLS FIRST", " DESC NULLS LAST", " ASC NULLS LAST"][dir]}`;
}

const limitArb: fc.Arbitrary<Frag> = fc
  .tuple(fc.nat(5), fc.nat(4), fc.nat(5), fc.boolean())
  .map(([mode, lim, off, asParam]): Frag => {
    if (mode >= 3) return k("");
    if (!asParam)
      return k(mode === 0 ? ` LIMIT ${lim} OFFSET ${off}` : mode === 1 ? ` LIMIT ${lim}` : ` OFFSET ${off}`);
    return (c) => {
      if (mode === 1) {
        c.params.push(lim);
        return ` LIMIT $${c.params.length}`;
      }
      c.params.push(lim, off);
      return ` LIMIT $${c.params.length - 1} OFFSET $${c.params.length}`;
    };
  });

const optWhere = (p: fc.Arbitrary<Frag>) =>
  fc.option(p, { nil: undefined, freq: 5 }).map((w): Frag => (w ? S` WHERE ${w}` : k("")));

/** SELECT items FROM t WHERE … ORDER BY …, pk [LIMIT/OFFSET]. */
function simpleSelect(t: Table): fc.Arbitrary<Stmt> {
  const q = `${t.alias}.`;
  return fc
    .record({
      star: fc.nat(6),
      items: fc.array(exprArb(t, q), { minLength: 1, maxLength: 4 }),
      where: optWhere(predArb(t, q, 2, true)),
      order: fc.array(fc.tuple(pick(colsOf(t, (c) => ORDERABLE.has(c.ty))), fc.nat(4)), { maxLength: 2 }),
      orderExpr: fc.option(fc.tuple(exprArb(t, q, true), fc.nat(4)), { nil: undefined, freq: 4 }),
      pkDesc: fc.boolean(),
      limit: limitArb,
    })
    .map(({ star, items, where, order, orderExpr, pkDesc, limit }) => {
      const list: Frag =
        star === 0
          ? k("*")
          : join(
              items.map((f, i) => S`${f} AS c${String(i)}`),
              ", ",
            );
      const keys = [
        ...order.map(([c, d]) => orderKey(ref(q, c), d)),
        ...t.pk.map((p) => `${q}${p}${pkDesc ? " DESC" : ""}`),
      ];
      // An expression key (jsonb ordering included) goes first; the primary key still makes the order total.
      const exprKey: Frag = orderExpr ? S`${orderExpr[0]}${orderKey("", orderExpr[1])}, ` : k("");
      return render(
        S`SELECT ${list} FROM ${t.name} ${t.alias}${where} ORDER BY ${exprKey}${keys.join(", ")}${limit}`,
      );
    });
}

/** Aggregate calls over `t`, each with whether it compares with an integer (for HAVING). */
function aggItems(t: Table, q: string): fc.Arbitrary<[string, boolean]> {
  const forms: [string, boolean][] = [["count(*)", true]];
  for (const c of t.cols) {
    const r = ref(q, c);
    const numeric = ["int4", "int8", "numeric", "numeric82", "float8"].includes(c.ty);
    forms.push([`count(${r})`, true]);
    if (GROUPABLE.has(c.ty) || c.ty === "numeric" || c.ty === "numeric82")
      forms.push([`count(DISTINCT ${r})`, true]);
    if (numeric) forms.push([`sum(${r})`, true]);
    // avg(float8) is left out: PostgreSQL's float8_accum also sums squares (for variance) and fails with 22003
    // once Σx² overflows (values near 1e300), where Twill returns the average. A documented difference.
    if (numeric && c.ty !== "float8") forms.push([`avg(${r})`, true]);
    // min/max of numeric(no typmod) could pick 1.5 or 1.50; the value set has no such pair, but keep to typed
    // numeric(8,2), which prints one way.
    if (ORDERABLE.has(c.ty) && c.ty !== "bool" && c.ty !== "numeric") {
      forms.push([`min(${r})`, numeric], [`max(${r})`, numeric]);
    }
    if (c.ty === "bool") forms.push([`bool_and(${r})`, false], [`bool_or(${r})`, false]);
  }
  // Conditional aggregation: FILTER and CASE inside the call.
  const cond: Record<string, string[]> = {
    acct: [`${q}active`, `${q}score > 2`, `${q}email IS NULL`],
    post: [`${q}votes > 0`, `${q}title LIKE 'a%'`, `${q}acct_id IS NOT NULL`],
    tag: [`${q}weight > 0`, `${q}label < 'b'`],
  };
  const value: Record<string, string> = { acct: `${q}balance`, post: `${q}votes`, tag: `${q}weight` };
  for (const w of cond[t.name] ?? []) {
    const v = value[t.name]!;
    forms.push(
      [`count(*) FILTER (WHERE ${w})`, true],
      [`sum(${v}) FILTER (WHERE ${w})`, true],
      [`sum(CASE WHEN ${w} THEN ${v} END)`, true],
      [`count(CASE WHEN ${w} THEN 1 END)`, true],
      [`max(CASE WHEN ${w} THEN ${v} ELSE 0 END)`, true],
    );
  }
  return pick(forms);
}

/** GROUP BY keys of `t`: columns and expressions whose equal values always print the same. */
function groupKeys(t: Table, q: string): string[] {
  const keys = colsOf(t, (c) => GROUPABLE.has(c.ty)).map((c) => ref(q, c));
  const more: Record<string, string[]> = {
    acct: [`length(${q}name)`, `${q}score % 3`, `date_trunc('day', ${q}created)`, `upper(${q}email)`],
    post: [`(${q}votes > 0)`, `coalesce(${q}acct_id, -1)`, `round(${q}price)`, `lower(${q}title)`],
    tag: [`left(${q}label, 1)`, `${q}post_id % 2`],
  };
  return [...keys, ...(more[t.name] ?? [])];
}

/** SELECT g…, aggregates FROM t [WHERE] GROUP BY g… [HAVING] ORDER BY g… [LIMIT]. */
function aggSelect(t: Table): fc.Arbitrary<Stmt> {
  const q = fc.constantFrom("", `${t.alias}.`);
  return q.chain((qq) =>
    fc
      .record({
        groups: fc.uniqueArray(pick(groupKeys(t, qq)), { maxLength: 2 }),
        aggs: fc.array(aggItems(t, qq), { minLength: 1, maxLength: 3 }),
        where: optWhere(predArb(t, qq, 1, true, `${t.alias}.`)),
        having: fc.option(fc.tuple(aggItems(t, qq), pick(CMP_OPS), fc.integer({ min: -1, max: 4 })), {
          nil: undefined,
        }),
        dirs: fc.tuple(fc.nat(4), fc.nat(4)),
        limit: limitArb,
      })
      .map(({ groups, aggs, where, having, dirs, limit }) => {
        const items = [
          ...groups.map((g, i) => `${g} AS c${i}`),
          ...aggs.map(([a], i) => `${a} AS c${groups.length + i}`),
        ];
        let hv = "";
        if (having) {
          const [[a, numeric], op, n] = having;
          hv = numeric ? ` HAVING ${a} ${op} ${n}` : ` HAVING ${a} IS NOT NULL`;
        }
        const groupBy = groups.length > 0 ? ` GROUP BY ${groups.join(", ")}` : "";
        const order =
          groups.length > 0
            ? ` ORDER BY ${groups.map((_, i) => orderKey(`c${i}`, dirs[i] ?? 0)).join(", ")}`
            : "";
        return render(
          S`SELECT ${items.join(", ")} FROM ${t.name} ${t.alias}${where}${groupBy}${hv}${order}${limit}`,
        );
      }),
  );
}

const JOIN_KINDS = ["JOIN", "LEFT JOIN", "LEFT JOIN", "RIGHT JOIN", "FULL JOIN"] as const;

/** Two- and three-table joins on the indexed keys, ordered by every table's primary key. */
function joinSelect(): fc.Arbitrary<Stmt> {
  const ap = fc.record({
    kind: pick(JOIN_KINDS),
    extraOn: fc.option(valueArb("int4"), { nil: undefined, freq: 3 }),
    aItems: fc.array(exprArb(ACCT, "a."), { minLength: 1, maxLength: 2 }),
    pItems: fc.array(exprArb(POST, "p."), { minLength: 1, maxLength: 2 }),
    whereA: fc.option(predArb(ACCT, "a.", 1, false), { nil: undefined, freq: 2 }),
    whereP: fc.option(predArb(POST, "p.", 1, false), { nil: undefined, freq: 2 }),
    third: fc.option(pick(["JOIN", "LEFT JOIN"]), { nil: undefined, freq: 3 }),
    limit: limitArb,
    grouped: fc.nat(4),
  });
  return ap.map(({ kind, extraOn, aItems, pItems, whereA, whereP, third, limit, grouped }) => {
    const on = extraOn ? S`p.acct_id = a.id AND p.votes > ${extraOn}` : k("p.acct_id = a.id");
    const conds = [whereA, whereP].filter((x): x is Frag => x !== undefined);
    const where: Frag = conds.length > 0 ? S` WHERE ${join(conds, " AND ")}` : k("");
    if (grouped === 0) {
      // Join plus aggregate: one row per account.
      return render(
        S`SELECT a.id AS c0, count(p.pid) AS c1, sum(p.votes) AS c2, max(p.title) AS c3 FROM acct a LEFT JOIN post p ON ${on}${where} GROUP BY a.id ORDER BY a.id${limit}`,
      );
    }
    const items = [...aItems, ...pItems];
    const thirdSql = third ? ` ${third} tag g ON g.post_id = p.pid` : "";
    const list = join(
      [
        ...items.map((f, i) => S`${f} AS c${String(i)}`),
        ...(third ? [k(`g.label AS c${items.length}`)] : []),
      ],
      ", ",
    );
    const order = third ? "a.id, p.pid, g.label" : "a.id, p.pid";
    return render(
      S`SELECT ${list} FROM acct a ${kind} post p ON ${on}${thirdSql}${where} ORDER BY ${order}${limit}`,
    );
  });
}

function distinctSelect(t: Table): fc.Arbitrary<Stmt> {
  const q = `${t.alias}.`;
  return fc
    .record({
      cols: fc.uniqueArray(pick(colsOf(t, (c) => GROUPABLE.has(c.ty))), { minLength: 1, maxLength: 2 }),
      where: optWhere(predArb(t, q, 1, true)),
      dirs: fc.tuple(fc.nat(4), fc.nat(4)),
      limit: limitArb,
    })
    .map(({ cols, where, dirs, limit }) => {
      const items = cols.map((c, i) => `${ref(q, c)} AS c${i}`).join(", ");
      const order = cols.map((_, i) => orderKey(`c${i}`, dirs[i] ?? 0)).join(", ");
      return render(S`SELECT DISTINCT ${items} FROM ${t.name} ${t.alias}${where} ORDER BY ${order}${limit}`);
    });
}

/** Set operations between two tables' (integer, text) projections. */
function setOpSelect(): fc.Arbitrary<Stmt> {
  const sides: [Table, string, string][] = [
    [ACCT, "id", "name"],
    [ACCT, "score", "email"],
    [POST, "acct_id", "title"],
    [POST, "votes", "title"],
    [TAG, "post_id", "label"],
  ];
  const side = pick(sides).chain(([t, i, s]) =>
    optWhere(predArb(t, "", 1, false)).map((w) => S`SELECT ${i}, ${s} FROM ${t.name}${w}`),
  );
  return fc
    .tuple(
      side,
      side,
      pick(["UNION ALL", "UNION ALL", "UNION", "INTERSECT", "EXCEPT", "INTERSECT ALL", "EXCEPT ALL"]),
      fc.nat(4),
      fc.nat(4),
      limitArb,
    )
    .map(([x, y, op, d0, d1, limit]) =>
      render(S`${x} ${op} ${y} ORDER BY ${orderKey("1", d0)}, ${orderKey("2", d1)}${limit}`),
    );
}

/** Table-less constant expressions: the place where errors (overflow, division by zero, bad casts) are compared. */
const constSelect: fc.Arbitrary<Stmt> = (() => {
  // INT_MIN both as a literal (typed int4, as PostgreSQL does: a regression below) and as an expression.
  const i4 = fc.constantFrom("0", "1", "-7", "2147483647", "-2147483648", "(-2147483647 - 1)", "46341", "3");
  const i8 = fc.constantFrom(
    "9223372036854775807",
    "(-9223372036854775808)::int8",
    "3037000500::int8",
    "5::int8",
    "0::int8",
  );
  const num = fc.constantFrom(
    "0.0",
    "1.5",
    "-2.25",
    "10",
    "1e20",
    "0.333",
    "'NaN'::numeric",
    "123456789.123456789",
  );
  const f8 = fc.constantFrom(
    "0::float8",
    "1e300::float8",
    "'NaN'::float8",
    "'Infinity'::float8",
    "2.5::float8",
    "'-0'::float8",
    "1e-7::float8",
  );
  // (1e-300 is not among the float8 constants: Twill does not raise PostgreSQL's underflow error, a known bug.)
  // No float8 % float8: PostgreSQL has no such operator and Twill accepts it (a known bug, see the regressions).
  // 'NaN'::float8 / 0 is NaN in PostgreSQL and 22012 in Twill (a known bug, see the regressions): not generated.
  const arith = (a: fc.Arbitrary<string>, ops = ["+", "-", "*", "/", "%"]) =>
    fc
      .tuple(a, pick(ops), a)
      .filter(
        ([x, op, y]) => FLOAT_NAN_DIV_FIXED || !(x === "'NaN'::float8" && op === "/" && /^'?-?0/.test(y)),
      )
      .map(([x, op, y]) => `${x} ${op} ${y}`);
  const strs = fc.constantFrom(
    "'12'",
    "' 7 '",
    "'abc'",
    "'1e3'",
    "'3.7'",
    "''",
    "'-0'",
    "'99999999999'",
    "'NaN'",
    "'true'",
  );
  const casts = fc
    .tuple(
      strs,
      pick(["int4", "int8", "numeric", "float8", "bool", "numeric(4,1)", "int2", "jsonb", "timestamptz"]),
    )
    .map(([s, ty]) => `${s}::${ty}`);
  const numCasts = fc
    .tuple(fc.oneof(num, f8), pick(["int4", "int8", "numeric", "numeric(5,2)", "text"]))
    .map(([x, ty]) => `(${x})::${ty}`);
  const fns = fc.oneof(
    num.map((x) => `round(${x}, 2)`),
    num.map((x) => `trunc(${x})`),
    fc.tuple(num, num).map(([x, y]) => `mod(${x}, ${y})`),
    f8.map((x) => `abs(${x})`),
    f8.map((x) => `${x}::text`),
    num.map((x) => `${x}::text`),
    fc.tuple(i4, i4).map(([x, y]) => `greatest(${x}, ${y})`),
    fc.tuple(num, i4).map(([x, y]) => `coalesce(NULL, ${x}, ${y})`),
    fc.constantFrom(...TIMES).map((t) => `'${t}'::timestamptz::text`),
    fc.constantFrom(...TIMES).map((t) => `date_trunc('month', '${t}'::timestamptz)`),
    fc.constantFrom(...JSONS).map((j) => `${quote(j)}::jsonb::text`),
    fc.constantFrom(...JSONS).map((j) => `${quote(j)}::jsonb -> 'a'`),
    fc.constantFrom(...TEXTS).map((s) => `lpad(${quote(s)}, 4, '*') || substr(${quote(s)}, 2, 1)`),
    fc.constantFrom(...TEXTS).map((s) => `position('b' in ${quote(s)}) + length(${quote(s)})`),
    fc.tuple(i8, i8).map(([x, y]) => `${x} ${"<"} ${y}`),
    fc.tuple(num, num).map(([x, y]) => `${x} = ${y}`),
    fc.tuple(f8, f8).map(([x, y]) => `${x} > ${y}`),
    fc.tuple(num, f8).map(([x, y]) => `${x} + ${y}`),
    fc.tuple(i4, i8).map(([x, y]) => `${x} * ${y}`),
  );
  const expr = fc.oneof(
    arith(i4),
    arith(i8),
    arith(num),
    arith(f8, ["+", "-", "*", "/"]),
    casts,
    numCasts,
    fns,
    arith(fc.oneof(i4, num)),
  );
  // One expression per statement: PostgreSQL raises literal-input errors while parsing and others while
  // folding constants, so with two failing columns the reported one depends on the phase, not the order.
  return expr.map((e) => ({ sql: `SELECT ${e} AS c0`, params: [] }));
})();

/**
 * `withConst`: include table-less constant SELECTs. Transaction bodies leave them out: some of them fail while
 * Twill plans them, and inside an aborted transaction Twill reports that error instead of 25P02 (a known bug,
 * see the regressions), which would hide everything else.
 */
function selectArb(withConst: boolean): fc.Arbitrary<Stmt> {
  return fc.oneof(
    { weight: 4, arbitrary: pick(TABLES).chain(simpleSelect) },
    { weight: 2, arbitrary: pick(TABLES).chain(aggSelect) },
    { weight: 2, arbitrary: joinSelect() },
    { weight: 1, arbitrary: pick(TABLES).chain(distinctSelect) },
    { weight: 1, arbitrary: setOpSelect() },
    { weight: withConst ? 1 : 0, arbitrary: constSelect },
  );
}

// ── writes

const returning = (t: Table) =>
  fc.nat(4).map((n) => (n === 0 ? ` RETURNING ${t.pk.join(", ")}` : n === 1 ? " RETURNING *" : ""));

function insertArb(t: Table): fc.Arbitrary<Stmt> {
  const optional = t.cols.filter((c) => !t.pk.includes(c.name));
  return fc
    .record({
      // Columns named: the key always, NOT NULL columns almost always (leaving one out must fail with 23502).
      cols: fc.subarray(optional),
      dropRequired: fc.nat(15),
      rows: fc.nat(1000),
      onConflict: fc.nat(6),
      ret: returning(t),
    })
    .chain(({ cols, dropRequired, rows, onConflict, ret }) => {
      let names = [
        ...t.pk,
        ...optional.filter((c) => cols.includes(c) || (!c.nullable && dropRequired > 0)).map((c) => c.name),
      ];
      names = t.cols.map((c) => c.name).filter((n) => names.includes(n));
      const n = rows < 600 ? 1 : rows < 900 ? 2 : 4;
      const rowArb = fc.tuple(
        ...names.map((name) => {
          const c = t.cols.find((x) => x.name === name)!;
          return fc.oneof(
            { weight: 12, arbitrary: valueArb(c.ty, c.nullable || dropRequired === 1) },
            { weight: c.name === "active" ? 1 : 0, arbitrary: fc.constant(k("DEFAULT")) },
          );
        }),
      );
      return fc
        .tuple(fc.array(rowArb, { minLength: n, maxLength: n }), updateSetArb(t, true))
        .map(([rs, set]) => {
          const values = join(
            rs.map((r) => S`(${join(r, ", ")})`),
            ", ",
          );
          let conflict: Frag = k("");
          if (onConflict === 1) conflict = k(" ON CONFLICT DO NOTHING");
          else if (onConflict === 2) conflict = k(` ON CONFLICT (${t.pk.join(", ")}) DO NOTHING`);
          // ON CONFLICT (email) is not generated: when a row conflicts on the key as well as on email, Twill
          // reports the key's 23505 instead of taking the arbiter's action (a known bug, see the regressions).
          else if (onConflict === 3 && t === ACCT && ARBITER_BUG_FIXED)
            conflict = k(" ON CONFLICT (email) DO NOTHING");
          else if (onConflict >= 4) {
            const w = onConflict === 6 ? ` WHERE ${t.name}.${t.pk[0]} % 2 = 0` : "";
            conflict = S` ON CONFLICT (${t.pk.join(", ")}) DO UPDATE SET ${set}${w}`;
          }
          return render(S`INSERT INTO ${t.name} (${names.join(", ")}) VALUES ${values}${conflict}${ret}`);
        });
    });
}

/**
 * INSERT … SELECT: every row can fail only one way (a NULL label), so the SQLSTATE does not depend on order; the
 * ORDER BY fixes which of two rows colliding on a unique index is inserted.
 */
const insertSelectArb: fc.Arbitrary<Stmt> = fc
  .tuple(predArb(POST, "", 1, false), fc.nat(2), fc.boolean())
  .map(([w, mode, ret]) =>
    render(
      S`INSERT INTO tag (post_id, label, weight) SELECT pid, ${mode === 0 ? "title" : "coalesce(title, 'none')"}, votes::float8 / 4 FROM post WHERE ${w} ORDER BY pid ON CONFLICT ${mode === 2 ? "(post_id, label) DO UPDATE SET weight = coalesce(tag.weight, 0) + EXCLUDED.weight" : "DO NOTHING"}${ret ? " RETURNING post_id, label" : ""}`,
      { unordered: true },
    ),
  );

/**
 * SET list for UPDATE (or ON CONFLICT DO UPDATE when `excluded`): any number of assignments that cannot fail, at
 * most one that can.
 */
function updateSetArb(t: Table, excluded: boolean): fc.Arbitrary<Frag> {
  const safe: fc.Arbitrary<[string, Frag]>[] = [];
  const risky: fc.Arbitrary<[string, Frag]>[] = [];
  const x = (c: string) => (excluded ? `EXCLUDED.${c}` : c);
  const self = (c: string) => (excluded ? `${t.name}.${c}` : c);
  for (const c of t.cols) {
    const isKey = t.pk.includes(c.name);
    const v = valueArb(c.ty, c.nullable);
    if (isKey || c.name === "email" || !c.nullable) {
      // Keys, the unique column and NOT NULL columns can fail (23505, 23502).
      risky.push(v.map((f) => [c.name, f]));
      if (excluded) risky.push(fc.constant([c.name, k(x(c.name))]));
    } else {
      safe.push(v.map((f) => [c.name, f]));
      if (excluded) safe.push(fc.constant([c.name, k(x(c.name))]));
    }
    switch (c.ty) {
      case "int8":
        if (!isKey) safe.push(fc.constant([c.name, k(`${self(c.name)} + 1`)]));
        break;
      case "numeric":
        safe.push(fc.constant([c.name, k(`${self(c.name)} * 2 - 1`)]));
        break;
      case "numeric82":
        risky.push(fc.constant([c.name, k(`${self(c.name)} * 100`)]));
        break;
      case "float8":
        risky.push(fc.constant([c.name, k(`${self(c.name)} * 1e10`)]));
        break;
      case "bool":
        safe.push(fc.constant([c.name, k(`NOT ${self(c.name)}`)]));
        break;
      case "text":
        // Not on email: a unique column rewritten from itself (a -> ax while ax -> axx) succeeds or fails by
        // the order rows are visited, and PostgreSQL checks uniqueness row by row in heap order.
        if (c.nullable && c.name !== "email") safe.push(fc.constant([c.name, k(`${self(c.name)} || 'x'`)]));
        break;
      case "int4":
        if (c.name === "votes") {
          risky.push(fc.constant([c.name, k(`${self(c.name)} + 1000`)]));
          risky.push(fc.constant([c.name, k(`${self(c.name)} - 600`)]));
        }
        break;
      default:
        break;
    }
  }
  return fc
    .tuple(
      fc.array(fc.oneof(...safe), { maxLength: 3 }),
      fc.option(fc.oneof(...risky), { nil: undefined, freq: 2 }),
    )
    .filter(([s, r]) => s.length > 0 || r !== undefined)
    .map(([s, r]) => {
      const all = r ? [...s, r] : s;
      // A column assigned twice is an error in PostgreSQL (42601); keep the first.
      const seen = new Set<string>();
      const unique = all.filter(([c]) => {
        if (seen.has(c)) return false;
        seen.add(c);
        return true;
      });
      return join(
        unique.map(([c, f]) => S`${c} = ${f}`),
        ", ",
      );
    });
}

function updateArb(t: Table): fc.Arbitrary<Stmt> {
  return fc
    .tuple(updateSetArb(t, false), optWhere(predArb(t, "", 1, true)), returning(t), fc.boolean())
    .map(([set, where, ret, qualify]) => {
      // Sometimes with an alias and qualified references in SET's right-hand side is not needed.
      const target = qualify ? `${t.name} AS ${t.alias}` : t.name;
      const w: Frag = qualify ? (c) => where(c).replaceAll(`${t.name}.`, `${t.alias}.`) : where;
      return render(S`UPDATE ${target} SET ${set}${w}${ret}`, { unordered: true });
    });
}

function deleteArb(t: Table): fc.Arbitrary<Stmt> {
  return fc
    .tuple(optWhere(predArb(t, "", 1, true)), returning(t))
    .map(([where, ret]) => render(S`DELETE FROM ${t.name}${where}${ret}`, { unordered: true }));
}

/**
 * Columns an UPDATE only ever sets to a value (never from itself), so a UNIQUE index on them cannot make an
 * UPDATE's success depend on the order it visits rows (see updateSetArb).
 */
const CONSTANT_ONLY = new Set(["id", "name", "created", "pid", "acct_id", "at", "post_id", "label"]);

/** CREATE/DROP INDEX: changes the access paths later statements take, never their answers. */
const ddlArb: fc.Arbitrary<Stmt> = fc.tuple(pick(TABLES), fc.nat(3), fc.nat(5)).chain(([t, mode, n]) =>
  fc.uniqueArray(pick(colsOf(t, (c) => c.ty !== "jsonb")), { minLength: 1, maxLength: 2 }).map((cs) => {
    const unique = n === 0 && cs.every((c) => CONSTANT_ONLY.has(c.name));
    const name = `ix_${unique ? "u_" : ""}${t.name}_${cs.map((c) => c.name).join("_")}`;
    if (mode === 0) return { sql: `DROP INDEX IF EXISTS ${name}`, params: [] };
    return {
      sql: `CREATE ${unique ? "UNIQUE " : ""}INDEX IF NOT EXISTS ${name} ON ${t.name} (${cs.map((c) => c.name).join(", ")})`,
      params: [],
    };
  }),
);

function writeArb(): fc.Arbitrary<Stmt> {
  return fc.oneof(
    { weight: 6, arbitrary: pick(TABLES).chain(insertArb) },
    { weight: 1, arbitrary: insertSelectArb },
    { weight: 3, arbitrary: pick(TABLES).chain(updateArb) },
    { weight: 2, arbitrary: pick(TABLES).chain(deleteArb) },
  );
}

/**
 * Until the CASE regressions pass, a statement holds at most one CASE: Twill treats any two CASE expressions over
 * the same columns as the same expression (a known bug, see the regressions).
 */
const oneCase = (s: Stmt) => CASE_TEXT_FIXED || (s.sql.match(/\bCASE\b/g)?.length ?? 0) <= 1;

const stmtArb: fc.Arbitrary<Stmt> = fc
  .oneof(
    { weight: 5, arbitrary: writeArb() },
    { weight: 5, arbitrary: selectArb(true) },
    { weight: 1, arbitrary: ddlArb },
  )
  .filter(oneCase);

/** A block: one statement, or BEGIN; 1–4 statements; COMMIT or ROLLBACK. */
const blockArb: fc.Arbitrary<Stmt[]> = fc.oneof(
  { weight: 8, arbitrary: stmtArb.map((s) => [s]) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(
        fc.array(fc.oneof(writeArb(), selectArb(false)).filter(oneCase), { minLength: 1, maxLength: 4 }),
        fc.boolean(),
      )
      .map(([body, commit]) => [
        { sql: "BEGIN", params: [] },
        ...body,
        { sql: commit ? "COMMIT" : "ROLLBACK", params: [] },
      ]),
  },
);

/**
 * A seed INSERT per table (up to 12 rows, ON CONFLICT DO NOTHING), so that later statements find data. Part of
 * the workload, so shrinking removes rows that do not matter.
 */
function seedArb(t: Table): fc.Arbitrary<Stmt> {
  const value = (c: Col): fc.Arbitrary<Frag> =>
    c.name === "votes"
      ? fc.integer({ min: -5, max: 40 }).map((v) => k(literal("int4", v)))
      : (c.nullable ? fc.option(valuesOf(c.ty), { nil: null, freq: 5 }) : valuesOf(c.ty)).map((v) =>
          k(literal(c.ty, v)),
        );
  return fc.array(fc.tuple(...t.cols.map(value)), { minLength: 0, maxLength: 12 }).map((rows) =>
    rows.length === 0
      ? { sql: "SELECT 1 AS c0", params: [] }
      : render(
          S`INSERT INTO ${t.name} VALUES ${join(
            rows.map((r) => S`(${join(r, ", ")})`),
            ", ",
          )} ON CONFLICT DO NOTHING`,
        ),
  );
}

const workloadArb: fc.Arbitrary<Stmt[]> = fc
  .tuple(
    fc.tuple(...TABLES.map(seedArb)),
    fc.array(blockArb, { minLength: 1, maxLength: COMMANDS, size: "max" }),
  )
  .map(([seed, blocks]) => [...seed.filter((x) => x.sql !== "SELECT 1 AS c0"), ...blocks.flat()]);

// ─────────────────────────────────────────────────────────────────────────── running and comparing

type Outcome =
  | { ok: true; cols: { name: string; oid: number }[]; rows: unknown[][]; count: number }
  | { ok: false; code: string; message: string };

const INT_OIDS = new Set([20, 21, 23, 26]);
const FLOAT_OIDS = new Set([700, 701]);

function canonicalJson(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonicalJson);
  if (v !== null && typeof v === "object") {
    const o = v as Record<string, unknown>;
    return Object.fromEntries(
      Object.keys(o)
        .sort()
        .map((key) => [key, canonicalJson(o[key])]),
    );
  }
  return v;
}

/** A value as a comparable string (floats stay numbers, for the tolerance). */
function norm(v: unknown, oid: number): unknown {
  if (v === null || v === undefined) return null;
  if (INT_OIDS.has(oid)) return `i:${String(v)}`;
  if (FLOAT_OIDS.has(oid)) {
    const n = Number(v);
    // -0 is returned as a number, so it equals 0: the sign of a zero is compared through ::text expressions,
    // and sum(float8) of -0 alone is a known bug (see the regressions).
    if (Number.isNaN(n) || !Number.isFinite(n)) return `f:${floatText(n)}`;
    return n;
  }
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? "t:invalid" : `t:${v.toISOString()}`;
  if (oid === 3802 || oid === 114) return `j:${JSON.stringify(canonicalJson(v))}`;
  if (typeof v === "bigint") return `i:${v}`;
  if (v instanceof Uint8Array) return `x:${Buffer.from(v).toString("hex")}`;
  if (typeof v === "object") return `o:${JSON.stringify(v)}`;
  return `${typeof v}:${String(v)}`;
}

function sameValue(a: unknown, b: unknown): boolean {
  if (typeof a === "number" && typeof b === "number") {
    if (a === b) return true;
    return Math.abs(a - b) <= 1e-12 * Math.max(Math.abs(a), Math.abs(b));
  }
  return a === b;
}

const rowKey = (r: unknown[]) => JSON.stringify(r);

async function runTwill(db: Database, s: Stmt): Promise<Outcome> {
  try {
    const r = await db.execute(s.sql, s.params);
    const cols = r.columns.map((c) => ({ name: c.name, oid: c.typeOid }));
    const rows = r.rows.map((row) =>
      r.columns.map((c) => norm((row as Record<string, unknown>)[c.name], c.typeOid)),
    );
    return { ok: true, cols, rows, count: r.rowCount };
  } catch (e) {
    if (!(e instanceof TwillError)) return { ok: false, code: "NOT-A-TWILLERROR", message: String(e) };
    return { ok: false, code: e.sqlstate ?? e.code, message: e.message };
  }
}

async function runPg(pg: PGlite, s: Stmt): Promise<Outcome> {
  try {
    const r = await pg.query<unknown[]>(s.sql, s.params, { rowMode: "array" });
    const cols = r.fields.map((f) => ({ name: f.name, oid: f.dataTypeID }));
    const rows = r.rows.map((row) => row.map((v, i) => norm(v, cols[i]!.oid)));
    return { ok: true, cols, rows, count: r.affectedRows ?? 0 };
  } catch (e) {
    const err = e as { code?: string; message?: string };
    return { ok: false, code: err.code ?? "NO-CODE", message: err.message ?? String(e) };
  }
}

const show = (o: Outcome) =>
  o.ok
    ? `ok cols=${JSON.stringify(o.cols)} count=${o.count} rows=${JSON.stringify(o.rows.slice(0, 12))}${o.rows.length > 12 ? ` …(${o.rows.length})` : ""}`
    : `error ${o.code}: ${o.message}`;

/**
 * SQLSTATE pairs accepted as the same failure (documented differences):
 *   - 22007 invalid_datetime_format vs 22008 datetime_field_overflow on malformed date/time input: PostgreSQL's
 *     field parser sometimes reads a digit string as fields and reports the range; Twill reports the syntax.
 */
function allowedCodes(twill: string, postgres: string): boolean {
  const pair = `${twill}/${postgres}`;
  return pair === "22007/22008" || pair === "22008/22007";
}

/** Undefined when the outcomes agree, else what differs. */
function compare(s: Stmt, tw: Outcome, pg: Outcome): string | undefined {
  if (!tw.ok && (tw.code === "XX000" || tw.code === "NOT-A-TWILLERROR"))
    return "Twill raised an internal error";
  if (!tw.ok || !pg.ok) {
    if (tw.ok !== pg.ok) return "one side failed, the other did not";
    if (!tw.ok && !pg.ok && tw.code !== pg.code && !allowedCodes(tw.code, pg.code))
      return "different SQLSTATE";
    return undefined;
  }
  if (JSON.stringify(tw.cols) !== JSON.stringify(pg.cols)) return "different columns (names or type OIDs)";
  if (/^\s*(INSERT|UPDATE|DELETE)/i.test(s.sql) && tw.count !== pg.count)
    return "different affected-row count";
  if (tw.rows.length !== pg.rows.length) return "different number of rows";
  let a = tw.rows;
  let b = pg.rows;
  if (s.unordered) {
    a = [...a].sort((x, y) => (rowKey(x) < rowKey(y) ? -1 : rowKey(x) > rowKey(y) ? 1 : 0));
    b = [...b].sort((x, y) => (rowKey(x) < rowKey(y) ? -1 : rowKey(x) > rowKey(y) ? 1 : 0));
  }
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.length !== y.length || x.some((v, j) => !sameValue(v, y[j]))) return `row ${i} differs`;
  }
  return undefined;
}

const showParam = (v: unknown): string =>
  typeof v === "bigint" ? `${v}n` : typeof v === "number" ? floatText(v) : JSON.stringify(v);

/** The statements as a script: parameters in a comment, ready to paste into a test or psql (with values). */
function script(stmts: readonly Stmt[]): string {
  return stmts
    .map(
      (s) => `${s.sql};${s.params.length > 0 ? `  -- params: [${s.params.map(showParam).join(", ")}]` : ""}`,
    )
    .join("\n");
}

class Mismatch extends Error {}

/** TWILL_DIFF_STATS=1: what the workloads did (statement kinds, outcomes, rows), printed after the run. */
const stats = new Map<string, number>();
function note(s: Stmt, o: Outcome, final: boolean): void {
  const bump = (key: string, n = 1) => stats.set(key, (stats.get(key) ?? 0) + n);
  const kind = final ? "final" : (/^\s*(\w+)/.exec(s.sql)?.[1] ?? "?").toUpperCase();
  bump(`${kind} ${o.ok ? "ok" : o.code}`);
  if (o.ok) bump(`${kind} rows`, o.rows.length);
  if (o.ok && o.rows.length > 0) bump(`${kind} non-empty`);
}

let pg: PGlite;

async function resetPg(): Promise<void> {
  // A workload that failed half-way may leave a transaction open.
  await pg.exec("ROLLBACK").catch(() => undefined);
  // ch: the table of a regression test, left behind when that test fails half-way.
  await pg.exec("DROP TABLE IF EXISTS acct, post, tag, ch");
  await pg.exec(SCHEMA.join(";\n"));
}

const FINAL: Stmt[] = [
  { sql: "SELECT * FROM acct ORDER BY id", params: [] },
  { sql: "SELECT * FROM post ORDER BY pid", params: [] },
  { sql: "SELECT * FROM tag ORDER BY post_id, label", params: [] },
];

/** Runs one workload on both systems; throws a Mismatch describing the first disagreement. */
async function runWorkload(stmts: readonly Stmt[]): Promise<void> {
  await resetPg();
  await using db = await open("memory://", { int8: "bigint" });
  for (const s of SCHEMA) await db.exec(s);
  const all = [...stmts, ...FINAL];
  for (let i = 0; i < all.length; i++) {
    const s = all[i]!;
    const tw = await runTwill(db, s);
    const pr = await runPg(pg, s);
    if (STATS) note(s, tw, i >= stmts.length);
    const why = compare(s, tw, pr);
    if (why !== undefined) {
      const where = i < stmts.length ? `statement ${i + 1} of ${stmts.length}` : "the final table check";
      throw new Mismatch(
        `${why} at ${where}:\n  ${s.sql}${s.params.length > 0 ? `\n  params: [${s.params.map(showParam).join(", ")}]` : ""}\n  twill:    ${show(tw)}\n  postgres: ${show(pr)}`,
      );
    }
  }
}

beforeAll(async () => {
  pg = await PGlite.create();
  await pg.exec("SET TimeZone = 'UTC'");
}, 60_000);

afterAll(async () => {
  await pg?.close();
});

describe("Twill DB vs PostgreSQL (PGlite) on random workloads", () => {
  it(
    "gives the same results, statement by statement",
    async () => {
      const started = Date.now();
      const result = await fc.check(
        fc.asyncProperty(workloadArb, async (stmts) => {
          await runWorkload(stmts);
        }),
        {
          numRuns: RUNS,
          seed: SEED,
          ...(REPLAY_PATH ? { path: REPLAY_PATH, endOnFailure: true } : {}),
        },
      );
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      if (result.failed) {
        const example = result.counterexample?.[0] ?? [];
        const error =
          "errorInstance" in result && result.errorInstance instanceof Error
            ? result.errorInstance.message
            : "the run was interrupted or skipped too many cases";
        const report = [
          `differential test failed after ${result.numRuns} runs (${result.numShrinks} shrinks, ${seconds} s)`,
          `replay: TWILL_DIFF_SEED=${result.seed} TWILL_DIFF_PATH=${result.counterexamplePath} npx vitest run test/sql-differential.test.ts`,
          "",
          error,
          "",
          "minimal workload (run on the schema in the file header):",
          script(example),
        ].join("\n");
        expect.fail(report);
      }
      console.log(`differential: ${result.numRuns} workloads agreed (seed ${SEED}, ${seconds} s)`);
      if (STATS)
        console.log(
          [...stats]
            .sort()
            .map(([key, n]) => `${key}: ${n}`)
            .join("\n"),
        );
    },
    TIMEOUT_MS,
  );
});

/** Statements given as text, or as [text, params]. */
const stmts = (...xs: (string | [string, unknown[]])[]): Stmt[] =>
  xs.map((x) => (typeof x === "string" ? { sql: x, params: [] } : { sql: x[0], params: x[1] }));

/**
 * Minimal cases of the disagreements the random test found, run on both systems. Each fails until the bug in
 * the SQL layer is fixed; the comment gives PostgreSQL's answer (checked on PGlite, PostgreSQL 17.5).
 */
// Known bugs the differential test found that are not fixed yet are skipped (it.skip) so CI stays meaningful; each
// is listed in the issue note. Fix one, then turn its it.skip back into it and its generator switch on.
describe("sql regressions (found by the differential test)", () => {
  it("types the constant -2147483648 as integer, as PostgreSQL does", async () => {
    // PostgreSQL: pg_typeof = integer; c0 is int4 (OID 23). The grammar folds the minus into the literal and
    // make_const narrows an integer-valued "float" constant to int4 when it fits.
    await runWorkload(stmts("SELECT pg_typeof(-2147483648)::text AS c0", "SELECT (-2147483648) + 0 AS c0"));
  });

  it("has no float8 % float8 operator", async () => {
    // PostgreSQL: 42883 operator does not exist: double precision % double precision.
    await runWorkload(stmts("SELECT 5.5::float8 % 2::float8 AS c0", "SELECT 0::float8 % 0::float8 AS c0"));
  });

  it("raises 22003 when float8 arithmetic underflows", async () => {
    // PostgreSQL: 22003 value out of range: underflow (float8_mul / float8_div: a zero result from non-zero
    // operands).
    await runWorkload(stmts("SELECT 1e-300::float8 * 1e-300::float8 AS c0"));
    await runWorkload(stmts("SELECT 1e-300::float8 / 1e300::float8 AS c0"));
    // …but a finite number over an infinite one is a true zero (found by the random test after the fix above).
    await runWorkload(stmts("SELECT 1e-7::float8 / 'Infinity'::float8 AS c0"));
  });

  it("keeps aggregates over different CASE expressions apart", async () => {
    // PostgreSQL: pos = 5, neg = -3 (conditional aggregation). Twill: 5 and 5 - the second sum reuses the first
    // one's accumulator, because both CASE expressions have the text "CASE" (compile.ts compileCase) and the
    // aggregate sink in select.ts shares aggregates whose text is equal.
    await runWorkload(
      stmts(
        "INSERT INTO post (pid, votes) VALUES (1, 5), (2, 0), (3, -3)",
        "SELECT sum(CASE WHEN votes > 0 THEN votes END) AS c0, sum(CASE WHEN votes < 0 THEN votes END) AS c1 FROM post",
      ),
    );
  });

  it("orders by a CASE expression, not by a different CASE in the select list", async () => {
    // PostgreSQL orders by the ORDER BY expression: b (NULL key, first in DESC) then a. Twill matches the ORDER BY
    // CASE to the select-list CASE by its text ("CASE", select.ts resolveOrderItem) and sorts by that instead.
    // With DISTINCT, PostgreSQL refuses the query (42P10); Twill runs it.
    await runWorkload(
      stmts(
        "INSERT INTO tag (post_id, label, weight) VALUES (0, 'b', NULL), (0, 'a', 0)",
        "SELECT CASE WHEN label IS NULL THEN weight END AS c0, label AS c1 FROM tag ORDER BY CASE WHEN label >= 'a' THEN weight END DESC, label",
        "SELECT DISTINCT CASE WHEN weight > 0 THEN 1 ELSE 2 END AS c0 FROM tag ORDER BY CASE WHEN weight < 0 THEN 1 ELSE 2 END",
      ),
    );
  });

  it("compares IN-list items without the column's typmod", async () => {
    // PostgreSQL resolves `col IN (…)` to the common base type: '0.001' stays 0.001, so 0.00 is not in the list
    // (and NOT IN keeps the row). Twill coerces untyped items to the column's numeric(8,2) (compile.ts
    // inListExpr, via unifyTypes), rounding '0.001' to 0.00: the row is wrongly in the list. (With varchar(2) the
    // same path raises 22001 "value too long" for a longer item, where PostgreSQL just finds no match.)
    await runWorkload(
      stmts(
        "INSERT INTO post (pid, votes, price) VALUES (0, 0, 0)",
        ["SELECT pid FROM post WHERE price IN ($1, $2)", ["0.001", "5"]],
        "SELECT pid FROM post WHERE price NOT IN ('0.001')",
      ),
    );
  });

  it("ignores trailing blanks when comparing char(n) (found while minimising the IN case)", async () => {
    // Not in the random schema. PostgreSQL: bpchar equality ignores trailing blanks, so 'ab ' = the stored
    // char(3) 'ab' and the row is found, by literal and by parameter. Twill finds no row.
    await runWorkload(
      stmts(
        "CREATE TABLE ch (id int4 PRIMARY KEY, c char(3))",
        "INSERT INTO ch VALUES (1, 'ab')",
        "SELECT id FROM ch WHERE c = 'ab '",
        ["SELECT id FROM ch WHERE c = $1", ["ab "]],
        "DROP TABLE ch",
      ),
    );
  });

  it("orders jsonb as PostgreSQL does", async () => {
    // PostgreSQL: [] < null < … (an empty top-level array sorts before null, a documented quirk), and object
    // keys compare as plain strings, so {"aa": 0} < {"b": 0}. Twill puts [] among the arrays and compares keys
    // shortest first (the jsonb storage order), so {"b": 0} < {"aa": 0}.
    await runWorkload(
      stmts(
        `INSERT INTO acct (id, name, meta) VALUES (1, 'x', 'null'), (2, 'x', '[]'), (3, 'x', '{"b": 0}'), (4, 'x', '{"aa": 0}')`,
        "SELECT id, meta::text AS c1 FROM acct ORDER BY meta, id",
        `SELECT '{"aa": 0}'::jsonb < '{"b": 0}'::jsonb AS c0`,
      ),
    );
  });

  it("divides float8 NaN by zero to NaN", async () => {
    // PostgreSQL (float8_div): division by zero is an error only when the dividend is not NaN, so this is NaN.
    // Twill raises 22012. (numeric NaN / 0 already agrees.)
    await runWorkload(stmts("SELECT ('NaN'::float8 / 0::float8)::text AS c0"));
  });

  it("takes the arbiter's action when a row conflicts on the arbiter and on the primary key", async () => {
    // PostgreSQL checks the arbiter index (email) first: the second INSERT does nothing (0 rows, no error) and
    // the third updates row 0 (RETURNING name = 'z'). Twill checks the primary key first and raises 23505.
    await runWorkload(
      stmts(
        "INSERT INTO acct (id, email, name) VALUES (0, 'b', 'a')",
        "INSERT INTO acct (id, email, name) VALUES (0, 'b', 'a') ON CONFLICT (email) DO NOTHING",
        "INSERT INTO acct (id, email, name) VALUES (0, 'b', 'z') ON CONFLICT (email) DO UPDATE SET name = EXCLUDED.name RETURNING name",
      ),
    );
  });

  it("extracts from infinite timestamps as PostgreSQL does", async () => {
    // PostgreSQL 14+: monotonic units (year, epoch, …) of ±infinity are ±Infinity; the others are NULL.
    // Twill computes NaN for both.
    await runWorkload(
      stmts(
        "SELECT extract(year from 'infinity'::timestamptz) AS c0",
        "SELECT date_part('year', '-infinity'::timestamptz) AS c0",
        "SELECT extract(month from 'infinity'::timestamptz) AS c0",
        "SELECT extract(day from 'infinity'::date) AS c0",
      ),
    );
  });

  it("truncates infinite timestamps to themselves in date_trunc", async () => {
    // PostgreSQL: infinity for every unit. Twill: 'year' and 'month' print "0NaN-NaN-NaN NaN:NaN:NaN+00 BC".
    await runWorkload(
      stmts(
        "SELECT date_trunc('month', 'infinity'::timestamptz)::text AS c0",
        "SELECT date_trunc('year', '-infinity'::timestamptz)::text AS c0",
      ),
    );
  });

  it("gives extract(second) and extract(epoch) PostgreSQL's numeric scale, and refuses time units of a date", async () => {
    // PostgreSQL: 56.789000, 1709210096.789000 and 0.000000 (scale 6); extract(second from date) is 0A000.
    // Twill: 56.789, 1709210096.789, 0; and 0 for the date.
    await runWorkload(
      stmts(
        "SELECT extract(second from '2024-02-29 12:34:56.789+00'::timestamptz)::text AS c0",
        "SELECT extract(epoch from '2024-02-29 12:34:56.789+00'::timestamptz)::text AS c0",
        "SELECT extract(second from '2024-01-01 00:00:00+00'::timestamptz)::text AS c0",
        "SELECT extract(second from '2024-02-29'::date) AS c0",
      ),
    );
  });

  it("types the elements of ARRAY[…]::t[] as t, parameters included", async () => {
    // PostgreSQL pushes the cast down to the elements: $2 is numeric, the row is not found, no error. Twill typed
    // $2 from its neighbour 0 (int4) and failed with 22P02 on "999999.99" (found once = ANY was generated).
    await runWorkload(
      stmts(
        "INSERT INTO acct (id, name, balance) VALUES (1, 'x', 0)",
        [
          "UPDATE acct SET name = $1 WHERE balance = ANY (ARRAY[$2, 0]::numeric[]) RETURNING id",
          ["a", "999999.99"],
        ],
        "SELECT id FROM acct WHERE id = ANY (ARRAY[1.5, 0]::int4[])",
      ),
    );
  });

  it("keeps the sign of a float8 sum of negative zeros", async () => {
    // PostgreSQL: sum starts from the first value, so the sum of {-0} is -0. Twill starts from 0 and gives 0.
    await runWorkload(stmts("SELECT sum(x)::text AS c0 FROM (VALUES ('-0'::float8)) v(x)"));
  });

  it("answers 25P02 in an aborted transaction even when the statement would fail to plan", async () => {
    // PostgreSQL: every statement after the failed INSERT (other than ROLLBACK/COMMIT) gets 25P02, including
    // ones naming a missing table or folding a failing constant.
    await runWorkload(
      stmts(
        "BEGIN",
        ["INSERT INTO acct (id) VALUES ($1)", [0]],
        "SELECT ('Infinity'::float8)::int4 AS c0",
        "SELECT * FROM missing",
        "SELECT nope FROM acct",
        "ROLLBACK",
      ),
    );
  });
});
