/**
 * What the storage usage adapters (src/storage/{sqlite,postgres}/storage-usage.ts) return: the
 * `StorageUsageStore` interface and the mapping of a `tenant_storage` row both share. The quotas
 * checked against it are metering's (src/metering/storage-quotas.ts).
 */

/** What one tenant keeps stored. */
export interface StorageUsage {
  files: number;
  fileBytes: number;
  jobs: number;
  /** Bytes of the jobs' request bodies (JSON as stored). */
  jobBytes: number;
  feedback: number;
}

/**
 * The usage counters of every tenant (sqlite | postgres; contract in
 * test/contracts/storage-usage.contract.ts). Kept by the database on every insert and delete of
 * files, jobs and feedback, whichever code path makes it; an adapter only reads them.
 */
export interface StorageUsageStore {
  /** A tenant's usage (all zero when it stores nothing). */
  usage(tenantId: string): Promise<StorageUsage>;
}

/** The row's columns, as `USAGE_COLUMNS_SQL` names them (drivers may return BIGINT as strings). */
type UsageRow = { [K in keyof StorageUsage]: number | string };

/** The select list of a `tenant_storage` row, named as `StorageUsage`'s fields. */
export const USAGE_COLUMNS_SQL = `files, file_bytes AS "fileBytes", jobs, job_bytes AS "jobBytes", feedback`;

/** A tenant's usage from its row; all zero without one (the tenant stores nothing). */
export function usageFromRow(row: UsageRow | undefined): StorageUsage {
  if (!row) return { files: 0, fileBytes: 0, jobs: 0, jobBytes: 0, feedback: 0 };
  return { files: Number(row.files), fileBytes: Number(row.fileBytes), jobs: Number(row.jobs), jobBytes: Number(row.jobBytes), feedback: Number(row.feedback) };
}
