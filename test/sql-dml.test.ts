/** INSERT (multi-row, column lists, DEFAULT, RETURNING, ON CONFLICT, … SELECT), UPDATE and DELETE. */

import { describe, expect, it } from "vitest";
import { expectSqlState, memoryDb } from "./sql-helpers.js";

describe("INSERT", () => {
  it("inserts with column lists, DEFAULT and RETURNING", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (id serial PRIMARY KEY, a text DEFAULT 'd', b int)");
    expect(await db.query("INSERT INTO t (b, a) VALUES (1, 'x'), (2, DEFAULT) RETURNING *")).toEqual([
      { id: 1, a: "x", b: 1 },
      { id: 2, a: "d", b: 2 },
    ]);
    expect(await db.query("INSERT INTO t VALUES (DEFAULT) RETURNING id, a || '!' AS bang")).toEqual([
      { id: 3, bang: "d!" },
    ]);
    expect(await db.query("INSERT INTO t DEFAULT VALUES RETURNING id")).toEqual([{ id: 4 }]);
    await expectSqlState(
      db.query("INSERT INTO t (a) VALUES ('x', 1)"),
      "42601",
      "INSERT has more expressions than target columns",
    );
    await expectSqlState(
      db.query("INSERT INTO t (a, b) VALUES ('x')"),
      "42601",
      "INSERT has more target columns than expressions",
    );
    await expectSqlState(
      db.query("INSERT INTO t (nope) VALUES (1)"),
      "42703",
      'column "nope" of relation "t" does not exist',
    );
    await expectSqlState(
      db.query("INSERT INTO t (a, a) VALUES (1, 1)"),
      "42701",
      'column "a" specified more than once',
    );
    await expectSqlState(db.query("INSERT INTO nope VALUES (1)"), "42P01", 'relation "nope" does not exist');
  });

  it("inserts from a query, including from the same table", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (id int PRIMARY KEY, v int)");
    await db.query("INSERT INTO t SELECT x, x * 10 FROM generate_series(1, 3) AS g(x)");
    await db.query("INSERT INTO t SELECT id + 3, v FROM t");
    expect(await db.query("SELECT count(*) AS n, sum(v) AS s FROM t")).toEqual([{ n: 6, s: 120 }]);
  });

  it("handles ON CONFLICT DO NOTHING and DO UPDATE", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE kv (k text PRIMARY KEY, v int, hits int DEFAULT 0, tag text UNIQUE)");
    await db.query("INSERT INTO kv (k, v, tag) VALUES ('a', 1, 'ta')");
    expect(
      await db.query("INSERT INTO kv (k, v) VALUES ('a', 2) ON CONFLICT DO NOTHING RETURNING k"),
    ).toEqual([]);
    expect(
      await db.query("INSERT INTO kv (k, v) VALUES ('a', 2) ON CONFLICT (k) DO NOTHING RETURNING k"),
    ).toEqual([]);
    expect(
      await db.query(
        "INSERT INTO kv AS t (k, v) VALUES ('a', 5), ('b', 6) ON CONFLICT (k) DO UPDATE SET v = t.v + EXCLUDED.v, hits = t.hits + 1 RETURNING k, v, hits",
      ),
    ).toEqual([
      { k: "a", v: 6, hits: 1 },
      { k: "b", v: 6, hits: 0 },
    ]);
    // A conflict on another constraint than the arbiter is an error.
    await expectSqlState(
      db.query("INSERT INTO kv (k, v, tag) VALUES ('z', 1, 'ta') ON CONFLICT (k) DO NOTHING"),
      "23505",
      /kv_tag_key/,
    );
    // ON CONFLICT ON CONSTRAINT, and DO UPDATE … WHERE.
    await db.query(
      "INSERT INTO kv (k, v, tag) VALUES ('q', 1, 'ta') ON CONFLICT ON CONSTRAINT kv_tag_key DO UPDATE SET v = 100",
    );
    expect(await db.query("SELECT v FROM kv WHERE tag = 'ta'")).toEqual([{ v: 100 }]);
    await db.query(
      "INSERT INTO kv (k, v) VALUES ('a', 1) ON CONFLICT (k) DO UPDATE SET v = 0 WHERE kv.v > 1000",
    );
    expect(await db.query("SELECT v FROM kv WHERE k = 'a'")).toEqual([{ v: 100 }]);
    await expectSqlState(
      db.query(
        "INSERT INTO kv (k, v) VALUES ('c', 1), ('c', 2) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v",
      ),
      "21000",
      "ON CONFLICT DO UPDATE command cannot affect row a second time",
    );
    await expectSqlState(
      db.query("INSERT INTO kv (k) VALUES ('a') ON CONFLICT DO UPDATE SET v = 1"),
      "42601",
    );
    await expectSqlState(db.query("INSERT INTO kv (k) VALUES ('a') ON CONFLICT (v) DO NOTHING"), "42P10");
  });

  it("converts assigned values with assignment casts", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (i int, n numeric(5,2), s text, f float4)");
    await db.query("INSERT INTO t VALUES (2.5, 1.005, 42, 1)");
    expect(await db.query("SELECT * FROM t")).toEqual([{ i: 3, n: "1.01", s: "42", f: 1 }]);
    await db.query("INSERT INTO t (i) VALUES ($1)", [7n]);
    await expectSqlState(
      db.query("INSERT INTO t (i) VALUES ('1'::text)"),
      "42804",
      'column "i" is of type integer but expression is of type text',
    );
  });
});

