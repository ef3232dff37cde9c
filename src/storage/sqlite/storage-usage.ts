/**
 * `StorageUsageStore` on the embedded SQLite database: reads table `tenant_storage`, which the
 * triggers of migration 9 keep on every insert and delete of files, jobs and feedback.
 */
import type { Statement } from 'better-sqlite3';
import { type StorageUsage, type StorageUsageStore, USAGE_COLUMNS_SQL, usageFromRow } from '../storage-usage.js';
import type { Database } from './database.js';

export class SqliteStorageUsage implements StorageUsageStore {
  readonly #get: Statement<[string], StorageUsage>;

  /** Uses a database opened (and migrated) by `openDatabase`; does not close it. */
  constructor(db: Database) {
    this.#get = db.prepare(`SELECT ${USAGE_COLUMNS_SQL} FROM tenant_storage WHERE tenant_id = ?`);
  }

  async usage(tenantId: string): Promise<StorageUsage> {
    return usageFromRow(this.#get.get(tenantId));
  }
}
