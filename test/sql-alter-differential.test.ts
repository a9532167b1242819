/**
 * ALTER TABLE against PostgreSQL (PGlite): random sequences of ADD COLUMN (with and without DEFAULT / NOT NULL),
 * DROP COLUMN (the key included), RENAME COLUMN, ADD PRIMARY KEY, INSERT, UPDATE and DELETE on one table, with
 * the whole table compared after every statement. This is where rows written before an ALTER must decode after
 * it: missing values of added columns, dropped columns left in place, re-keyed rows.
 *
 * Each workload is a list of random "intents" interpreted against a model of the table's columns, so the SQL is
 * always well-formed; statements may still fail (NOT NULL on existing rows, duplicate keys), and then both
 * systems must fail with the same SQLSTATE. Seeded: TWILL_ALTER_SEED replays a run.
 */

import { PGlite } from "@electric-sql/pglite";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { open } from "../src/database.js";

const SEED = Number(
  process.env.TWILL_ALTER_SEED ?? (process.env.CI ? 20261201 : Math.floor(Math.random() * 2 ** 31)),
);
const RUNS = Number(process.env.TWILL_ALTER_RUNS ?? 60);

let pg: PGlite;
beforeAll(async () => {
  pg = await PGlite.create();
}, 60_000);
afterAll(async () => {
  await pg?.close();
});

interface Col {
  name: string;
  ty: "int4" | "int8" | "text";
}

const intent = fc.record({
  kind: fc.integer({ min: 0, max: 10 }),
  a: fc.integer({ min: 0, max: 1000 }),
  b: fc.integer({ min: 0, max: 1000 }),
  c: fc.integer({ min: 0, max: 1000 }),
});

function literal(ty: Col["ty"], n: number): string {
  if (n % 7 === 0) return "NULL";
  if (ty === "text") return n % 5 === 0 ? `'${n % 50}'` : `'v${n % 13}'`;
  return String(n % 50);
}

/** Turns intents into SQL, tracking the visible columns as PostgreSQL would after each successful ALTER. */
function* statements(
  intents: { kind: number; a: number; b: number; c: number }[],
): Generator<string, void, boolean> {
  let cols: Col[] = [
    { name: "id", ty: "int4" },
    { name: "a", ty: "int4" },
  ];
  let next = 0;
  for (const { kind, a, b, c } of intents) {
    const pick = (n: number) => cols[n % cols.length]!;
    switch (kind) {
      case 0:
      case 1:
      case 2: {
        const chosen = cols.filter((_c, i) => i === 0 || (a >> i) & 1);
        const vals = chosen.map((col, i) =>
          col.name === "id" ? String(b % 40) : literal(col.ty, c + i * 3),
        );
        yield `INSERT INTO w (${chosen.map((x) => x.name).join(", ")}) VALUES (${vals.join(", ")})`;
        break;
      }
      case 3: {
        const col = pick(a);
        yield `UPDATE w SET ${col.name} = ${literal(col.ty, b)} WHERE ${cols[0]!.name} IS NOT NULL AND (${c} % 3) = 0`;
        break;
      }
      case 4:
        yield `DELETE FROM w WHERE ${pick(a).name} IS NULL OR ${b % 4} = 0`;
        break;
      case 5:
      case 6: {
        const ty: Col["ty"] = a % 2 === 0 ? "int4" : "text";
        const name = `c${next++}`;
        const def =
          b % 3 === 0 ? "" : ` DEFAULT ${b % 3 === 1 ? literal(ty, c | 1) : ty === "int4" ? "7" : "'d'"}`;
        const notNull = c % 4 === 0 ? " NOT NULL" : "";
        if (yield `ALTER TABLE w ADD COLUMN ${name} ${ty}${def}${notNull}`) cols = [...cols, { name, ty }];
        break;
      }
      case 7: {
        if (cols.length < 2) break;
        const col = pick(a);
        if (yield `ALTER TABLE w DROP COLUMN ${col.name}`) cols = cols.filter((x) => x !== col);
        break;
      }
      case 8: {
        const col = pick(a);
        const name = `r${next++}`;
        if (yield `ALTER TABLE w RENAME COLUMN ${col.name} TO ${name}`)
          cols = cols.map((x) => (x === col ? { ...x, name } : x));
        break;
      }
      case 9: {
        const col = pick(a);
        yield `ALTER TABLE w ADD PRIMARY KEY (${col.name})`;
        break;
      }
      default: {
        // ALTER COLUMN … TYPE: int4 → int8 or text (assignment casts), text → int4 only with USING.
        const col = pick(a);
        const to: Col["ty"] = col.ty === "text" ? "int4" : b % 2 === 0 ? "int8" : "text";
        const using = col.ty === "text" ? ` USING ${col.name}::int4` : "";
        if (yield `ALTER TABLE w ALTER COLUMN ${col.name} TYPE ${to}${using}`)
          cols = cols.map((x) => (x === col ? { ...x, ty: to } : x));
      }
    }
  }
}

type Outcome = { ok: true; rows: (string | null)[][] } | { ok: false; code: string };

const text = (rows: Record<string, unknown>[]) =>
  rows.map((r) => Object.values(r).map((v) => (v === null || v === undefined ? null : String(v))));

describe("ALTER TABLE vs PostgreSQL (PGlite) on random workloads", () => {
  it("gives the same table after every statement", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(intent, { minLength: 1, maxLength: 14 }), async (intents) => {
        await pg.exec("DROP TABLE IF EXISTS w; CREATE TABLE w (id int4 PRIMARY KEY, a int4)");
        await using db = await open("memory://");
        await db.exec("CREATE TABLE w (id int4 PRIMARY KEY, a int4)");
        const gen = statements(intents);
        let step = gen.next();
        const log: string[] = [];
        while (!step.done) {
          const sql = step.value;
          log.push(sql);
          const run = async (f: () => Promise<unknown>): Promise<Outcome> => {
            try {
              await f();
              return { ok: true, rows: [] };
            } catch (e) {
              const x = e as { sqlstate?: string; code?: string };
              return { ok: false, code: x.sqlstate ?? x.code ?? "?" };
            }
          };
          const want = await run(() => pg.exec(sql));
          const got = await run(() => db.exec(sql));
          expect(got, log.join(";\n")).toEqual(want);
          // Every visible column in order, NULLs first: a total order up to identical rows.
          const cols = (
            await pg.query<{ n: number }>(
              "SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'w'",
            )
          ).rows[0]!.n;
          const order = Array.from({ length: cols }, (_x, i) => `${i + 1} NULLS FIRST`).join(", ");
          const q = `SELECT * FROM w ORDER BY ${order}`;
          const pgRows = text((await pg.query<Record<string, unknown>>(q)).rows);
          const twRows = text(await db.query(q));
          expect(twRows, `${log.join(";\n")}\n-- then ${q}`).toEqual(pgRows);
          step = gen.next(want.ok);
        }
      }),
      { seed: SEED, numRuns: RUNS, endOnFailure: true },
    );
  }, 300_000);
});
