/**
 * Column masks: a scan decodes only the columns the query reads (row-codec's masked decode, the planner's masks),
 * and an aggregate's scan reuses one row array. Both must be invisible in results.
 */

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SqlArray } from "../src/engine/sql/arrays.js";
import { Jsonb } from "../src/engine/sql/jsonb.js";
import { decodeRow, encodeRow } from "../src/engine/sql/row-codec.js";
import { arrayOf, type SqlType, T, type Value, vectorType } from "../src/engine/sql/types.js";
import { ErrorCodes, TwillError } from "../src/errors.js";
import { memoryDb } from "./sql-helpers.js";

const TYPES: SqlType[] = [
  T.bool,
  T.int2,
  T.int4,
  T.int8,
  T.float4,
  T.float8,
  T.numeric,
  T.text,
  T.bytea,
  T.jsonb,
  T.timestamptz,
  T.date,
  T.uuid,
  vectorType(3),
  arrayOf(T.text),
  arrayOf(T.int4),
];

const SAMPLES: Value[] = [
  true,
  -7,
  123456,
  -(2 ** 40),
  1.5,
  -0.25,
  "12.340",
  "héllo wörld, a longer text than sixteen bytes",
  new Uint8Array([0, 255, 7]),
  new Jsonb({ a: [1, "x"] }),
  1_700_000_000_000_000,
  19000,
  "0b5e5a44-8d4f-4d55-9a0e-7d1a2f3b4c5d",
  new Float32Array([1, 2.5, -3]),
  new SqlArray(["a", null, "ccc"]),
  new SqlArray([1, null, -3]),
];

