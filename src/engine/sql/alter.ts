/**
 * ALTER TABLE and ALTER TABLE … RENAME, as PostgreSQL does them, inside the statement's transaction: the catalog
 * key, any row rewrite and index changes commit or roll back together, and the session installs the new table
 * definition only after the commit.
 *
 * How rows written before an ALTER read after it (rows are positional, see row-codec.ts):
 *   ADD COLUMN       appends a column. With no default, or a non-volatile one, no row is rewritten: the value is
 *                    evaluated once and stored in the column definition (`missing`), and shorter rows decode the
 *                    column to it. A volatile default (random(), gen_random_uuid(), a serial) gives every existing
 *                    row its own value, so those rows are rewritten, as PostgreSQL rewrites the table.
 *   DROP COLUMN      keeps the column in place, hidden, renamed and NULL in new rows; indexes and CHECK
 *                    constraints that use it are dropped with it, as PostgreSQL does. Dropping a primary-key
 *                    column leaves the table keyed by a new hidden rowid: every row is rewritten (re-keyed).
 *   ADD PRIMARY KEY  validates NOT NULL and uniqueness of existing rows and re-keys every row (the old hidden
 *                    rowid becomes a dropped column); index entries are rebuilt because they carry the key.
 *   ALTER … TYPE     rewrites every row with the cast (or the USING expression) and rebuilds keys and indexes.
 *   RENAME …         changes only the catalog (CHECK expressions are stored as ASTs and are renamed with it).
 * Each command of a multi-command ALTER TABLE sees the definition the previous one produced.
 */

import type {
  AlterTableCmd,
  AlterTableStmt,
  Constraint,
  Node,
  ColumnDef as PgColumnDef,
  RangeVar,
  RenameStmt,
} from "libpg-query";
import { tuplePrefixRange } from "../lsm/keycodec.js";
import {
  attnumOf,
  type ColumnDef,
  type IndexDef,
  sequenceKey,
  serializeTable,
  type TableDef,
  TableInfo,
  tableKey,
} from "./catalog.js";
import { type CompileCx, compileExpr, resolveTypeName, Scope } from "./compile.js";
import { allocateIds, ddlPlan, deleteRange, firstColumnRef, uniqueName, validateDefinition } from "./ddl.js";
import { SqlState, sqlError, unsupported } from "./errors.js";
import { coerce, ParamTypes } from "./expr.js";
import { hnswEmptied } from "./hnsw-index.js";
import type { ExecCtx, StatementPlan } from "./plan.js";
import { decodeRow, encodeRow } from "./row-codec.js";
import type { PlanCx } from "./select.js";
import {
  findConflict,
  indexEntry,
  pkSuffix,
  putRow,
  runtimeOf,
  tableScopeRel,
  validateRow,
} from "./table-runtime.js";
import { castFunction, outputText, T, typeName, typeToSpec, type Value } from "./types.js";

function str(n: Node | undefined): string {
  return n && "String" in n ? (n.String.sval ?? "") : "";
}

function checkSchema(rel: RangeVar): void {
  if (rel.schemaname && rel.schemaname !== "public")
    throw sqlError("3F000", `schema "${rel.schemaname}" does not exist`);
}

/** The table an ALTER names, or undefined when it is missing and IF EXISTS was given. */
function targetTable(ctx: ExecCtx, name: string, missingOk: boolean | undefined): TableInfo | undefined {
  const cat = ctx.ddl!.catalog();
  const table = cat.table(name);
  if (table) return table;
  if (cat.index(name)) throw sqlError(SqlState.WrongObjectType, `"${name}" is not a table`);
  if (missingOk) return undefined;
  throw sqlError(SqlState.UndefinedTable, `relation "${name}" does not exist`);
}

function install(ctx: ExecCtx, def: TableDef): TableInfo {
  ctx.txn!.put(tableKey(def.name), serializeTable(def));
  ctx.ddl!.change(def.name, def);
  return new TableInfo(def);
}

/** Visible column position by name, or 42703 as PostgreSQL words it. */
function columnOf(table: TableInfo, name: string): number {
  const i = table.columnIndex.get(name);
  if (i === undefined)
    throw sqlError(SqlState.UndefinedColumn, `column "${name}" of relation "${table.name}" does not exist`);
  return i;
}

async function hasRows(ctx: ExecCtx, table: TableInfo): Promise<boolean> {
  for await (const _ of ctx.kv.scan({ ...table.range, limit: 1 })) return true;
  return false;
}

