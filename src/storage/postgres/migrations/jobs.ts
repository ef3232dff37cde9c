/**
 * The PostgreSQL migrations of async jobs: the queue and its webhook outbox, files (their bytes
 * in chunks) and batches, the stored data per tenant that storage quotas read, and the retention
 * sweep's index. Merged in version order with the request path's (requests.ts) by
 * src/storage/postgres/migrations.ts, whose rules and conventions they follow.
 */
import type { Migration } from '../../migration-list.js';

export const JOB_MIGRATIONS: readonly Migration[] = [
  {
    version: 6,
    name: 'jobs, webhook deliveries, files, batches',
    sql: `
      -- Async jobs (src/jobs/): the queue, its leases and the webhook outbox. seq is the insertion
      -- order (FIFO within a tenant, the cursor of listings).
      CREATE TABLE jobs (
        seq                BIGSERIAL PRIMARY KEY,
        id                 TEXT COLLATE "C" NOT NULL,
        tenant_id          TEXT COLLATE "C" NOT NULL,
        key_id             TEXT COLLATE "C" NOT NULL,
        user_id            TEXT COLLATE "C" NOT NULL,   -- '' when none
        kind               TEXT NOT NULL CHECK (kind IN ('chat', 'embeddings')),
        model              TEXT COLLATE "C" NOT NULL,
        body               JSON NOT NULL,
        priority           INTEGER NOT NULL,            -- lower runs first
        status             TEXT COLLATE "C" NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'expired')),
        webhook_url        TEXT,
        deadline_at        BIGINT,                      -- epoch ms
        metadata           JSON NOT NULL,               -- object of strings
        idempotency_key    TEXT COLLATE "C",
        batch_id           TEXT COLLATE "C",
        custom_id          TEXT,
        attempts           INTEGER NOT NULL DEFAULT 0,
        max_attempts       INTEGER NOT NULL,
        result             JSON,
        error              JSON,
        dead_lettered      BOOLEAN NOT NULL DEFAULT FALSE,
        cost_pico          BIGINT NOT NULL DEFAULT 0,
        prompt_tokens      BIGINT NOT NULL DEFAULT 0,
        completion_tokens  BIGINT NOT NULL DEFAULT 0,
        created_at         BIGINT NOT NULL,
        started_at         BIGINT,
        finished_at        BIGINT,
        run_after          BIGINT NOT NULL,             -- not claimable before (retry backoff)
        lease_owner        TEXT COLLATE "C",
        lease_until        BIGINT,
        webhook_state      TEXT CHECK (webhook_state IN ('pending', 'delivered', 'failed')),  -- NULL: no outbox entry
        webhook_attempts   INTEGER NOT NULL DEFAULT 0,
        webhook_next_at    BIGINT,
        CONSTRAINT jobs_id_unique UNIQUE (id)
      );
      CREATE UNIQUE INDEX jobs_by_idempotency_key ON jobs (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
      CREATE INDEX jobs_by_tenant ON jobs (tenant_id, seq);
      CREATE INDEX jobs_by_batch ON jobs (batch_id, seq) WHERE batch_id IS NOT NULL;
      -- The queue (claim, stats): in claim order and per tenant.
      CREATE INDEX jobs_queued ON jobs (priority, seq) INCLUDE (tenant_id, run_after, model, created_at) WHERE status = 'queued';
      CREATE INDEX jobs_queued_by_tenant ON jobs (tenant_id, priority, seq) INCLUDE (run_after, model) WHERE status = 'queued';
      -- Leases: running counts per tenant, leases that passed (take-over), stats.
      CREATE INDEX jobs_running ON jobs (lease_until) INCLUDE (tenant_id, priority, model) WHERE status = 'running';
      CREATE INDEX jobs_by_deadline ON jobs (deadline_at) WHERE status IN ('queued', 'running');
      CREATE INDEX jobs_webhooks_due ON jobs (webhook_next_at) WHERE webhook_state = 'pending';

      -- Every delivery attempt of a job's webhook (append only).
      CREATE TABLE webhook_deliveries (
        id           BIGSERIAL PRIMARY KEY,
        job_id       TEXT COLLATE "C" NOT NULL,
        attempt      INTEGER NOT NULL,
        at           BIGINT NOT NULL,
        status_code  INTEGER,                  -- NULL when no answer came
        error        TEXT NOT NULL,            -- '' when delivered
        duration_ms  BIGINT NOT NULL
      );
      CREATE INDEX webhook_deliveries_by_job ON webhook_deliveries (job_id, id);

      -- Uploaded and generated files (Batch API).
      CREATE TABLE files (
        id          TEXT COLLATE "C" PRIMARY KEY,
        tenant_id   TEXT COLLATE "C" NOT NULL,
        purpose     TEXT COLLATE "C" NOT NULL CHECK (purpose IN ('batch', 'batch_output')),
        filename    TEXT NOT NULL,
        bytes       BIGINT NOT NULL,
        created_at  BIGINT NOT NULL,
        expires_at  BIGINT,                    -- NULL = kept
        content     BYTEA NOT NULL
      );
      CREATE INDEX files_by_tenant ON files (tenant_id, created_at, id);
      CREATE INDEX files_by_expiry ON files (expires_at) WHERE expires_at IS NOT NULL;

      -- Batches (OpenAI's Batch API): one row each; its jobs carry batch_id.
      CREATE TABLE batches (
        id                 TEXT COLLATE "C" PRIMARY KEY,
        tenant_id          TEXT COLLATE "C" NOT NULL,
        key_id             TEXT COLLATE "C" NOT NULL,
        endpoint           TEXT NOT NULL,
        input_file_id      TEXT COLLATE "C" NOT NULL,
        completion_window  TEXT NOT NULL,
        status             TEXT COLLATE "C" NOT NULL CHECK (status IN ('validating', 'failed', 'in_progress', 'finalizing', 'completed', 'expired', 'cancelling', 'cancelled')),
        output_file_id     TEXT COLLATE "C",
        error_file_id      TEXT COLLATE "C",
        errors             JSON NOT NULL,      -- array of validation errors
        request_total      INTEGER NOT NULL,
        request_completed  INTEGER NOT NULL,
        request_failed     INTEGER NOT NULL,
        metadata           JSON NOT NULL,      -- object of strings
        created_at         BIGINT NOT NULL,
        in_progress_at     BIGINT,
        expires_at         BIGINT NOT NULL,
        finalizing_at      BIGINT,
        completed_at       BIGINT,
        failed_at          BIGINT,
        expired_at         BIGINT,
        cancelling_at      BIGINT,
        cancelled_at       BIGINT
      );
      CREATE INDEX batches_by_tenant ON batches (tenant_id, created_at, id);
      CREATE INDEX batches_by_status ON batches (status, created_at, id);
    `,
  },
  {
    version: 9,
    name: 'stored data per tenant (quotas), file contents in chunks, finished jobs by end time',
    sql: `
      -- What each tenant keeps stored (quotas, src/metering/storage-quotas.ts): rows and bytes of
      -- files, jobs (request bodies) and feedback, kept by the statement triggers below (one
      -- upsert per statement and tenant, in the statement's transaction).
      CREATE TABLE tenant_storage (
        tenant_id   TEXT COLLATE "C" PRIMARY KEY,
        files       BIGINT NOT NULL DEFAULT 0,
        file_bytes  BIGINT NOT NULL DEFAULT 0,
        jobs        BIGINT NOT NULL DEFAULT 0,
        job_bytes   BIGINT NOT NULL DEFAULT 0,
        feedback    BIGINT NOT NULL DEFAULT 0
      );
      INSERT INTO tenant_storage (tenant_id, files, file_bytes)
        SELECT tenant_id, COUNT(*), SUM(bytes) FROM files GROUP BY tenant_id;
      INSERT INTO tenant_storage AS s (tenant_id, jobs, job_bytes)
        SELECT tenant_id, COUNT(*), SUM(octet_length(body::text)) FROM jobs GROUP BY tenant_id
        ON CONFLICT (tenant_id) DO UPDATE SET jobs = excluded.jobs, job_bytes = excluded.job_bytes;
      INSERT INTO tenant_storage AS s (tenant_id, feedback)
        SELECT tenant_id, COUNT(*) FROM feedback GROUP BY tenant_id
        ON CONFLICT (tenant_id) DO UPDATE SET feedback = excluded.feedback;

      -- Added rows (an INSERT's transition table holds only the rows really inserted, not those an
      -- ON CONFLICT clause updated or skipped). Tenants in id order, so two statements lock the
      -- counters in the same order.
      CREATE FUNCTION tenant_storage_add() RETURNS trigger LANGUAGE plpgsql AS $fn$
      BEGIN
        IF TG_TABLE_NAME = 'files' THEN
          INSERT INTO tenant_storage AS s (tenant_id, files, file_bytes)
            SELECT tenant_id, COUNT(*), SUM(bytes) FROM added GROUP BY tenant_id ORDER BY tenant_id
            ON CONFLICT (tenant_id) DO UPDATE SET files = s.files + excluded.files, file_bytes = s.file_bytes + excluded.file_bytes;
        ELSIF TG_TABLE_NAME = 'jobs' THEN
          INSERT INTO tenant_storage AS s (tenant_id, jobs, job_bytes)
            SELECT tenant_id, COUNT(*), SUM(octet_length(body::text)) FROM added GROUP BY tenant_id ORDER BY tenant_id
            ON CONFLICT (tenant_id) DO UPDATE SET jobs = s.jobs + excluded.jobs, job_bytes = s.job_bytes + excluded.job_bytes;
        ELSE
          INSERT INTO tenant_storage AS s (tenant_id, feedback)
            SELECT tenant_id, COUNT(*) FROM added GROUP BY tenant_id ORDER BY tenant_id
            ON CONFLICT (tenant_id) DO UPDATE SET feedback = s.feedback + excluded.feedback;
        END IF;
        RETURN NULL;
      END
      $fn$;
      CREATE FUNCTION tenant_storage_remove() RETURNS trigger LANGUAGE plpgsql AS $fn$
      BEGIN
        PERFORM 1 FROM tenant_storage WHERE tenant_id IN (SELECT tenant_id FROM removed) ORDER BY tenant_id FOR UPDATE;
        IF TG_TABLE_NAME = 'files' THEN
          UPDATE tenant_storage s SET files = s.files - d.n, file_bytes = s.file_bytes - d.b
            FROM (SELECT tenant_id, COUNT(*) AS n, SUM(bytes) AS b FROM removed GROUP BY tenant_id) d WHERE s.tenant_id = d.tenant_id;
        ELSIF TG_TABLE_NAME = 'jobs' THEN
          UPDATE tenant_storage s SET jobs = s.jobs - d.n, job_bytes = s.job_bytes - d.b
            FROM (SELECT tenant_id, COUNT(*) AS n, SUM(octet_length(body::text)) AS b FROM removed GROUP BY tenant_id) d WHERE s.tenant_id = d.tenant_id;
        ELSE
          UPDATE tenant_storage s SET feedback = s.feedback - d.n
            FROM (SELECT tenant_id, COUNT(*) AS n FROM removed GROUP BY tenant_id) d WHERE s.tenant_id = d.tenant_id;
        END IF;
        RETURN NULL;
      END
      $fn$;
      CREATE TRIGGER files_storage_add AFTER INSERT ON files REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION tenant_storage_add();
      CREATE TRIGGER files_storage_remove AFTER DELETE ON files REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION tenant_storage_remove();
      CREATE TRIGGER jobs_storage_add AFTER INSERT ON jobs REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION tenant_storage_add();
      CREATE TRIGGER jobs_storage_remove AFTER DELETE ON jobs REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION tenant_storage_remove();
      CREATE TRIGGER feedback_storage_add AFTER INSERT ON feedback REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION tenant_storage_add();
      CREATE TRIGGER feedback_storage_remove AFTER DELETE ON feedback REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION tenant_storage_remove();

      -- A file's bytes in 1 MiB chunks, so an upload is written and read a chunk at a time (a
      -- bytea parameter is sent as text: a 100 MiB file in one value would take ~300 MiB of
      -- memory). Deleted with the file (same statement). Files written before: moved here.
      CREATE TABLE file_chunks (
        file_id  TEXT COLLATE "C" NOT NULL,
        seq      INTEGER NOT NULL,
        data     BYTEA NOT NULL,
        PRIMARY KEY (file_id, seq)
      );
      ALTER TABLE files ALTER COLUMN content DROP NOT NULL;
      INSERT INTO file_chunks (file_id, seq, data) SELECT id, 0, content FROM files WHERE octet_length(content) > 0;
      UPDATE files SET content = NULL WHERE content IS NOT NULL;

      -- Finished jobs by end time: the retention sweep (jobs.retentionMs).
      CREATE INDEX jobs_finished ON jobs (finished_at) WHERE status IN ('succeeded', 'failed', 'cancelled', 'expired');
    `,
  },
];
