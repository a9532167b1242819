/**
 * Property test: random INSERT/UPDATE/DELETE against a table with a primary key, a unique index and a secondary
 * index, checked after every step against a plain JavaScript model — through the primary key, through each index
 * and through a full scan, so a missed index update shows up as a disagreement between access paths.
 */

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { memoryDb } from "./sql-helpers.js";

type Row = { id: number; u: string | null; g: number | null };

const op = fc.oneof(
  fc.record({
    kind: fc.constant("insert" as const),
    id: fc.integer({ min: 0, max: 20 }),
    u: fc.option(fc.constantFrom("a", "b", "c", "d", "é", "z"), { nil: null }),
    g: fc.option(fc.integer({ min: -3, max: 3 }), { nil: null }),
  }),
  fc.record({
    kind: fc.constant("update" as const),
    id: fc.integer({ min: 0, max: 20 }),
    u: fc.option(fc.constantFrom("a", "b", "c", "x"), { nil: null }),
    g: fc.option(fc.integer({ min: -3, max: 3 }), { nil: null }),
  }),
  fc.record({
    kind: fc.constant("move" as const),
    id: fc.integer({ min: 0, max: 20 }),
    to: fc.integer({ min: 0, max: 20 }),
  }),
  fc.record({
    kind: fc.constant("delete" as const),
    lo: fc.integer({ min: 0, max: 20 }),
    hi: fc.integer({ min: 0, max: 20 }),
  }),
);

const byId = (a: Row, b: Row) => a.id - b.id;

describe("SQL against a model", () => {
  it("keeps rows and indexes consistent under random writes", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 30 }), async (ops) => {
        await using db = await memoryDb();
        await db.exec("CREATE TABLE t (id int PRIMARY KEY, u text UNIQUE, g int); CREATE INDEX t_g ON t (g)");
        const model = new Map<number, Row>();
        for (const o of ops) {
          let ok = true;
          try {
            if (o.kind === "insert") await db.query("INSERT INTO t VALUES ($1, $2, $3)", [o.id, o.u, o.g]);
            else if (o.kind === "update")
              await db.query("UPDATE t SET u = $2, g = $3 WHERE id = $1", [o.id, o.u, o.g]);
            else if (o.kind === "move") await db.query("UPDATE t SET id = $2 WHERE id = $1", [o.id, o.to]);
            else await db.query("DELETE FROM t WHERE id BETWEEN $1 AND $2", [o.lo, o.hi]);
          } catch (error) {
            ok = false;
            expect((error as { sqlstate: string }).sqlstate).toBe("23505");
          }
          // Model the same statement; it must fail exactly when the database refused it.
          const next = new Map(model);
          let violates = false;
          const uniqueU = (rows: Iterable<Row>) => {
            const seen = new Set<string>();
            for (const r of rows) {
              if (r.u === null) continue;
              if (seen.has(r.u)) return false;
              seen.add(r.u);
            }
            return true;
          };
          if (o.kind === "insert") {
            if (next.has(o.id)) violates = true;
            next.set(o.id, { id: o.id, u: o.u, g: o.g });
          } else if (o.kind === "update") {
            if (next.has(o.id)) next.set(o.id, { id: o.id, u: o.u, g: o.g });
          } else if (o.kind === "move") {
            const r = next.get(o.id);
            if (r && o.to !== o.id) {
              if (next.has(o.to)) violates = true;
              next.delete(o.id);
              next.set(o.to, { ...r, id: o.to });
            }
          } else {
            for (const id of [...next.keys()]) if (id >= o.lo && id <= o.hi) next.delete(id);
          }
          if (!uniqueU(next.values())) violates = true;
          expect(ok).toBe(!violates);
          if (ok) {
            model.clear();
            for (const [k, v] of next) model.set(k, v);
          }
        }
        const expected = [...model.values()].sort(byId);
        expect(await db.query("SELECT id, u, g FROM t")).toEqual(expected);
        expect(await db.query("SELECT id, u, g FROM t WHERE id >= 0 ORDER BY id")).toEqual(expected);
        for (const r of expected) {
          expect(await db.query("SELECT id, u, g FROM t WHERE id = $1", [r.id])).toEqual([r]);
          if (r.u !== null) expect(await db.query("SELECT id, u, g FROM t WHERE u = $1", [r.u])).toEqual([r]);
        }
        for (let g = -3; g <= 3; g++) {
          const want = expected.filter((r) => r.g === g);
          expect((await db.query<Row>("SELECT id, u, g FROM t WHERE g = $1", [g])).sort(byId)).toEqual(want);
          const above = expected.filter((r) => r.g !== null && r.g > g);
          expect((await db.query<Row>("SELECT id, u, g FROM t WHERE g > $1", [g])).sort(byId)).toEqual(above);
        }
        expect(await db.query("SELECT count(*) AS n FROM t WHERE g IS NULL")).toEqual([
          { n: expected.filter((r) => r.g === null).length },
        ]);
      }),
      { numRuns: 60 },
    );
  });
});