async function readRows(ctx: ExecCtx, table: TableInfo): Promise<{ keys: Uint8Array[]; rows: Value[][] }> {
  const keys: Uint8Array[] = [];
  const rows: Value[][] = [];
  for await (const kv of ctx.kv.scan(table.range)) {
    keys.push(kv.key);
    rows.push(decodeRow(table.types, kv.value, table.missing));
  }
  return { keys, rows };
}

/**
 * Rewrites every row of `from` as a row of `to` (same table id, possibly another key): old rows and all old
 * index entries are deleted, then each transformed row is validated and written with its index entries. A
 * duplicate key is reported as PostgreSQL reports it when building the unique index.
 */
async function rewriteRows(
  ctx: ExecCtx,
  from: TableInfo,
  to: TableInfo,
  transform: (row: Value[]) => Value[] | Promise<Value[]>,
): Promise<void> {
  // HNSW node ids are the rows' primary keys and the graph keeps its own overlay: a rewrite would have to rebuild
  // the graph from scratch, which is what DROP INDEX + CREATE INDEX already do, explicitly.
  const hnsw = from.def.indexes.find((ix) => ix.hnsw !== undefined);
  if (hnsw) {
    throw unsupported(
      `ALTER TABLE that rewrites the rows of table "${from.name}", which has the HNSW index "${hnsw.name}"`,
      "drop the HNSW index, alter the table, then create the index again",
    );
  }
  const { keys, rows } = await readRows(ctx, from);
  const txn = ctx.txn!;
  for (const k of keys) txn.delete(k);
  for (const ix of from.def.indexes) await deleteRange(ctx, tuplePrefixRange([ix.id]));
  const rt = runtimeOf(to);
  for (const old of rows) {
    const row = await transform(old);
    validateRow(to, rt, row, ctx.env);
    const pk = pkSuffix(to, row);
    const c = await findConflict(ctx, to, rt, row, pk);
    if (c) {
      const name = c.index ? c.index.name : (to.def.pkName ?? `${to.name}_pkey`);
      const cols = c.index ? c.index.columns : to.def.primaryKey;
      throw duplicated(to, name, cols, row);
    }
    await putRow(ctx, to, rt, row, pk);
  }
}

function duplicated(table: TableInfo, index: string, cols: readonly number[], row: readonly Value[]) {
  const names = cols.map((c) => table.def.columns[c]!.name).join(", ");
  const vals = cols.map((c) => (row[c] === null ? "null" : outputText(table.types[c]!, row[c]!))).join(", ");
  return sqlError(SqlState.UniqueViolation, `could not create unique index "${index}"`, {
    detail: `Key (${names})=(${vals}) is duplicated.`,
  });
}

function containsNull(table: TableInfo, col: number) {
  return sqlError(
    SqlState.NotNullViolation,
    `column "${table.def.columns[col]!.name}" of relation "${table.name}" contains null values`,
  );
}

async function checkNoNulls(ctx: ExecCtx, table: TableInfo, cols: readonly number[]): Promise<void> {
  for await (const kv of ctx.kv.scan(table.range)) {
    const row = decodeRow(table.types, kv.value, table.missing);
    for (const c of cols) if (row[c] === null) throw containsNull(table, c);
  }
}

/** Validates that every existing row satisfies the CHECK constraints named in `names`. */
async function checkRows(ctx: ExecCtx, table: TableInfo, names: ReadonlySet<string>): Promise<void> {
  if (names.size === 0) return;
  const rt = runtimeOf(table);
  const checks = rt.checks.filter((c) => names.has(c.def.name));
  for await (const kv of ctx.kv.scan(table.range)) {
    const row = decodeRow(table.types, kv.value, table.missing);
    for (const c of checks) {
      if (c.expr.eval(row, ctx.env) === false)
        throw sqlError(
          SqlState.CheckViolation,
          `check constraint "${c.def.name}" of relation "${table.name}" is violated by some row`,
        );
    }
  }
}

/** Does a stored AST mention column `name` (a ColumnRef whose last field is it)? */
function mentions(node: unknown, name: string): boolean {
  if (node === null || typeof node !== "object") return false;
  if (Array.isArray(node)) return node.some((n) => mentions(n, name));
  const o = node as Record<string, unknown>;
  if ("ColumnRef" in o) {
    const fields = ((o.ColumnRef as { fields?: Node[] }).fields ?? []).map(str);
    return fields[fields.length - 1] === name;
  }
  for (const k in o) if (mentions(o[k], name)) return true;
  return false;
}

