/**
 * One error type for the whole project. `code` is stable and machine-readable; `sqlstate` is the PostgreSQL
 * SQLSTATE the SQL layer and the wire server report for it. Messages say what happened and what to do, and never
 * carry credentials.
 */

export const ErrorCodes = {
  /** A key, object or log position that does not exist. */
  NotFound: "NOT_FOUND",
  /** The caller passed something malformed (bad key, bad range, bad option). */
  InvalidArgument: "INVALID_ARGUMENT",
  /** A storage URL that cannot be parsed or names an unknown scheme. */
  InvalidUrl: "INVALID_URL",
  /** Bytes read back do not match what was written (checksum, magic, length). */
  Corruption: "CORRUPTION",
  /** An I/O or network failure that retrying did not cure. */
  Io: "IO",
  /** An operation took longer than its deadline. */
  Timeout: "TIMEOUT",
  /** Another process holds the writer lock on this log or database. */
  Locked: "LOCKED",
  /** Another writer took over; this handle must stop writing. */
  Fenced: "FENCED",
  /** First committer wins: a key this transaction wrote was committed by someone else after its snapshot. */
  SerializationFailure: "SERIALIZATION_FAILURE",
  /** The handle was closed. */
  Closed: "CLOSED",
  /** A feature that Twill DB does not implement (yet). */
  Unsupported: "UNSUPPORTED",
  /** A broken invariant inside Twill DB: a bug. */
  Internal: "INTERNAL",
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** The SQLSTATE each code maps to when no more specific one is given. */
const defaultSqlState: Record<ErrorCode, string> = {
  NOT_FOUND: "58P01", // undefined_file
  INVALID_ARGUMENT: "22023", // invalid_parameter_value
  INVALID_URL: "22023",
  CORRUPTION: "XX001", // data_corrupted
  IO: "58030", // io_error
  TIMEOUT: "57014", // query_canceled
  LOCKED: "55P03", // lock_not_available
  FENCED: "55P03",
  SERIALIZATION_FAILURE: "40001", // serialization_failure
  CLOSED: "55000", // object_not_in_prerequisite_state
  UNSUPPORTED: "0A000", // feature_not_supported
  INTERNAL: "XX000", // internal_error
};

export interface TwillErrorOptions {
  sqlstate?: string;
  detail?: string;
  hint?: string;
  cause?: unknown;
}

export class TwillError extends Error {
  readonly code: ErrorCode;
  readonly sqlstate: string;
  readonly detail: string | undefined;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: TwillErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "TwillError";
    this.code = code;
    this.sqlstate = options.sqlstate ?? defaultSqlState[code];
    this.detail = options.detail;
    this.hint = options.hint;
  }
}

export function isTwillError(error: unknown, code?: ErrorCode): error is TwillError {
  return error instanceof TwillError && (code === undefined || error.code === code);
}

/** The NotFound error every backend throws for a missing object, so callers can test for one code. */
export function notFound(what: string, cause?: unknown): TwillError {
  return new TwillError(ErrorCodes.NotFound, `${what} does not exist`, { cause });
}
