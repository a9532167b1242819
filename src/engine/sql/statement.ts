/**
 * Statement planning entry point: one parsed statement → a `Planned` (an executable plan with its parameter
 * types, or a session command such as BEGIN). Planning is pure: it reads the catalog it is given and touches no
 * data, so a plan can be cached and reused for as long as that catalog is current.
 */

import type {
  ExplainStmt,
  Node,
  SelectStmt,
  TransactionStmt,
  VariableSetStmt,
  VariableShowStmt,
} from "libpg-query";
import { planAlterTable, planRename } from "./alter.js";
import type { Catalog } from "./catalog.js";
import { planCreateIndex, planCreateTable, planDrop, planTruncate } from "./ddl.js";
import { planDelete, planInsert, planUpdate } from "./dml.js";
import { SqlState, sqlError, unsupported } from "./errors.js";
import { ParamTypes } from "./expr.js";
import { EF_SEARCH_DEFAULT, EF_SEARCH_MAX, EF_SEARCH_MIN } from "./hnsw-index.js";
import {
  collect,
  type InitPlan,
  ProjectNode,
  printExplain,
  type StatementPlan,
  subplanNodes,
  TableAccess,
} from "./plan.js";
import { type PlanCx, planSelect } from "./select.js";
import { type SqlType, T } from "./types.js";

export type Planned =
  | { kind: "plan"; plan: StatementPlan; paramTypes: SqlType[] }
  | { kind: "begin"; isolation: string | undefined }
  | { kind: "commit" }
  | { kind: "rollback" }
  | { kind: "savepoint" | "release" | "rollback_to"; name: string }
  | { kind: "set"; command: string; efSearch?: number }
  | { kind: "show"; name: string; value: string };

/** `SET hnsw.ef_search = n` (pgvector's setting: an integer in 1..1000, default 40). */
function setEfSearch(v: VariableSetStmt): Planned {
  if (v.is_local) throw unsupported("SET LOCAL hnsw.ef_search", "use SET hnsw.ef_search (session-wide)");
  if (v.kind === "VAR_SET_DEFAULT" || v.kind === "VAR_RESET") {
    return { kind: "set", command: v.kind === "VAR_RESET" ? "RESET" : "SET", efSearch: EF_SEARCH_DEFAULT };
  }
  if (v.kind !== "VAR_SET_VALUE") throw unsupported("this form of SET hnsw.ef_search");
  const args = v.args ?? [];
  const c = (
    args[0] as { A_Const?: { ival?: { ival?: number }; sval?: { sval?: string }; fval?: { fval?: string } } }
  )?.A_Const;
  const text = c?.ival ? String(c.ival.ival ?? 0) : (c?.sval?.sval ?? c?.fval?.fval ?? "");
  const n = /^\s*[+-]?\d+\s*$/.test(text) ? Number(text) : Number.NaN;
  if (args.length !== 1 || !Number.isSafeInteger(n)) {
    throw sqlError(
      SqlState.InvalidParameterValue,
      `invalid value for parameter "hnsw.ef_search": "${text}"`,
      {
        hint: "This parameter accepts an integer.",
      },
    );
  }
  if (n < EF_SEARCH_MIN || n > EF_SEARCH_MAX) {
    throw sqlError(
      SqlState.InvalidParameterValue,
      `${n} is outside the valid range for parameter "hnsw.ef_search" (${EF_SEARCH_MIN} .. ${EF_SEARCH_MAX})`,
    );
  }
  return { kind: "set", command: "SET", efSearch: n };
}

function str(n: Node | undefined): string {
  if (!n) return "";
  if ("String" in n) return n.String.sval ?? "";
  if ("A_Const" in n) {
    const c = n.A_Const;
    if (c.sval) return c.sval.sval ?? "";
    if (c.ival) return String(c.ival.ival ?? 0);
  }
  return "";
}

function tagOf(node: Node): string {
  for (const k in node) return k;
  return "";
}

