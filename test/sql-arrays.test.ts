/**
 * Arrays: literals, ARRAY[...], text output, operators, ANY/ALL, functions, unnest, storage and parameters.
 * Expressions are checked against PostgreSQL itself (PGlite) through their text form.
 */

import type { PGlite } from "@electric-sql/pglite";
import { beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../src/database.js";
import { pairWithPglite } from "./helpers/pglite-pair.js";
import { expectSqlState, memoryDb } from "./sql-helpers.js";

let pg: PGlite;
let db: Database;

pairWithPglite([], (p, d) => {
  pg = p;
  db = d;
});

const EXPRESSIONS = [
  "ARRAY[1,2,3]",
  "ARRAY[1,NULL,3]",
  "'{}'::int[]",
  '\'{ a , b ,"c d",NULL,"NULL", ""}\'::text[]',
  "ARRAY['a\"b', 'back\\slash', 'x,y', '{z}', ' sp']",
  "'{1,2}'::int8[]",
  "ARRAY[1.5, 2]",
  "ARRAY[true, false, NULL]",
  "ARRAY[1,2]::text[]",
  "'{3,4}'::text[]::int4[]",
  "(ARRAY[10,20,30])[2]",
  "(ARRAY[10,20,30])[5]",
  "(ARRAY[10,20,30])[2:3]",
  "(ARRAY[10,20,30])[:2]",
  "(ARRAY[10,20,30])[2:]",
  "ARRAY[1,2] = ARRAY[1,2]",
  "ARRAY[1,2] = ARRAY[2,1]",
  "ARRAY[1,2] <> '{1,2,3}'",
  "ARRAY[1,2] < ARRAY[1,2,0]",
  "ARRAY[1,NULL] > ARRAY[1,5]",
  "ARRAY[NULL]::int[] = ARRAY[NULL]::int[]",
  "ARRAY[1,2,3] @> ARRAY[3,1]",
  "ARRAY[1,2,3] @> '{4}'",
  "ARRAY[1,NULL] @> ARRAY[NULL]::int[]",
  "ARRAY[2] <@ ARRAY[1,2]",
  "'{}'::int[] <@ ARRAY[1]",
  "ARRAY[1,2] && ARRAY[2,3]",
  "ARRAY['a'] && ARRAY['b']",
  "ARRAY[1,2] || ARRAY[3]",
  "ARRAY[1,2] || 3",
  "0 || ARRAY[1,2]",
  "ARRAY['a'] || '{b,c}'",
  "NULL::int[] || ARRAY[1]",
  "ARRAY[1,2] || NULL::int",
  "2 = ANY(ARRAY[1,2])",
  "5 = ANY(ARRAY[1,2])",
  "5 = ANY(ARRAY[1,NULL])",
  "1 = ANY('{}'::int[])",
  "1 = ALL('{}'::int[])",
  "3 > ALL(ARRAY[1,2])",
  "3 <> ALL(ARRAY[1,NULL])",
  "'b' = ANY('{a,b}'::text[])",
  "2 = ANY('{1,2}')",
  "NULL::int = ANY(ARRAY[1])",
  "1.0 = ANY(ARRAY[1,2])",
  "array_length(ARRAY[1,2,3], 1)",
  "array_length('{}'::int[], 1)",
  "array_length(ARRAY[1], 2)",
  "cardinality(ARRAY[1,2])",
  "cardinality('{}'::text[])",
  "array_upper(ARRAY[5,6], 1)",
  "array_lower(ARRAY[5,6], 1)",
  "array_ndims(ARRAY[5,6])",
  "array_append(ARRAY[1], 2)",
  "array_prepend(0, ARRAY[1])",
  "array_cat(ARRAY[1], ARRAY[2,3])",
  "array_position(ARRAY['a','b','c'], 'c')",
  "array_position(ARRAY[1,NULL], NULL)",
  "array_remove(ARRAY[1,2,1,3], 1)",
  "array_to_string(ARRAY[1,NULL,3], '-')",
  "array_to_string(ARRAY[1,NULL,3], '-', '*')",
  "array_to_string(ARRAY[true,false], ',')",
  "string_to_array('a,b,,c', ',')",
  "string_to_array('a b', NULL)",
  "string_to_array('a,x,b', ',', 'x')",
  "string_to_array('', ',')",
  "pg_typeof(ARRAY[1])",
  "pg_typeof(ARRAY['a'::varchar])",
  "pg_typeof('{1}'::int8[])",
];

describe("array expressions match PostgreSQL", () => {
  it.each(EXPRESSIONS)("%s", async (e) => {
    const sql = `SELECT (${e})::text AS v`;
    const want = (await pg.query<{ v: string | null }>(sql)).rows[0]!.v;
    expect((await db.query(sql))[0]).toEqual({ v: want });
  });

  it("type OIDs and JavaScript values", async () => {
    const r = await db.execute(
      "SELECT ARRAY[1,2] AS a, ARRAY[1::int8] AS b, ARRAY['x'] AS c, ARRAY[true] AS d, '{1.5}'::float8[] AS e",
    );
    expect(r.columns.map((c) => c.typeOid)).toEqual([1007, 1016, 1009, 1000, 1022]);
    expect(r.columns.map((c) => c.typeName)).toEqual([
      "integer[]",
      "bigint[]",
      "text[]",
      "boolean[]",
      "double precision[]",
    ]);
    expect(r.rows).toEqual([{ a: [1, 2], b: [1], c: ["x"], d: [true], e: [1.5] }]);
    const p = await pg.query("SELECT ARRAY[1,2] AS a, ARRAY[1::int8] AS b, ARRAY['x'] AS c");
    expect(p.fields.map((f) => f.dataTypeID)).toEqual([1007, 1016, 1009]);
  });

  it("refuses what PostgreSQL refuses, and what Twill does not hold", async () => {
    for (const [sql, state] of [
      ["SELECT '{1,2'::int[]", "22P02"],
      ["SELECT 'x'::int[]", "22P02"],
      ["SELECT '{a}'::int[]", "22P02"],
      ["SELECT ARRAY[1] || 'z'", "22P02"],
      ["SELECT 1 = ANY(1)", "42809"],
      ["SELECT ARRAY[1] @> 1", "42883"],
      ["SELECT ARRAY[1]::int8[] @> ARRAY[1]", "42883"],
    ] as const) {
      let pgState: string | undefined;
      try {
        await pg.query(sql);
      } catch (e) {
        pgState = (e as { code?: string }).code;
      }
      expect(pgState, sql).toBe(state);
      await expectSqlState(db.query(sql), state);
    }
    await expectSqlState(db.query("SELECT '{{1},{2}}'::int[]"), "0A000", /multidimensional/);
    await expectSqlState(db.query("SELECT ARRAY[ARRAY[1]]"), "0A000", /multidimensional/);
    await expectSqlState(db.exec("CREATE TABLE bad (a int[] PRIMARY KEY)"), "0A000", /array columns/);
  });
});

describe("array columns", () => {
  it("store, filter, group, unnest, survive updates, and take JavaScript arrays as parameters", async () => {
    await using d = await memoryDb();
    await d.exec("CREATE TABLE posts (id int PRIMARY KEY, tags text[] NOT NULL DEFAULT '{}', scores int4[])");
    await d.query("INSERT INTO posts VALUES ($1, $2, $3)", [1, ["db", "ts"], [3, 4]]);
    await d.query("INSERT INTO posts VALUES (?, ?, ?)", [2, ["ts"], null]);
    await d.exec("INSERT INTO posts (id) VALUES (3)");
    expect(await d.query("SELECT * FROM posts ORDER BY id")).toEqual([
      { id: 1, tags: ["db", "ts"], scores: [3, 4] },
      { id: 2, tags: ["ts"], scores: null },
      { id: 3, tags: [], scores: null },
    ]);
    expect(await d.query("SELECT id FROM posts WHERE tags @> $1 ORDER BY id", [["ts"]])).toEqual([
      { id: 1 },
      { id: 2 },
    ]);
    expect(await d.query("SELECT id FROM posts WHERE id = ANY($1) ORDER BY id", [[3, 1, 9]])).toEqual([
      { id: 1 },
      { id: 3 },
    ]);
    expect(await d.query("SELECT id FROM posts WHERE 'db' = ANY(tags)")).toEqual([{ id: 1 }]);
    // pk = ANY(array) is a primary-key lookup per element (duplicates and NULLs find nothing twice).
    const plan = (await d.query("EXPLAIN SELECT id FROM posts WHERE id = ANY($1)", [[1]])).map(
      (r) => r["QUERY PLAN"],
    );
    expect(plan.join("\n")).toMatch(/Index Scan using posts_pkey on posts\n.*id = ANY/);
    expect(await d.query("SELECT id FROM posts WHERE id = ANY($1)", [[3, null, 3, 1]])).toEqual([
      { id: 3 },
      { id: 1 },
    ]);
    expect(await d.query("SELECT id FROM posts WHERE id = ANY($1)", [[]])).toEqual([]);
    await d.exec("UPDATE posts SET tags = tags || 'new'::text WHERE id = 2");
    await d.exec("UPDATE posts SET scores = array_append(scores, 5) WHERE id = 1");
    expect(await d.query("SELECT tags, scores[3] AS third FROM posts WHERE id <= 2 ORDER BY id")).toEqual([
      { tags: ["db", "ts"], third: 5 },
      { tags: ["ts", "new"], third: null },
    ]);
    expect(
      await d.query("SELECT cardinality(tags) AS n, count(*)::int AS k FROM posts GROUP BY 1 ORDER BY 1"),
    ).toEqual([
      { n: 0, k: 1 },
      { n: 2, k: 2 },
    ]);
    expect(await d.query("SELECT DISTINCT tags FROM posts ORDER BY tags")).toEqual([
      { tags: [] },
      { tags: ["db", "ts"] },
      { tags: ["ts", "new"] },
    ]);
    expect(await d.query("SELECT t FROM unnest($1::text[]) AS t ORDER BY t", [["b", "a"]])).toEqual([
      { t: "a" },
      { t: "b" },
    ]);
    await d.exec("ALTER TABLE posts ADD COLUMN refs int8[] DEFAULT '{7}'");
    expect(await d.query("SELECT refs FROM posts WHERE id = 1")).toEqual([{ refs: [7] }]);
  });
});

describe("array_agg and ARRAY(subquery) match PostgreSQL", () => {
  const SETUP = [
    "CREATE TABLE agg (g int4, v text, n int8)",
    "INSERT INTO agg VALUES (1, 'b', 10), (1, NULL, NULL), (2, 'a', 30), (1, 'b', 20), (2, 'c', 10)",
  ];
  const QUERIES = [
    "SELECT g, array_agg(n)::text AS v FROM agg WHERE v IS NOT NULL GROUP BY g ORDER BY g",
    "SELECT array_agg(DISTINCT v)::text AS v FROM agg",
    "SELECT array_agg(DISTINCT n)::text AS v FROM agg",
    "SELECT array_agg(v)::text AS v FROM agg WHERE false",
    "SELECT cardinality(array_agg(v)) AS v FROM agg",
    "SELECT ARRAY(SELECT v FROM agg ORDER BY g, v NULLS FIRST, n)::text AS v",
    "SELECT ARRAY(SELECT n FROM agg WHERE false)::text AS v",
    "SELECT g FROM agg WHERE n = ANY(ARRAY(SELECT n FROM agg WHERE g = 2)) ORDER BY g, n",
  ];
  beforeAll(async () => {
    for (const s of SETUP) {
      await pg.exec(s);
      await db.exec(s);
    }
  });
  const text = (rows: Record<string, unknown>[]) =>
    rows.map((r) =>
      Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v === null ? null : String(v)])),
    );
  it.each(QUERIES)("%s", async (q) => {
    expect(text(await db.query(q))).toEqual(text((await pg.query<Record<string, unknown>>(q)).rows));
  });
});
