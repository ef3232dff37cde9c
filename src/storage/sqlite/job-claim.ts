/**
 * The claim of `SqliteJobStore` (src/storage/sqlite/jobs.ts): which queued job a worker gets
 * next, and its lease. A claim runs in one IMMEDIATE transaction: several processes may share
 * the file, and SQLite lets one writer in at a time, so two claims can never hand out the same job.
 *
 * How a claim finds its job without reading the whole queue (100k queued jobs, or 10k tenants):
 * the best job is the smallest (priority, running jobs of its tenant, seq). Tenants with no
 * running job ("free" tenants) all count 0, so their best job is simply the first claimable one in
 * (priority, seq) order; tenants with running jobs ("busy", few: at most the workers' total
 * concurrency) are looked at one by one, their head through `jobs_queued_by_tenant`. The first
 * free job is searched among the first FRONT_SCAN queued jobs (index `jobs_queued`); only when
 * that window is full of busy tenants' (or backed-off) jobs does it fall back to visiting every
 * queued tenant (a loose index scan: one seek per tenant). Leases that passed are claimable too.
 * A claim of several jobs repeats the pick, so a job claimed earlier in the call counts as
 * running for its tenant.
 */
import type { Statement } from 'better-sqlite3';
import type { JobStore } from '../../jobs/types.js';
import type { JobRow } from '../job-rows.js';
import type { Database } from './database.js';

/** Queued jobs a claim reads in (priority, seq) order looking for a free tenant's job before visiting every tenant. */
const FRONT_SCAN = 256;
/** Jobs with a passed lease weighed per pick (more wait for the next picks). */
const DEAD_SCAN = 64;

/** The best claimable job (see the header): its seq, or no row. */
const PICK = `
WITH RECURSIVE
excluded(model) AS (SELECT value FROM json_each(@excluded)),
busy(tenant_id, n) AS (
  SELECT tenant_id, COUNT(*) FROM jobs INDEXED BY jobs_running WHERE status = 'running' AND lease_until >= @now GROUP BY tenant_id
),
front AS MATERIALIZED (
  SELECT seq, priority, tenant_id, run_after, model FROM jobs INDEXED BY jobs_queued
  WHERE status = 'queued' ORDER BY priority, seq LIMIT ${FRONT_SCAN}
),
free_front(seq, priority, tenant_id) AS (
  SELECT seq, priority, tenant_id FROM front
  WHERE run_after <= @now AND model NOT IN excluded AND tenant_id NOT IN (SELECT tenant_id FROM busy)
  ORDER BY priority, seq LIMIT 1
),
tenants(tenant_id) AS (
  SELECT (SELECT tenant_id FROM jobs INDEXED BY jobs_queued_by_tenant WHERE status = 'queued' ORDER BY tenant_id LIMIT 1)
  WHERE NOT EXISTS (SELECT 1 FROM free_front) AND (SELECT COUNT(*) FROM front) >= ${FRONT_SCAN}
  UNION ALL
  SELECT (SELECT j.tenant_id FROM jobs j INDEXED BY jobs_queued_by_tenant WHERE j.status = 'queued' AND j.tenant_id > t.tenant_id ORDER BY j.tenant_id LIMIT 1)
  FROM tenants t WHERE t.tenant_id IS NOT NULL
),
heads(seq) AS (
  SELECT (SELECT h.seq FROM jobs h INDEXED BY jobs_queued_by_tenant
          WHERE h.status = 'queued' AND h.tenant_id = x.tenant_id AND h.run_after <= @now AND h.model NOT IN excluded
          ORDER BY h.priority, h.seq LIMIT 1)
  FROM (SELECT tenant_id FROM tenants WHERE tenant_id IS NOT NULL UNION SELECT tenant_id FROM busy) x
),
candidates(seq, priority, tenant_id) AS (
  SELECT seq, priority, tenant_id FROM free_front
  UNION ALL
  SELECT j.seq, j.priority, j.tenant_id FROM heads JOIN jobs j ON j.seq = heads.seq
  UNION ALL
  SELECT * FROM (
    SELECT seq, priority, tenant_id FROM jobs INDEXED BY jobs_running
    WHERE status = 'running' AND lease_until < @now AND model NOT IN excluded
    ORDER BY priority, seq LIMIT ${DEAD_SCAN})
)
SELECT c.seq FROM candidates c LEFT JOIN busy b ON b.tenant_id = c.tenant_id
ORDER BY c.priority, COALESCE(b.n, 0), c.seq
LIMIT 1`;

export class SqliteJobClaim {
  readonly #db: Database;
  readonly #pick: Statement<[{ now: number; excluded: string }], number>;
  readonly #claimOne: Statement<[{ seq: number; owner: string; until: number; now: number }], JobRow<string>>;

  constructor(db: Database) {
    this.#db = db;
    this.#pick = db.prepare(PICK).pluck() as Statement<[{ now: number; excluded: string }], number>;
    this.#claimOne = db.prepare(
      `UPDATE jobs SET status = 'running', lease_owner = @owner, lease_until = @until, attempts = attempts + 1,
                       started_at = COALESCE(started_at, @now)
       WHERE seq = @seq
       RETURNING *`,
    );
  }

  /** Leases up to `opts.limit` jobs to `opts.owner`, best first (see the header): their rows as leased. */
  claim(opts: Parameters<JobStore['claim']>[0]): JobRow<string>[] {
    const { owner, now } = opts;
    const pick = { now, excluded: JSON.stringify(opts.excludeModels ?? []) };
    const until = now + opts.leaseMs;
    return this.#db.transaction(() => {
      const claimed: JobRow<string>[] = [];
      while (claimed.length < opts.limit) {
        const seq = this.#pick.get(pick);
        if (seq === undefined) break;
        claimed.push(this.#claimOne.get({ seq, owner, until, now })!);
      }
      return claimed;
    }).immediate();
  }
}
