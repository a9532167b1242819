/**
 * The read-only system views a PostgreSQL client reads, generated from the catalog at plan time:
 *   information_schema.tables, information_schema.columns,
 *   pg_catalog.pg_namespace, pg_class, pg_attribute, pg_type, pg_index, pg_tables, pg_indexes
 (the functions version(), current_database(), current_schema(), pg_typeof() are in system-functions.ts).
 *
 * Invariants: the rows depend only on the Catalog object a plan is built on (plans are cached per catalog, and a
 * DDL statement installs a new one), so they are computed once when the statement is planned and are exactly the
 * definitions that statement sees, its own transaction's uncommitted DDL included. Object ids are the catalog's
 * ids offset by FIRST_OID (16384, where PostgreSQL's user objects start), so they never collide with the fixed
 * ids of types and namespaces. A table's primary key shows up as an index named after its constraint, as in
 * PostgreSQL; the hidden rowid of a table without one is not shown; a dropped column is shown in pg_attribute
 * with attisdropped, as PostgreSQL does. Columns PostgreSQL has and clients rarely read are left out: a query
 * naming one fails with 42703, never with a made-up value.
 */

import type { RangeVar } from "libpg-query";
import { attnumOf, type Catalog, isRowidColumn, type TableInfo } from "./catalog.js";
import type { ExplainNode, RowSource } from "./plan.js";
import { DATABASE_NAME, standardTypeName } from "./system-functions.js";
import { runtimeOf } from "./table-runtime.js";
import { ArrayOid, Oid, type SqlType, T, type TypeKind, type Value } from "./types.js";

const FIRST_OID = 16384;
const NS_PG_CATALOG = 11;
const NS_PUBLIC = 2200;
const NS_INFORMATION_SCHEMA = 13000;

interface SystemView {
  columns: { name: string; type: SqlType }[];
  rows: (catalog: Catalog) => Value[][];
}

/** The rows of a system view, computed when planned. */
export class StaticSource implements RowSource {
  constructor(
    readonly label: string,
    readonly data: readonly Value[][],
  ) {}
  async *rows(): AsyncIterable<Value[]> {
    for (const r of this.data) yield r.slice();
  }
  explain(): ExplainNode {
    return { label: `Function Scan on ${this.label}`, details: [], children: [] };
  }
}

const text = T.text;
const int4 = T.int4;
const int2 = T.int2;
const bool = T.bool;
const col = (name: string, type: SqlType) => ({ name, type });

function visibleTables(catalog: Catalog): TableInfo[] {
  return catalog.allTables().sort((a, b) => a.def.id - b.def.id);
}

const oidOf = (id: number) => FIRST_OID + id;

/** The primary key of a table as an index: its oid comes from the table's id (tables own ids id..id+k). */
function pkOid(table: TableInfo): number {
  // Ids are never shared, but a primary key has none of its own: place it in a range no catalog id reaches.
  return 0x40000000 + table.def.id;
}

interface IndexRow {
  oid: number;
  name: string;
  table: TableInfo;
  columns: number[];
  unique: boolean;
  primary: boolean;
}

function allIndexes(catalog: Catalog): IndexRow[] {
  const out: IndexRow[] = [];
  for (const t of visibleTables(catalog)) {
    if (!t.hasRowid) {
      out.push({
        oid: pkOid(t),
        name: t.def.pkName!,
        table: t,
        columns: t.def.primaryKey,
        unique: true,
        primary: true,
      });
    }
    for (const ix of t.def.indexes) {
      out.push({
        oid: oidOf(ix.id),
        name: ix.name,
        table: t,
        columns: ix.columns,
        unique: ix.unique,
        primary: false,
      });
    }
  }
  return out;
}

function columnDefault(t: TableInfo, i: number): string | null {
  const d = t.def.columns[i]!.default;
  if (!d) return null;
  if (d.kind === "sequence") return `nextval('${t.name}_${t.def.columns[i]!.name}_seq'::regclass)`;
  const e = runtimeOf(t).defaults[i]?.expr;
  // PostgreSQL stores no default for DEFAULT NULL.
  if (!e || (e.isConst === true && e.value === null)) return null;
  return e.text;
}

/** Columns as pg_attribute numbers them: every stored column but the hidden rowid, dropped ones included. */
function attributes(t: TableInfo): { attnum: number; index: number }[] {
  const out: { attnum: number; index: number }[] = [];
  t.def.columns.forEach((c, i) => {
    if (isRowidColumn(c)) return;
    out.push({ attnum: out.length + 1, index: i });
  });
  return out;
}

