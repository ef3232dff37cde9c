/**
 * `RequestLogStore` on the embedded SQLite database (table `request_log`, migration 8). A batch is
 * one transaction; in the gateway it is committed on the writer thread (see writer-thread.ts), as
 * the ledger's are, and so is pruning, so the event loop never waits for those commits. Queries
 * read on the main connection, from statements built of fixed expressions and prepared once per
 * shape.
 */
import type { Statement } from 'better-sqlite3';
import { REQUEST_LOG_COLUMNS, type RequestLogRow, requestLogWhere, toRequestLogEntry, toRequestLogRow } from '../request-log-rows.js';
import type { RequestLogEntry, RequestLogQuery, RequestLogStore } from '../types.js';
import { StatementCache, commitBatch, deleteOldestSql, insertSql, numbered } from './batch-writes.js';
import type { Database } from './database.js';
import type { SqliteWriterThread } from './writer-thread.js';

const INSERT_SQL = insertSql('request_log', REQUEST_LOG_COLUMNS, 'id');
const PRUNE_SQL = deleteOldestSql('request_log');

export class SqliteRequestLog implements RequestLogStore {
  readonly #db: Database;
  readonly #writer: SqliteWriterThread | undefined;
  readonly #insert: Statement<[RequestLogRow<number>]>;
  readonly #prune: Statement<[{ before: number; limit: number }]>;
  readonly #prepared: StatementCache;

  /** `writer`: commit writes on the writer thread (the gateway's embedded mode); without it, on this connection. */
  constructor(db: Database, opts: { writer?: SqliteWriterThread } = {}) {
    this.#db = db;
    this.#writer = opts.writer;
    this.#insert = db.prepare(INSERT_SQL);
    this.#prune = db.prepare(PRUNE_SQL);
    this.#prepared = new StatementCache(db);
  }

  async append(entries: RequestLogEntry[]): Promise<number> {
    if (entries.length === 0) return 0;
    const rows = entries.map((e) => toRequestLogRow(e, (b) => (b ? 1 : 0)));
    return commitBatch(this.#db, this.#writer, INSERT_SQL, this.#insert, rows);
  }

  async query(q: RequestLogQuery): Promise<RequestLogEntry[]> {
    const { where, values } = requestLogWhere(q, (i) => `@p${i}`);
    const text = `SELECT * FROM request_log WHERE ${where} ORDER BY ts DESC, id DESC LIMIT @limit`;
    return (this.#prepared.get(text).all({ ...numbered(values), limit: q.limit }) as RequestLogRow[]).map(toRequestLogEntry);
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
}
