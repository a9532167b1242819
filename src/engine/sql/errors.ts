/**
 * SQL errors: every one is a TwillError carrying the PostgreSQL SQLSTATE, so the embedded API and the wire server
 * report the same code a PostgreSQL client expects. `position` is PostgreSQL's 1-based character offset into the
 * statement text (syntax errors and some binding errors).
 */

import { type ErrorCode, ErrorCodes, TwillError } from "../../errors.js";

export class SqlError extends TwillError {
  /** 1-based character position in the SQL text, as PostgreSQL's ErrorResponse `P` field; undefined if none. */
  readonly position: number | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    sqlstate: string,
    options: { detail?: string; hint?: string; position?: number; cause?: unknown } = {},
  ) {
    super(code, message, { sqlstate, detail: options.detail, hint: options.hint, cause: options.cause });
    this.name = "TwillError";
    this.position = options.position;
  }
}

function codeFor(sqlstate: string): ErrorCode {
  if (sqlstate === "0A000") return ErrorCodes.Unsupported;
  if (sqlstate === "40001") return ErrorCodes.SerializationFailure;
  if (sqlstate.startsWith("XX")) return ErrorCodes.Internal;
  if (sqlstate === "55000") return ErrorCodes.Closed;
  return ErrorCodes.InvalidArgument;
}

/** An error with PostgreSQL's SQLSTATE and (where PostgreSQL has one) its exact message. */
export function sqlError(
  sqlstate: string,
  message: string,
  options: { detail?: string; hint?: string; position?: number; cause?: unknown } = {},
): SqlError {
  return new SqlError(codeFor(sqlstate), message, sqlstate, options);
}

/** 0A000: says exactly which feature is missing, never a silent wrong answer. */
export function unsupported(what: string, hint?: string): SqlError {
  return sqlError("0A000", `feature not supported: ${what}`, hint === undefined ? {} : { hint });
}

/** A broken invariant inside the SQL layer. */
export function internal(what: string): SqlError {
  return sqlError("XX000", `internal error: ${what}`);
}

export const SqlState = {
  SyntaxError: "42601",
  UndefinedTable: "42P01",
  UndefinedColumn: "42703",
  UndefinedFunction: "42883",
  UndefinedObject: "42704",
  DuplicateTable: "42P07",
  DuplicateColumn: "42701",
  DuplicateObject: "42710",
  AmbiguousColumn: "42702",
  DatatypeMismatch: "42804",
  InvalidRecursion: "42P19",
  ProgramLimitExceeded: "54000",
  CannotCoerce: "42846",
  GroupingError: "42803",
  InvalidColumnReference: "42P10",
  InvalidTableDefinition: "42P16",
  UniqueViolation: "23505",
  NotNullViolation: "23502",
  CheckViolation: "23514",
  InvalidTextRepresentation: "22P02",
  NumericValueOutOfRange: "22003",
  StringDataRightTruncation: "22001",
  DivisionByZero: "22012",
  InvalidDatetimeFormat: "22007",
  DatetimeFieldOverflow: "22008",
  InvalidParameterValue: "22023",
  CardinalityViolation: "21000",
  FeatureNotSupported: "0A000",
  InFailedTransaction: "25P02",
  ActiveTransaction: "25001",
  NoActiveTransaction: "25P01",
  InvalidTransactionState: "25000",
  ProtocolViolation: "08P01",
  IndeterminateDatatype: "42P18",
  AmbiguousParameter: "42P08",
  SequenceLimit: "2200H",
  InvalidRowCountInLimit: "2201W",
  InvalidRowCountInOffset: "2201X",
  ObjectNotInPrerequisiteState: "55000",
  WrongObjectType: "42809",
} as const;
