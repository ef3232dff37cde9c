/**
 * `RequestLogStore` on PostgreSQL (table `request_log`, migration 7), with the semantics of
 * `SqliteRequestLog` (same contract suite). A batch is one multi-row INSERT (several in one
 * transaction for large batches); queries are built from fixed expressions with bound values.
 */
import { REQUEST_LOG_COLUMNS, type RequestLogRow, requestLogWhere, toRequestLogEntry, toRequestLogRow } from '../request-log-rows.js';
import type { RequestLogEntry, RequestLogQuery, RequestLogStore } from '../types.js';
import { insertBatch } from './batch-writes.js';
import { PostgresAdapter } from './database.js';

export class PostgresRequestLog extends PostgresAdapter implements RequestLogStore {
  async append(entries: RequestLogEntry[]): Promise<number> {
    const rows = entries.map((e) => toRequestLogRow(e, (b) => b));
    return insertBatch(this.sql, rows, (row) => row.id, (sql, chunk) =>
      sql`INSERT INTO request_log ${sql(chunk, REQUEST_LOG_COLUMNS)} ON CONFLICT (id) DO NOTHING`,
    );
  }

  async query(q: RequestLogQuery): Promise<RequestLogEntry[]> {
    const { where, values } = requestLogWhere(q, (i) => `$${i}`);
    const text = `SELECT * FROM request_log WHERE ${where} ORDER BY ts DESC, id DESC LIMIT $${values.length + 1}`;
    const rows = await this.sql.unsafe<RequestLogRow[]>(text, [...values, q.limit], { prepare: true });
    return rows.map(toRequestLogEntry);
  }

  async prune(before: number, limit: number): Promise<number> {
    const result = await this.sql`DELETE FROM request_log WHERE ctid IN (
      SELECT ctid FROM request_log WHERE ts < ${before} ORDER BY ts LIMIT ${limit})`;
    return result.count;
  }

  async close(): Promise<void> {
    await this.sql.end({ timeout: 5 });
  }
}
