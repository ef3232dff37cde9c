/**
 * Storage quotas: how much a tenant may keep stored (config `quotas`): files and their bytes,
 * jobs and their request bodies' bytes, feedback verdicts. A write that would take a tenant past
 * one is refused before it is made, with 402 `storage_quota_exceeded` naming the setting; the
 * tenant frees room by deleting (files), or waiting for its data to expire (files:
 * jobs.batch.fileTtlMs; finished jobs: jobs.retentionMs).
 *
 * The usage is counted by the database itself (`StorageUsageStore`, src/storage/storage-usage.ts:
 * table `tenant_storage`, kept by triggers in the transaction of every insert and delete), so a
 * check is one primary-key read and can never drift from the rows. The check and the write are two steps: writes in flight at
 * the same moment may together pass a quota by what they carry (a few requests' worth), never
 * more.
 */
import type { QuotasConfig } from '../config/quotas-schema.js';
import { GatewayError } from '../errors.js';
import type { StorageUsage, StorageUsageStore } from '../storage/storage-usage.js';

export type { StorageUsage, StorageUsageStore } from '../storage/storage-usage.js';

const count = (n: number): string => n.toLocaleString('en-US');

export class StorageQuotas {
  constructor(
    private readonly store: StorageUsageStore,
    private readonly config: QuotasConfig,
  ) {}

  usage(tenantId: string): Promise<StorageUsage> {
    return this.store.usage(tenantId);
  }

  /** Refuses a file of `bytes` (an upper bound when not known yet) the tenant has no room for. */
  async checkFile(tenantId: string, bytes: number): Promise<void> {
    const u = await this.store.usage(tenantId);
    if (u.files + 1 > this.config.files) {
      throw exceeded(`Tenant '${tenantId}' keeps ${count(u.files)} files, its quota (quotas.files: ${count(this.config.files)})`, 'file', 'delete files');
    }
    if (u.fileBytes + bytes > this.config.fileBytes) {
      throw exceeded(
        `Tenant '${tenantId}' keeps ${count(u.fileBytes)} bytes of files; with this one's ${count(bytes)} that passes its quota (quotas.fileBytes: ${count(this.config.fileBytes)})`,
        'file',
        'delete files',
      );
    }
  }

  /** Refuses `jobs` new jobs carrying `bytes` of request bodies the tenant has no room for. */
  async checkJobs(tenantId: string, jobs: number, bytes: number, param: string | null = null): Promise<void> {
    const u = await this.store.usage(tenantId);
    const wait = 'wait for finished jobs to pass jobs.retentionMs';
    if (u.jobs + jobs > this.config.jobs) {
      throw exceeded(
        `Tenant '${tenantId}' keeps ${count(u.jobs)} jobs; ${count(jobs)} more would pass its quota (quotas.jobs: ${count(this.config.jobs)})`,
        param,
        wait,
      );
    }
    if (u.jobBytes + bytes > this.config.jobBytes) {
      throw exceeded(
        `Tenant '${tenantId}' keeps ${count(u.jobBytes)} bytes of job requests; ${count(bytes)} more would pass its quota (quotas.jobBytes: ${count(this.config.jobBytes)})`,
        param,
        wait,
      );
    }
  }

  /** Refuses a verdict when the tenant keeps as many as its quota allows. */
  async checkFeedback(tenantId: string): Promise<void> {
    const u = await this.store.usage(tenantId);
    if (u.feedback + 1 > this.config.feedback) {
      throw exceeded(
        `Tenant '${tenantId}' keeps ${count(u.feedback)} feedback verdicts, its quota (quotas.feedback: ${count(this.config.feedback)})`,
        'request_id',
        'ask the operator to raise it',
      );
    }
  }
}

function exceeded(what: string, param: string | null, remedy: string): GatewayError {
  return new GatewayError('storage_quota_exceeded', `${what}; nothing more is stored for it: ${remedy}.`, { param });
}
