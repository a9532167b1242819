/** Shared helpers of the SQL tests: a fresh memory:// database and an expectation on SQLSTATE. */

import { expect } from "vitest";
import { type Database, type OpenOptions, open } from "../src/database.js";
import { TwillError } from "../src/errors.js";

export async function memoryDb(options?: OpenOptions): Promise<Database> {
  return open("memory://", options);
}

/** Awaits `p` and expects a TwillError with `sqlstate` (and, optionally, a message matching `message`). */
export async function expectSqlState(
  p: Promise<unknown> | (() => unknown),
  sqlstate: string,
  message?: string | RegExp,
): Promise<TwillError> {
  let error: unknown;
  try {
    await (typeof p === "function" ? p() : p);
  } catch (e) {
    error = e;
  }
  expect(error, `expected SQLSTATE ${sqlstate}`).toBeInstanceOf(TwillError);
  const te = error as TwillError;
  expect({ sqlstate: te.sqlstate, message: te.message }).toMatchObject({ sqlstate });
  if (message !== undefined) {
    if (typeof message === "string") expect(te.message).toBe(message);
    else expect(te.message).toMatch(message);
  }
  return te;
}
