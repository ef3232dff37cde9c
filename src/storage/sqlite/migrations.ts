/**
 * The SQLite schema, as an ordered list of numbered migrations (TypeScript strings, because tsc
 * does not copy .sql files into dist/). Rules:
 * - Append only. Never edit or renumber a migration that has shipped: databases in the field
 *   have applied it already and will not run it again.
 * - Versions are strictly increasing; each migration runs once, in its own transaction, and is
 *   recorded in `schema_migrations` (see database.ts).
 * - Statements that SQLite ignores inside a transaction (`PRAGMA foreign_keys`, `VACUUM`) do not
 *   belong here; change a table's constraints with SQLite's create-copy-drop-rename procedure.
 */

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
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
];
