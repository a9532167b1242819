/**
 * DDL: CREATE TABLE, CREATE INDEX (with backfill), DROP TABLE, DROP INDEX, TRUNCATE. Each runs inside the
 * statement's transaction: catalog keys, data deletions and index backfill commit or roll back together. The
 * session installs the changed table definitions into the shared catalog only after the commit succeeds.
 */

import type { Constraint, CreateStmt, DropStmt, IndexStmt, Node, TruncateStmt } from "libpg-query";
import { tuplePrefixRange } from "../lsm/keycodec.js";
import {
  type CheckDef,
  type ColumnDef,
  FIRST_USER_ID,
  type IndexDef,
  metaKey,
  sequenceKey,
  serializeTable,
  type TableDef,
  TableInfo,
  tableKey,
} from "./catalog.js";
import { type CompileCx, compileExpr, resolveTypeName, Scope } from "./compile.js";
import { SqlState, sqlError, unsupported } from "./errors.js";
import { coerce, ParamTypes } from "./expr.js";
import { checkHnswColumn, hnswBackfill, hnswEmptied, hnswSpecOf } from "./hnsw-index.js";
import type { ExecCtx, ExecResult, StatementPlan } from "./plan.js";
import { decodeRow } from "./row-codec.js";
import type { PlanCx } from "./select.js";
import { indexEntry, runtimeOf } from "./table-runtime.js";
import { outputText, T, typeToSpec } from "./types.js";

function str(n: Node | undefined): string {
  return n && "String" in n ? (n.String.sval ?? "") : "";
}

const encoder = new TextEncoder();

/** Allocates `n` consecutive ids from the catalog's counter, inside the statement's transaction. */
export async function allocateIds(ctx: ExecCtx, n: number): Promise<number> {
  const key = metaKey();
  const bytes = await ctx.kv.get(key);
  const meta = bytes
    ? (JSON.parse(new TextDecoder().decode(bytes)) as { format: number; nextId: number })
    : { format: 1, nextId: FIRST_USER_ID };
  const first = meta.nextId;
  meta.nextId += n;
  ctx.txn!.put(key, encoder.encode(JSON.stringify(meta)));
  return first;
}

export function ddlPlan(command: string, run: (ctx: ExecCtx) => Promise<void>): StatementPlan {
  return {
    command,
    columns: [],
    kind: "ddl",
    initPlans: [],
    async execute(ctx): Promise<ExecResult> {
      await run(ctx);
      return { rows: [], rowCount: 0 };
    },
    explain: () => {
      throw sqlError(SqlState.SyntaxError, `EXPLAIN is not available for ${command}`);
    },
  };
}

export function uniqueName(ctx: ExecCtx, base: string, taken: Set<string>): string {
  const cat = ctx.ddl!.catalog();
  let name = base.slice(0, 63);
  for (let i = 1; cat.hasRelation(name) || taken.has(name); i++) name = `${base.slice(0, 60)}${i}`;
  taken.add(name);
  return name;
}

/** The last name of the first column reference in a parse tree (PostgreSQL names CHECK constraints after it). */
export function firstColumnRef(node: unknown): string | undefined {
  if (node === null || typeof node !== "object") return undefined;
  if (Array.isArray(node)) {
    for (const n of node) {
      const r = firstColumnRef(n);
      if (r) return r;
    }
    return undefined;
  }
  const o = node as Record<string, unknown>;
  if ("ColumnRef" in o) {
    const fields = ((o.ColumnRef as { fields?: Node[] }).fields ?? []).map(str);
    return fields[fields.length - 1];
  }
  for (const k in o) {
    const r = firstColumnRef(o[k]);
    if (r) return r;
  }
  return undefined;
}

function rejectConstraintOptions(c: Constraint): void {
  if (c.deferrable || c.initdeferred) throw unsupported("DEFERRABLE constraints");
  if (c.contype === "CONSTR_UNIQUE" && c.nulls_not_distinct) throw unsupported("UNIQUE NULLS NOT DISTINCT");
  if (c.including && c.including.length > 0) throw unsupported("INCLUDE columns");
  if (c.contype === "CONSTR_CHECK" && c.is_no_inherit) throw unsupported("NO INHERIT");
}

// ---- CREATE TABLE -----------------------------------------------------------------------------------------------------