describe("UPDATE and DELETE", () => {
  it("use correlated subqueries in WHERE and SET", async () => {
    await using db = await memoryDb();
    await db.exec(`CREATE TABLE orders (id int PRIMARY KEY, total int);
      CREATE TABLE lines (id int PRIMARY KEY, order_id int, amount int);
      CREATE INDEX lines_order ON lines (order_id);
      INSERT INTO orders VALUES (1, 0), (2, 0), (3, 0);
      INSERT INTO lines VALUES (1, 1, 5), (2, 1, 7), (3, 2, 1);`);
    expect(
      await db.query(
        "UPDATE orders SET total = (SELECT coalesce(sum(amount), 0) FROM lines WHERE order_id = orders.id) RETURNING id, total",
      ),
    ).toEqual([
      { id: 1, total: 12 },
      { id: 2, total: 1 },
      { id: 3, total: 0 },
    ]);
    expect(
      await db.query(
        "DELETE FROM orders o WHERE NOT EXISTS (SELECT 1 FROM lines l WHERE l.order_id = o.id) RETURNING id",
      ),
    ).toEqual([{ id: 3 }]);
    await expectSqlState(
      db.query(
        "UPDATE orders SET total = 1 RETURNING (SELECT 1 FROM lines WHERE order_id = orders.id LIMIT 1)",
      ),
      "0A000",
    );
  });

  it("updates with expressions of the old row and returns the new one", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (id int PRIMARY KEY, a int, b int DEFAULT 7)");
    await db.query("INSERT INTO t VALUES (1, 1, 1), (2, 2, 2), (3, 3, 3)");
    // SET expressions read the old row: a swap works.
    expect(await db.query("UPDATE t SET a = b * 10, b = a WHERE id >= 2 RETURNING id, a, b")).toEqual([
      { id: 2, a: 20, b: 2 },
      { id: 3, a: 30, b: 3 },
    ]);
    expect(await db.query("UPDATE t SET b = DEFAULT WHERE id = 1 RETURNING b")).toEqual([{ b: 7 }]);
    // Moving primary keys. Uniqueness is checked row by row, so shifting onto a key a later row still holds
    // fails, as with PostgreSQL's non-deferrable constraints.
    await expectSqlState(
      db.query("UPDATE t SET id = id + 1"),
      "23505",
      'duplicate key value violates unique constraint "t_pkey"',
    );
    await db.query("UPDATE t SET id = id + 10");
    expect((await db.query<{ id: number }>("SELECT id FROM t ORDER BY id")).map((r) => r.id)).toEqual([
      11, 12, 13,
    ]);
    await db.query("UPDATE t SET id = id - 10 WHERE id = 11");
    await expectSqlState(db.query("UPDATE t SET id = 1 WHERE id = 12"), "23505");
    await expectSqlState(
      db.query("UPDATE t SET nope = 1"),
      "42703",
      'column "nope" of relation "t" does not exist',
    );
    await expectSqlState(
      db.query("UPDATE t SET a = 1, a = 2"),
      "42601",
      'multiple assignments to same column "a"',
    );
    expect((await db.execute("UPDATE t SET a = 0 WHERE false")).rowCount).toBe(0);
    expect(await db.query("SELECT id, a, b FROM t ORDER BY id")).toEqual([
      { id: 1, a: 1, b: 7 },
      { id: 12, a: 20, b: 2 },
      { id: 13, a: 30, b: 3 },
    ]);
  });

  it("deletes with RETURNING", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (id int PRIMARY KEY, v text)");
    await db.query("INSERT INTO t SELECT x, 'v' || x FROM generate_series(1, 10) AS g(x)");
    expect(await db.query("DELETE FROM t WHERE id > 8 RETURNING v")).toEqual([{ v: "v9" }, { v: "v10" }]);
    expect((await db.execute("DELETE FROM t WHERE id IN (1, 2, 3)")).rowCount).toBe(3);
    expect((await db.execute("DELETE FROM t")).rowCount).toBe(5);
    expect(await db.query("SELECT * FROM t")).toEqual([]);
  });

  it("uses uncorrelated subqueries in WHERE", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY)");
    await db.query("INSERT INTO a SELECT x FROM generate_series(1, 5) g(x)");
    await db.query("INSERT INTO b VALUES (2), (4)");
    expect((await db.execute("DELETE FROM a WHERE id IN (SELECT id FROM b)")).rowCount).toBe(2);
    expect(
      (await db.execute("UPDATE a SET id = id * 10 WHERE id = (SELECT min(id) FROM b) + 1")).rowCount,
    ).toBe(1);
    expect((await db.query<{ id: number }>("SELECT id FROM a ORDER BY id")).map((r) => r.id)).toEqual([
      1, 5, 30,
    ]);
    await expectSqlState(
      db.query("UPDATE a SET id = 0 WHERE id = (SELECT id FROM b)"),
      "21000",
      "more than one row returned by a subquery used as an expression",
    );
    expect(await db.query("SELECT * FROM a WHERE EXISTS (SELECT 1 FROM b WHERE b.id = a.id - 3)")).toEqual([
      { id: 5 },
    ]);
  });
});
