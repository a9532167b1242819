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
 *   - Index entries follow rows. When "ours" or "theirs" resolves a conflicting row of a table with indexes, the
 *     winner's index entries are written and the loser's (and the branch's own, when the parent wins) deleted, so
 *     the parent's indexes match its rows. A unique-index entry both sides set for different rows would leave two
 *     rows with one value: refused (23505) whatever the policy.
 *   - HNSW graphs are not merged record by record: two graphs that diverged since the fork have neighbour lists
 *     and entry points that cannot be combined per key. The parent's graph instead takes every row the merge
 *     writes through the same insert/delete path as an ordinary statement, in the merge's transaction, with the
 *     parent's decoded-node cache told about the commit like any other. An index created on the branch itself
 *     (which the parent does not have) merges as plain records: only the branch ever wrote them.
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
import { SqlState, sqlError, unsupported } from "./errors.js";
import { hnswDelete, hnswInsert, VectorIndexes } from "./hnsw-index.js";
import type { ExecCtx, Services } from "./plan.js";
import { decodeRow } from "./row-codec.js";
import type { SqlEngine } from "./session.js";
import { indexEntry, pkSuffix, runtimeOf } from "./table-runtime.js";

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

function tableById(tables: readonly TableInfo[], id: number): TableInfo | undefined {
  return tables.find((t) => t.def.id === id);
}

/** Index entries (key → value) of one row of `table`; none for a deleted row. */
function entriesOf(
  table: TableInfo,
  rowBytes: Uint8Array | undefined,
): Map<string, { key: Uint8Array; pk: Uint8Array }> {
  const out = new Map<string, { key: Uint8Array; pk: Uint8Array }>();
  if (!rowBytes) return out;
  const row = decodeRow(table.types, rowBytes, table.missing);
  const pk = pkSuffix(table, row);
  const rt = runtimeOf(table);
  for (let i = 0; i < table.def.indexes.length; i++) {
    const { key } = indexEntry(table, rt, i, row, pk);
    out.set(Buffer.from(key).toString("latin1"), { key, pk });
  }
  return out;
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
  /** Ids of the HNSW indexes the parent has now: their records are rebuilt from rows, never merged per key. */
  let derived = new Set<number>();
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
      derived = new Set();
      for (const t of await readTables(ctx.parent))
        for (const ix of t.def.indexes) if (ix.hnsw) derived.add(ix.id);
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

    resolveConflicts({ conflicts, onConflict, set }) {
      const tables = [...(parentSql ? parentSql.catalog.allTables() : []), ...branchSql.catalog.allTables()];
      for (const c of conflicts) {
        const id = firstPart(c.key);
        if (typeof id !== "number" || id < FIRST_USER_ID) continue;
        const table = tableById(tables, id);
        if (!table) {
          const rel = owner(tables, id);
          const ix = rel?.index
            ? tables.find((t) => t.name === rel.table)?.def.indexes.find((i) => i.name === rel.index)
            : undefined;
          if (ix?.unique) {
            throw sqlError(
              SqlState.UniqueViolation,
              `merge would leave two rows of table "${rel!.table}" with one value in unique index "${ix.name}"`,
              {
                hint: "both the branch and its parent used that value for different rows since the fork; resolve it on one side first",
              },
            );
          }
          continue;
        }
        if (table.def.indexes.length === 0) continue;
        // The winner's row stands; its index entries must be there and every other version's must not.
        const winner = onConflict === "ours" ? c.branch : c.parent;
        const keep = entriesOf(table, winner);
        for (const version of [c.branch, c.parent]) {
          for (const [k, e] of entriesOf(table, version)) if (!keep.has(k)) set(e.key, undefined);
        }
        for (const e of keep.values()) set(e.key, e.pk);
      }
    },

    isDerived(key) {
      const id = firstPart(key);
      return typeof id === "number" && derived.has(id);
    },

    async maintainDerived(txn, writes) {
      if (derived.size === 0) return undefined;
      const tables = branchSql.catalog.allTables();
      const vectors = parentSql?.vectors ?? new VectorIndexes();
      const services: Services = parentSql?.services ?? {
        nextSequence: () => {
          throw new Error("a merge's index maintenance allocates no sequence value");
        },
        vectors,
      };
      const ctx: ExecCtx = { kv: txn, txn, env: { params: [], now: Date.now() * 1000, sub: [] }, services };
      for (const w of writes) {
        const table = tableById(tables, firstPart(w.key) as number);
        const indexes = table?.def.indexes.filter((ix) => derived.has(ix.id)) ?? [];
        if (!table || indexes.length === 0) continue;
        const pk = w.key.slice(table.keyPrefix.length);
        const row = w.value ? decodeRow(table.types, w.value, table.missing) : undefined;
        for (const ix of indexes) {
          if (row) await hnswInsert(ctx, ix, row, pk);
          else await hnswDelete(ctx, ix, pk);
        }
      }
      return vectors.beginCommit(txn);
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