function selectPlan(stmt: SelectStmt, pc: PlanCx): StatementPlan {
  const q = planSelect(stmt, pc);
  const initPlans: InitPlan[] = pc.initPlans;
  let point: StatementPlan["point"];
  if (
    initPlans.length === 0 &&
    q.source instanceof ProjectNode &&
    q.source.child instanceof TableAccess &&
    q.source.child.path.kind === "pk-point"
  ) {
    point = { access: q.source.child, project: q.source.exprs };
  }
  return {
    command: "SELECT",
    columns: q.columns,
    kind: "read",
    initPlans,
    ...(point ? { point } : {}),
    async execute(ctx) {
      const rows = await collect(q.source, ctx);
      return { rows, rowCount: rows.length };
    },
    explain: () => {
      const top = q.source.explain();
      const inits = subplanNodes(initPlans.filter((p) => !p.correlated));
      return inits.length === 0 ? top : { ...top, children: [...top.children, ...inits] };
    },
  };
}

function planInner(node: Node, pc: PlanCx): StatementPlan {
  const tag = tagOf(node);
  switch (tag) {
    case "SelectStmt":
      return selectPlan((node as { SelectStmt: SelectStmt }).SelectStmt, pc);
    case "InsertStmt":
      return planInsert((node as { InsertStmt: import("libpg-query").InsertStmt }).InsertStmt, pc);
    case "UpdateStmt":
      return planUpdate((node as { UpdateStmt: import("libpg-query").UpdateStmt }).UpdateStmt, pc);
    case "DeleteStmt":
      return planDelete((node as { DeleteStmt: import("libpg-query").DeleteStmt }).DeleteStmt, pc);
    case "CreateStmt":
      return planCreateTable((node as { CreateStmt: import("libpg-query").CreateStmt }).CreateStmt, pc);
    case "IndexStmt":
      return planCreateIndex((node as { IndexStmt: import("libpg-query").IndexStmt }).IndexStmt, pc);
    case "DropStmt":
      return planDrop((node as { DropStmt: import("libpg-query").DropStmt }).DropStmt, pc);
    case "TruncateStmt":
      return planTruncate((node as { TruncateStmt: import("libpg-query").TruncateStmt }).TruncateStmt, pc);
    case "ExplainStmt":
      return planExplain((node as { ExplainStmt: ExplainStmt }).ExplainStmt, pc);
    case "MergeStmt":
      throw unsupported("MERGE", "use INSERT … ON CONFLICT");
    case "AlterTableStmt":
      return planAlterTable(
        (node as { AlterTableStmt: import("libpg-query").AlterTableStmt }).AlterTableStmt,
        pc,
      );
    case "RenameStmt":
      return planRename((node as { RenameStmt: import("libpg-query").RenameStmt }).RenameStmt, pc);
    case "CopyStmt":
      throw unsupported("COPY");
    case "CreateTableAsStmt":
      throw unsupported("CREATE TABLE … AS", "use CREATE TABLE, then INSERT INTO … SELECT");
    case "ViewStmt":
      throw unsupported("views");
    case "CreateSeqStmt":
      throw unsupported("CREATE SEQUENCE", "use a serial, bigserial or identity column");
    case "CreateSchemaStmt":
      throw unsupported("schemas (everything lives in public)");
    case "CreateFunctionStmt":
      throw unsupported("user-defined functions");
    case "PrepareStmt":
    case "ExecuteStmt":
    case "DeallocateStmt":
      throw unsupported("PREPARE/EXECUTE statements", "use db.prepare(sql)");
    default:
      throw unsupported(`statement ${tag.replace(/Stmt$/, "")}`);
  }
}

function planExplain(stmt: ExplainStmt, pc: PlanCx): StatementPlan {
  for (const o of stmt.options ?? []) {
    const d = (o as { DefElem: { defname?: string; arg?: Node } }).DefElem;
    const name = d.defname ?? "";
    const arg = str(d.arg).toLowerCase();
    const on = arg === "" || arg === "true" || arg === "on" || arg === "1";
    if (name === "analyze" && on) throw unsupported("EXPLAIN ANALYZE");
    if (name === "format" && arg !== "text") throw unsupported(`EXPLAIN (FORMAT ${arg.toUpperCase()})`);
  }
  const inner = planInner(stmt.query!, pc);
  if (inner.kind === "ddl") throw unsupported(`EXPLAIN ${inner.command}`);
  const lines = printExplain(inner.explain());
  const rows = lines.map((l) => [l]);
  return {
    command: "EXPLAIN",
    columns: [{ name: "QUERY PLAN", type: T.text }],
    kind: "read",
    initPlans: [],
    ignoresParams: true,
    async execute() {
      return { rows, rowCount: rows.length };
    },
    explain: () => ({ label: "EXPLAIN", details: [], children: [] }),
  };
}

