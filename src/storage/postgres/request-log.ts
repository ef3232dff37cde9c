/**
 * `RequestLogStore` on PostgreSQL (table `request_log`, migration 7), with the semantics of
 * `SqliteRequestLog` (same contract suite). A batch is one multi-row INSERT (several in one
 * transaction for large batches); queries are built from fixed expressions with bound values.
 */
import type { RequestLogEntry, RequestLogQuery, RequestLogStore } from '../types.js';
import type { Queryable, Sql } from './database.js';
import { REQUEST_LOG_COLUMNS, type RequestLogRow, requestLogWhere, toRequestLogEntry, toRequestLogRow } from '../request-log-rows.js';

/** Rows per INSERT: 26 columns x 1,000 rows stays under PostgreSQL's 65,535 parameters. */
const ROWS_PER_STATEMENT = 1_000;

export class PostgresRequestLog implements RequestLogStore {
  readonly #sql: Sql;

  /** Uses a pool opened by `openPostgres` and migrated by `migratePostgres`; `close()` ends it. */
  constructor(sql: Sql) {
    this.#sql = sql;
  }

  async append(entries: RequestLogEntry[]): Promise<number> {
    // Keep the first of an id repeated within the batch (one INSERT cannot touch a row twice).
    const byId = new Map<string, RequestLogRow<boolean>>();
    for (const e of entries) if (!byId.has(e.id)) byId.set(e.id, toRequestLogRow(e, (b) => b));
    const rows = [...byId.values()];
    if (rows.length === 0) return 0;
    const insert = (sql: Queryable, chunk: RequestLogRow<boolean>[]) =>
      sql`INSERT INTO request_log ${sql(chunk, REQUEST_LOG_COLUMNS)} ON CONFLICT (id) DO NOTHING`;
    if (rows.length <= ROWS_PER_STATEMENT) return (await insert(this.#sql, rows)).count;
    return this.#sql.begin(async (tx) => {
      let added = 0;
      for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT) added += (await insert(tx, rows.slice(i, i + ROWS_PER_STATEMENT))).count;
      return added;
    });
  }

  async query(q: RequestLogQuery): Promise<RequestLogEntry[]> {
    const { where, values } = requestLogWhere(q, (i) => `$${i}`);
    const text = `SELECT * FROM request_log WHERE ${where} ORDER BY ts DESC, id DESC LIMIT $${values.length + 1}`;
    const rows = await this.#sql.unsafe<RequestLogRow[]>(text, [...values, q.limit], { prepare: true });
    return rows.map(toRequestLogEntry);
  }

  async prune(before: number, limit: number): Promise<number> {
    const result = await this.#sql`DELETE FROM request_log WHERE ctid IN (
      SELECT ctid FROM request_log WHERE ts < ${before} ORDER BY ts LIMIT ${limit})`;
    return result.count;
  }

  async close(): Promise<void> {
    await this.#sql.end({ timeout: 5 });
  }
}
