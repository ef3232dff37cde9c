/**
 * The SQLite migrations of what serving requests stores: tenants, API keys, kill switches and
 * policy overrides, idempotency keys, the usage ledger and its hourly roll-ups, the request log,
 * the semantic cache, and routing's flags, feedback and shadow pairs. Merged in version order
 * with the async jobs' (jobs.ts) by src/storage/sqlite/migrations.ts, whose rules they follow.
 */
import type { Migration } from '../../migration-list.js';

export const REQUEST_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'tenants and api keys',
    sql: `
      CREATE TABLE tenants (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        tier        TEXT NOT NULL,
        metadata    TEXT NOT NULL DEFAULT '{}',  -- JSON object
        created_at  INTEGER NOT NULL             -- epoch ms
      ) STRICT;
      CREATE INDEX tenants_by_created ON tenants (created_at, id);

      -- No foreign key to tenants: deleting a tenant revokes its keys but keeps them, so the
      -- ledger and audit trail can still name them. createKey checks the tenant exists.
      CREATE TABLE api_keys (
        id              TEXT PRIMARY KEY,
        tenant_id       TEXT NOT NULL,
        name            TEXT NOT NULL,
        kind            TEXT NOT NULL CHECK (kind IN ('api', 'admin')),
        prefix          TEXT NOT NULL,
        hash            TEXT NOT NULL UNIQUE,    -- sha256 hex of the secret
        tier            TEXT NOT NULL,
        allowed_models  TEXT,                    -- JSON array, NULL = every model of the tier
        user_id         TEXT,
        created_at      INTEGER NOT NULL,
        expires_at      INTEGER,
        revoked_at      INTEGER,
        last_used_at    INTEGER
      ) STRICT;
      CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, created_at, id);
      CREATE INDEX api_keys_by_created ON api_keys (created_at, id);
    `,
  },
  {
    version: 2,
    name: 'usage events',
    sql: `
      -- One row per request (or job), written once: request_id is the idempotency key.
      -- Token counts, pico-dollar amounts and times are integers; cost sums stay exact.
      CREATE TABLE usage_events (
        request_id         TEXT PRIMARY KEY,
        ts                 INTEGER NOT NULL,   -- epoch ms when the request arrived
        tenant_id          TEXT NOT NULL,
        key_id             TEXT NOT NULL,
        user_id            TEXT NOT NULL,      -- '' when unknown
        route              TEXT NOT NULL,
        requested_model    TEXT NOT NULL,
        served_model       TEXT NOT NULL,      -- '' when no model served it
        deployment         TEXT NOT NULL,
        prompt_tokens      INTEGER NOT NULL,
        completion_tokens  INTEGER NOT NULL,
        cached_tokens      INTEGER NOT NULL,
        cost_pico          INTEGER NOT NULL,
        saved_pico         INTEGER NOT NULL,
        latency_ms         INTEGER NOT NULL,
        ttft_ms            INTEGER,            -- NULL unless streamed
        cache              TEXT NOT NULL,
        status             INTEGER NOT NULL,
        attempts           INTEGER NOT NULL,
        usage_reported     INTEGER NOT NULL    -- 0/1
      ) STRICT;
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
        id          TEXT PRIMARY KEY,
        scope       TEXT NOT NULL CHECK (scope IN ('global', 'tenant', 'key', 'model', 'provider')),
        target      TEXT NOT NULL,             -- tenant id, key id, model, provider id; '' = global
        reason      TEXT NOT NULL,
        created_by  TEXT,
        created_at  INTEGER NOT NULL,          -- epoch ms
        UNIQUE (scope, target)
      ) STRICT;
      CREATE INDEX kill_switches_by_created ON kill_switches (created_at, id);

      -- Run-time overrides of the tier's limits and budgets (JSON object, NULL = none).
      ALTER TABLE tenants ADD COLUMN policy TEXT;
      ALTER TABLE api_keys ADD COLUMN policy TEXT;
    `,
  },
  {
    version: 4,
    name: 'idempotency keys',
    sql: `
      -- POSTs sent with an Idempotency-Key: one row per (scope, key) while it runs, then its
      -- final answer until it expires. scope is the sha256 of the caller's credential.
      CREATE TABLE idempotency_keys (
        scope            TEXT NOT NULL,
        idempotency_key  TEXT NOT NULL,
        body_hash        TEXT NOT NULL,      -- sha256 of method, path and body bytes
        state            TEXT NOT NULL CHECK (state IN ('in_progress', 'done')),
        created_at       INTEGER NOT NULL,   -- epoch ms of the first begin
        ttl_ms           INTEGER NOT NULL,
        expires_at       INTEGER NOT NULL,   -- lease end while in progress; created_at + ttl_ms once done
        status           INTEGER,            -- the stored answer (NULL while in progress)
        headers          TEXT,               -- JSON object
        trailers         TEXT,               -- JSON object
        body             BLOB,
        PRIMARY KEY (scope, idempotency_key)
      ) STRICT;
      CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys (expires_at);
    `,
  },
  {
    version: 5,
    name: 'semantic cache',
    sql: `
      -- Semantic cache entries: a question's embedding and the answer given to it. The
      -- in-process vector index is rebuilt from this table at start (scan by created_at, id).
      CREATE TABLE semantic_cache (
        id          TEXT PRIMARY KEY,          -- <tenant>/<route>/<uuid>
        scope       TEXT NOT NULL,             -- hash of what must match besides the meaning
        tenant_id   TEXT NOT NULL,
        route       TEXT NOT NULL,
        embedder    TEXT NOT NULL,             -- Embedder.id that made the vector
        question    TEXT NOT NULL,
        vector      BLOB NOT NULL,             -- Float32Array bytes, native order (little-endian)
        answer      TEXT NOT NULL,             -- serialized CachedAnswer
        created_at  INTEGER NOT NULL,          -- epoch ms
        expires_at  INTEGER NOT NULL,          -- epoch ms
        threshold   REAL                       -- learned per-entry threshold; NULL = the route's
      ) STRICT;
      CREATE INDEX semantic_cache_by_created ON semantic_cache (created_at, id);
      CREATE INDEX semantic_cache_by_tenant ON semantic_cache (tenant_id, route);
      CREATE INDEX semantic_cache_by_expiry ON semantic_cache (expires_at);
    `,
  },
  {
    version: 6,
    name: 'routing: flags, flag audit, feedback, shadow pairs; tier and experiment in the ledger',
    sql: `
      -- Feature flags (src/routing/flags.ts): targeting and effect are JSON objects.
      CREATE TABLE flags (
        name         TEXT PRIMARY KEY,
        description  TEXT NOT NULL DEFAULT '',
        enabled      INTEGER NOT NULL,           -- 0 | 1
        targeting    TEXT NOT NULL,              -- JSON FlagTargeting
        effect       TEXT NOT NULL,              -- JSON FlagEffect
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL,
        updated_by   TEXT NOT NULL               -- admin key id
      ) STRICT;
      -- Who changed which flag, when, from what to what (append only).
      CREATE TABLE flag_audit (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        flag    TEXT NOT NULL,
        action  TEXT NOT NULL CHECK (action IN ('create', 'update', 'delete')),
        before  TEXT,                            -- JSON Flag, NULL on create
        after   TEXT,                            -- JSON Flag, NULL on delete
        actor   TEXT NOT NULL,
        at      INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX flag_audit_by_flag ON flag_audit (flag, id);
      -- Client feedback (POST /v1/feedback): the latest verdict per request.
      CREATE TABLE feedback (
        tenant_id   TEXT NOT NULL,
        request_id  TEXT NOT NULL,
        rating      INTEGER NOT NULL,            -- 1 good, 0 bad
        comment     TEXT NOT NULL DEFAULT '',
        created_at  INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, request_id)
      ) STRICT;
      CREATE INDEX feedback_by_created ON feedback (created_at);
      -- Shadow traffic: a request's answer and its candidate's, side by side.
      CREATE TABLE shadow_pairs (
        request_id          TEXT PRIMARY KEY,
        ts                  INTEGER NOT NULL,
        tenant_id           TEXT NOT NULL,
        route               TEXT NOT NULL,
        primary_model       TEXT NOT NULL,
        shadow_model        TEXT NOT NULL,
        primary_latency_ms  INTEGER NOT NULL,
        shadow_latency_ms   INTEGER NOT NULL,
        primary_prompt_tokens      INTEGER NOT NULL,
        primary_completion_tokens  INTEGER NOT NULL,
        shadow_prompt_tokens       INTEGER NOT NULL,
        shadow_completion_tokens   INTEGER NOT NULL,
        primary_cost_pico   INTEGER NOT NULL,
        shadow_cost_pico    INTEGER NOT NULL,
        similarity          REAL,                -- NULL when the shadow failed
        shadow_status       INTEGER NOT NULL,    -- 200, or the failure's status
        error               TEXT NOT NULL DEFAULT ''
      ) STRICT;
      CREATE INDEX shadow_pairs_by_route ON shadow_pairs (route, shadow_model, ts);
      -- Which route tier, experiment and variant served each request ('' = none).
      ALTER TABLE usage_events ADD COLUMN tier TEXT NOT NULL DEFAULT '';
      ALTER TABLE usage_events ADD COLUMN experiment TEXT NOT NULL DEFAULT '';
      ALTER TABLE usage_events ADD COLUMN variant TEXT NOT NULL DEFAULT '';
      CREATE INDEX usage_events_by_experiment ON usage_events (experiment, ts) WHERE experiment <> '';
    `,
  },
  {
    version: 8,
    name: 'request log',
    sql: `
      -- One row of metadata per request (GET /admin/v1/requests), pruned after requestLog.retentionDays.
      -- Listed newest first, by (ts, id); the indexes serve the all-tenants and one-tenant listings.
      CREATE TABLE request_log (
        id                 TEXT PRIMARY KEY,
        request_id         TEXT NOT NULL,
        ts                 INTEGER NOT NULL,          -- epoch ms, arrival
        tenant_id          TEXT,
        key_id             TEXT,
        user_id            TEXT,
        route              TEXT NOT NULL,
        requested_model    TEXT NOT NULL,
        served_model       TEXT,
        deployment         TEXT,
        tier               TEXT,
        status             INTEGER NOT NULL,
        error_code         TEXT,
        cache              TEXT NOT NULL,
        latency_ms         REAL NOT NULL,
        ttft_ms            REAL,
        upstream_ms        REAL NOT NULL,
        attempts           INTEGER NOT NULL,
        prompt_tokens      INTEGER NOT NULL,
        completion_tokens  INTEGER NOT NULL,
        cost_pico          INTEGER NOT NULL,
        stream             INTEGER NOT NULL,          -- 0 | 1
        trace_id           TEXT,
        job_id             TEXT,
        prompt             TEXT,                      -- redacted, opted-in tenants only
        answer             TEXT
      ) STRICT;
      CREATE INDEX request_log_by_ts ON request_log (ts, id);
      CREATE INDEX request_log_by_tenant ON request_log (tenant_id, ts, id);
    `,
  },
  {
    version: 10,
    name: 'semantic cache: fair shares per tenant (last use, entries per tenant)',
    sql: `
      -- Order of last use within the tenant (put or a get that found it; larger = more recent): a
      -- tenant over cache.semantic.maxEntriesPerTenant evicts its lowest (src/storage/sqlite/semantic-cache.ts).
      -- (The semantic store of distributed mode is Redis: PostgreSQL has no such table.)
      ALTER TABLE semantic_cache ADD COLUMN last_use INTEGER NOT NULL DEFAULT 0;
      UPDATE semantic_cache SET last_use = created_at;
      CREATE INDEX semantic_cache_by_tenant_use ON semantic_cache (tenant_id, last_use);
      -- Entries per tenant, kept by the triggers below in the same transaction as the write.
      CREATE TABLE semantic_cache_tenants (
        tenant_id  TEXT PRIMARY KEY,
        entries    INTEGER NOT NULL
      ) STRICT;
      INSERT INTO semantic_cache_tenants (tenant_id, entries)
        SELECT tenant_id, COUNT(*) FROM semantic_cache GROUP BY tenant_id;
      CREATE TRIGGER semantic_cache_tenants_insert AFTER INSERT ON semantic_cache BEGIN
        INSERT INTO semantic_cache_tenants (tenant_id, entries) VALUES (NEW.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET entries = entries + 1;
      END;
      CREATE TRIGGER semantic_cache_tenants_delete AFTER DELETE ON semantic_cache BEGIN
        UPDATE semantic_cache_tenants SET entries = entries - 1 WHERE tenant_id = OLD.tenant_id;
        DELETE FROM semantic_cache_tenants WHERE tenant_id = OLD.tenant_id AND entries <= 0;
      END;
    `,
  },
  {
    version: 11,
    name: 'ledger: hourly roll-ups of usage events past the detail retention',
    sql: `
      -- One row per UTC hour, tenant, key, end user, route, requested and served model: the sums
      -- of the usage events of that hour once they are past ledger.detailRetentionDays
      -- (src/metering/usage-rollup.ts). Reports, budgets and the dashboard read both tables.
      CREATE TABLE usage_rollups (
        hour               INTEGER NOT NULL,   -- epoch ms of the hour's start (UTC)
        tenant_id          TEXT NOT NULL,
        key_id             TEXT NOT NULL,
        user_id            TEXT NOT NULL,      -- '' when unknown
        route              TEXT NOT NULL,
        requested_model    TEXT NOT NULL,
        served_model       TEXT NOT NULL,      -- '' when no model served it
        requests           INTEGER NOT NULL,
        errors             INTEGER NOT NULL,   -- status >= 400
        prompt_tokens      INTEGER NOT NULL,
        completion_tokens  INTEGER NOT NULL,
        cached_tokens      INTEGER NOT NULL,
        cost_pico          INTEGER NOT NULL,
        saved_pico         INTEGER NOT NULL,
        latency_ms         INTEGER NOT NULL,   -- sum over the requests
        streams            INTEGER NOT NULL,   -- requests with a time to first token
        ttft_ms            INTEGER NOT NULL,   -- sum over the streams
        cache_hits         INTEGER NOT NULL    -- answered from the cache: hit, semantic, stale
      ) STRICT;
      -- A rowid table: its other indexes then carry a rowid, not the whole 7-column key (~25% smaller).
      CREATE UNIQUE INDEX usage_rollups_by_hour ON usage_rollups (hour, tenant_id, key_id, user_id, route, requested_model, served_model);
      CREATE INDEX usage_rollups_by_tenant ON usage_rollups (tenant_id, hour);
      CREATE INDEX usage_rollups_by_key ON usage_rollups (key_id, hour);
      CREATE INDEX usage_rollups_by_user ON usage_rollups (user_id, hour);

      -- A usage event deleted is folded into its hour's roll-up by the same statement: deleting
      -- detail (the roll-up job: DELETE of the oldest events) never changes a total, a crash
      -- leaves both or neither, and an event (deleted once) is never counted twice.
      CREATE TRIGGER usage_events_roll_up AFTER DELETE ON usage_events BEGIN
        INSERT INTO usage_rollups (hour, tenant_id, key_id, user_id, route, requested_model, served_model,
            requests, errors, prompt_tokens, completion_tokens, cached_tokens, cost_pico, saved_pico,
            latency_ms, streams, ttft_ms, cache_hits)
          VALUES (OLD.ts - ((OLD.ts % 3600000) + 3600000) % 3600000, OLD.tenant_id, OLD.key_id, OLD.user_id, OLD.route,
            OLD.requested_model, OLD.served_model, 1, OLD.status >= 400, OLD.prompt_tokens, OLD.completion_tokens,
            OLD.cached_tokens, OLD.cost_pico, OLD.saved_pico, OLD.latency_ms, OLD.ttft_ms IS NOT NULL,
            COALESCE(OLD.ttft_ms, 0), OLD.cache IN ('hit', 'semantic', 'stale'))
        ON CONFLICT (hour, tenant_id, key_id, user_id, route, requested_model, served_model) DO UPDATE SET
          requests = requests + 1,
          errors = errors + excluded.errors,
          prompt_tokens = prompt_tokens + excluded.prompt_tokens,
          completion_tokens = completion_tokens + excluded.completion_tokens,
          cached_tokens = cached_tokens + excluded.cached_tokens,
          cost_pico = cost_pico + excluded.cost_pico,
          saved_pico = saved_pico + excluded.saved_pico,
          latency_ms = latency_ms + excluded.latency_ms,
          streams = streams + excluded.streams,
          ttft_ms = ttft_ms + excluded.ttft_ms,
          cache_hits = cache_hits + excluded.cache_hits;
      END;
    `,
  },
];
