/**
 * Paging of the listings the SQL adapters of jobs, files and batches share: the page size a
 * listing accepts, and the page cut from the `limit + 1` rows it read (the extra row only says
 * whether there is a next page). Driver-free on purpose.
 */

/** A listing's page size: a whole number from 1 to 100 (anything else is brought into range). */
export function clampLimit(limit: number): number {
  return Math.min(100, Math.max(1, Math.floor(limit) || 1));
}

/** The first `limit` of `rows` (read with `LIMIT limit + 1`), mapped, and whether more follow. */
export function toPage<R, T>(rows: readonly R[], limit: number, map: (row: R) => T): { data: T[]; hasMore: boolean } {
  return { data: rows.slice(0, limit).map((r) => map(r)), hasMore: rows.length > limit };
}
