/**
 * `RequestLogStore` on the embedded SQLite database (table `request_log`, migration 8). A batch is
 * one transaction; in the gateway it is committed on the writer thread (see writer-thread.ts), as
 * the ledger's are, and so is pruning, so the event loop never waits for those commits. Queries
 * read on the main connection, from statements built of fixed expressions and prepared once per
 * shape.
 */
import type { Statement } from 'better-sqlite3';
import type { RequestLogEntry, RequestLogQuery, RequestLogStore } from '../types.js';
import type { Database } from './database.js';
import type { SqliteWriterThread } from './writer-thread.js';
import { REQUEST_LOG_COLUMNS, type RequestLogRow, requestLogWhere, toRequestLogEntry, toRequestLogRow } from '../request-log-rows.js';

const INSERT_SQL = `INSERT INTO request_log (${REQUEST_LOG_COLUMNS.join(', ')})
  VALUES (${REQUEST_LOG_COLUMNS.map((c) => `@${c}`).join(', ')})
  ON CONFLICT (id) DO NOTHING`;

// Oldest first, by rowid: the batch is found on the ts index, deleted by primary key.
const PRUNE_SQL = `DELETE FROM request_log WHERE rowid IN (
  SELECT rowid FROM request_log WHERE ts < @before ORDER BY ts LIMIT @limit)`;

export class SqliteRequestLog implements RequestLogStore {
  readonly #db: Database;
  readonly #writer: SqliteWriterThread | undefined;
  readonly #insert: Statement<[RequestLogRow<number>]>;
  readonly #prune: Statement<[{ before: number; limit: number }]>;
  readonly #prepared = new Map<string, Statement>();

  /** `writer`: commit writes on the writer thread (the gateway's embedded mode); without it, on this connection. */
  constructor(db: Database, opts: { writer?: SqliteWriterThread } = {}) {
    this.#db = db;
    this.#writer = opts.writer;
    this.#insert = db.prepare(INSERT_SQL);
    this.#prune = db.prepare(PRUNE_SQL);
  }

  async append(entries: RequestLogEntry[]): Promise<number> {
    if (entries.length === 0) return 0;
    const rows = entries.map((e) => toRequestLogRow(e, (b) => (b ? 1 : 0)));
    if (this.#writer) return this.#writer.insert(INSERT_SQL, rows);
    return this.#db.transaction(() => {
      let added = 0;
      for (const row of rows) added += this.#insert.run(row).changes;
      return added;
    }).immediate();
  }

  async query(q: RequestLogQuery): Promise<RequestLogEntry[]> {
    const { where, values } = requestLogWhere(q, (i) => `@p${i}`);
    const params: Record<string, string | number> = { limit: q.limit };
    values.forEach((v, i) => (params[`p${i + 1}`] = v));
    const text = `SELECT * FROM request_log WHERE ${where} ORDER BY ts DESC, id DESC LIMIT @limit`;
    return (this.#statement(text).all(params) as RequestLogRow[]).map(toRequestLogEntry);
  }

  async prune(before: number, limit: number): Promise<number> {
    if (this.#writer) return this.#writer.insert(PRUNE_SQL, [{ before, limit }]);
    return this.#prune.run({ before, limit }).changes;
  }

  /** Closes the database (shared with the other SQLite adapters on it); idempotent. */
  async close(): Promise<void> {
    await this.#writer?.stop();
    if (this.#db.open) this.#db.close();
  }

  #statement(text: string): Statement {
    let statement = this.#prepared.get(text);
    if (!statement) {
      if (this.#prepared.size >= 256) this.#prepared.clear(); // shapes are few; this only bounds a misuse
      statement = this.#db.prepare(text);
      this.#prepared.set(text, statement);
    }
    return statement;
  }
}