/** A copy of a stored AST with column references to `from` renamed to `to`. */
function renameRefs<N>(node: N, from: string, to: string): N {
  if (node === null || typeof node !== "object") return node;
  if (Array.isArray(node)) return node.map((n) => renameRefs(n, from, to)) as N;
  const o = node as Record<string, unknown>;
  if ("ColumnRef" in o) {
    const cr = o.ColumnRef as { fields?: Node[] };
    const fields = cr.fields ?? [];
    const last = fields[fields.length - 1];
    if (str(last) === from) {
      return {
        ...o,
        ColumnRef: { ...cr, fields: [...fields.slice(0, -1), { String: { sval: to } }] },
      } as N;
    }
    return node;
  }
  const out: Record<string, unknown> = {};
  for (const k in o) out[k] = renameRefs(o[k], from, to);
  return out as N;
}

function checkName(table: TableInfo, base: string): string {
  const taken = new Set(table.def.checks.map((c) => c.name));
  let name = base;
  for (let i = 1; taken.has(name); i++) name = `${base}${i}`;
  return name;
}

// ---- ADD COLUMN ---------------------------------------------------------------------------------------------------

async function addColumn(
  ctx: ExecCtx,
  pc: PlanCx,
  table: TableInfo,
  cd: PgColumnDef,
  ifNotExists: boolean,
): Promise<TableInfo> {
  const name = cd.colname!;
  if (table.columnIndex.has(name)) {
    if (ifNotExists) return table;
    throw sqlError(SqlState.DuplicateColumn, `column "${name}" of relation "${table.name}" already exists`);
  }
  if (cd.collClause) throw unsupported("COLLATE on a column (Twill DB compares text by code point)");
  const { type, serial } = resolveTypeName(cd.typeName!);
  const col: ColumnDef = { name, type: typeToSpec(type), notNull: false };
  const position = table.def.columns.length;
  let sequenceMax: number | undefined;
  if (serial) {
    col.notNull = true;
    sequenceMax =
      serial === "smallserial" ? 32767 : serial === "serial" ? 2147483647 : Number.MAX_SAFE_INTEGER;
  }
  const newChecks: string[] = [];
  const checks = [...table.def.checks];
  for (const cn of cd.constraints ?? []) {
    const c = (cn as { Constraint: Constraint }).Constraint;
    if (c.deferrable || c.initdeferred) throw unsupported("DEFERRABLE constraints");
    switch (c.contype) {
      case "CONSTR_NOTNULL":
        col.notNull = true;
        break;
      case "CONSTR_NULL":
        if (serial) break;
        col.notNull = false;
        break;
      case "CONSTR_DEFAULT":
        if (serial || col.default)
          throw sqlError(
            SqlState.SyntaxError,
            `multiple default values specified for column "${name}" of table "${table.name}"`,
          );
        col.default = { kind: "expr", expr: c.raw_expr!, text: "" };
        break;
      case "CONSTR_CHECK": {
        const cname = c.conname ?? checkName(table, `${table.name}_${name}_check`);
        if (checks.some((x) => x.name === cname))
          throw sqlError(
            SqlState.DuplicateObject,
            `constraint "${cname}" for relation "${table.name}" already exists`,
          );
        checks.push({ name: cname, expr: c.raw_expr!, text: "" });
        newChecks.push(cname);
        break;
      }
      case "CONSTR_PRIMARY":
      case "CONSTR_UNIQUE":
        throw unsupported(
          "PRIMARY KEY or UNIQUE in ADD COLUMN",
          "add the column, then ALTER TABLE … ADD PRIMARY KEY or CREATE UNIQUE INDEX",
        );
      case "CONSTR_IDENTITY":
        throw unsupported("ADD COLUMN … GENERATED AS IDENTITY", "add a serial column instead");
      case "CONSTR_FOREIGN":
        throw unsupported("foreign keys (REFERENCES)");
      case "CONSTR_GENERATED":
        throw unsupported("generated columns");
      default:
        throw unsupported(`column constraint ${c.contype}`);
    }
  }
  if (sequenceMax !== undefined) {
    const id = await allocateIds(ctx, 1);
    col.default = { kind: "sequence", sequence: id, max: sequenceMax };
  }
  let def: TableDef = { ...table.def, columns: [...table.def.columns, col], checks };
  validateDefinition(def, pc);
  let info = new TableInfo(def);
  const rt = runtimeOf(info, pc.position);
  if (!(await hasRows(ctx, table))) return install(ctx, def);
  const d = rt.defaults[position];
  if (d?.sequence || d?.expr?.volatile) {
    // Every existing row gets its own value, drawn or evaluated in key order, as PostgreSQL's rewrite does.
    const seq = d.sequence;
    const expr = d.expr;
    await rewriteRows(ctx, table, info, async (row) => {
      const out = [...row, null];
      out[position] = seq
        ? await ctx.services.nextSequence(seq.id, seq.max, seq.name)
        : expr!.eval([], ctx.env);
      return out;
    });
    return install(ctx, def);
  }
  const value = d?.expr ? d.expr.eval([], ctx.env) : null;
  if (value === null) {
    if (col.notNull) throw containsNull(info, position);
  } else {
    const bytes = encodeRow([info.types[position]!], [value]);
    def = {
      ...def,
      columns: def.columns.map((c, i) =>
        i === position ? { ...c, missing: Buffer.from(bytes).toString("base64") } : c,
      ),
    };
    info = new TableInfo(def);
  }
  await checkRows(ctx, info, new Set(newChecks));
  return install(ctx, def);
}