export function planCreateTable(stmt: CreateStmt, pc: PlanCx): StatementPlan {
  const rel = stmt.relation!;
  if (rel.schemaname && rel.schemaname !== "public")
    throw sqlError("3F000", `schema "${rel.schemaname}" does not exist`);
  if (rel.relpersistence === "t") throw unsupported("TEMPORARY tables");
  if (rel.relpersistence === "u") throw unsupported("UNLOGGED tables");
  if (stmt.inhRelations && stmt.inhRelations.length > 0) throw unsupported("table inheritance (INHERITS)");
  if (stmt.partspec || stmt.partbound) throw unsupported("partitioned tables");
  if (stmt.ofTypename) throw unsupported("typed tables (OF type)");
  if (stmt.options && stmt.options.length > 0) throw unsupported("storage parameters (WITH …)");
  const name = rel.relname!;
  return ddlPlan("CREATE TABLE", async (ctx) => {
    const host = ctx.ddl!;
    const cat = host.catalog();
    if (cat.hasRelation(name)) {
      if (stmt.if_not_exists) return;
      throw sqlError(SqlState.DuplicateTable, `relation "${name}" already exists`);
    }
    const columns: ColumnDef[] = [];
    const checks: { name?: string; expr: Node; column?: string }[] = [];
    const uniques: { name?: string; cols: string[] }[] = [];
    let pk: { name?: string; cols: string[] } | undefined;
    const sequences: { col: number; max: number }[] = [];
    const setPk = (cols: string[], conname?: string) => {
      if (pk)
        throw sqlError(
          SqlState.InvalidTableDefinition,
          `multiple primary keys for table "${name}" are not allowed`,
        );
      pk = { ...(conname ? { name: conname } : {}), cols };
    };
    for (const elt of stmt.tableElts ?? []) {
      if ("ColumnDef" in elt) {
        const cd = elt.ColumnDef;
        const colName = cd.colname!;
        if (columns.some((c) => c.name === colName))
          throw sqlError(SqlState.DuplicateColumn, `column "${colName}" specified more than once`);
        if (cd.collClause) throw unsupported("COLLATE on a column (Twill DB compares text by code point)");
        const { type, serial } = resolveTypeName(cd.typeName!);
        const col: ColumnDef = { name: colName, type: typeToSpec(type), notNull: false };
        const index = columns.length;
        if (serial) {
          col.notNull = true;
          sequences.push({
            col: index,
            max:
              serial === "smallserial" ? 32767 : serial === "serial" ? 2147483647 : Number.MAX_SAFE_INTEGER,
          });
        }
        let explicitNull = false;
        for (const cn of cd.constraints ?? []) {
          const c = (cn as { Constraint: Constraint }).Constraint;
          rejectConstraintOptions(c);
          switch (c.contype) {
            case "CONSTR_NOTNULL":
              if (explicitNull)
                throw sqlError(
                  SqlState.SyntaxError,
                  `conflicting NULL/NOT NULL declarations for column "${colName}" of table "${name}"`,
                );
              col.notNull = true;
              break;
            case "CONSTR_NULL":
              if (col.notNull && !serial)
                throw sqlError(
                  SqlState.SyntaxError,
                  `conflicting NULL/NOT NULL declarations for column "${colName}" of table "${name}"`,
                );
              explicitNull = true;
              break;
            case "CONSTR_DEFAULT":
              if (serial)
                throw sqlError(
                  SqlState.SyntaxError,
                  `multiple default values specified for column "${colName}" of table "${name}"`,
                );
              if (col.default)
                throw sqlError(
                  SqlState.SyntaxError,
                  `multiple default values specified for column "${colName}" of table "${name}"`,
                );
              col.default = { kind: "expr", expr: c.raw_expr!, text: "" };
              break;
            case "CONSTR_PRIMARY":
              setPk([colName], c.conname);
              break;
            case "CONSTR_UNIQUE":
              uniques.push({ ...(c.conname ? { name: c.conname } : {}), cols: [colName] });
              break;
            case "CONSTR_CHECK":
              checks.push({ ...(c.conname ? { name: c.conname } : {}), expr: c.raw_expr!, column: colName });
              break;
            case "CONSTR_IDENTITY":
              if (type.kind !== "int2" && type.kind !== "int4" && type.kind !== "int8") {
                throw sqlError(
                  SqlState.InvalidParameterValue,
                  `identity column type must be smallint, integer, or bigint`,
                );
              }
              if (c.options && c.options.length > 0)
                throw unsupported("sequence options on an identity column");
              col.identity = c.generated_when === "a" ? "always" : "default";
              col.notNull = true;
              sequences.push({
                col: index,
                max:
                  type.kind === "int2" ? 32767 : type.kind === "int4" ? 2147483647 : Number.MAX_SAFE_INTEGER,
              });
              break;
            case "CONSTR_FOREIGN":
              throw unsupported("foreign keys (REFERENCES)");
            case "CONSTR_GENERATED":
              throw unsupported("generated columns");
            default:
              throw unsupported(`column constraint ${c.contype}`);
          }
        }
        columns.push(col);
      } else if ("Constraint" in elt) {
        const c = elt.Constraint;
        rejectConstraintOptions(c);
        const keys = (c.keys ?? []).map(str);
        switch (c.contype) {
          case "CONSTR_PRIMARY":
            setPk(keys, c.conname);
            break;
          case "CONSTR_UNIQUE":
            uniques.push({ ...(c.conname ? { name: c.conname } : {}), cols: keys });
            break;
          case "CONSTR_CHECK":
            checks.push({ ...(c.conname ? { name: c.conname } : {}), expr: c.raw_expr! });
            break;
          case "CONSTR_FOREIGN":
            throw unsupported("foreign keys (FOREIGN KEY … REFERENCES)");
          case "CONSTR_EXCLUSION":
            throw unsupported("exclusion constraints");
          default:
            throw unsupported(`table constraint ${c.contype}`);
        }
      } else if ("TableLikeClause" in elt) {
        throw unsupported("CREATE TABLE … (LIKE …)");
      } else {
        throw unsupported(`table element ${Object.keys(elt)[0]}`);
      }
    }
    if (columns.length === 0) throw unsupported("tables without columns");
    const colIndex = (c: string, what: string) => {
      const i = columns.findIndex((x) => x.name === c);
      if (i < 0) throw sqlError(SqlState.UndefinedColumn, `column "${c}" named in ${what} does not exist`);
      return i;
    };
    const taken = new Set<string>();
    let primaryKey: number[];
    let pkName: string | undefined;
    if (pk) {
      const p = pk as { name?: string; cols: string[] };
      primaryKey = p.cols.map((c) => colIndex(c, "key"));
      if (new Set(primaryKey).size !== primaryKey.length)
        throw sqlError(SqlState.DuplicateColumn, "column appears twice in primary key constraint");
      for (const i of primaryKey) columns[i]!.notNull = true;
      pkName = p.name ?? uniqueName(ctx, `${name}_pkey`, taken);
      if (p.name) {
        if (host.catalog().hasRelation(p.name))
          throw sqlError(SqlState.DuplicateTable, `relation "${p.name}" already exists`);
        taken.add(p.name);
      }
    } else {
      primaryKey = [columns.length];
      columns.push({ name: "rowid", type: typeToSpec(T.int8), notNull: true, hidden: true });
      sequences.push({ col: primaryKey[0]!, max: Number.MAX_SAFE_INTEGER });
    }
    const idCount = 1 + uniques.length + sequences.length;
    const firstId = await allocateIds(ctx, idCount);
    let nextId = firstId + 1;
    for (const s of sequences) {
      columns[s.col]!.default = { kind: "sequence", sequence: nextId++, max: s.max };
    }
    const indexes: IndexDef[] = [];
    for (const u of uniques) {
      const cols = u.cols.map((c) => colIndex(c, "key"));
      // A UNIQUE on exactly the primary key adds nothing (PostgreSQL would build a second index).
      const ixName = u.name ?? uniqueName(ctx, `${name}_${u.cols.join("_")}_key`, taken);
      if (u.name) {
        if (host.catalog().hasRelation(u.name) || taken.has(u.name))
          throw sqlError(SqlState.DuplicateTable, `relation "${u.name}" already exists`);
        taken.add(u.name);
      }
      indexes.push({ id: nextId++, name: ixName, columns: cols, unique: true, constraint: true });
    }
    const checkDefs: CheckDef[] = [];
    const checkNames = new Set<string>();
    for (const c of checks) {
      let cname = c.name;
      if (!cname) {
        const col = c.column ?? firstColumnRef(c.expr);
        const base = col ? `${name}_${col}_check` : `${name}_check`;
        cname = base;
        for (let i = 1; checkNames.has(cname); i++) cname = `${base}${i}`;
      } else if (checkNames.has(cname)) {
        throw sqlError(
          SqlState.DuplicateObject,
          `constraint "${cname}" for relation "${name}" already exists`,
        );
      }
      checkNames.add(cname);
      checkDefs.push({ name: cname, expr: c.expr, text: "" });
    }
    const def: TableDef = {
      id: firstId,
      name,
      columns,
      primaryKey,
      ...(pkName ? { pkName } : {}),
      indexes,
      checks: checkDefs,
    };
    // Compile defaults and checks now, so a bad expression fails the CREATE, not a later INSERT.
    validateDefinition(def, pc);
    ctx.txn!.put(tableKey(name), serializeTable(def));
    host.change(name, def);
  });
}

