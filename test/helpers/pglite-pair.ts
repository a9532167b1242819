/**
 * For one test file that compares Twill DB with PostgreSQL: a PGlite and a Twill memory database, each given the
 * same setup statements before the file's tests, both closed after them.
 */

import { PGlite } from "@electric-sql/pglite";
import { afterAll, beforeAll } from "vitest";
import type { Database } from "../../src/database.js";
import { memoryDb } from "../sql-helpers.js";

export function pairWithPglite(setup: readonly string[], ready: (pg: PGlite, db: Database) => void): void {
  let pg: PGlite | undefined;
  let db: Database | undefined;
  beforeAll(async () => {
    pg = await PGlite.create();
    db = await memoryDb();
    for (const s of setup) {
      await pg.exec(s);
      await db.exec(s);
    }
    ready(pg, db);
  }, 60_000);
  afterAll(async () => {
    await db?.close();
    await pg?.close();
  });
}