// ---- DROP COLUMN --------------------------------------------------------------------------------------------------

async function dropColumn(
  ctx: ExecCtx,
  table: TableInfo,
  name: string,
  missingOk: boolean,
): Promise<TableInfo> {
  const col = table.columnIndex.get(name);
  if (col === undefined) {
    if (missingOk) return table;
    throw sqlError(SqlState.UndefinedColumn, `column "${name}" of relation "${table.name}" does not exist`);
  }
  if (table.visibleColumns.length === 1)
    throw unsupported("dropping the last column of a table (tables without columns)");
  const old = table.def.columns[col]!;
  const txn = ctx.txn!;
  // Indexes (and the UNIQUE constraints they enforce) and CHECKs on the column go with it, as in PostgreSQL.
  const keptIndexes: IndexDef[] = [];
  for (const ix of table.def.indexes) {
    if (ix.columns.includes(col)) {
      await deleteRange(ctx, tuplePrefixRange([ix.id]));
      if (ix.hnsw) hnswEmptied(ctx, ix.id);
    } else keptIndexes.push(ix);
  }
  if (old.default?.kind === "sequence") txn.delete(sequenceKey(old.default.sequence));
  const columns = table.def.columns.map((c, i) =>
    i === col
      ? {
          name: `........pg.dropped.${attnumOf(table.def, col)}........`,
          type: c.type,
          notNull: false,
          hidden: true,
          dropped: true,
        }
      : c,
  );
  const base: TableDef = {
    ...table.def,
    columns,
    indexes: keptIndexes,
    checks: table.def.checks.filter((c) => !mentions(c.expr, name)),
  };
  if (!table.def.primaryKey.includes(col)) return install(ctx, base);
  // The primary key goes with its column: key the table by a new hidden rowid and re-key every row.
  const seq = await allocateIds(ctx, 1);
  const rowidAt = columns.length;
  const def: TableDef = {
    ...base,
    columns: [
      ...columns,
      {
        name: "rowid",
        type: typeToSpec(T.int8),
        notNull: true,
        hidden: true,
        default: { kind: "sequence", sequence: seq, max: Number.MAX_SAFE_INTEGER },
      },
    ],
    primaryKey: [rowidAt],
  };
  delete def.pkName;
  const info = new TableInfo(def);
  const rt = runtimeOf(info);
  const s = rt.defaults[rowidAt]!.sequence!;
  // Old indexes that survive must be rebuilt too: their entries carry the old primary key.
  await rewriteRows(ctx, table, info, async (row) => {
    const out = [...row, null];
    out[col] = null;
    out[rowidAt] = await ctx.services.nextSequence(s.id, s.max, s.name);
    return out;
  });
  return install(ctx, def);
}

// ---- ADD CONSTRAINT -----------------------------------------------------------------------------------------------

