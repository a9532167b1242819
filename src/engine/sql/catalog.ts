/**
 * The catalog: table and index definitions, stored in the engine like any other data and changed only through a
 * transaction, so DDL commits or rolls back with the statements around it and survives reopen.
 *
 * Key space (all keys are `encodeKey` tuples; ids are numbers, so system keys sort before every table):
 *   [0, "meta"]            → JSON { format: 1, nextId }: the id allocator for tables, indexes and sequences
 *   [0, "table", name]     → JSON TableDef
 *   [1, sequenceId]        → JSON { hw }: the highest value a sequence may have handed out
 *   [tableId, ...pk]       → row (see row-codec.ts)
 *   [indexId, ...values]   → primary key suffix of the row (unique index, no NULL among the values)
 *   [indexId, ...values, ...pk] → primary key suffix (non-unique index, or a unique index entry holding a NULL)
 *   [indexId, 0] / [indexId, 1, pk] → HNSW index: entry point / graph node of a row (hnsw-index.ts)
 * User ids start at 16. An id is never reused, so rows of a dropped table can never resurface in a new one.
 *
 * Index entries carry the row's encoded primary key as their value, so a lookup fetches the row without decoding
 * the index key. A unique index entry with no NULL is keyed by the values alone: two transactions inserting the
 * same value write the same key, and first-committer-wins turns the race into 40001 instead of a duplicate.
 *
 * Catalog objects are immutable; a DDL statement produces a new one. A session holds its own pending catalog
 * until commit, then its changed tables are installed into the shared catalog (concurrent DDL on one table writes
 * the same catalog key, so one of the two transactions fails with 40001 and the merge cannot lose a change).
 * Known limit: a transaction sees the newest committed catalog, not the one of its snapshot.
 */

import type { Node } from "libpg-query";
import { encodeKey, tuplePrefixRange } from "../lsm/keycodec.js";
import type { HnswSpec } from "./hnsw-index.js";
import { decodeRow } from "./row-codec.js";
import { type KeyPart, keyPartFn, type SqlType, type TypeSpec, typeFromSpec, type Value } from "./types.js";

export const CATALOG_FORMAT = 1;
export const SYSTEM_CATALOG_ID = 0;
export const SYSTEM_SEQUENCE_ID = 1;
export const FIRST_USER_ID = 16;

export type DefaultDef =
  | { kind: "expr"; expr: Node; text: string }
  | { kind: "sequence"; sequence: number; max: number };

export interface ColumnDef {
  name: string;
  type: TypeSpec;
  notNull: boolean;
  default?: DefaultDef;
  /** The hidden rowid of a table declared without a primary key. */
  hidden?: boolean;
  /** GENERATED ALWAYS / BY DEFAULT AS IDENTITY (its default is a sequence). */
  identity?: "always" | "default";
  /**
   * Set by ALTER TABLE … DROP COLUMN: the column keeps its position and type (rows written before still hold a
   * value there, and decoding is positional) but is hidden, unnamed and written as NULL from then on.
   */
  dropped?: boolean;
  /**
   * Set by ALTER TABLE … ADD COLUMN with a non-volatile default: base64 of the one-column row encoding of the
   * value that rows written before the column existed read for it (PostgreSQL's attmissingval). Rows are not
   * rewritten; a row shorter than the schema decodes its missing trailing columns to these values.
   */
  missing?: string;
}

/** A rowid column (live, or left behind by ADD PRIMARY KEY): Twill's own, never shown as an attribute. */
export function isRowidColumn(c: ColumnDef): boolean {
  return c.hidden === true && (!c.dropped || c.name === "rowid");
}

/** PostgreSQL's attnum of column position `i`: 1-based, counting dropped columns but no rowid. */
export function attnumOf(def: TableDef, i: number): number {
  let n = 0;
  for (let j = 0; j <= i; j++) if (!isRowidColumn(def.columns[j]!)) n++;
  return n;
}

export interface IndexDef {
  id: number;
  name: string;
  /** Column positions, in index order. */
  columns: number[];
  unique: boolean;
  /** Set when the index enforces a UNIQUE constraint of the table (dropped with the constraint only). */
  constraint?: boolean;
  /** An HNSW index (USING hnsw): its operator class and build parameters; absent for btree. */
  hnsw?: HnswSpec;
}

export interface CheckDef {
  name: string;
  expr: Node;
  text: string;
}

export interface TableDef {
  id: number;
  name: string;
  columns: ColumnDef[];
  /** Column positions of the primary key (the hidden rowid when the table has none). */
  primaryKey: number[];
  /** Name of the primary key constraint; undefined for a rowid table. */
  pkName?: string;
  indexes: IndexDef[];
  checks: CheckDef[];
}

