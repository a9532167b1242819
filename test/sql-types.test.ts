/** Types: storage round trips, literal and parameter coercion, casts, PostgreSQL's messages on bad input. */

import { describe, expect, it } from "vitest";
import { expectSqlState, memoryDb } from "./sql-helpers.js";

describe("types", () => {
  it("round-trips every supported type through a table", async () => {
    await using db = await memoryDb({ int8: "bigint" });
    await db.exec(`CREATE TABLE t (
      a int2, b int4, c int8, d float4, e float8, f numeric, g numeric(6,2), h text, i varchar(5), j char(3),
      k bool, l bytea, m jsonb, n timestamptz, o timestamp, p date, q uuid)`);
    const when = new Date("2024-05-06T07:08:09.123Z");
    await db.query("INSERT INTO t VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17)", [
      -32768,
      2147483647,
      -(2n ** 63n),
      0.1,
      1e300,
      "12345678901234567890.000000000001",
      "1234.567",
      "héllo 😀",
      "abc  ",
      "x",
      true,
      new Uint8Array([0, 1, 255]),
      { b: [1, "two", null], a: { c: true } },
      when,
      "2024-01-02 03:04:05.678901",
      "2024-02-29",
      "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
    ]);
    const [row] = await db.query("SELECT * FROM t");
    expect(row).toEqual({
      a: -32768,
      b: 2147483647,
      c: -(2n ** 63n),
      d: 0.1,
      e: 1e300,
      f: "12345678901234567890.000000000001",
      g: "1234.57",
      h: "héllo 😀",
      i: "abc  ",
      j: "x  ",
      k: true,
      l: new Uint8Array([0, 1, 255]),
      m: { a: { c: true }, b: [1, "two", null] },
      n: when,
      o: new Date("2024-01-02T03:04:05.678Z"),
      p: new Date("2024-02-29T00:00:00Z"),
      q: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    });
    await db.query("INSERT INTO t (a) VALUES (NULL)");
    const rows = await db.query("SELECT * FROM t WHERE a IS NULL");
    expect(Object.values(rows[0]!).every((v) => v === null)).toBe(true);
  });

  it("coerces string literals and parameters into the context's type", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (id int PRIMARY KEY, ok bool, at timestamptz, n numeric)");
    await db.query("INSERT INTO t VALUES ('42', 'yes', '2024-01-01 00:00:00+02', '1e3')");
    await db.query("INSERT INTO t VALUES ($1, $2, $3, $4)", ["43", "off", "2024-01-01T00:00:00Z", 7]);
    expect(await db.query("SELECT id, ok, n FROM t ORDER BY id")).toEqual([
      { id: 42, ok: true, n: "1000" },
      { id: 43, ok: false, n: "7" },
    ]);
    expect(await db.query("SELECT id FROM t WHERE id = '43'")).toEqual([{ id: 43 }]);
    expect(await db.query("SELECT at FROM t WHERE id = 42")).toEqual([
      { at: new Date("2023-12-31T22:00:00Z") },
    ]);
  });

  it("reports bad input with PostgreSQL's messages", async () => {
    await using db = await memoryDb();
    await db.exec(
      "CREATE TABLE t (i int, s int2, b int8, f float8, n numeric(4,1), v varchar(3), c char(2), o bool, u uuid, j jsonb, d date, ts timestamptz, x bytea)",
    );
    await expectSqlState(
      db.query("INSERT INTO t (i) VALUES ('abc')"),
      "22P02",
      'invalid input syntax for type integer: "abc"',
    );
    await expectSqlState(
      db.query("INSERT INTO t (i) VALUES ($1)", ["abc"]),
      "22P02",
      'invalid input syntax for type integer: "abc"',
    );
    await expectSqlState(
      db.query("INSERT INTO t (i) VALUES ($1)", [1.5]),
      "22P02",
      'invalid input syntax for type integer: "1.5"',
    );
    await expectSqlState(
      db.query("INSERT INTO t (i) VALUES ('99999999999')"),
      "22003",
      'value "99999999999" is out of range for type integer',
    );
    await expectSqlState(db.query("INSERT INTO t (s) VALUES (40000)"), "22003", "smallint out of range");
    await expectSqlState(
      db.query("INSERT INTO t (b) VALUES ('x')"),
      "22P02",
      'invalid input syntax for type bigint: "x"',
    );
    await expectSqlState(
      db.query("INSERT INTO t (f) VALUES ('x')"),
      "22P02",
      'invalid input syntax for type double precision: "x"',
    );
    await expectSqlState(
      db.query("INSERT INTO t (n) VALUES ('x')"),
      "22P02",
      'invalid input syntax for type numeric: "x"',
    );
    await expectSqlState(db.query("INSERT INTO t (n) VALUES (12345)"), "22003", "numeric field overflow");
    await expectSqlState(
      db.query("INSERT INTO t (v) VALUES ('abcd')"),
      "22001",
      "value too long for type character varying(3)",
    );
    await expectSqlState(
      db.query("INSERT INTO t (c) VALUES ('abc')"),
      "22001",
      "value too long for type character(2)",
    );
    await expectSqlState(
      db.query("INSERT INTO t (o) VALUES ('maybe')"),
      "22P02",
      'invalid input syntax for type boolean: "maybe"',
    );
    await expectSqlState(
      db.query("INSERT INTO t (u) VALUES ('nope')"),
      "22P02",
      'invalid input syntax for type uuid: "nope"',
    );
    await expectSqlState(
      db.query("INSERT INTO t (j) VALUES ('{bad')"),
      "22P02",
      "invalid input syntax for type json",
    );
    await expectSqlState(
      db.query("INSERT INTO t (d) VALUES ('2024-13-01')"),
      "22008",
      'date/time field value out of range: "2024-13-01"',
    );
    await expectSqlState(db.query("INSERT INTO t (ts) VALUES ('yesterdayish')"), "22007");
    await expectSqlState(
      db.query("INSERT INTO t (i) VALUES (true)"),
      "42804",
      'column "i" is of type integer but expression is of type boolean',
    );
    // Trailing blanks beyond the length are cut, as PostgreSQL does; explicit casts truncate.
    await db.query("INSERT INTO t (v) VALUES ('ab   ')");
    expect(await db.query("SELECT v, 'abcdef'::varchar(2) AS w FROM t")).toEqual([{ v: "ab ", w: "ab" }]);
  });

  it("computes with PostgreSQL's arithmetic and overflow rules", async () => {
    await using db = await memoryDb({ int8: "bigint" });
    expect(
      await db.query(
        "SELECT 7 / 2 AS a, -7 / 2 AS b, 7 % 3 AS c, 7.0 / 2 AS d, 1 / 3.0 AS e, 2 ^ 10 AS f, 0.1 + 0.2 AS g, 0.1::float8 + 0.2 AS h, 9223372036854775807 AS i",
      ),
    ).toEqual([
      {
        a: 3,
        b: -3,
        c: 1,
        d: "3.5000000000000000",
        e: "0.33333333333333333333",
        f: 1024,
        g: "0.3",
        h: 0.30000000000000004,
        i: 9223372036854775807n,
      },
    ]);
    await expectSqlState(db.query("SELECT 2147483647 + 1"), "22003", "integer out of range");
    await expectSqlState(db.query("SELECT 9223372036854775807::int8 + 1"), "22003", "bigint out of range");
    await expectSqlState(db.query("SELECT 1 / 0"), "22012", "division by zero");
    await expectSqlState(db.query("SELECT 1.0 / 0"), "22012", "division by zero");
    await expectSqlState(
      db.query("SELECT 1 + 'a'::text"),
      "42883",
      "operator does not exist: integer + text",
    );
  });

  it("casts between types", async () => {
    await using db = await memoryDb();
    expect(
      await db.query(
        "SELECT 2.5::int AS a, 3.5::int AS b, 2.5::float8::int AS c, '12'::int + 1 AS d, 42::text AS e, true::text AS f, 1.5::float4::text AS g, 1e20::float8::text AS h, '2024-01-02'::date::text AS i, '2024-01-02 03:04:05.5+00'::timestamptz::text AS j, '\\x0aff'::bytea::text AS k, 5::numeric(5,2)::text AS l, '{\"b\":1,\"a\":2}'::jsonb::text AS m, ' 7 '::int AS n",
      ),
    ).toEqual([
      {
        a: 3,
        b: 4,
        c: 2,
        d: 13,
        e: "42",
        f: "true",
        g: "1.5",
        h: "1e+20",
        i: "2024-01-02",
        j: "2024-01-02 03:04:05.5+00",
        k: "\\x0aff",
        l: "5.00",
        m: '{"a": 2, "b": 1}',
        n: 7,
      },
    ]);
    await expectSqlState(db.query("SELECT true::date"), "42846", "cannot cast type boolean to date");
  });

  it("compares numeric values numerically and text by code point", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (n numeric PRIMARY KEY, s text)");
    await db.query(
      "INSERT INTO t VALUES ('10', 'b'), ('9.5', 'a'), ('-1', 'B'), ('100.000', 'é'), ('-1.5', '😀'), ('0', '\uffff')",
    );
    expect((await db.query<{ n: string }>("SELECT n FROM t ORDER BY n")).map((r) => r.n)).toEqual([
      "-1.5",
      "-1",
      "0",
      "9.5",
      "10",
      "100.000",
    ]);
    expect((await db.query<{ s: string }>("SELECT s FROM t ORDER BY s")).map((r) => r.s)).toEqual([
      "B",
      "a",
      "b",
      "é",
      "\uffff",
      "😀",
    ]);
    expect(await db.query("SELECT n FROM t WHERE n = 100")).toEqual([{ n: "100.000" }]);
    await expectSqlState(
      db.query("INSERT INTO t VALUES (100.0, 'dup')"),
      "23505",
      'duplicate key value violates unique constraint "t_pkey"',
    );
    expect(await db.query("SELECT n FROM t WHERE n > 9.5 ORDER BY n")).toEqual([
      { n: "10" },
      { n: "100.000" },
    ]);
  });

  it("supports jsonb operators", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (id int PRIMARY KEY, doc jsonb)");
    await db.query("INSERT INTO t VALUES (1, $1), (2, $2), (3, 'null')", [
      { name: "a", tags: ["x", "y"], n: 1 },
      [1, 2, 3],
    ]);
    expect(
      await db.query(
        "SELECT id, doc->>'name' AS name, doc->'tags'->>0 AS t0, doc->'n' AS n, doc->1 AS e1, doc->>-1 AS last FROM t ORDER BY id",
      ),
    ).toEqual([
      { id: 1, name: "a", t0: "x", n: 1, e1: null, last: null },
      { id: 2, name: null, t0: null, n: null, e1: 2, last: "3" },
      { id: 3, name: null, t0: null, n: null, e1: null, last: null },
    ]);
    expect(await db.query(`SELECT id FROM t WHERE doc @> '{"tags": ["y"]}'`)).toEqual([{ id: 1 }]);
    expect(await db.query(`SELECT id FROM t WHERE doc @> '2'`)).toEqual([{ id: 2 }]);
    expect(await db.query("SELECT id, doc IS NULL AS sqlnull FROM t WHERE id = 3")).toEqual([
      { id: 3, sqlnull: false },
    ]);
    expect(
      await db.query(
        "SELECT jsonb_build_object('a', 1, 'b', 'x') AS o, jsonb_typeof(doc) AS ty FROM t WHERE id = 2",
      ),
    ).toEqual([{ o: { a: 1, b: "x" }, ty: "array" }]);
  });

  it("generates uuids and timestamps", async () => {
    await using db = await memoryDb();
    await db.exec(
      "CREATE TABLE t (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), at timestamptz DEFAULT now(), d date DEFAULT current_date)",
    );
    await db.query("INSERT INTO t DEFAULT VALUES");
    await db.query("INSERT INTO t DEFAULT VALUES");
    const rows = await db.query<{ id: string; at: Date; d: Date }>("SELECT * FROM t");
    expect(rows).toHaveLength(2);
    expect(rows[0]!.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(rows[0]!.id).not.toBe(rows[1]!.id);
    expect(Math.abs(rows[0]!.at.getTime() - Date.now())).toBeLessThan(60_000);
    expect(rows[0]!.d.getUTCHours()).toBe(0);
  });

  it("keeps now() fixed within a transaction", async () => {
    await using db = await memoryDb();
    await db.transaction(async (tx) => {
      const [a] = await tx.query<{ t: Date }>("SELECT now() AS t");
      await new Promise((r) => setTimeout(r, 5));
      const [b] = await tx.query<{ t: Date }>("SELECT now() AS t");
      expect(a!.t.getTime()).toBe(b!.t.getTime());
    });
  });
});

describe("jsonb operators that contain ?", () => {
  it("work in statements that use $n placeholders (then ? is not a placeholder)", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (id int PRIMARY KEY, doc jsonb)");
    await db.query("INSERT INTO t VALUES ($1, $2)", [1, { a: 1, tags: ["x"] }]);
    expect(await db.query("SELECT id FROM t WHERE doc ? 'a' AND doc->'tags' ? $1", ["x"])).toEqual([
      { id: 1 },
    ]);
    expect(await db.query("SELECT doc ? 'zz' AS has FROM t WHERE id = $1", [1])).toEqual([{ has: false }]);
  });
});
