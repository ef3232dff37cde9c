/**
 * What work must pass before it is queued (POST /v1/jobs, `Prefer: respond-async`, a batch's
 * lines): a budget of the caller that is already used up refuses it at once with the online
 * path's 402 `budget_exceeded` (BudgetGuard.refuseIfSpent: nothing is reserved; the job reserves
 * its worst case when it runs), and the tenant's job quotas (quotas.jobs, quotas.jobBytes) refuse
 * what would take it past them (402 `storage_quota_exceeded`).
 */
import type { AuthInfo } from '../auth/authenticator.js';
import type { TierConfig } from '../config/schema.js';
import type { BudgetGuard } from '../metering/budgets.js';
import { resolvePolicy } from '../metering/policy.js';
import type { StorageQuotas } from '../metering/storage-quotas.js';

export interface QueuedWork {
  /** Jobs it adds. */
  jobs: number;
  /** Bytes of their request bodies (an upper bound is fine). */
  bytes: number;
  /** The end user, when one applies to all of them (its budget is checked too). */
  endUser: string | null;
  /** The field a quota refusal names (e.g. `input_file_id`). */
  param?: string | null;
}

/** Checked before work is queued; throws the refusal to answer with. */
export interface JobAdmission {
  check(auth: AuthInfo, work: QueuedWork): Promise<void>;
}

export class QueueAdmission implements JobAdmission {
  constructor(
    private readonly opts: {
      tiers: Record<string, TierConfig>;
      budgets: Pick<BudgetGuard, 'refuseIfSpent'>;
      quotas?: Pick<StorageQuotas, 'checkJobs'>;
    },
  ) {}

  async check(auth: AuthInfo, work: QueuedWork): Promise<void> {
    const policy = resolvePolicy(this.opts.tiers, auth, work.endUser);
    if (policy.budgets.length > 0) await this.opts.budgets.refuseIfSpent(policy);
    await this.opts.quotas?.checkJobs(auth.tenantId, work.jobs, work.bytes, work.param ?? null);
  }
}
