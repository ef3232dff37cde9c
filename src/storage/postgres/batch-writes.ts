/**
 * How the PostgreSQL adapters that write in batches (ledger, request log) insert them: the first
 * row of a key repeated within the batch is kept (one INSERT cannot touch a row twice), then one
 * multi-row INSERT, or several in one transaction for a batch too large for one statement.
 */
import type { Queryable, Sql } from './database.js';

/** Rows per INSERT: 26 columns x 1,000 rows stays under PostgreSQL's 65,535 parameters. */
const ROWS_PER_STATEMENT = 1_000;

/** Inserts `rows` (by `insert`, one chunk at a time); returns how many were new. */
export async function insertBatch<R>(
  sql: Sql,
  rows: Iterable<R>,
  key: (row: R) => string,
  insert: (sql: Queryable, chunk: R[]) => Promise<{ count: number }>,
): Promise<number> {
  const byKey = new Map<string, R>();
  for (const row of rows) if (!byKey.has(key(row))) byKey.set(key(row), row);
  const unique = [...byKey.values()];
  if (unique.length === 0) return 0;
  if (unique.length <= ROWS_PER_STATEMENT) return (await insert(sql, unique)).count;
  return sql.begin(async (tx) => {
    let added = 0;
    for (let i = 0; i < unique.length; i += ROWS_PER_STATEMENT) added += (await insert(tx, unique.slice(i, i + ROWS_PER_STATEMENT))).count;
    return added;
  });
}
