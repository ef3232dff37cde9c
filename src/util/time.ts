/**
 * Dates at the edges: what the API and the CLI accept as a date, and how a stored time is shown.
 *
 * A JavaScript Date holds +-8.64e15 ms (about +-275,760 years); `toISOString()` throws
 * "Invalid time value" beyond that (or on NaN), and a PostgreSQL bigint overflows long before
 * epoch seconds * 1000 stops being a number. So every date a client gives is checked against
 * {@link MIN_DATE_MS}..{@link MAX_DATE_MS} (1970-01-01 to 9999-12-31, what ISO 8601 writes with a
 * four-digit year) before it is used or stored, and every stored time is rendered with
 * {@link isoOrNull}, which never throws: a row written by an older version (or by hand) with a
 * time out of range is shown clamped to the nearest representable date, or null when it is not a
 * number at all.
 */
import { GatewayError } from '../errors.js';

/** 1970-01-01T00:00:00.000Z */
export const MIN_DATE_MS = 0;
/** 9999-12-31T23:59:59.999Z */
export const MAX_DATE_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
/** The range as the error messages say it. */
export const DATE_RANGE_TEXT = 'between 1970-01-01 and 9999-12-31';
/** The largest time a Date can hold, in ms either side of the epoch. */
const DATE_LIMIT_MS = 8.64e15;

/** True when `ms` is a whole number of ms within 1970-01-01 .. 9999-12-31. */
export function isDateInRange(ms: number): boolean {
  return Number.isSafeInteger(ms) && ms >= MIN_DATE_MS && ms <= MAX_DATE_MS;
}

/**
 * A stored time as ISO 8601, never throwing: null for null or a non-number, clamped to the
 * earliest or latest date a Date can hold when beyond it.
 */
export function isoOrNull(ms: number | null | undefined): string | null {
  if (ms === null || ms === undefined || typeof ms !== 'number' || Number.isNaN(ms)) return null;
  return new Date(Math.min(DATE_LIMIT_MS, Math.max(-DATE_LIMIT_MS, ms))).toISOString();
}

/** `isoOrNull` for a time that is always set (a row's created_at): '' when it is not a number. */
export function isoOrEmpty(ms: number | null | undefined): string {
  return isoOrNull(ms) ?? '';
}

/**
 * A time from a query string or a CLI flag: an ISO 8601 date or date-time, or epoch
 * milliseconds; within 1970-01-01 .. 9999-12-31. Throws a 400 naming `param`.
 */
export function parseTimeParam(value: string, param: string): number {
  const ms = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isFinite(ms)) {
    throw new GatewayError(
      'invalid_value',
      `${param} must be an ISO 8601 date (2026-11-01 or 2026-11-01T12:00:00Z) or epoch milliseconds, got '${value.slice(0, 64)}'`,
      { param },
    );
  }
  if (!isDateInRange(Math.floor(ms))) {
    throw new GatewayError('invalid_value', `${param} must be a date ${DATE_RANGE_TEXT}, got '${value.slice(0, 64)}'`, { param });
  }
  return Math.floor(ms);
}