async function addConstraint(ctx: ExecCtx, pc: PlanCx, table: TableInfo, c: Constraint): Promise<TableInfo> {
  if (c.deferrable || c.initdeferred) throw unsupported("DEFERRABLE constraints");
  if (c.including && c.including.length > 0) throw unsupported("INCLUDE columns");
  if (c.indexname) throw unsupported("ADD CONSTRAINT … USING INDEX");
  const cat = ctx.ddl!.catalog();
  const keyCols = () => {
    const names = (c.keys ?? []).map(str);
    const cols = names.map((n) => {
      const i = table.columnIndex.get(n);
      if (i === undefined)
        throw sqlError(SqlState.UndefinedColumn, `column "${n}" named in key does not exist`);
      return i;
    });
    if (new Set(cols).size !== cols.length)
      throw sqlError(
        SqlState.DuplicateColumn,
        `column "${names[0]}" appears twice in primary key constraint`,
      );
    return { names, cols };
  };
  const claimName = (base: string) => {
    if (c.conname) {
      if (cat.hasRelation(c.conname))
        throw sqlError(SqlState.DuplicateTable, `relation "${c.conname}" already exists`);
      return c.conname;
    }
    return uniqueName(ctx, base, new Set());
  };
  switch (c.contype) {
    case "CONSTR_PRIMARY": {
      if (!table.hasRowid)
        throw sqlError(
          SqlState.InvalidTableDefinition,
          `multiple primary keys for table "${table.name}" are not allowed`,
        );
      const { cols } = keyCols();
      const pkName = claimName(`${table.name}_pkey`);
      await checkNoNulls(ctx, table, cols);
      const rowid = table.def.primaryKey[0]!;
      const old = table.def.columns[rowid]!;
      if (old.default?.kind === "sequence") ctx.txn!.delete(sequenceKey(old.default.sequence));
      const def: TableDef = {
        ...table.def,
        columns: table.def.columns.map((col, i) =>
          i === rowid
            ? {
                name: "rowid",
                type: col.type,
                notNull: false,
                hidden: true,
                dropped: true,
              }
            : cols.includes(i)
              ? { ...col, notNull: true }
              : col,
        ),
        primaryKey: cols,
        pkName,
      };
      const info = new TableInfo(def);
      await rewriteRows(ctx, table, info, (row) => {
        const out = [...row];
        out[rowid] = null;
        return out;
      });
      return install(ctx, def);
    }
    case "CONSTR_UNIQUE": {
      if (c.nulls_not_distinct) throw unsupported("UNIQUE NULLS NOT DISTINCT");
      const { names, cols } = keyCols();
      const name = claimName(`${table.name}_${names.join("_")}_key`);
      const id = await allocateIds(ctx, 1);
      const ix: IndexDef = { id, name, columns: cols, unique: true, constraint: true };
      const def: TableDef = { ...table.def, indexes: [...table.def.indexes, ix] };
      const info = new TableInfo(def);
      const rt = runtimeOf(info, pc.position);
      const at = def.indexes.length - 1;
      for await (const kv of ctx.kv.scan(table.range)) {
        const row = decodeRow(info.types, kv.value, info.missing);
        const pk = kv.key.slice(table.keyPrefix.length);
        const e = indexEntry(info, rt, at, row, pk);
        if (e.complete && (await ctx.kv.get(e.key)) !== undefined) throw duplicated(info, name, cols, row);
        ctx.txn!.put(e.key, pk);
      }
      return install(ctx, def);
    }
    case "CONSTR_CHECK": {
      if (c.is_no_inherit) throw unsupported("NO INHERIT");
      const cname =
        c.conname ??
        checkName(table, `${table.name}_${firstColumnRef(c.raw_expr) ?? ""}_check`.replace("__", "_"));
      if (table.def.checks.some((x) => x.name === cname))
        throw sqlError(
          SqlState.DuplicateObject,
          `constraint "${cname}" for relation "${table.name}" already exists`,
        );
      const def: TableDef = {
        ...table.def,
        checks: [...table.def.checks, { name: cname, expr: c.raw_expr!, text: "" }],
      };
      validateDefinition(def, pc);
      if (!c.skip_validation) await checkRows(ctx, new TableInfo(def), new Set([cname]));
      return install(ctx, def);
    }
    case "CONSTR_FOREIGN":
      throw unsupported("foreign keys (FOREIGN KEY … REFERENCES)");
    case "CONSTR_EXCLUSION":
      throw unsupported("exclusion constraints");
    default:
      throw unsupported(`ADD CONSTRAINT ${(c.contype ?? "").replace("CONSTR_", "")}`);
  }
}

