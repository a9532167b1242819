/**
 * The system information functions a PostgreSQL client calls: version(), current_database(), current_schema(),
 * pg_typeof(). Constant per database; kept apart from system-catalog.ts so functions.ts can register them
 * without an import cycle through the planner.
 */

import type { Expr } from "./expr.js";
import type { FunctionImpl } from "./functions.js";
import { type SqlType, T, typeName } from "./types.js";

export const DATABASE_NAME = "twill";
export const SERVER_VERSION = "18.0";

/** A type's name without modifiers, as regtype and information_schema's data_type print it. */
export function standardTypeName(t: SqlType): string {
  switch (t.kind) {
    case "varchar":
      return "character varying";
    case "bpchar":
      return "character";
    case "numeric":
      return "numeric";
    default:
      return typeName(t);
  }
}

const constText = (value: string, label: string): Expr => ({
  type: T.text,
  eval: () => value,
  refs: [],
  text: label,
});

/** version(), current_database(), current_schema(), pg_typeof(). */
export function systemFunctions(
  m: Map<string, FunctionImpl>,
  noFunction: (name: string, args: Expr[]) => Error,
): void {
  const none =
    (name: string, value: string): FunctionImpl =>
    (args) => {
      if (args.length !== 0) throw noFunction(name, args);
      return constText(value, `${name}()`);
    };
  m.set("version", none("version", `PostgreSQL ${SERVER_VERSION} (Twill DB), embedded`));
  m.set("current_database", none("current_database", DATABASE_NAME));
  m.set("current_schema", none("current_schema", "public"));
  m.set("pg_typeof", (args) => {
    if (args.length !== 1) throw noFunction("pg_typeof", args);
    const t = args[0]!.type;
    return constText(standardTypeName(t), `pg_typeof(${args[0]!.text})`);
  });
}