const SHOWABLE: Record<string, string> = {
  server_version: "18.0",
  server_version_num: "180000",
  timezone: "UTC",
  client_encoding: "UTF8",
  server_encoding: "UTF8",
  transaction_isolation: "repeatable read",
  default_transaction_isolation: "repeatable read",
  standard_conforming_strings: "on",
  datestyle: "ISO, MDY",
  integer_datetimes: "on",
};

export function planStatement(node: Node, catalog: Catalog, position: (o: number) => number): Planned {
  const tag = tagOf(node);
  if (tag === "TransactionStmt") {
    const t = (node as { TransactionStmt: TransactionStmt }).TransactionStmt;
    switch (t.kind) {
      case "TRANS_STMT_BEGIN":
      case "TRANS_STMT_START": {
        let isolation: string | undefined;
        for (const o of t.options ?? []) {
          const d = (o as { DefElem: { defname?: string; arg?: Node } }).DefElem;
          if (d.defname === "transaction_isolation") isolation = str(d.arg);
          if (d.defname === "transaction_read_only" && str(d.arg) === "1")
            throw unsupported("READ ONLY transactions");
          if (d.defname === "transaction_deferrable") throw unsupported("DEFERRABLE transactions");
        }
        if (isolation === "serializable") {
          throw unsupported(
            "ISOLATION LEVEL SERIALIZABLE",
            "Twill DB provides snapshot isolation (PostgreSQL's REPEATABLE READ); use BEGIN or BEGIN ISOLATION LEVEL REPEATABLE READ",
          );
        }
        return { kind: "begin", isolation };
      }
      case "TRANS_STMT_COMMIT":
        if (t.chain) throw unsupported("COMMIT AND CHAIN");
        return { kind: "commit" };
      case "TRANS_STMT_ROLLBACK":
        if (t.chain) throw unsupported("ROLLBACK AND CHAIN");
        return { kind: "rollback" };
      case "TRANS_STMT_SAVEPOINT":
        return { kind: "savepoint", name: t.savepoint_name ?? "" };
      case "TRANS_STMT_RELEASE":
        return { kind: "release", name: t.savepoint_name ?? "" };
      case "TRANS_STMT_ROLLBACK_TO":
        return { kind: "rollback_to", name: t.savepoint_name ?? "" };
      default:
        throw unsupported(`transaction statement ${(t.kind ?? "").replace("TRANS_STMT_", "")}`);
    }
  }
  if (tag === "VariableSetStmt") {
    const v = (node as { VariableSetStmt: VariableSetStmt }).VariableSetStmt;
    const name = (v.name ?? "").toLowerCase();
    const value = (v.args ?? []).map(str).join(", ").toLowerCase();
    if (name === "hnsw.ef_search") return setEfSearch(v);
    if (v.kind === "VAR_SET_VALUE" || v.kind === "VAR_SET_DEFAULT" || v.kind === "VAR_RESET") {
      if (name === "timezone" && ["utc", "gmt", "etc/utc", "z", "zulu", "0", ""].includes(value))
        return { kind: "set", command: "SET" };
      if (name === "client_encoding" && ["utf8", "utf-8", "unicode", ""].includes(value))
        return { kind: "set", command: "SET" };
      if (name === "application_name" || name === "client_min_messages" || name === "extra_float_digits")
        return { kind: "set", command: "SET" };
      if (name === "search_path" && (value === "public" || value === ""))
        return { kind: "set", command: "SET" };
    }
    throw unsupported(`SET ${v.name ?? ""}${value ? ` = ${value}` : ""}`);
  }
  if (tag === "VariableShowStmt") {
    const name = ((node as { VariableShowStmt: VariableShowStmt }).VariableShowStmt.name ?? "").toLowerCase();
    if (name === "hnsw.ef_search") return { kind: "show", name, value: "" }; // the session fills it in
    const value = SHOWABLE[name];
    if (value === undefined)
      throw sqlError(SqlState.UndefinedObject, `unrecognized configuration parameter "${name}"`);
    return { kind: "show", name, value };
  }
  const params = new ParamTypes();
  const pc: PlanCx = { catalog, params, position, initPlans: [] };
  const plan = planInner(node, pc);
  return { kind: "plan", plan, paramTypes: params.finish() };
}
