/**
 * The SQLite migrations of async jobs: the queue and its webhook outbox, files and batches, the
 * stored data per tenant that storage quotas read, and the retention sweep's index. Merged in
 * version order with the request path's (requests.ts) by src/storage/sqlite/migrations.ts, whose
 * rules they follow.
 */
import type { Migration } from '../../migration-list.js';

export const JOB_MIGRATIONS: readonly Migration[] = [
  {
    version: 7,
    name: 'jobs, webhook deliveries, files, batches',
    sql: `
      -- Async jobs (src/jobs/): the queue, its leases and the webhook outbox. seq is the insertion
      -- order (FIFO within a tenant, the cursor of listings); AUTOINCREMENT never reuses a value.
      CREATE TABLE jobs (
        seq                INTEGER PRIMARY KEY AUTOINCREMENT,
        id                 TEXT NOT NULL UNIQUE,      -- job_ + 24 hex
        tenant_id          TEXT NOT NULL,
        key_id             TEXT NOT NULL,
        user_id            TEXT NOT NULL,             -- '' when none
        kind               TEXT NOT NULL CHECK (kind IN ('chat', 'embeddings')),
        model              TEXT NOT NULL,
        body               TEXT NOT NULL,             -- JSON request body
        priority           INTEGER NOT NULL,          -- lower runs first
        status             TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'expired')),
        webhook_url        TEXT,
        deadline_at        INTEGER,                   -- epoch ms
        metadata           TEXT NOT NULL,             -- JSON object of strings
        idempotency_key    TEXT,
        batch_id           TEXT,
        custom_id          TEXT,
        attempts           INTEGER NOT NULL DEFAULT 0,
        max_attempts       INTEGER NOT NULL,
        result             TEXT,                      -- JSON answer body once succeeded
        error              TEXT,                      -- JSON JobError (the last one)
        dead_lettered      INTEGER NOT NULL DEFAULT 0,  -- 0/1
        cost_pico          INTEGER NOT NULL DEFAULT 0,
        prompt_tokens      INTEGER NOT NULL DEFAULT 0,
        completion_tokens  INTEGER NOT NULL DEFAULT 0,
        created_at         INTEGER NOT NULL,
        started_at         INTEGER,
        finished_at        INTEGER,
        run_after          INTEGER NOT NULL,          -- not claimable before (retry backoff)
        lease_owner        TEXT,
        lease_until        INTEGER,
        webhook_state      TEXT CHECK (webhook_state IN ('pending', 'delivered', 'failed')),  -- NULL: no outbox entry
        webhook_attempts   INTEGER NOT NULL DEFAULT 0,
        webhook_next_at    INTEGER                    -- next delivery (or the end of a dispatcher's lease)
      ) STRICT;
      CREATE UNIQUE INDEX jobs_by_idempotency_key ON jobs (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
      CREATE INDEX jobs_by_tenant ON jobs (tenant_id, seq);
      CREATE INDEX jobs_by_batch ON jobs (batch_id, seq) WHERE batch_id IS NOT NULL;
      -- The queue (claim, stats): covering, in claim order and per tenant.
      CREATE INDEX jobs_queued ON jobs (priority, seq, tenant_id, run_after, model, created_at) WHERE status = 'queued';
      CREATE INDEX jobs_queued_by_tenant ON jobs (tenant_id, priority, seq, run_after, model) WHERE status = 'queued';
      -- Leases: running counts per tenant, leases that passed (take-over), stats.
      CREATE INDEX jobs_running ON jobs (lease_until, tenant_id, priority, model) WHERE status = 'running';
      CREATE INDEX jobs_by_deadline ON jobs (deadline_at) WHERE status IN ('queued', 'running');
      CREATE INDEX jobs_webhooks_due ON jobs (webhook_next_at) WHERE webhook_state = 'pending';

      -- Every delivery attempt of a job's webhook (append only).
      CREATE TABLE webhook_deliveries (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id       TEXT NOT NULL,
        attempt      INTEGER NOT NULL,
        at           INTEGER NOT NULL,
        status_code  INTEGER,                  -- NULL when no answer came
        error        TEXT NOT NULL,            -- '' when delivered
        duration_ms  INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX webhook_deliveries_by_job ON webhook_deliveries (job_id, id);

      -- Uploaded and generated files (Batch API). content is the last column, so reading the
      -- others (listings) never walks the blob's overflow pages.
      CREATE TABLE files (
        id          TEXT PRIMARY KEY,          -- file- + 24 hex
        tenant_id   TEXT NOT NULL,
        purpose     TEXT NOT NULL CHECK (purpose IN ('batch', 'batch_output')),
        filename    TEXT NOT NULL,
        bytes       INTEGER NOT NULL,
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER,                   -- NULL = kept
        content     BLOB NOT NULL
      ) STRICT;
      CREATE INDEX files_by_tenant ON files (tenant_id, created_at, id);
      CREATE INDEX files_by_expiry ON files (expires_at) WHERE expires_at IS NOT NULL;

      -- Batches (OpenAI's Batch API): one row each; its jobs carry batch_id.
      CREATE TABLE batches (
        id                 TEXT PRIMARY KEY,   -- batch_ + 24 hex
        tenant_id          TEXT NOT NULL,
        key_id             TEXT NOT NULL,
        endpoint           TEXT NOT NULL,
        input_file_id      TEXT NOT NULL,
        completion_window  TEXT NOT NULL,
        status             TEXT NOT NULL CHECK (status IN ('validating', 'failed', 'in_progress', 'finalizing', 'completed', 'expired', 'cancelling', 'cancelled')),
        output_file_id     TEXT,
        error_file_id      TEXT,
        errors             TEXT NOT NULL,      -- JSON array of validation errors
        request_total      INTEGER NOT NULL,
        request_completed  INTEGER NOT NULL,
        request_failed     INTEGER NOT NULL,
        metadata           TEXT NOT NULL,      -- JSON object of strings
        created_at         INTEGER NOT NULL,
        in_progress_at     INTEGER,
        expires_at         INTEGER NOT NULL,
        finalizing_at      INTEGER,
        completed_at       INTEGER,
        failed_at          INTEGER,
        expired_at         INTEGER,
        cancelling_at      INTEGER,
        cancelled_at       INTEGER
      ) STRICT;
      CREATE INDEX batches_by_tenant ON batches (tenant_id, created_at, id);
      CREATE INDEX batches_by_status ON batches (status, created_at, id);
    `,
  },
  {
    version: 9,
    name: 'stored data per tenant (quotas), files on disk, finished jobs by end time',
    sql: `
      -- What each tenant keeps stored (quotas, src/metering/storage-quotas.ts): rows and bytes of
      -- files, jobs (request bodies) and feedback, kept by the triggers below in the same
      -- transaction as the write, so a quota check is one primary-key read.
      CREATE TABLE tenant_storage (
        tenant_id   TEXT PRIMARY KEY,
        files       INTEGER NOT NULL DEFAULT 0,
        file_bytes  INTEGER NOT NULL DEFAULT 0,
        jobs        INTEGER NOT NULL DEFAULT 0,
        job_bytes   INTEGER NOT NULL DEFAULT 0,
        feedback    INTEGER NOT NULL DEFAULT 0
      ) STRICT;
      INSERT INTO tenant_storage (tenant_id, files, file_bytes)
        SELECT tenant_id, COUNT(*), SUM(bytes) FROM files GROUP BY tenant_id;
      INSERT INTO tenant_storage (tenant_id, jobs, job_bytes)
        SELECT tenant_id, COUNT(*), SUM(octet_length(body)) FROM jobs WHERE true GROUP BY tenant_id
        ON CONFLICT (tenant_id) DO UPDATE SET jobs = excluded.jobs, job_bytes = excluded.job_bytes;
      INSERT INTO tenant_storage (tenant_id, feedback)
        SELECT tenant_id, COUNT(*) FROM feedback WHERE true GROUP BY tenant_id
        ON CONFLICT (tenant_id) DO UPDATE SET feedback = excluded.feedback;

      CREATE TRIGGER tenant_storage_files_insert AFTER INSERT ON files BEGIN
        INSERT INTO tenant_storage (tenant_id, files, file_bytes) VALUES (NEW.tenant_id, 1, NEW.bytes)
        ON CONFLICT (tenant_id) DO UPDATE SET files = files + 1, file_bytes = file_bytes + excluded.file_bytes;
      END;
      CREATE TRIGGER tenant_storage_files_delete AFTER DELETE ON files BEGIN
        UPDATE tenant_storage SET files = files - 1, file_bytes = file_bytes - OLD.bytes WHERE tenant_id = OLD.tenant_id;
      END;
      CREATE TRIGGER tenant_storage_jobs_insert AFTER INSERT ON jobs BEGIN
        INSERT INTO tenant_storage (tenant_id, jobs, job_bytes) VALUES (NEW.tenant_id, 1, octet_length(NEW.body))
        ON CONFLICT (tenant_id) DO UPDATE SET jobs = jobs + 1, job_bytes = job_bytes + excluded.job_bytes;
      END;
      CREATE TRIGGER tenant_storage_jobs_delete AFTER DELETE ON jobs BEGIN
        UPDATE tenant_storage SET jobs = jobs - 1, job_bytes = job_bytes - octet_length(OLD.body) WHERE tenant_id = OLD.tenant_id;
      END;
      -- An upsert that updates an existing verdict is no insert: it fires no INSERT trigger.
      CREATE TRIGGER tenant_storage_feedback_insert AFTER INSERT ON feedback BEGIN
        INSERT INTO tenant_storage (tenant_id, feedback) VALUES (NEW.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET feedback = feedback + 1;
      END;
      CREATE TRIGGER tenant_storage_feedback_delete AFTER DELETE ON feedback BEGIN
        UPDATE tenant_storage SET feedback = feedback - 1 WHERE tenant_id = OLD.tenant_id;
      END;

      -- A file's bytes: 'db' in the content column (files written before this migration), 'disk'
      -- in a file of the storage folder named by its id (content then is an empty blob), so
      -- deleting a file gives its space back at once instead of leaving free pages in the database.
      ALTER TABLE files ADD COLUMN location TEXT NOT NULL DEFAULT 'db' CHECK (location IN ('db', 'disk'));

      -- Finished jobs by end time: the retention sweep (jobs.retentionMs).
      CREATE INDEX jobs_finished ON jobs (finished_at) WHERE status IN ('succeeded', 'failed', 'cancelled', 'expired');
    `,
  },
];
