/**
 * Parsing: `?` placeholders are rewritten to `$n`, then libpg-query (PostgreSQL's own parser, compiled to WASM)
 * produces the AST. The WASM module is loaded once per process (`loadParser`), after which parsing is synchronous.
 *
 * `?` rewriting skips string literals ('…', E'…' with backslash escapes), quoted identifiers ("…"), dollar-quoted
 * strings ($tag$…$tag$), and comments (-- and nested block comments). A statement that already uses `$n` placeholders is
 * left alone, so jsonb's `?`, `?|` and `?&` operators work there. `??` and `?|`/`?&` are never rewritten.
 * Error positions are mapped back to the caller's original text.
 */

import { loadModule, type Node, type ParseResult, parseSync } from "libpg-query";
import { SqlState, sqlError } from "./errors.js";

let loading: Promise<void> | undefined;
let loaded = false;

export function loadParser(): Promise<void> {
  loading ??= loadModule().then(() => {
    loaded = true;
  });
  return loading;
}

export interface ParsedStatement {
  node: Node;
  /** Statement text (for messages), from the caller's original SQL. */
  text: string;
}

export interface ParsedSql {
  statements: ParsedStatement[];
  /** Maps a 0-based offset in the rewritten text to a 1-based position in the original text. */
  position(offset: number): number;
}

/** Rewrites `?` to `$1, $2, …`; returns the new text and the offsets (in the new text) where each `$n` starts. */
export function rewritePlaceholders(sql: string): { text: string; shifts: { at: number; extra: number }[] } {
  if (!sql.includes("?")) return { text: sql, shifts: [] };
  const out: string[] = [];
  const shifts: { at: number; extra: number }[] = [];
  let n = 0;
  let last = 0;
  let outLen = 0;
  let hasDollarParam = false;
  const len = sql.length;
  let i = 0;
  const positions: number[] = [];
  while (i < len) {
    const c = sql[i]!;
    if (c === "'") {
      const escaped = i > 0 && (sql[i - 1] === "E" || sql[i - 1] === "e") && !/[\w$]/.test(sql[i - 2] ?? " ");
      i++;
      while (i < len) {
        if (escaped && sql[i] === "\\") {
          i += 2;
          continue;
        }
        if (sql[i] === "'") {
          if (sql[i + 1] === "'") {
            i += 2;
            continue;
          }
          break;
        }
        i++;
      }
      i++;
    } else if (c === '"') {
      i++;
      while (i < len && !(sql[i] === '"' && sql[i + 1] !== '"')) i += sql[i] === '"' ? 2 : 1;
      i++;
    } else if (c === "-" && sql[i + 1] === "-") {
      while (i < len && sql[i] !== "\n") i++;
    } else if (c === "/" && sql[i + 1] === "*") {
      let depth = 1;
      i += 2;
      while (i < len && depth > 0) {
        if (sql[i] === "/" && sql[i + 1] === "*") {
          depth++;
          i += 2;
        } else if (sql[i] === "*" && sql[i + 1] === "/") {
          depth--;
          i += 2;
        } else i++;
      }
    } else if (c === "$") {
      const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i, i + 64));
      if (tag && !/[\w]/.test(sql[i - 1] ?? " ")) {
        const end = sql.indexOf(tag[0], i + tag[0].length);
        i = end === -1 ? len : end + tag[0].length;
      } else {
        if (/^\$\d/.test(sql.slice(i, i + 2))) hasDollarParam = true;
        i++;
      }
    } else if (c === "?") {
      const next = sql[i + 1];
      const prev = sql[i - 1];
      if (next === "?" || next === "|" || next === "&" || prev === "?" || prev === "@" || prev === "#") {
        i++;
        continue;
      }
      positions.push(i);
      i++;
    } else {
      i++;
    }
  }
  if (hasDollarParam || positions.length === 0) return { text: sql, shifts: [] };
  for (const p of positions) {
    n++;
    const chunk = sql.slice(last, p);
    out.push(chunk);
    outLen += chunk.length;
    const rep = `$${n}`;
    shifts.push({ at: outLen, extra: rep.length - 1 });
    out.push(rep);
    outLen += rep.length;
    last = p + 1;
  }
  out.push(sql.slice(last));
  return { text: out.join(""), shifts };
}

function mapPosition(shifts: { at: number; extra: number }[], offset: number): number {
  let delta = 0;
  for (const s of shifts) {
    if (s.at + s.extra < offset) delta += s.extra;
    else if (s.at < offset)
      delta += offset - s.at; // inside the "$n": point at the "?"
    else break;
  }
  return offset - delta + 1;
}

/** Parses SQL text into statements. Syntax errors are 42601 with PostgreSQL's message and position. */
export function parseSql(sql: string): ParsedSql {
  if (!loaded) throw sqlError("55000", "the SQL parser is not loaded; open the database with open() first");
  if (typeof sql !== "string") throw sqlError(SqlState.InvalidParameterValue, "SQL text must be a string");
  if (sql.trim() === "") return { statements: [], position: (o) => o + 1 };
  const { text, shifts } = rewritePlaceholders(sql);
  const position = (offset: number) => mapPosition(shifts, offset);
  let result: ParseResult;
  try {
    result = parseSync(text);
  } catch (error) {
    const details = (error as { sqlDetails?: { message?: string; cursorPosition?: number } }).sqlDetails;
    const message = details?.message ?? (error as Error).message;
    const cursor = details?.cursorPosition;
    throw sqlError(SqlState.SyntaxError, message, {
      ...(cursor !== undefined && cursor >= 0 ? { position: position(cursor) } : {}),
      cause: error,
    });
  }
  const statements: ParsedStatement[] = [];
  for (const raw of result.stmts ?? []) {
    if (!raw.stmt) continue;
    const start = raw.stmt_location ?? 0;
    const end = raw.stmt_len ? start + raw.stmt_len : text.length;
    const origStart = position(start) - 1;
    const origEnd = position(end) - 1;
    statements.push({ node: raw.stmt, text: sql.slice(origStart, origEnd).trim() });
  }
  return { statements, position };
}
