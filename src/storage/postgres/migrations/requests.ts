/**
 * The PostgreSQL migrations of what serving requests stores: tenants, API keys, kill switches and
 * policy overrides, idempotency keys, the usage ledger and its hourly roll-ups, the request log,
 * and routing's flags, feedback and shadow pairs (the semantic cache of distributed mode is
 * Redis). Merged in version order with the async jobs' (jobs.ts) by
 * src/storage/postgres/migrations.ts, whose rules and conventions they follow.
 */
import type { Migration } from '../../migration-list.js';

export const REQUEST_MIGRATIONS: readonly Migration[] = [
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