// ---- ALTER COLUMN -------------------------------------------------------------------------------------------------

/** PostgreSQL refuses to change the default or drop NOT NULL of an identity column (42601). */
function refuseIdentity(table: TableInfo, c: ColumnDef): void {
  if (c.identity)
    throw sqlError(
      SqlState.SyntaxError,
      `column "${c.name}" of relation "${table.name}" is an identity column`,
    );
}

async function alterColumn(
  ctx: ExecCtx,
  pc: PlanCx,
  table: TableInfo,
  cmd: AlterTableCmd,
): Promise<TableInfo> {
  const col = columnOf(table, cmd.name!);
  const c = table.def.columns[col]!;
  const replace = (next: ColumnDef): TableDef => ({
    ...table.def,
    columns: table.def.columns.map((x, i) => (i === col ? next : x)),
  });
  switch (cmd.subtype) {
    case "AT_ColumnDefault": {
      refuseIdentity(table, c);
      const next: ColumnDef = { ...c };
      if (c.default?.kind === "sequence") ctx.txn!.delete(sequenceKey(c.default.sequence));
      if (cmd.def) next.default = { kind: "expr", expr: cmd.def, text: "" };
      else delete next.default;
      const def = replace(next);
      validateDefinition(def, pc);
      return install(ctx, def);
    }
    case "AT_SetNotNull": {
      if (c.notNull) return table;
      await checkNoNulls(ctx, table, [col]);
      return install(ctx, replace({ ...c, notNull: true }));
    }
    case "AT_DropNotNull": {
      if (table.def.primaryKey.includes(col) && !table.hasRowid)
        throw sqlError(SqlState.InvalidTableDefinition, `column "${c.name}" is in a primary key`);
      refuseIdentity(table, c);
      return install(ctx, replace({ ...c, notNull: false }));
    }
    default:
      throw unsupported(`ALTER COLUMN … ${(cmd.subtype ?? "").replace("AT_", "")}`);
  }
}

/**
 * ALTER COLUMN … TYPE [USING expr]: every row is rewritten with the converted value (indexes and keys rebuilt,
 * since their encoding follows the type). Without USING, only an assignment cast is allowed, as in PostgreSQL.
 */
async function alterColumnType(
  ctx: ExecCtx,
  pc: PlanCx,
  table: TableInfo,
  cmd: AlterTableCmd,
): Promise<TableInfo> {
  const col = columnOf(table, cmd.name!);
  const c = table.def.columns[col]!;
  const cd = (cmd.def as { ColumnDef: PgColumnDef }).ColumnDef;
  if (cd.collClause) throw unsupported("COLLATE on a column (Twill DB compares text by code point)");
  const { type, serial } = resolveTypeName(cd.typeName!);
  if (serial) throw sqlError(SqlState.UndefinedObject, `type "${serial}" does not exist`);
  const from = table.types[col]!;
  // PostgreSQL converts the column's default first, and only with an assignment cast. A DEFAULT NULL is no
  // default at all there (it stores none), so it needs no cast.
  const compiled = runtimeOf(table).defaults[col]?.expr;
  const nullDefault = compiled?.isConst === true && compiled.value === null;
  if (c.default?.kind === "expr" && !nullDefault && !castFunction(from, type, "assignment"))
    throw sqlError(
      SqlState.DatatypeMismatch,
      `default for column "${c.name}" cannot be cast automatically to type ${typeName(type)}`,
    );
  let convert: (row: Value[]) => Value;
  if (cd.raw_default) {
    const cx: CompileCx = {
      scope: new Scope([tableScopeRel(table, table.name)]),
      params: new ParamTypes(),
      position: pc.position,
      clause: "transform expressions",
    };
    const e = coerce(compileExpr(cd.raw_default, cx), type, "assignment", cx.params, `column "${c.name}"`);
    if (cx.params.maxRef > 0)
      throw sqlError(SqlState.FeatureNotSupported, "parameters in a USING expression");
    convert = (row) => e.eval(row, ctx.env);
  } else {
    const fn = castFunction(from, type, "assignment");
    if (!fn)
      throw sqlError(
        SqlState.DatatypeMismatch,
        `column "${c.name}" cannot be cast automatically to type ${typeName(type)}`,
        { hint: `You might need to specify "USING ${c.name}::${typeName(type)}".` },
      );
    convert = (row) => (row[col] === null ? null : fn(row[col] as Exclude<Value, null>, ctx.env.now));
  }
  // Every row is rewritten at full width, so no row needs the old-typed missing value any more.
  const { missing: _gone, ...kept } = c;
  const rest: ColumnDef = kept;
  if (nullDefault) delete rest.default;
  const def: TableDef = {
    ...table.def,
    columns: table.def.columns.map((x, i) => (i === col ? { ...rest, type: typeToSpec(type) } : x)),
  };
  validateDefinition(def, pc);
  const info = new TableInfo(def);
  await rewriteRows(ctx, table, info, (row) => {
    const out = [...row];
    out[col] = convert(row);
    return out;
  });
  return install(ctx, def);
}

