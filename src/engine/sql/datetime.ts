/**
 * Dates and timestamps. Internal forms: `timestamptz` and `timestamp` are microseconds since 1970-01-01 00:00:00
 * UTC (a JS number: exact within ±285 years of 1970, PostgreSQL's own resolution there); `date` is days since
 * 1970-01-01. ±Infinity stand for PostgreSQL's 'infinity' and '-infinity'. The session time zone is UTC, so
 * timestamptz prints with "+00" and input without a zone is read as UTC.
 *
 * Input accepts ISO 8601 forms (`2024-05-01`, `2024-05-01 12:34:56.789`, `T` separator, `Z`, `UTC`, `+02`,
 * `+05:30`, `-0800`) and the special words now, today, tomorrow, yesterday, epoch, infinity, -infinity. Other
 * PostgreSQL input styles (month names, `BC`, `MDY` ordering) are refused with 22007 rather than guessed.
 */

import { SqlState, sqlError } from "./errors.js";

export const US_PER_DAY = 86_400_000_000;
const US_PER_SEC = 1_000_000;

/** Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
export function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

export function civilFromDays(z: number): { y: number; m: number; d: number } {
  const zz = z + 719468;
  const era = Math.floor(zz / 146097);
  const doe = zz - era * 146097;
  const yoe = Math.floor(
    (doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365,
  );
  const y = yoe + era * 400;
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp + (mp < 10 ? 3 : -9);
  return { y: m <= 2 ? y + 1 : y, m, d };
}

function daysInMonth(y: number, m: number): number {
  if (m === 2) return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28;
  return m === 4 || m === 6 || m === 9 || m === 11 ? 30 : 31;
}

const DT_RE =
  /^\s*(\d{4,})-(\d{1,2})-(\d{1,2})(?:(?:[Tt]|\s+)(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?\s*(?:([zZ]|UTC|utc|GMT|gmt)|([+-])(\d{1,2})(?::?(\d{2}))?)?\s*$/;

export type DateTimeKind = "timestamptz" | "timestamp" | "date";

const KIND_NAME: Record<DateTimeKind, string> = {
  timestamptz: "timestamp with time zone",
  timestamp: "timestamp without time zone",
  date: "date",
};

const timeOrigin = performance.timeOrigin;

/** Current time in microseconds since the epoch. */
export function nowMicros(): number {
  return Math.round((timeOrigin + performance.now()) * 1000);
}

/** Parses date/time input; returns microseconds (timestamps) or days (date). `now` is the statement's now. */
export function parseDateTime(text: string, kind: DateTimeKind, now: number): number {
  const t = text.trim().toLowerCase();
  const today = Math.floor(now / US_PER_DAY);
  const special: Record<string, number> = {
    now: now,
    today: today * US_PER_DAY,
    tomorrow: (today + 1) * US_PER_DAY,
    yesterday: (today - 1) * US_PER_DAY,
    epoch: 0,
    infinity: Number.POSITIVE_INFINITY,
    "+infinity": Number.POSITIVE_INFINITY,
    "-infinity": Number.NEGATIVE_INFINITY,
  };
  const sp = special[t];
  if (sp !== undefined) return kind === "date" && Number.isFinite(sp) ? Math.floor(sp / US_PER_DAY) : sp;
  const m = DT_RE.exec(text);
  if (!m) {
    throw sqlError(
      SqlState.InvalidDatetimeFormat,
      `invalid input syntax for type ${KIND_NAME[kind]}: "${text}"`,
    );
  }
  const y = Number(m[1]);
  const mo = Number(m[2]);
  const d = Number(m[3]);
  const hh = m[4] === undefined ? 0 : Number(m[4]);
  const mi = m[5] === undefined ? 0 : Number(m[5]);
  const ss = m[6] === undefined ? 0 : Number(m[6]);
  const frac = m[7] === undefined ? 0 : Math.round(Number(`0.${m[7]}`) * US_PER_SEC);
  if (
    mo < 1 ||
    mo > 12 ||
    d < 1 ||
    d > daysInMonth(y, mo) ||
    hh > 24 ||
    mi > 59 ||
    ss > 60 ||
    (hh === 24 && (mi > 0 || ss > 0 || frac > 0))
  ) {
    throw sqlError(SqlState.DatetimeFieldOverflow, `date/time field value out of range: "${text}"`);
  }
  const days = daysFromCivil(y, mo, d);
  if (kind === "date") return days;
  let us = days * US_PER_DAY + ((hh * 60 + mi) * 60 + ss) * US_PER_SEC + frac;
  if (kind === "timestamptz" && m[9] !== undefined) {
    const offMin = Number(m[10]) * 60 + (m[11] === undefined ? 0 : Number(m[11]));
    if (Number(m[10]) > 15) {
      throw sqlError(
        SqlState.InvalidDatetimeFormat,
        `invalid input syntax for type ${KIND_NAME[kind]}: "${text}"`,
      );
    }
    us -= (m[9] === "-" ? -offMin : offMin) * 60 * US_PER_SEC;
  }
  return us;
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, "0");
}

function formatDays(days: number): string {
  const { y, m, d } = civilFromDays(days);
  return y >= 1 ? `${pad(y, 4)}-${pad(m, 2)}-${pad(d, 2)}` : `${pad(1 - y, 4)}-${pad(m, 2)}-${pad(d, 2)} BC`;
}

/** PostgreSQL's text form (DateStyle ISO, TimeZone UTC). */
export function formatDateTime(v: number, kind: DateTimeKind): string {
  if (v === Number.POSITIVE_INFINITY) return "infinity";
  if (v === Number.NEGATIVE_INFINITY) return "-infinity";
  if (kind === "date") return formatDays(v);
  const days = Math.floor(v / US_PER_DAY);
  let rest = v - days * US_PER_DAY;
  const hh = Math.floor(rest / 3_600_000_000);
  rest -= hh * 3_600_000_000;
  const mi = Math.floor(rest / 60_000_000);
  rest -= mi * 60_000_000;
  const ss = Math.floor(rest / US_PER_SEC);
  const us = rest - ss * US_PER_SEC;
  const date = formatDays(days);
  const bc = date.endsWith(" BC");
  let out = `${bc ? date.slice(0, -3) : date} ${pad(hh, 2)}:${pad(mi, 2)}:${pad(ss, 2)}`;
  if (us > 0) out += `.${pad(us, 6).replace(/0+$/, "")}`;
  if (kind === "timestamptz") out += "+00";
  return bc ? `${out} BC` : out;
}

/** A JS Date to microseconds. */
export function dateToMicros(d: Date): number {
  const ms = d.getTime();
  if (Number.isNaN(ms))
    throw sqlError(SqlState.InvalidDatetimeFormat, "invalid Date object passed as a parameter");
  return ms * 1000;
}

/** Microseconds (or days for `date`) to a JS Date; ±Infinity stay numbers PostgreSQL-style is impossible in Date. */
export function toJsDate(v: number, kind: DateTimeKind): Date {
  return new Date(kind === "date" ? v * 86_400_000 : Math.floor(v / 1000));
}
