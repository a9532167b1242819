import { describe, expect, it } from "vitest";
import { expectSqlState, memoryDb } from "./sql-helpers.js";

describe("SQL vector(n): type, operators and functions (pgvector's)", () => {
  it("stores text, number[] and Float32Array parameters; returns Float32Array", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE items (id int PRIMARY KEY, emb vector(3))");
    await db.query("INSERT INTO items VALUES (1, '[1,2,3]'), (2, $1), (3, $2), (4, NULL)", [
      [4, 5, 6],
      new Float32Array([1, 1, 1]),
    ]);
    const rows = await db.query<{ id: number; emb: Float32Array | null }>(
      "SELECT id, emb FROM items ORDER BY id",
    );
    expect(rows[0]!.emb).toBeInstanceOf(Float32Array);
    expect(rows.map((r) => (r.emb ? [...r.emb] : null))).toEqual([[1, 2, 3], [4, 5, 6], [1, 1, 1], null]);
    expect(await db.query("SELECT emb::text AS t FROM items WHERE id = 1")).toEqual([{ t: "[1,2,3]" }]);
    const [r] = await db.query<Record<string, number>>(
      "SELECT emb <-> '[3,1,2]' AS l2, emb <=> '[3,1,2]' AS cos, emb <#> '[3,1,2]' AS nip, " +
        "l2_distance(emb, '[3,1,2]') AS l2f, cosine_distance(emb, '[3,1,2]') AS cosf, " +
        "inner_product(emb, '[3,1,2]') AS ip, vector_dims(emb) AS dims, vector_norm(emb) AS n FROM items WHERE id = 1",
    );
    expect(r!.l2).toBeCloseTo(Math.sqrt(6), 12);
    expect(r!.l2f).toBe(r!.l2);
    expect(r!.cos).toBeCloseTo(1 - 11 / 14, 12);
    expect(r!.cosf).toBe(r!.cos);
    expect(r!.nip).toBe(-11);
    expect(r!.ip).toBe(11);
    expect(r!.dims).toBe(3);
    expect(r!.n).toBeCloseTo(Math.sqrt(14), 12);
    expect(await db.query("SELECT l2_normalize('[3,4]'::vector)::text AS v")).toEqual([{ v: "[0.6,0.8]" }]);
    expect(await db.query("SELECT '[0,0]'::vector <=> '[1,1]' AS c")).toEqual([{ c: Number.NaN }]);
    expect(await db.query("SELECT emb <-> '[1,1,1]' AS d FROM items WHERE id = 4")).toEqual([{ d: null }]);
    // without an index, ORDER BY distance is exact (NULLs last)
    const order = await db.query<{ id: number }>("SELECT id FROM items ORDER BY emb <-> '[3,1,2]' LIMIT 4");
    expect(order.map((x) => x.id)).toEqual([3, 1, 2, 4]);
  });

  it("refuses bad vectors with pgvector's SQLSTATEs and messages", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE items (id int PRIMARY KEY, emb vector(3))");
    await expectSqlState(
      db.query("INSERT INTO items VALUES (1, '[1,2]')"),
      "22000",
      "expected 3 dimensions, not 2",
    );
    await expectSqlState(db.query("INSERT INTO items VALUES (1, $1)", [[1, 2, 3, 4]]), "22000");
    await expectSqlState(
      db.query("SELECT '[1,2'::vector"),
      "22P02",
      'invalid input syntax for type vector: "[1,2"',
    );
    // an explicit cast checks the dimensions (it once truncated the text like varchar(n))
    await expectSqlState(db.query("SELECT '[1,2]'::vector(3)"), "22000", "expected 3 dimensions, not 2");
    expect(await db.query("SELECT '[1,2,3]'::vector(3)::text AS v")).toEqual([{ v: "[1,2,3]" }]);
    await expectSqlState(db.query("SELECT '[NaN]'::vector"), "22000", "NaN not allowed in vector");
    await expectSqlState(
      db.query("SELECT '[1,Infinity]'::vector"),
      "22000",
      "infinite value not allowed in vector",
    );
    await expectSqlState(db.query("INSERT INTO items VALUES (1, $1)", [[1, Number.NaN, 3]]), "22000");
    await expectSqlState(db.query("SELECT '[]'::vector"), "22000", "vector must have at least 1 dimension");
    await expectSqlState(
      db.query("SELECT '[1,2]'::vector <-> '[1,2,3]'"),
      "22000",
      "different vector dimensions 2 and 3",
    );
    await expectSqlState(db.exec("CREATE TABLE x (v vector(0))"), "22023");
    await expectSqlState(db.exec("CREATE TABLE x (v vector(16001))"), "22023");
    await expectSqlState(db.query("SELECT 1 <-> 2"), "42883");
    await expectSqlState(db.query("INSERT INTO items VALUES (1, $1)", [{ a: 1 }]), "22023");
  });

  it("holds 4096 dimensions", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE big (id int PRIMARY KEY, emb vector(4096))");
    const v = Float32Array.from({ length: 4096 }, (_, i) => i / 4096);
    await db.query("INSERT INTO big VALUES (1, $1)", [v]);
    const [r] = await db.query<{ emb: Float32Array }>("SELECT emb FROM big");
    expect([...r!.emb]).toEqual([...v]);
  });
});