const TYPE_ROWS: { kind: TypeKind; name: string; len: number; category: string }[] = [
  { kind: "bool", name: "bool", len: 1, category: "B" },
  { kind: "bytea", name: "bytea", len: -1, category: "U" },
  { kind: "int8", name: "int8", len: 8, category: "N" },
  { kind: "int2", name: "int2", len: 2, category: "N" },
  { kind: "int4", name: "int4", len: 4, category: "N" },
  { kind: "text", name: "text", len: -1, category: "S" },
  { kind: "float4", name: "float4", len: 4, category: "N" },
  { kind: "float8", name: "float8", len: 8, category: "N" },
  { kind: "unknown", name: "unknown", len: -2, category: "X" },
  { kind: "bpchar", name: "bpchar", len: -1, category: "S" },
  { kind: "varchar", name: "varchar", len: -1, category: "S" },
  { kind: "date", name: "date", len: 4, category: "D" },
  { kind: "timestamp", name: "timestamp", len: 8, category: "D" },
  { kind: "timestamptz", name: "timestamptz", len: 8, category: "D" },
  { kind: "numeric", name: "numeric", len: -1, category: "N" },
  { kind: "uuid", name: "uuid", len: 16, category: "U" },
  { kind: "jsonb", name: "jsonb", len: -1, category: "U" },
];

/** pg_type.typname of a column's type (_int4 for int4[]). */
function udtName(t: SqlType): string {
  if (t.kind === "array") return `_${udtName(t.elem!)}`;
  return TYPE_ROWS.find((r) => r.kind === t.kind)?.name ?? t.kind;
}

/** PostgreSQL's atttypmod: varchar/char length + 4, numeric ((p << 16) | s) + 4, else -1. */
function typmod(t: SqlType): number {
  if ((t.kind === "varchar" || t.kind === "bpchar") && t.length >= 0) return t.length + 4;
  if (t.kind === "numeric" && t.precision >= 0) return ((t.precision << 16) | t.scale) + 4;
  return -1;
}

function indexDef(ix: IndexRow): string {
  const cols = ix.columns.map((c) => ix.table.def.columns[c]!.name).join(", ");
  return `CREATE ${ix.unique ? "UNIQUE " : ""}INDEX ${ix.name} ON public.${ix.table.name} USING btree (${cols})`;
}

const INFORMATION_SCHEMA: Record<string, SystemView> = {
  tables: {
    columns: [
      col("table_catalog", text),
      col("table_schema", text),
      col("table_name", text),
      col("table_type", text),
      col("is_insertable_into", text),
      col("is_typed", text),
    ],
    rows: (cat) =>
      visibleTables(cat).map((t) => [DATABASE_NAME, "public", t.name, "BASE TABLE", "YES", "NO"]),
  },
  columns: {
    columns: [
      col("table_catalog", text),
      col("table_schema", text),
      col("table_name", text),
      col("column_name", text),
      col("ordinal_position", int4),
      col("column_default", text),
      col("is_nullable", text),
      col("data_type", text),
      col("character_maximum_length", int4),
      col("numeric_precision", int4),
      col("numeric_scale", int4),
      col("udt_catalog", text),
      col("udt_schema", text),
      col("udt_name", text),
      col("is_identity", text),
      col("identity_generation", text),
      col("is_generated", text),
      col("is_updatable", text),
    ],
    rows: (cat) =>
      visibleTables(cat).flatMap((t) =>
        attributes(t)
          .filter((a) => !t.def.columns[a.index]!.dropped)
          .map((a) => {
            const c = t.def.columns[a.index]!;
            const ty = t.types[a.index]!;
            const numPrecision =
              ty.kind === "int2"
                ? 16
                : ty.kind === "int4"
                  ? 32
                  : ty.kind === "int8"
                    ? 64
                    : ty.kind === "float4"
                      ? 24
                      : ty.kind === "float8"
                        ? 53
                        : ty.kind === "numeric" && ty.precision >= 0
                          ? ty.precision
                          : null;
            const numScale =
              ty.kind === "int2" || ty.kind === "int4" || ty.kind === "int8"
                ? 0
                : ty.kind === "numeric" && ty.precision >= 0
                  ? ty.scale
                  : null;
            return [
              DATABASE_NAME,
              "public",
              t.name,
              c.name,
              a.attnum,
              c.identity ? null : columnDefault(t, a.index),
              c.notNull ? "NO" : "YES",
              ty.kind === "array" ? "ARRAY" : standardTypeName(ty),
              (ty.kind === "varchar" || ty.kind === "bpchar") && ty.length >= 0 ? ty.length : null,
              numPrecision,
              numScale,
              DATABASE_NAME,
              "pg_catalog",
              udtName(ty),
              c.identity ? "YES" : "NO",
              c.identity === "always" ? "ALWAYS" : c.identity === "default" ? "BY DEFAULT" : null,
              "NEVER",
              "YES",
            ];
          }),
      ),
  },
};