describe("masked row decode", () => {
  it("decodes the masked-in columns exactly and reads the others as NULL, for every type", () => {
    fc.assert(
      fc.property(
        fc.array(fc.boolean(), { minLength: TYPES.length, maxLength: TYPES.length }),
        fc.array(fc.boolean(), { minLength: TYPES.length, maxLength: TYPES.length }),
        (nulls, keep) => {
          const values = SAMPLES.map((v, i) => (nulls[i] ? null : v));
          const bytes = encodeRow(TYPES, values);
          const full = decodeRow(TYPES, bytes);
          const mask = Uint8Array.from(keep, (k) => (k ? 1 : 0));
          const masked = decodeRow(TYPES, bytes, undefined, mask);
          expect(masked).toEqual(full.map((v, i) => (keep[i] ? v : null)));
          // Decoding into a reused array gives the same values.
          const into: Value[] = new Array(TYPES.length).fill("stale");
          expect(decodeRow(TYPES, bytes, undefined, mask, into)).toBe(into);
          expect(into).toEqual(masked);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("fills columns added after the row was written from `missing` only when masked in", () => {
    const bytes = encodeRow([T.int4, T.text], [1, "a"]);
    const types = [T.int4, T.text, T.int4, T.text];
    const missing: Value[] = [null, null, 42, "dflt"];
    expect(decodeRow(types, bytes, missing, Uint8Array.from([0, 1, 1, 0]))).toEqual([null, "a", 42, null]);
    expect(decodeRow(types, bytes, missing, Uint8Array.from([1, 1, 1, 1]))).toEqual([1, "a", 42, "dflt"]);
  });

  it("still rejects a truncated row inside the columns it walks", () => {
    const bytes = encodeRow([T.int4, T.text, T.float8], [1, "abcdef", 2.5]);
    const cut = bytes.subarray(0, bytes.length - 3);
    let error: unknown;
    try {
      decodeRow([T.int4, T.text, T.float8], cut, undefined, Uint8Array.from([0, 0, 1]));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TwillError);
    expect((error as TwillError).code).toBe(ErrorCodes.Corruption);
    // With every column masked in it also finds trailing bytes, as the full decode does.
    const longer = new Uint8Array(bytes.length + 1);
    longer.set(bytes);
    expect(() =>
      decodeRow([T.int4, T.text, T.float8], longer, undefined, Uint8Array.from([1, 1, 1])),
    ).toThrow(/trailing bytes/);
  });

  it("returns the same string object for a repeated short text (the decode cache), with the right value", () => {
    const a = decodeRow([T.text], encodeRow([T.text], ["shipped"]))[0];
    const b = decodeRow([T.text], encodeRow([T.text], ["shipped"]))[0];
    const c = decodeRow([T.text], encodeRow([T.text], ["shipper"]))[0];
    expect(a).toBe("shipped");
    expect(b).toBe("shipped");
    expect(c).toBe("shipper");
    // Same length, first, middle and last byte (so the same cache slot), different text.
    for (const t of ["aXbcd", "aYbcd", "aXbcd", "a\u00e9cd", "aYbcd"]) {
      expect(decodeRow([T.text], encodeRow([T.text], [t]))[0]).toBe(t);
    }
  });
});

describe("queries over masked scans", () => {
  it("gives the same answers when a query reads only some columns (scans, joins, aggregates, index fetches)", async () => {
    await using db = await memoryDb();
    await db.exec(
      `CREATE TABLE u (id int4 PRIMARY KEY, name text NOT NULL, city text, tags text[], extra int8)`,
    );
    await db.exec(
      `CREATE TABLE o (id int8 PRIMARY KEY, uid int4 NOT NULL, status text NOT NULL, qty int4, price float8, note text)`,
    );
    await db.exec("CREATE INDEX o_uid ON o (uid)");
    await db.exec("CREATE UNIQUE INDEX u_name ON u (name)");
    await db.transaction(async (tx) => {
      for (let i = 1; i <= 30; i++)
        await tx.query("INSERT INTO u VALUES ($1, $2, $3, $4, $5)", [
          i,
          `user ${i}`,
          i % 3 === 0 ? null : `city ${i % 4}`,
          `{t${i % 2},x}`,
          i * 1000,
        ]);
      for (let i = 1; i <= 200; i++)
        await tx.query("INSERT INTO o VALUES ($1, $2, $3, $4, $5, $6)", [
          i,
          1 + (i % 30),
          ["new", "paid", "shipped"][i % 3],
          i % 7 === 0 ? null : i % 11,
          i / 4,
          i % 5 === 0 ? null : `note ${i}`,
        ]);
    });
    // Columns added later read their default through the mask as well.
    await db.exec("ALTER TABLE o ADD COLUMN flag int4 DEFAULT 9");

    // Every query's answer is checked against the same query over SELECT * rows, which decodes every column.
    const cases: [string, string][] = [
      [
        "SELECT status, count(*) AS n, sum(qty) AS q, avg(price) AS p FROM o GROUP BY status ORDER BY status",
        "SELECT status, count(*) AS n, sum(qty) AS q, avg(price) AS p FROM (SELECT * FROM o) s GROUP BY status ORDER BY status",
      ],
      [
        "SELECT u.name, o.id, o.qty FROM u JOIN o ON o.uid = u.id WHERE u.id BETWEEN 3 AND 9 ORDER BY u.id, o.id",
        "SELECT s.name, t.id, t.qty FROM (SELECT * FROM u) s JOIN (SELECT * FROM o) t ON t.uid = s.id WHERE s.id BETWEEN 3 AND 9 ORDER BY s.id, t.id",
      ],
      [
        "SELECT u.city, count(o.note), max(o.price), sum(o.flag) FROM u LEFT JOIN o ON o.uid = u.id AND o.status = 'paid' GROUP BY u.city ORDER BY u.city",
        "SELECT s.city, count(t.note), max(t.price), sum(t.flag) FROM (SELECT * FROM u) s LEFT JOIN (SELECT * FROM o) t ON t.uid = s.id AND t.status = 'paid' GROUP BY s.city ORDER BY s.city",
      ],
      [
        "SELECT id FROM o WHERE note LIKE 'note 1%' AND qty > 3 ORDER BY price DESC LIMIT 5",
        "SELECT id FROM (SELECT * FROM o) s WHERE note LIKE 'note 1%' AND qty > 3 ORDER BY price DESC LIMIT 5",
      ],
      [
        "SELECT count(*) FILTER (WHERE qty IS NULL), string_agg(status, ',') FROM o WHERE uid = 4",
        "SELECT count(*) FILTER (WHERE qty IS NULL), string_agg(status, ',') FROM (SELECT * FROM o) s WHERE uid = 4",
      ],
      [
        "SELECT extra FROM u WHERE name = 'user 7'",
        "SELECT extra FROM (SELECT * FROM u) s WHERE name = 'user 7'",
      ],
      [
        "SELECT tags, count(*) FROM u GROUP BY tags ORDER BY tags",
        "SELECT tags, count(*) FROM (SELECT * FROM u) s GROUP BY tags ORDER BY tags",
      ],
      [
        "SELECT DISTINCT city FROM u ORDER BY city NULLS FIRST",
        "SELECT DISTINCT city FROM (SELECT * FROM u) s ORDER BY city NULLS FIRST",
      ],
      [
        "SELECT o.id, u.name FROM o JOIN u ON u.id = o.uid WHERE o.id IN (5, 17, 90) ORDER BY o.id",
        "SELECT t.id, s.name FROM (SELECT * FROM o) t JOIN (SELECT * FROM u) s ON s.id = t.uid WHERE t.id IN (5, 17, 90) ORDER BY t.id",
      ],
      [
        "SELECT id, (SELECT count(*) FROM o WHERE o.uid = u.id AND o.status = u.city) FROM u ORDER BY id LIMIT 4",
        "SELECT id, (SELECT count(*) FROM (SELECT * FROM o) t WHERE t.uid = s.id AND t.status = s.city) FROM (SELECT * FROM u) s ORDER BY id LIMIT 4",
      ],
      [
        "SELECT name FROM u WHERE EXISTS (SELECT 1 FROM o WHERE o.uid = u.id AND o.qty = 10) ORDER BY name",
        "SELECT name FROM (SELECT * FROM u) s WHERE EXISTS (SELECT 1 FROM (SELECT * FROM o) t WHERE t.uid = s.id AND t.qty = 10) ORDER BY name",
      ],
    ];
    for (const [masked, full] of cases) {
      const a = await db.query(masked);
      const b = await db.query(full);
      expect(a.length, masked).toBeGreaterThan(0);
      expect(a, masked).toEqual(b);
    }
    // Inside a transaction, the index fetch reads the transaction's own writes through the sync path.
    await db
      .transaction(async (tx) => {
        await tx.query("INSERT INTO o VALUES (1000, 3, 'new', 1, 1, 'mine')");
        await tx.query("UPDATE o SET qty = 99 WHERE id = 3");
        const rows = await tx.query(
          "SELECT o.id, o.qty FROM u JOIN o ON o.uid = u.id WHERE u.id = 3 ORDER BY o.id",
        );
        expect(rows.find((r) => r.id === 1000)).toEqual({ id: 1000, qty: 1 });
        expect(rows.find((r) => r.id === 3)).toBeUndefined(); // o.id 3 has uid 4
        const own = await tx.query("SELECT qty FROM o WHERE uid = 4 AND id = 3");
        expect(own).toEqual([{ qty: 99 }]);
        await tx.exec("SAVEPOINT s1");
        await tx.query("UPDATE o SET note = 'sp' WHERE id = 1000");
        expect(
          await tx.query("SELECT o.note FROM u JOIN o ON o.uid = u.id WHERE u.id = 3 AND o.id = 1000"),
        ).toEqual([{ note: "sp" }]);
        throw new Error("roll back");
      })
      .catch((e: unknown) => {
        if (!(e instanceof Error) || e.message !== "roll back") throw e;
      });
    expect(await db.query("SELECT count(*) AS n FROM o WHERE id = 1000")).toEqual([{ n: 0 }]);
  });
});