export function validateDefinition(def: TableDef, pc: PlanCx): void {
  const info = new TableInfo(def);
  for (const [i, c] of def.columns.entries()) {
    if (c.default?.kind !== "expr") continue;
    const cx: CompileCx = {
      scope: new Scope([]),
      params: new ParamTypes(),
      position: pc.position,
      clause: "DEFAULT expressions",
    };
    let e: ReturnType<typeof compileExpr>;
    try {
      e = compileExpr(c.default.expr, cx);
    } catch (error) {
      if ((error as { sqlstate?: string }).sqlstate === SqlState.UndefinedColumn) {
        throw sqlError(SqlState.FeatureNotSupported, "cannot use column reference in DEFAULT expression");
      }
      throw error;
    }
    if (cx.params.maxRef > 0)
      throw sqlError(SqlState.FeatureNotSupported, "there is no parameter $1 in a DEFAULT expression");
    coerce(e, info.types[i]!, "assignment", cx.params, `column "${c.name}"`);
  }
  runtimeOf(info, pc.position);
}

// ---- CREATE INDEX -------------------------------------------------------------------------------------------------------

export function planCreateIndex(stmt: IndexStmt, pc: PlanCx): StatementPlan {
  const method = (stmt.accessMethod ?? "btree").toLowerCase();
  if (method !== "btree" && method !== "hash" && method !== "hnsw")
    throw unsupported(`index access method "${method}"`, "btree and hnsw indexes are supported");
  const hnsw = method === "hnsw" ? hnswSpecOf(stmt) : undefined;
  if (stmt.whereClause) throw unsupported("partial indexes (CREATE INDEX … WHERE)");
  if (stmt.indexIncludingParams && stmt.indexIncludingParams.length > 0) throw unsupported("INCLUDE columns");
  if (stmt.concurrent) throw unsupported("CREATE INDEX CONCURRENTLY");
  if (stmt.nulls_not_distinct) throw unsupported("NULLS NOT DISTINCT");
  const colNames = (stmt.indexParams ?? []).map((n) => {
    const el = (n as { IndexElem: { name?: string; expr?: Node; collation?: Node[]; opclass?: Node[] } })
      .IndexElem;
    if (!el.name) throw unsupported("indexes on expressions");
    if (el.collation && el.collation.length > 0) throw unsupported("COLLATE in an index");
    if (el.opclass && el.opclass.length > 0 && !hnsw) throw unsupported("operator classes in a btree index");
    return el.name;
  });
  const rel = stmt.relation!;
  return ddlPlan("CREATE INDEX", async (ctx) => {
    const host = ctx.ddl!;
    const table = host.catalog().table(rel.relname!);
    if (!table) throw sqlError(SqlState.UndefinedTable, `relation "${rel.relname}" does not exist`);
    const cols = colNames.map((c) => {
      const i = table.columnIndex.get(c);
      if (i === undefined) throw sqlError(SqlState.UndefinedColumn, `column "${c}" does not exist`);
      return i;
    });
    let name = stmt.idxname;
    if (name && host.catalog().hasRelation(name)) {
      if (stmt.if_not_exists) return;
      throw sqlError(SqlState.DuplicateTable, `relation "${name}" already exists`);
    }
    name ??= uniqueName(ctx, `${table.name}_${colNames.join("_")}_idx`, new Set());
    const id = await allocateIds(ctx, 1);
    if (hnsw) checkHnswColumn(hnsw, table.types[cols[0]!]!);
    const ix: IndexDef = { id, name, columns: cols, unique: stmt.unique ?? false, ...(hnsw ? { hnsw } : {}) };
    const def: TableDef = { ...table.def, indexes: [...table.def.indexes, ix] };
    const info = new TableInfo(def);
    if (hnsw) {
      await hnswBackfill(ctx, info, ix);
      ctx.txn!.put(tableKey(table.name), serializeTable(def));
      host.change(table.name, def);
      return;
    }
    const rt = runtimeOf(info, pc.position);
    const pos = def.indexes.length - 1;
    const txn = ctx.txn!;
    for await (const kv of ctx.kv.scan(table.range)) {
      const row = decodeRow(info.types, kv.value, info.missing);
      const pk = kv.key.slice(table.keyPrefix.length);
      const e = indexEntry(info, rt, pos, row, pk);
      if (ix.unique && e.complete && (await ctx.kv.get(e.key)) !== undefined) {
        const names = cols.map((c) => def.columns[c]!.name).join(", ");
        const vals = cols.map((c) => outputText(info.types[c]!, row[c]!)).join(", ");
        throw sqlError(SqlState.UniqueViolation, `could not create unique index "${name}"`, {
          detail: `Key (${names})=(${vals}) is duplicated.`,
        });
      }
      txn.put(e.key, pk);
    }
    txn.put(tableKey(table.name), serializeTable(def));
    host.change(table.name, def);
  });
}