export const metaKey = (): Uint8Array => encodeKey([SYSTEM_CATALOG_ID, "meta"]);
export const tableKey = (name: string): Uint8Array => encodeKey([SYSTEM_CATALOG_ID, "table", name]);
export const tablesRange = () => tuplePrefixRange([SYSTEM_CATALOG_ID, "table"]);
export const sequenceKey = (id: number): Uint8Array => encodeKey([SYSTEM_SEQUENCE_ID, id]);

/** Derived, immutable runtime facts about a table; built once per TableDef. */
export class TableInfo {
  readonly types: SqlType[];
  readonly columnIndex = new Map<string, number>();
  readonly pkTypes: SqlType[];
  readonly pkKeyFns: ((v: Value) => KeyPart)[];
  /** Encoded [tableId], the prefix of every row key. */
  readonly keyPrefix: Uint8Array;
  readonly range: { start: Uint8Array; end: Uint8Array };
  readonly visibleColumns: number[];
  /** Per column, what a row written before the column existed reads for it; undefined when all are NULL. */
  readonly missing: Value[] | undefined;
  /** Compiled defaults, checks and the like, filled in by the planner on first use. */
  compiled: unknown;

  constructor(readonly def: TableDef) {
    this.types = def.columns.map((c) => typeFromSpec(c.type));
    def.columns.forEach((c, i) => {
      if (!c.hidden) this.columnIndex.set(c.name, i);
    });
    this.pkTypes = def.primaryKey.map((i) => this.types[i]!);
    this.pkKeyFns = this.pkTypes.map(keyPartFn);
    this.keyPrefix = encodeKey([def.id]);
    this.range = tuplePrefixRange([def.id]);
    this.visibleColumns = def.columns.flatMap((c, i) => (c.hidden ? [] : [i]));
    this.missing = def.columns.some((c) => c.missing !== undefined)
      ? def.columns.map((c, i) =>
          c.missing === undefined ? null : decodeRow([this.types[i]!], Buffer.from(c.missing, "base64"))[0]!,
        )
      : undefined;
  }

  get name(): string {
    return this.def.name;
  }

  get hasRowid(): boolean {
    return this.def.pkName === undefined;
  }

  /** The encoded primary-key parts of a row (without the table id). */
  pkParts(row: readonly Value[]): KeyPart[] {
    const pk = this.def.primaryKey;
    const parts: KeyPart[] = new Array(pk.length);
    for (let i = 0; i < pk.length; i++) parts[i] = this.pkKeyFns[i]!(row[pk[i]!]!);
    return parts;
  }

  rowKey(row: readonly Value[]): Uint8Array {
    return encodeKey([this.def.id, ...this.pkParts(row)]);
  }
}

export class Catalog {
  private readonly tables: ReadonlyMap<string, TableInfo>;
  private readonly indexes: ReadonlyMap<string, { table: TableInfo; index: IndexDef }>;

  constructor(
    readonly version: number,
    tables: Iterable<TableInfo>,
  ) {
    const t = new Map<string, TableInfo>();
    const ix = new Map<string, { table: TableInfo; index: IndexDef }>();
    for (const info of tables) {
      t.set(info.name, info);
      for (const index of info.def.indexes) ix.set(index.name, { table: info, index });
    }
    this.tables = t;
    this.indexes = ix;
  }

  static empty(): Catalog {
    return new Catalog(1, []);
  }

  table(name: string): TableInfo | undefined {
    return this.tables.get(name);
  }

  index(name: string): { table: TableInfo; index: IndexDef } | undefined {
    return this.indexes.get(name);
  }

  /** Any relation (table or index) by name: PostgreSQL keeps both in one namespace. */
  hasRelation(name: string): boolean {
    return this.tables.has(name) || this.indexes.has(name);
  }

  allTables(): TableInfo[] {
    return [...this.tables.values()];
  }

  /** A new catalog with some tables replaced (a def) or removed (null). */
  with(changes: ReadonlyMap<string, TableDef | null>, version: number): Catalog {
    const next = new Map(this.tables);
    for (const [name, def] of changes) {
      if (def === null) next.delete(name);
      else next.set(name, new TableInfo(def));
    }
    return new Catalog(version, next.values());
  }
}

export function serializeTable(def: TableDef): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ format: CATALOG_FORMAT, table: def }));
}

export function deserializeTable(bytes: Uint8Array): TableDef {
  const parsed = JSON.parse(new TextDecoder().decode(bytes)) as { format: number; table: TableDef };
  if (parsed.format !== CATALOG_FORMAT) {
    throw new Error(
      `catalog format ${parsed.format} is not supported (this build reads format ${CATALOG_FORMAT})`,
    );
  }
  return parsed.table;
}
