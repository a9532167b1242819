/**
 * What the SQL layer adds to a branch merge (docs/BRANCHES.md, "Merge"): conflicts named as (table, primary key),
 * sequences merged by their high-water mark, schema changes merged or refused, and the parent's catalog and
 * sequence caches refreshed afterwards.
 *
 * Invariants:
 *   - A sequence key changed on both sides never conflicts: the merged high-water mark is the larger one, and the
 *     parent drops its cached block, so no value either side may have handed out is handed out again.
 *   - Schema (catalog) changes made only on the branch merge with the rows. Changes on both sides are refused
 *     (0A000) whatever the policy: both sides may have allocated the same table id, which no key-level policy
 *     can untangle. Rows the branch wrote for a table the parent dropped or replaced are refused the same way.
 */

import type { MergeHooks } from "../branch.js";
import type { Engine } from "../engine.js";
import { decodeKey, tuplePrefixRange } from "../lsm/keycodec.js";
import {
  Catalog,
  deserializeTable,
  FIRST_USER_ID,
  SYSTEM_CATALOG_ID,
  SYSTEM_SEQUENCE_ID,
  TableInfo,
  tablesRange,
} from "./catalog.js";
import { unsupported } from "./errors.js";
import type { SqlEngine } from "./session.js";

function firstPart(key: Uint8Array): unknown {
  try {
    return decodeKey(key)[0];
  } catch {
    return undefined;
  }
}

async function readTables(engine: Engine): Promise<TableInfo[]> {
  const tables: TableInfo[] = [];
  for await (const kv of engine.readRange(tablesRange()))
    tables.push(new TableInfo(deserializeTable(kv.value)));
  return tables;
}

/** Table (and index) of a relation id among `tables`. */
function owner(tables: readonly TableInfo[], id: number): { table: string; index?: string } | undefined {
  for (const t of tables) {
    if (t.def.id === id) return { table: t.name };
    for (const ix of t.def.indexes) if (ix.id === id) return { table: t.name, index: ix.name };
  }
  return undefined;
}

function hw(bytes: Uint8Array): number {
  const parsed = JSON.parse(new TextDecoder().decode(bytes)) as { hw: unknown };
  return typeof parsed.hw === "number" ? parsed.hw : 0;
}

/**
 * Hooks for merging the branch of `branchSql` into its parent; `parentSql` is the parent's SQL engine when it is
 * open in this process (its catalog and sequence caches are refreshed after the merge).
 */
export function sqlMergeHooks(branchSql: SqlEngine, parentSql: SqlEngine | undefined): MergeHooks {
  const known = (): TableInfo[] => [
    ...branchSql.catalog.allTables(),
    ...(parentSql ? parentSql.catalog.allTables() : []),
  ];
  return {
    describe(key) {
      let parts: unknown[];
      try {
        parts = decodeKey(key);
      } catch {
        return {};
      }
      const id = parts[0];
      if (id === SYSTEM_CATALOG_ID) return { table: "(catalog)", primaryKey: parts.slice(1) };
      if (id === SYSTEM_SEQUENCE_ID) return { table: "(sequence)", primaryKey: parts.slice(1) };
      const rel = typeof id === "number" ? owner(known(), id) : undefined;
      return rel
        ? { table: rel.table, ...(rel.index ? { index: rel.index } : {}), primaryKey: parts.slice(1) }
        : { primaryKey: parts };
    },

    async beforeMerge(ctx) {
      const catalogRange = tuplePrefixRange([SYSTEM_CATALOG_ID]);
      const branchSchema = ctx.changes.some((c) => firstPart(c.key) === SYSTEM_CATALOG_ID);
      if (!(await ctx.parentChangedSince(catalogRange))) return;
      if (branchSchema) {
        throw unsupported(
          "merging a branch when both it and its parent changed the schema since the fork",
          "apply the branch's DDL on the parent by hand, or re-create the branch from the parent's current state",
        );
      }
      // The parent alone changed the schema: every table the branch wrote rows for must still be the same one.
      const parentTables = await readTables(ctx.parent);
      const forkTables = branchSql.catalog.allTables();
      for (const c of ctx.changes) {
        const id = firstPart(c.key);
        if (typeof id !== "number" || id < FIRST_USER_ID) continue;
        const then = owner(forkTables, id);
        const now = owner(parentTables, id);
        if (!then || !now || then.table !== now.table) {
          throw unsupported(
            `merging rows of table ${then?.table ?? `#${id}`}, which the parent dropped or replaced after the fork`,
          );
        }
      }
    },

    reconcile(key, branch, parent) {
      if (firstPart(key) !== SYSTEM_SEQUENCE_ID || !branch || !parent) return undefined;
      return hw(branch) >= hw(parent) ? branch : parent;
    },

    async afterMerge(ctx) {
      if (!parentSql) return;
      let schema = false;
      for (const c of ctx.changes) {
        const parts = (() => {
          try {
            return decodeKey(c.key);
          } catch {
            return [];
          }
        })();
        if (parts[0] === SYSTEM_CATALOG_ID) schema = true;
        if (parts[0] === SYSTEM_SEQUENCE_ID && typeof parts[1] === "number")
          parentSql.sequences.forget(parts[1]);
      }
      // A new Catalog object: every cached plan, built on the old one, is re-planned on next use.
      if (schema)
        parentSql.catalog = new Catalog(parentSql.catalog.version + 1, await readTables(ctx.parent));
    },
  };
}
