/**
 * `StorageUsageStore` on PostgreSQL: reads table `tenant_storage`, which the statement triggers
 * of migration 9 keep on every insert and delete of files, jobs and feedback.
 */
import { type StorageUsage, type StorageUsageStore, USAGE_COLUMNS_SQL, usageFromRow } from '../storage-usage.js';
import { PostgresAdapter } from './database.js';

export class PostgresStorageUsage extends PostgresAdapter implements StorageUsageStore {
  async usage(tenantId: string): Promise<StorageUsage> {
    const [row] = await this.sql.unsafe<StorageUsage[]>(`SELECT ${USAGE_COLUMNS_SQL} FROM tenant_storage WHERE tenant_id = $1`, [tenantId], { prepare: true });
    return usageFromRow(row);
  }
}