// ---- entry points -------------------------------------------------------------------------------------------------

export function planAlterTable(stmt: AlterTableStmt, pc: PlanCx): StatementPlan {
  if (stmt.objtype !== "OBJECT_TABLE")
    throw unsupported(`ALTER ${(stmt.objtype ?? "").replace("OBJECT_", "")}`);
  const rel = stmt.relation!;
  checkSchema(rel);
  const cmds = (stmt.cmds ?? []).map((n) => (n as { AlterTableCmd: AlterTableCmd }).AlterTableCmd);
  for (const cmd of cmds) {
    switch (cmd.subtype) {
      case "AT_AddColumn":
      case "AT_DropColumn":
      case "AT_AddConstraint":
      case "AT_ColumnDefault":
      case "AT_SetNotNull":
      case "AT_DropNotNull":
      case "AT_AlterColumnType":
        break;
      case "AT_DropConstraint":
        throw unsupported("ALTER TABLE … DROP CONSTRAINT");
      default:
        throw unsupported(`ALTER TABLE … ${(cmd.subtype ?? "").replace("AT_", "")}`);
    }
  }
  return ddlPlan("ALTER TABLE", async (ctx) => {
    let table = targetTable(ctx, rel.relname!, stmt.missing_ok);
    if (!table) return;
    for (const cmd of cmds) {
      switch (cmd.subtype) {
        case "AT_AddColumn":
          table = await addColumn(
            ctx,
            pc,
            table,
            (cmd.def as { ColumnDef: PgColumnDef }).ColumnDef,
            cmd.missing_ok ?? false,
          );
          break;
        case "AT_DropColumn":
          table = await dropColumn(ctx, table, cmd.name!, cmd.missing_ok ?? false);
          break;
        case "AT_AddConstraint":
          table = await addConstraint(ctx, pc, table, (cmd.def as { Constraint: Constraint }).Constraint);
          break;
        case "AT_AlterColumnType":
          table = await alterColumnType(ctx, pc, table, cmd);
          break;
        default:
          table = await alterColumn(ctx, pc, table, cmd);
      }
    }
  });
}

export function planRename(stmt: RenameStmt, _pc: PlanCx): StatementPlan {
  const rel = stmt.relation;
  if (!rel || (stmt.renameType !== "OBJECT_TABLE" && stmt.renameType !== "OBJECT_COLUMN"))
    throw unsupported(`ALTER … RENAME of ${(stmt.renameType ?? "").replace("OBJECT_", "").toLowerCase()}`);
  checkSchema(rel);
  const newName = stmt.newname!;
  return ddlPlan("ALTER TABLE", async (ctx) => {
    const table = targetTable(ctx, rel.relname!, stmt.missing_ok);
    if (!table) return;
    const cat = ctx.ddl!.catalog();
    if (stmt.renameType === "OBJECT_TABLE") {
      if (cat.hasRelation(newName))
        throw sqlError(SqlState.DuplicateTable, `relation "${newName}" already exists`);
      ctx.txn!.delete(tableKey(table.name));
      ctx.ddl!.change(table.name, null);
      install(ctx, { ...table.def, name: newName });
      return;
    }
    const from = stmt.subname!;
    const col = columnOf(table, from);
    if (table.columnIndex.has(newName))
      throw sqlError(
        SqlState.DuplicateColumn,
        `column "${newName}" of relation "${table.name}" already exists`,
      );
    install(ctx, {
      ...table.def,
      columns: table.def.columns.map((c, i) => (i === col ? { ...c, name: newName } : c)),
      checks: table.def.checks.map((c) => ({ ...c, expr: renameRefs(c.expr, from, newName) })),
    });
  });
}