// ---- DROP and TRUNCATE ----------------------------------------------------------------------------------------------------

export async function deleteRange(
  ctx: ExecCtx,
  range: { start: Uint8Array; end: Uint8Array },
): Promise<void> {
  const keys: Uint8Array[] = [];
  for await (const kv of ctx.kv.scan(range)) keys.push(kv.key);
  for (const k of keys) ctx.txn!.delete(k);
}

function objectName(n: Node): string {
  const items = (n as { List?: { items?: Node[] } }).List?.items ?? [];
  const parts = items.map(str);
  if (parts.length > 1 && parts[0] !== "public")
    throw sqlError("3F000", `schema "${parts[0]}" does not exist`);
  return parts[parts.length - 1]!;
}

export function planDrop(stmt: DropStmt, _pc: PlanCx): StatementPlan {
  if (stmt.concurrent) throw unsupported("DROP INDEX CONCURRENTLY");
  const names = (stmt.objects ?? []).map(objectName);
  if (stmt.removeType === "OBJECT_TABLE") {
    return ddlPlan("DROP TABLE", async (ctx) => {
      const host = ctx.ddl!;
      for (const name of names) {
        const table = host.catalog().table(name);
        if (!table) {
          if (host.catalog().index(name))
            throw sqlError(SqlState.WrongObjectType, `"${name}" is not a table`, {
              hint: "Use DROP INDEX to remove an index.",
            });
          if (stmt.missing_ok) continue;
          throw sqlError(SqlState.UndefinedTable, `table "${name}" does not exist`);
        }
        await deleteRange(ctx, table.range);
        for (const ix of table.def.indexes) {
          await deleteRange(ctx, tuplePrefixRange([ix.id]));
          if (ix.hnsw) hnswEmptied(ctx, ix.id);
        }
        for (const c of table.def.columns)
          if (c.default?.kind === "sequence") ctx.txn!.delete(sequenceKey(c.default.sequence));
        ctx.txn!.delete(tableKey(name));
        host.change(name, null);
      }
    });
  }
  if (stmt.removeType === "OBJECT_INDEX") {
    return ddlPlan("DROP INDEX", async (ctx) => {
      const host = ctx.ddl!;
      for (const name of names) {
        const hit = host.catalog().index(name);
        if (!hit) {
          const asTable = host.catalog().table(name);
          if (asTable)
            throw sqlError(SqlState.WrongObjectType, `"${name}" is not an index`, {
              hint: "Use DROP TABLE to remove a table.",
            });
          if (stmt.missing_ok) continue;
          throw sqlError(SqlState.UndefinedObject, `index "${name}" does not exist`);
        }
        const { table, index } = hit;
        if (index.constraint) {
          throw sqlError(
            "2BP01",
            `cannot drop index ${name} because constraint ${name} on table ${table.name} requires it`,
            {
              hint: `You can drop constraint ${name} on table ${table.name} instead.`,
            },
          );
        }
        await deleteRange(ctx, tuplePrefixRange([index.id]));
        if (index.hnsw) hnswEmptied(ctx, index.id);
        const def: TableDef = { ...table.def, indexes: table.def.indexes.filter((i) => i !== index) };
        ctx.txn!.put(tableKey(table.name), serializeTable(def));
        host.change(table.name, def);
      }
    });
  }
  throw unsupported(`DROP ${(stmt.removeType ?? "").replace("OBJECT_", "")}`);
}

export function planTruncate(stmt: TruncateStmt, _pc: PlanCx): StatementPlan {
  if (stmt.restart_seqs) throw unsupported("TRUNCATE … RESTART IDENTITY");
  const names = (stmt.relations ?? []).map(
    (n) => (n as { RangeVar: { relname?: string } }).RangeVar.relname ?? "",
  );
  return ddlPlan("TRUNCATE TABLE", async (ctx) => {
    const host = ctx.ddl!;
    for (const name of names) {
      const table = host.catalog().table(name);
      if (!table) throw sqlError(SqlState.UndefinedTable, `relation "${name}" does not exist`);
      await deleteRange(ctx, table.range);
      for (const ix of table.def.indexes) {
        await deleteRange(ctx, tuplePrefixRange([ix.id]));
        if (ix.hnsw) hnswEmptied(ctx, ix.id);
      }
    }
  });
}
