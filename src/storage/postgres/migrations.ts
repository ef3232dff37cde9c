/**
 * The PostgreSQL schema, as an ordered list of numbered migrations (TypeScript strings, because tsc
 * does not copy .sql files into dist/). Same rules as the SQLite list (src/storage/sqlite/migrations.ts):
 * - Append only. Never edit or renumber a migration that has shipped.
 * - Versions are strictly increasing; each runs once, in its own transaction, under an advisory
 *   lock, and is recorded in `schema_migrations` (see database.ts). Several gateway processes
 *   starting at once apply each migration exactly once.
 * - No `CREATE INDEX CONCURRENTLY` (it cannot run inside a transaction).
 * Conventions: epoch ms and pico-dollar amounts are BIGINT (they exceed int32); ids and the text we
 * group and sort by use COLLATE "C" so listings sort byte-wise, exactly like SQLite; JSON is `json`
 * (kept as written, like SQLite's TEXT) rather than `jsonb` (which reorders keys).
 */

export interface PostgresMigration {
  version: number;
  name: string;
  sql: string;
}

export const POSTGRES_MIGRATIONS: readonly PostgresMigration[] = [
  {
    version: 1,
    name: 'tenants and api keys',
    sql: `
      CREATE TABLE tenants (
        id          TEXT COLLATE "C" PRIMARY KEY,
        name        TEXT NOT NULL,
        tier        TEXT NOT NULL,
        metadata    JSON NOT NULL DEFAULT '{}',
        created_at  BIGINT NOT NULL              -- epoch ms
      );
      CREATE INDEX tenants_by_created ON tenants (created_at, id);

      -- No foreign key to tenants: deleting a tenant revokes its keys but keeps them, so the
      -- ledger and audit trail can still name them. createKey checks the tenant exists.
      CREATE TABLE api_keys (
        id              TEXT COLLATE "C" PRIMARY KEY,
        tenant_id       TEXT COLLATE "C" NOT NULL,
        name            TEXT NOT NULL,
        kind            TEXT NOT NULL CHECK (kind IN ('api', 'admin')),
        prefix          TEXT NOT NULL,
        hash            TEXT NOT NULL,           -- sha256 hex of the secret
        tier            TEXT NOT NULL,
        allowed_models  JSON,                    -- array, NULL = every model of the tier
        user_id         TEXT,
        created_at      BIGINT NOT NULL,
        expires_at      BIGINT,
        revoked_at      BIGINT,
        last_used_at    BIGINT,
        CONSTRAINT api_keys_hash_unique UNIQUE (hash)
      );
      CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, created_at, id);
      CREATE INDEX api_keys_by_created ON api_keys (created_at, id);
    `,
  },
  {
    version: 2,
    name: 'usage events',
    sql: `
      -- One row per request (or job), written once: request_id is the idempotency key.
      CREATE TABLE usage_events (
        request_id         TEXT COLLATE "C" PRIMARY KEY,
        ts                 BIGINT NOT NULL,      -- epoch ms when the request arrived
        tenant_id          TEXT COLLATE "C" NOT NULL,
        key_id             TEXT COLLATE "C" NOT NULL,
        user_id            TEXT COLLATE "C" NOT NULL,   -- '' when unknown
        route              TEXT COLLATE "C" NOT NULL,
        requested_model    TEXT COLLATE "C" NOT NULL,
        served_model       TEXT COLLATE "C" NOT NULL,   -- '' when no model served it
        deployment         TEXT NOT NULL,
        prompt_tokens      BIGINT NOT NULL,
        completion_tokens  BIGINT NOT NULL,
        cached_tokens      BIGINT NOT NULL,
        cost_pico          BIGINT NOT NULL,
        saved_pico         BIGINT NOT NULL,
        latency_ms         BIGINT NOT NULL,
        ttft_ms            BIGINT,               -- NULL unless streamed
        cache              TEXT NOT NULL,
        status             INTEGER NOT NULL,
        attempts           INTEGER NOT NULL,
        usage_reported     BOOLEAN NOT NULL
      );
      CREATE INDEX usage_events_by_tenant ON usage_events (tenant_id, ts);
      CREATE INDEX usage_events_by_key ON usage_events (key_id, ts);
      CREATE INDEX usage_events_by_user ON usage_events (user_id, ts);
      CREATE INDEX usage_events_by_ts ON usage_events (ts);
    `,
  },
  {
    version: 3,
    name: 'kill switches and policy overrides',
    sql: `
      -- Operators' switches that refuse traffic. One per scope and target ('' for global).
      CREATE TABLE kill_switches (
        id          TEXT COLLATE "C" PRIMARY KEY,
        scope       TEXT COLLATE "C" NOT NULL CHECK (scope IN ('global', 'tenant', 'key', 'model', 'provider')),
        target      TEXT COLLATE "C" NOT NULL,   -- tenant id, key id, model, provider id; '' = global
        reason      TEXT NOT NULL,
        created_by  TEXT,
        created_at  BIGINT NOT NULL,             -- epoch ms
        CONSTRAINT kill_switches_scope_target_unique UNIQUE (scope, target)
      );
      CREATE INDEX kill_switches_by_created ON kill_switches (created_at, id);

      -- Run-time overrides of the tier's limits and budgets (JSON object, NULL = none).
      ALTER TABLE tenants ADD COLUMN policy JSON;
      ALTER TABLE api_keys ADD COLUMN policy JSON;
    `,
  },
  {
    version: 4,
    name: 'idempotency keys',
    sql: `
      -- POSTs sent with an Idempotency-Key: one row per (scope, key) while it runs, then its
      -- final answer until it expires. scope is the sha256 of the caller's credential.
      CREATE TABLE idempotency_keys (
        scope            TEXT COLLATE "C" NOT NULL,
        idempotency_key  TEXT COLLATE "C" NOT NULL,
        body_hash        TEXT NOT NULL,      -- sha256 of method, path and body bytes
        state            TEXT NOT NULL CHECK (state IN ('in_progress', 'done')),
        created_at       BIGINT NOT NULL,    -- epoch ms of the first begin
        ttl_ms           BIGINT NOT NULL,
        expires_at       BIGINT NOT NULL,    -- lease end while in progress; created_at + ttl_ms once done
        status           INTEGER,            -- the stored answer (NULL while in progress)
        headers          JSON,
        trailers         JSON,
        body             BYTEA,
        PRIMARY KEY (scope, idempotency_key)
      );
      CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys (expires_at);
    `,
  },
{
    version: 5,
    name: 'routing: flags, flag audit, feedback, shadow pairs; tier and experiment in the ledger',
    sql: `
      CREATE TABLE flags (
        name         TEXT COLLATE "C" PRIMARY KEY,
        description  TEXT NOT NULL DEFAULT '',
        enabled      BOOLEAN NOT NULL,
        targeting    JSON NOT NULL,
        effect       JSON NOT NULL,
        created_at   BIGINT NOT NULL,
        updated_at   BIGINT NOT NULL,
        updated_by   TEXT NOT NULL
      );
      CREATE TABLE flag_audit (
        id      BIGSERIAL PRIMARY KEY,
        flag    TEXT COLLATE "C" NOT NULL,
        action  TEXT NOT NULL CHECK (action IN ('create', 'update', 'delete')),
        before  JSON,
        after   JSON,
        actor   TEXT NOT NULL,
        at      BIGINT NOT NULL
      );
      CREATE INDEX flag_audit_by_flag ON flag_audit (flag, id);
      CREATE TABLE feedback (
        tenant_id   TEXT COLLATE "C" NOT NULL,
        request_id  TEXT COLLATE "C" NOT NULL,
        rating      SMALLINT NOT NULL,
        comment     TEXT NOT NULL DEFAULT '',
        created_at  BIGINT NOT NULL,
        PRIMARY KEY (tenant_id, request_id)
      );
      CREATE INDEX feedback_by_created ON feedback (created_at);
      CREATE TABLE shadow_pairs (
        request_id          TEXT COLLATE "C" PRIMARY KEY,
        ts                  BIGINT NOT NULL,
        tenant_id           TEXT COLLATE "C" NOT NULL,
        route               TEXT COLLATE "C" NOT NULL,
        primary_model       TEXT NOT NULL,
        shadow_model        TEXT COLLATE "C" NOT NULL,
        primary_latency_ms  BIGINT NOT NULL,
        shadow_latency_ms   BIGINT NOT NULL,
        primary_prompt_tokens      BIGINT NOT NULL,
        primary_completion_tokens  BIGINT NOT NULL,
        shadow_prompt_tokens       BIGINT NOT NULL,
        shadow_completion_tokens   BIGINT NOT NULL,
        primary_cost_pico   BIGINT NOT NULL,
        shadow_cost_pico    BIGINT NOT NULL,
        similarity          DOUBLE PRECISION,
        shadow_status       INTEGER NOT NULL,
        error               TEXT NOT NULL DEFAULT ''
      );
      CREATE INDEX shadow_pairs_by_route ON shadow_pairs (route, shadow_model, ts);
      ALTER TABLE usage_events ADD COLUMN tier TEXT COLLATE "C" NOT NULL DEFAULT '';
      ALTER TABLE usage_events ADD COLUMN experiment TEXT COLLATE "C" NOT NULL DEFAULT '';
      ALTER TABLE usage_events ADD COLUMN variant TEXT COLLATE "C" NOT NULL DEFAULT '';
      CREATE INDEX usage_events_by_experiment ON usage_events (experiment, ts) WHERE experiment <> '';
    `,
  },
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
    version: 7,
    name: 'request log',
    sql: `
      -- One row of metadata per request (GET /admin/v1/requests), pruned after requestLog.retentionDays.
      -- Listed newest first, by (ts, id); the indexes serve the all-tenants and one-tenant listings.
      CREATE TABLE request_log (
        id                 TEXT COLLATE "C" PRIMARY KEY,
        request_id         TEXT NOT NULL,
        ts                 BIGINT NOT NULL,           -- epoch ms, arrival
        tenant_id          TEXT COLLATE "C",
        key_id             TEXT COLLATE "C",
        user_id            TEXT,
        route              TEXT NOT NULL,
        requested_model    TEXT NOT NULL,
        served_model       TEXT,
        deployment         TEXT,
        tier               TEXT,
        status             INTEGER NOT NULL,
        error_code         TEXT,
        cache              TEXT NOT NULL,
        latency_ms         DOUBLE PRECISION NOT NULL,
        ttft_ms            DOUBLE PRECISION,
        upstream_ms        DOUBLE PRECISION NOT NULL,
        attempts           INTEGER NOT NULL,
        prompt_tokens      INTEGER NOT NULL,
        completion_tokens  INTEGER NOT NULL,
        cost_pico          BIGINT NOT NULL,
        stream             BOOLEAN NOT NULL,
        trace_id           TEXT,
        job_id             TEXT,
        prompt             TEXT,                      -- redacted, opted-in tenants only
        answer             TEXT
      );
      CREATE INDEX request_log_by_ts ON request_log (ts, id);
      CREATE INDEX request_log_by_tenant ON request_log (tenant_id, ts, id);
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
  {
    version: 10,
    name: 'ledger: hourly roll-ups of usage events past the detail retention',
    sql: `
      -- One row per UTC hour, tenant, key, end user, route, requested and served model: the sums
      -- of the usage events of that hour once they are past ledger.detailRetentionDays
      -- (src/metering/usage-rollup.ts). Reports, budgets and the dashboard read both tables.
      CREATE TABLE usage_rollups (
        hour               BIGINT NOT NULL,             -- epoch ms of the hour's start (UTC)
        tenant_id          TEXT COLLATE "C" NOT NULL,
        key_id             TEXT COLLATE "C" NOT NULL,
        user_id            TEXT COLLATE "C" NOT NULL,   -- '' when unknown
        route              TEXT COLLATE "C" NOT NULL,
        requested_model    TEXT COLLATE "C" NOT NULL,
        served_model       TEXT COLLATE "C" NOT NULL,   -- '' when no model served it
        requests           BIGINT NOT NULL,
        errors             BIGINT NOT NULL,             -- status >= 400
        prompt_tokens      BIGINT NOT NULL,
        completion_tokens  BIGINT NOT NULL,
        cached_tokens      BIGINT NOT NULL,
        cost_pico          BIGINT NOT NULL,
        saved_pico         BIGINT NOT NULL,
        latency_ms         BIGINT NOT NULL,             -- sum over the requests
        streams            BIGINT NOT NULL,             -- requests with a time to first token
        ttft_ms            BIGINT NOT NULL,             -- sum over the streams
        cache_hits         BIGINT NOT NULL,             -- answered from the cache: hit, semantic, stale
        PRIMARY KEY (hour, tenant_id, key_id, user_id, route, requested_model, served_model)
      );
      CREATE INDEX usage_rollups_by_tenant ON usage_rollups (tenant_id, hour);
      CREATE INDEX usage_rollups_by_key ON usage_rollups (key_id, hour);
      CREATE INDEX usage_rollups_by_user ON usage_rollups (user_id, hour);

      -- Usage events deleted are folded into their hours' roll-ups by the same statement: deleting
      -- detail (the roll-up job: DELETE of the oldest events) never changes a total, a crash
      -- leaves both or neither, and an event (deleted by one transaction only) is never counted
      -- twice. Rows in key order, so two statements upserting the same roll-ups lock them in the
      -- same order. (TRUNCATE fires no DELETE trigger: it empties events without rolling them up.)
      CREATE FUNCTION usage_events_roll_up() RETURNS trigger LANGUAGE plpgsql AS $fn$
      BEGIN
        INSERT INTO usage_rollups AS r (hour, tenant_id, key_id, user_id, route, requested_model, served_model,
            requests, errors, prompt_tokens, completion_tokens, cached_tokens, cost_pico, saved_pico,
            latency_ms, streams, ttft_ms, cache_hits)
          SELECT ts - ((ts % 3600000) + 3600000) % 3600000, tenant_id, key_id, user_id, route, requested_model, served_model,
            COUNT(*), COUNT(*) FILTER (WHERE status >= 400), SUM(prompt_tokens), SUM(completion_tokens),
            SUM(cached_tokens), SUM(cost_pico), SUM(saved_pico), SUM(latency_ms), COUNT(ttft_ms),
            COALESCE(SUM(ttft_ms), 0), COUNT(*) FILTER (WHERE cache IN ('hit', 'semantic', 'stale'))
          FROM removed
          GROUP BY 1, 2, 3, 4, 5, 6, 7
          ORDER BY 1, 2, 3, 4, 5, 6, 7
        ON CONFLICT (hour, tenant_id, key_id, user_id, route, requested_model, served_model) DO UPDATE SET
          requests = r.requests + EXCLUDED.requests,
          errors = r.errors + EXCLUDED.errors,
          prompt_tokens = r.prompt_tokens + EXCLUDED.prompt_tokens,
          completion_tokens = r.completion_tokens + EXCLUDED.completion_tokens,
          cached_tokens = r.cached_tokens + EXCLUDED.cached_tokens,
          cost_pico = r.cost_pico + EXCLUDED.cost_pico,
          saved_pico = r.saved_pico + EXCLUDED.saved_pico,
          latency_ms = r.latency_ms + EXCLUDED.latency_ms,
          streams = r.streams + EXCLUDED.streams,
          ttft_ms = r.ttft_ms + EXCLUDED.ttft_ms,
          cache_hits = r.cache_hits + EXCLUDED.cache_hits;
        RETURN NULL;
      END
      $fn$;
      CREATE TRIGGER usage_events_roll_up AFTER DELETE ON usage_events
        REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION usage_events_roll_up();
    `,
  },
];