const PG_CATALOG: Record<string, SystemView> = {
  pg_namespace: {
    columns: [col("oid", int4), col("nspname", text), col("nspowner", int4)],
    rows: () => [
      [NS_PG_CATALOG, "pg_catalog", 10],
      [NS_PUBLIC, "public", 10],
      [NS_INFORMATION_SCHEMA, "information_schema", 10],
    ],
  },
  pg_class: {
    columns: [
      col("oid", int4),
      col("relname", text),
      col("relnamespace", int4),
      col("relkind", text),
      col("relnatts", int2),
      col("relhasindex", bool),
      col("relpersistence", text),
      col("relispartition", bool),
    ],
    rows: (cat) => [
      ...visibleTables(cat).map((t) => [
        oidOf(t.def.id),
        t.name,
        NS_PUBLIC,
        "r",
        attributes(t).length,
        !t.hasRowid || t.def.indexes.length > 0,
        "p",
        false,
      ]),
      ...allIndexes(cat).map((ix) => [ix.oid, ix.name, NS_PUBLIC, "i", ix.columns.length, false, "p", false]),
    ],
  },
  pg_attribute: {
    columns: [
      col("attrelid", int4),
      col("attname", text),
      col("atttypid", int4),
      col("attlen", int2),
      col("attnum", int2),
      col("atttypmod", int4),
      col("attnotnull", bool),
      col("atthasdef", bool),
      col("attidentity", text),
      col("attisdropped", bool),
    ],
    rows: (cat) =>
      visibleTables(cat).flatMap((t) =>
        attributes(t).map((a) => {
          const c = t.def.columns[a.index]!;
          const ty = t.types[a.index]!;
          return [
            oidOf(t.def.id),
            c.name,
            c.dropped ? 0 : ty.oid,
            TYPE_ROWS.find((r) => r.kind === ty.kind)?.len ?? -1,
            a.attnum,
            typmod(ty),
            c.notNull,
            c.default !== undefined && !c.identity,
            c.identity === "always" ? "a" : c.identity === "default" ? "d" : "",
            c.dropped === true,
          ];
        }),
      ),
  },
  pg_type: {
    columns: [
      col("oid", int4),
      col("typname", text),
      col("typnamespace", int4),
      col("typlen", int2),
      col("typtype", text),
      col("typcategory", text),
      col("typelem", int4),
      col("typarray", int4),
    ],
    rows: () => [
      ...TYPE_ROWS.map((r) => [
        Oid[r.kind],
        r.name,
        NS_PG_CATALOG,
        r.len,
        r.kind === "unknown" ? "p" : "b",
        r.category,
        0,
        ArrayOid[r.kind] ?? 0,
      ]),
      // The array types, named as PostgreSQL names them (_int4, …).
      ...TYPE_ROWS.flatMap((r) => {
        const a = ArrayOid[r.kind];
        return a === undefined ? [] : [[a, `_${r.name}`, NS_PG_CATALOG, -1, "b", "A", Oid[r.kind], 0]];
      }),
    ],
  },
  pg_index: {
    columns: [
      col("indexrelid", int4),
      col("indrelid", int4),
      col("indnatts", int2),
      col("indisunique", bool),
      col("indisprimary", bool),
      col("indkey", text),
    ],
    rows: (cat) =>
      allIndexes(cat).map((ix) => [
        ix.oid,
        oidOf(ix.table.def.id),
        ix.columns.length,
        ix.unique,
        ix.primary,
        ix.columns.map((c) => String(attnumOf(ix.table.def, c))).join(" "),
      ]),
  },
  pg_tables: {
    columns: [
      col("schemaname", text),
      col("tablename", text),
      col("tableowner", text),
      col("tablespace", text),
      col("hasindexes", bool),
      col("hasrules", bool),
      col("hastriggers", bool),
      col("rowsecurity", bool),
    ],
    rows: (cat) =>
      visibleTables(cat).map((t) => [
        "public",
        t.name,
        "twill",
        null,
        !t.hasRowid || t.def.indexes.length > 0,
        false,
        false,
        false,
      ]),
  },
  pg_indexes: {
    columns: [
      col("schemaname", text),
      col("tablename", text),
      col("indexname", text),
      col("tablespace", text),
      col("indexdef", text),
    ],
    rows: (cat) => allIndexes(cat).map((ix) => ["public", ix.table.name, ix.name, null, indexDef(ix)]),
  },
};

/**
 * The system view a FROM item names, or undefined for an ordinary table. pg_catalog is searched before public,
 * as in PostgreSQL, so an unqualified pg_class is the system view.
 */
function viewOf(rv: RangeVar): SystemView | undefined {
  const name = rv.relname ?? "";
  if (rv.schemaname === "information_schema")
    return Object.hasOwn(INFORMATION_SCHEMA, name) ? INFORMATION_SCHEMA[name] : undefined;
  if (rv.schemaname === "pg_catalog" || !rv.schemaname)
    return Object.hasOwn(PG_CATALOG, name) ? PG_CATALOG[name] : undefined;
  return undefined;
}

/** Does a name resolve to a system view (which statements other than SELECT cannot use)? */
export function isSystemView(rv: RangeVar): boolean {
  return viewOf(rv) !== undefined;
}

export function systemRelation(
  catalog: Catalog,
  rv: RangeVar,
): { name: string; columns: { name: string; type: SqlType }[]; source: RowSource } | undefined {
  const name = rv.relname ?? "";
  const view = viewOf(rv);
  if (!view) return undefined;
  return { name, columns: view.columns, source: new StaticSource(name, view.rows(catalog)) };
}

/** Whether a schema-qualified name points into a system schema (so a missing view is 42P01, not 3F000). */
export function isSystemSchema(schema: string | undefined): boolean {
  return schema === "information_schema" || schema === "pg_catalog";
}
