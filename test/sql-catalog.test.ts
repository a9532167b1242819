/**
 * information_schema and pg_catalog views, and the system information functions. information_schema is compared
 * with PostgreSQL itself (PGlite) on the same DDL, ALTERs included.
 */

import type { PGlite } from "@electric-sql/pglite";
import { describe, expect, it } from "vitest";
import type { Database } from "../src/database.js";
import { pairWithPglite } from "./helpers/pglite-pair.js";
import { expectSqlState, memoryDb } from "./sql-helpers.js";

const DDL = [
  "CREATE TABLE users (id serial PRIMARY KEY, email varchar(120) NOT NULL UNIQUE, score numeric(6,2), born date)",
  "CREATE TABLE notes (user_id int NOT NULL, n int NOT NULL, body text, tags jsonb, at timestamptz, PRIMARY KEY (user_id, n))",
  "CREATE INDEX notes_at ON notes (at)",
  "CREATE TABLE plain (a int2, b int8, c float4, d float8, e bool, f bytea, g uuid, h char(3), i timestamp, k int4[], l text[])",
  "ALTER TABLE plain DROP COLUMN b",
  "ALTER TABLE plain ADD COLUMN j text NOT NULL DEFAULT 'x'",
  "ALTER TABLE notes RENAME COLUMN body TO text_body",
];

const COLUMNS_SQL = `SELECT table_name, column_name, ordinal_position, is_nullable, data_type,
    character_maximum_length, numeric_precision, numeric_scale, udt_name
  FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, ordinal_position`;

let pg: PGlite;
let db: Database;

pairWithPglite(DDL, (p, d) => {
  pg = p;
  db = d;
});

/** PGlite returns some integer columns as numbers, some as strings; compare as text. */
function norm(rows: Record<string, unknown>[]): Record<string, string | null>[] {
  return rows.map((r) =>
    Object.fromEntries(
      Object.entries(r).map(([k, v]) => [k, v === null || v === undefined ? null : String(v)]),
    ),
  );
}

describe("information_schema matches PostgreSQL", () => {
  it("columns", async () => {
    const expected = norm((await pg.query<Record<string, unknown>>(COLUMNS_SQL)).rows);
    expect(norm(await db.query(COLUMNS_SQL))).toEqual(expected);
    expect(expected.length).toBeGreaterThan(10);
  });

  it("tables", async () => {
    const sql = `SELECT table_catalog IS NOT NULL AS has_catalog, table_schema, table_name, table_type
      FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name`;
    expect(norm(await db.query(sql))).toEqual(norm((await pg.query<Record<string, unknown>>(sql)).rows));
  });

  it("pg_tables, pg_indexes and pg_attribute for the public schema", async () => {
    const tables = "SELECT tablename, hasindexes FROM pg_tables WHERE schemaname = 'public' ORDER BY 1";
    expect(norm(await db.query(tables))).toEqual(
      norm((await pg.query<Record<string, unknown>>(tables)).rows),
    );
    const indexes =
      "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 2";
    expect(norm(await db.query(indexes))).toEqual(
      norm((await pg.query<Record<string, unknown>>(indexes)).rows),
    );
    const attrs = `SELECT c.relname, a.attnum, a.attname, a.attnotnull, a.attisdropped, a.atttypmod,
        a.atttypid = 0 OR t.typname IS NOT NULL AS typed, coalesce(t.typname, '-') AS typname
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid
        LEFT JOIN pg_type t ON t.oid = a.atttypid
      WHERE n.nspname = 'public' AND c.relkind = 'r' AND a.attnum > 0
      ORDER BY c.relname, a.attnum`;
    const want = norm((await pg.query<Record<string, unknown>>(attrs)).rows).map((r) =>
      // PostgreSQL names a dropped column's attribute after its number too, and its type is gone (0).
      r.attisdropped === "true" ? { ...r, typname: "-" } : r,
    );
    expect(norm(await db.query(attrs))).toEqual(want);
    const ix = `SELECT c.relname AS t, i.relname AS ix, x.indisunique, x.indisprimary, x.indnatts
      FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' ORDER BY 2`;
    expect(norm(await db.query(ix))).toEqual(norm((await pg.query<Record<string, unknown>>(ix)).rows));
  });
});

describe("pg_type matches PostgreSQL for the types Twill has", () => {
  it("scalar and array types: oid, name, length, category, element and array links", async () => {
    const sql = `SELECT oid::int4 AS oid, typname::text AS typname, typlen, typcategory::text AS typcategory,
        typelem::int4 AS typelem, typarray::int4 AS typarray FROM pg_type WHERE oid::int4 = ANY ($1) ORDER BY 1`;
    const oids = [16, 17, 20, 21, 23, 25, 700, 701, 1042, 1043, 1082, 1114, 1184, 1700, 2950, 3802];
    const all = [
      ...oids,
      1000,
      1001,
      1005,
      1007,
      1009,
      1014,
      1015,
      1016,
      1021,
      1022,
      1115,
      1182,
      1185,
      1231,
      2951,
      3807,
    ];
    const want = norm((await pg.query<Record<string, unknown>>(sql, [all])).rows);
    expect(want.length).toBe(all.length);
    const twill =
      "SELECT oid, typname, typlen, typcategory, typelem, typarray FROM pg_type WHERE oid = ANY ($1) ORDER BY 1";
    expect(norm(await db.query(twill, [all]))).toEqual(want);
  });
});

describe("system views and functions", () => {
  it("see the transaction's own DDL and only committed DDL from outside", async () => {
    await using d = await memoryDb();
    await d.exec("CREATE TABLE a (x int)");
    await d.exec("BEGIN");
    await d.exec("CREATE TABLE b (y int)");
    expect(await d.query("SELECT table_name FROM information_schema.tables ORDER BY 1")).toEqual([
      { table_name: "a" },
      { table_name: "b" },
    ]);
    await d.exec("ROLLBACK");
    expect(await d.query("SELECT table_name FROM information_schema.tables ORDER BY 1")).toEqual([
      { table_name: "a" },
    ]);
    await expectSqlState(d.exec("INSERT INTO pg_class VALUES (1)"), "0A000", /read-only/);
    await expectSqlState(d.exec("DELETE FROM information_schema.tables"), "0A000", /read-only/);
    await expectSqlState(d.query("SELECT * FROM information_schema.a"), "42P01");
    await expectSqlState(d.query("SELECT nope FROM pg_class"), "42703");
    // A user table named like a system view is shadowed by pg_catalog (searched first), as in PostgreSQL.
    await d.exec("CREATE TABLE pg_type (z int)");
    expect(await d.query("SELECT count(*)::int AS n FROM public.pg_type")).toEqual([{ n: 0 }]);
    expect(
      ((await d.query("SELECT count(*)::int AS n FROM pg_type")) as { n: number }[])[0]!.n,
    ).toBeGreaterThan(10);
  });

  it("version(), current_database(), current_schema(), pg_typeof()", async () => {
    await using d = await memoryDb();
    const [r] = await d.query(
      "SELECT version() AS v, current_database() AS db, current_schema() AS s, current_schema AS s2, pg_typeof(1) AS a, pg_typeof(1.5) AS b, pg_typeof('x'::varchar(3)) AS c",
    );
    expect(r).toMatchObject({
      db: "twill",
      s: "public",
      s2: "public",
      a: "integer",
      b: "numeric",
      c: "character varying",
    });
    expect(String((r as { v: string }).v)).toMatch(/^PostgreSQL \d+\.\d+/);
    await expectSqlState(d.query("SELECT pg_typeof()"), "42883");
  });
});
