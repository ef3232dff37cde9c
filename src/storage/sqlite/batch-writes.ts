/**
 * What the SQLite adapters that write in batches (ledger, request log) share: their insert and
 * delete-oldest statements, how a batch is committed (on the writer thread when the gateway runs one, else in one IMMEDIATE transaction on
 * this connection), and the bounded cache of the statements their queries prepare once per shape,
 * with their values bound as `@p1`, `@p2`...
 */
import type { Statement } from 'better-sqlite3';
import type { Database } from './database.js';
import type { SqliteWriterThread } from './writer-thread.js';

/** Inserts a row (named parameters `@column`), skipping one whose `key` is stored already. */
export function insertSql(table: string, columns: readonly string[], key: string): string {
  return `INSERT INTO ${table} (${columns.join(', ')})
  VALUES (${columns.map((c) => `@${c}`).join(', ')})
  ON CONFLICT (${key}) DO NOTHING`;
}

/** Deletes at most `@limit` rows with `ts < @before`, oldest first: the batch is found on the ts index, deleted by rowid. */
export function deleteOldestSql(table: string): string {
  return `DELETE FROM ${table} WHERE rowid IN (
  SELECT rowid FROM ${table} WHERE ts < @before ORDER BY ts LIMIT @limit)`;
}

/**
 * Runs `sql` (prepared here as `statement`) once per row in one transaction; returns the rows it
 * changed. With a writer thread the commit is made there, so the event loop does not wait for it.
 */
export async function commitBatch<R extends object>(db: Database, writer: SqliteWriterThread | undefined, sql: string, statement: Statement<[R]>, rows: R[]): Promise<number> {
  if (writer) return writer.insert(sql, rows);
  return db.transaction(() => {
    let changed = 0;
    for (const row of rows) changed += statement.run(row).changes;
    return changed;
  }).immediate();
}

/** Statements by SQL text (one per query shape). */
export class StatementCache {
  readonly #db: Database;
  readonly #prepared = new Map<string, Statement>();

  constructor(db: Database) {
    this.#db = db;
  }

  get(text: string): Statement {
    let statement = this.#prepared.get(text);
    if (!statement) {
      if (this.#prepared.size >= 256) this.#prepared.clear(); // shapes are few; this only bounds a misuse
      statement = this.#db.prepare(text);
      this.#prepared.set(text, statement);
    }
    return statement;
  }
}

/** Values for the placeholders `@p1`, `@p2`... of a cached statement, in order. */
export function numbered(values: ReadonlyArray<string | number>): Record<string, string | number> {
  return Object.fromEntries(values.map((v, i) => [`p${i + 1}`, v]));
}
