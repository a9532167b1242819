/**
 * One-dimensional arrays (int2[], int4[], int8[], text[], varchar[], bool[], float8[], numeric[], … of any scalar
 * element type): PostgreSQL's text form, comparison, operators and functions.
 *
 * Internal form: a frozen `SqlArray` holding its elements (each NULL or the element type's internal form);
 * arrays are 1-based with lower bound 1, as PostgreSQL's are unless written with explicit bounds (refused).
 * Text form, as array_in/array_out: `{a,b,NULL,"c d"}`; an element is double-quoted on output when it is empty,
 * is NULL spelt as text, or contains `{ } , " \` or white space, with `"` and `\` escaped by a backslash.
 * Order (btree, as PostgreSQL's array_cmp): element by element, a NULL element above any value and equal to
 * another NULL, then the shorter array first. Containment (@>, <@) and overlap (&&) never match NULL elements.
 * Multidimensional arrays and arrays of arrays are refused with 0A000.
 *
 * This module must not evaluate anything from types.ts at load time (types.ts imports it back).
 */

import { SqlState, sqlError, unsupported } from "./errors.js";
import { comparator, equality, inputText, outputText, type SqlType, typeName, type Value } from "./types.js";

export class SqlArray {
  constructor(readonly items: readonly Value[]) {
    Object.freeze(this);
  }
}

function malformed(text: string, detail: string) {
  return sqlError(SqlState.InvalidTextRepresentation, `malformed array literal: "${text}"`, { detail });
}

const isSpace = (c: string | undefined) =>
  c === " " || c === "\t" || c === "\n" || c === "\r" || c === "\v" || c === "\f";

/** array_in: the text form to an array of `elem`. */
export function parseArrayText(text: string, elem: SqlType, now: number): SqlArray {
  let i = 0;
  const n = text.length;
  while (isSpace(text[i])) i++;
  if (text[i] === "[") throw unsupported("array literals with explicit bounds ([lo:hi]={…})");
  if (text[i] !== "{") throw malformed(text, 'Array value must start with "{" or dimension information.');
  i++;
  const raw: (string | null)[] = [];
  while (isSpace(text[i])) i++;
  if (text[i] === "}") {
    i++;
  } else {
    for (;;) {
      while (isSpace(text[i])) i++;
      if (i >= n) throw malformed(text, "Unexpected end of input.");
      if (text[i] === "{") throw unsupported("multidimensional arrays");
      let s = "";
      let quoted = false;
      if (text[i] === '"') {
        quoted = true;
        i++;
        for (;;) {
          if (i >= n) throw malformed(text, "Unexpected end of input.");
          const c = text[i]!;
          if (c === "\\") {
            if (i + 1 >= n) throw malformed(text, "Unexpected end of input.");
            s += text[i + 1];
            i += 2;
          } else if (c === '"') {
            i++;
            break;
          } else {
            s += c;
            i++;
          }
        }
        while (isSpace(text[i])) i++;
      } else {
        let end = 0; // length of s up to its last escaped or non-space character
        for (;;) {
          if (i >= n) throw malformed(text, "Unexpected end of input.");
          const c = text[i]!;
          if (c === "," || c === "}") break;
          if (c === '"' || c === "{") throw malformed(text, `Unexpected "${c}" character.`);
          if (c === "\\") {
            if (i + 1 >= n) throw malformed(text, "Unexpected end of input.");
            s += text[i + 1];
            i += 2;
            end = s.length;
            continue;
          }
          s += c;
          i++;
          if (!isSpace(c)) end = s.length;
        }
        s = s.slice(0, end);
        if (s === "") throw malformed(text, `Unexpected "${text[i]}" character.`);
      }
      raw.push(!quoted && s.toUpperCase() === "NULL" ? null : s);
      const c = text[i];
      if (c === ",") {
        i++;
        continue;
      }
      if (c === "}") {
        i++;
        break;
      }
      throw malformed(text, c === undefined ? "Unexpected end of input." : `Unexpected "${c}" character.`);
    }
  }
  while (isSpace(text[i])) i++;
  if (i < n) throw malformed(text, "Junk after closing right brace.");
  return new SqlArray(raw.map((s) => (s === null ? null : inputText(elem, s, now))));
}

function needsQuotes(s: string): boolean {
  if (s === "" || s.toUpperCase() === "NULL") return true;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === "{" || c === "}" || c === "," || c === '"' || c === "\\" || isSpace(c)) return true;
  }
  return false;
}

/** array_out. */
export function formatArrayText(elem: SqlType, a: SqlArray): string {
  const parts = a.items.map((v) => {
    if (v === null) return "NULL";
    // boolout is t/f; only the bool → text cast spells true/false.
    const s = elem.kind === "bool" ? (v ? "t" : "f") : outputText(elem, v);
    return needsQuotes(s) ? `"${s.replace(/[\\"]/g, (m) => `\\${m}`)}"` : s;
  });
  return `{${parts.join(",")}}`;
}

/** array_cmp: a total order of arrays of one element type. */
export function arrayComparator(elem: SqlType): (a: SqlArray, b: SqlArray) => number {
  const cmp = comparator(elem);
  return (a, b) => {
    const n = Math.min(a.items.length, b.items.length);
    for (let i = 0; i < n; i++) {
      const x = a.items[i]!;
      const y = b.items[i]!;
      if (x === null || y === null) {
        if (x === y) continue;
        return x === null ? 1 : -1;
      }
      const c = cmp(x, y);
      if (c !== 0) return c;
    }
    return a.items.length - b.items.length;
  };
}

/** `a @> b`: every non-null element of b is in a (NULL elements never match). */
export function arrayContains(elem: SqlType): (a: SqlArray, b: SqlArray) => boolean {
  const eq = equality(elem);
  return (a, b) => b.items.every((y) => y !== null && a.items.some((x) => x !== null && eq(x, y)));
}

/** `a && b`: some non-null element is in both. */
export function arrayOverlaps(elem: SqlType): (a: SqlArray, b: SqlArray) => boolean {
  const eq = equality(elem);
  return (a, b) => a.items.some((x) => x !== null && b.items.some((y) => y !== null && eq(x, y)));
}

/** The key a hash table (GROUP BY, DISTINCT) uses for an array: its text form is unique per value. */
export function arrayHashKey(elem: SqlType): (a: SqlArray) => string {
  return (a) => formatArrayText(elem, a);
}

export function arrayTypeError(op: string, l: SqlType, r: SqlType) {
  return sqlError(
    SqlState.UndefinedFunction,
    `operator does not exist: ${typeName(l)} ${op} ${typeName(r)}`,
    {
      hint: "No operator matches the given name and argument types. You might need to add explicit type casts.",
    },
  );
}
