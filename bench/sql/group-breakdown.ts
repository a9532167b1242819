/**
 * Where the time of bench/sql's GROUP BY goes, per row, in one process: the same 100k-row orders table as
 * sql.bench.ts on file://, then, alternating over rounds (the VM's speed drifts; the minimum of each is kept):
 *
 *   engine scan      the table's key range through the engine cursor (nextSync), no decoding
 *   + decode         the same scan, decoding the three columns the query reads (masked, into one array)
 *   SQL GROUP BY     `SELECT status, count(*), sum(qty), avg(price) FROM orders GROUP BY status ORDER BY status`
 *   PGlite           the same query on PGlite (in memory), the target's reference
 *
 * The differences are the costs of decoding, and of the SQL layer's aggregation and plumbing (the rest). Prints
 * a table and writes bench/results/sql-group-breakdown.json.
 *
 * Run: npx tsx bench/sql/group-breakdown.ts [--rows N] [--rounds R]
 */

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { type Database, open } from "../../src/database.js";
import type { Engine } from "../../src/engine/engine.js";
import { isCursor } from "../../src/engine/lsm/cursor.js";
import type { KeyValue } from "../../src/engine/lsm/tree.js";
import { NEEDS_IO } from "../../src/engine/lsm/types.js";
import { decodeRow } from "../../src/engine/sql/row-codec.js";
import type { SqlEngine } from "../../src/engine/sql/session.js";
import type { Value } from "../../src/engine/sql/types.js";
import { prng } from "../../src/util/prng.js";
import { fmt, machine, printTable, writeResult } from "../lib.js";

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}
const ROWS = arg("--rows", 100_000);
const ROUNDS = arg("--rounds", 15);
const STATUSES = ["new", "paid", "shipped", "returned", "cancelled"];
const GROUP =
  "SELECT status, count(*) AS n, sum(qty) AS q, avg(price) AS p FROM orders GROUP BY status ORDER BY status";
const DDL =
  "CREATE TABLE orders (id int8 PRIMARY KEY, user_id int4 NOT NULL, status text NOT NULL, qty int4 NOT NULL, price float8 NOT NULL)";

const rand = prng(7);
const orders = Array.from({ length: ROWS }, (_, i) => [
  i + 1,
  1 + Math.floor(rand() * 10_000),
  STATUSES[Math.floor(rand() * STATUSES.length)]!,
  1 + Math.floor(rand() * 20),
  Math.round(rand() * 100_000) / 100,
]);

const dir = await mkdtemp(join(tmpdir(), "twill-bench-group-"));
const db: Database = await open(`file://${dir}`);
const pg = await PGlite.create();
try {
  await db.exec(DDL);
  await db.exec("CREATE INDEX orders_user ON orders (user_id)");
  await pg.exec(DDL);
  await db.transaction(async (tx) => {
    const ins = tx.prepare("INSERT INTO orders VALUES ($1, $2, $3, $4, $5)");
    for (const o of orders) await ins.execute(o);
  });
  await pg.exec("BEGIN");
  for (const o of orders) await pg.query("INSERT INTO orders VALUES ($1, $2, $3, $4, $5)", o);
  await pg.exec("COMMIT");

  // Internal handles, for the two partial measures only.
  const sql = (db as unknown as { sqlEngine: SqlEngine }).sqlEngine;
  const engine: Engine = sql.engine;
  const table = sql.catalog.table("orders")!;
  const mask = Uint8Array.from(table.types, (_t, i) => (i >= 2 ? 1 : 0));
  const into: Value[] = new Array(table.types.length);

  let sink = 0;
  const scan = async (decode: boolean): Promise<number> => {
    const it = engine.readRange({ start: table.range.start, end: table.range.end });
    let n = 0;
    if (!isCursor<KeyValue>(it)) throw new Error("the engine scan is expected to be a cursor");
    for (;;) {
      const pair = it.nextSync();
      if (pair === NEEDS_IO) {
        await it.fill();
        continue;
      }
      if (pair === undefined) break;
      if (decode) sink += (decodeRow(table.types, pair.value, table.missing, mask, into)[3] as number) & 1;
      n++;
    }
    return n;
  };
  const group = db.prepare(GROUP);
  const measures: [string, () => Promise<unknown>][] = [
    ["engine scan", () => scan(false)],
    ["engine scan + decode (3 of 5 columns)", () => scan(true)],
    ["SQL GROUP BY (Twill)", () => group.query()],
    ["GROUP BY on PGlite (in memory)", () => pg.query(GROUP)],
  ];
  if ((await scan(false)) !== ROWS) throw new Error("the scan does not see every row");
  const best = new Map<string, number>();
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, fn] of measures) {
      const t = performance.now();
      await fn();
      const ms = performance.now() - t;
      if (r > 0) best.set(name, Math.min(best.get(name) ?? Number.POSITIVE_INFINITY, ms));
    }
  }
  const ns = (name: string) => (best.get(name)! * 1e6) / ROWS;
  const scanNs = ns("engine scan");
  const decodeNs = ns("engine scan + decode (3 of 5 columns)") - scanNs;
  const sqlNs = ns("SQL GROUP BY (Twill)");
  const pgNs = ns("GROUP BY on PGlite (in memory)");
  const rows = [
    ["engine cursor (scan, MVCC, merge)", fmt(scanNs, 1), `${fmt((100 * scanNs) / sqlNs)}%`],
    ["row decode (3 columns, masked)", fmt(decodeNs, 1), `${fmt((100 * decodeNs) / sqlNs)}%`],
    [
      "aggregation and plumbing (the rest)",
      fmt(sqlNs - scanNs - decodeNs, 1),
      `${fmt((100 * (sqlNs - scanNs - decodeNs)) / sqlNs)}%`,
    ],
    ["SQL GROUP BY, total", fmt(sqlNs, 1), "100%"],
    ["PGlite, same query (reference)", fmt(pgNs, 1), `${fmt(pgNs / sqlNs, 2)}× Twill's time`],
    ["10× PGlite would need", fmt(pgNs / 10, 1), ""],
  ];
  printTable(
    `GROUP BY over ${fmt(ROWS)} rows: ns per row (minimum of ${ROUNDS - 1} rounds)`,
    ["part", "ns/row", "share"],
    rows,
  );
  writeResult("bench/results/sql-group-breakdown.json", {
    machine: machine(),
    rows: ROWS,
    rounds: ROUNDS,
    nsPerRow: { engineScan: scanNs, decode: decodeNs, sqlTotal: sqlNs, pglite: pgNs },
    sink,
  });
} finally {
  await db.close();
  await pg.close();
  await rm(dir, { recursive: true, force: true });
}
