/**
 * `StorageUsageStore` on PostgreSQL: reads table `tenant_storage`, which the statement triggers
 * of migration 9 keep on every insert and delete of files, jobs and feedback.
 */
import { EMPTY_USAGE, type StorageUsage, type StorageUsageStore } from '../../metering/storage-quotas.js';
import type { Sql } from './database.js';

export class PostgresStorageUsage implements StorageUsageStore {
  readonly #sql: Sql;

  /** Uses a pool opened by `openPostgres` and migrated by `migratePostgres` (not closed here). */
  constructor(sql: Sql) {
    this.#sql = sql;
  }

  async usage(tenantId: string): Promise<StorageUsage> {
    const [row] = await this.#sql<StorageUsage[]>`
      SELECT files, file_bytes AS "fileBytes", jobs, job_bytes AS "jobBytes", feedback FROM tenant_storage WHERE tenant_id = ${tenantId}`;
    return row ? { files: Number(row.files), fileBytes: Number(row.fileBytes), jobs: Number(row.jobs), jobBytes: Number(row.jobBytes), feedback: Number(row.feedback) } : { ...EMPTY_USAGE };
  }
}
