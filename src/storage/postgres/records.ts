/**
 * `Records` on PostgreSQL, with exactly the semantics of `SqliteRecords` (same contract suite).
 * Times come from the gateway's clock (`Date.now()`), not the server's, like every other adapter.
 * Read-modify-write methods run in a transaction that locks the row they change, so concurrent
 * gateway processes cannot lose each other's updates.
 */
import postgres from 'postgres';
import { type KeyRow as SharedKeyRow, type KillSwitchRow, type TenantRow as SharedTenantRow, DEFAULT_TENANT_TIER, KEY_PATCH_FIELDS, TENANT_PATCH_FIELDS, killSwitchConflict, newRecordId, pickDefined, rowToKey, rowToKillSwitch, rowToTenant } from '../record-helpers.js';
import { type ApiKeyRecord, type KeyListFilter, type KillSwitch, type NewApiKey, type NewKillSwitch, type NewTenant, type Records, type Tenant, RecordConflict, RecordNotFound } from '../types.js';
import { PostgresAdapter, type Sql } from './database.js';

type TenantRow = SharedTenantRow<unknown>;
type KeyRow = SharedKeyRow<unknown>;

type KeyPatch = Parameters<Records['updateKey']>[1];
type TenantPatch = Parameters<Records['updateTenant']>[1];
type JsonParam = Parameters<Sql['json']>[0];

export class PostgresRecords extends PostgresAdapter implements Records {
  async createTenant(t: NewTenant): Promise<Tenant> {
    const sql = this.sql;
    const id = t.id ?? newRecordId('ten_');
    try {
      const [row] = await sql<TenantRow[]>`
        INSERT INTO tenants (id, name, tier, metadata, created_at, policy)
        VALUES (${id}, ${t.name}, ${t.tier ?? DEFAULT_TENANT_TIER}, ${json(sql, t.metadata ?? {})}, ${Date.now()},
                ${nullableJson(sql, t.policy)})
        RETURNING *`;
      return toTenant(row!);
    } catch (err) {
      if (isUniqueViolation(err, 'tenants_pkey')) throw new RecordConflict(`tenant '${id}' already exists`);
      throw err;
    }
  }

  async getTenant(id: string): Promise<Tenant | null> {
    const [row] = await this.sql<TenantRow[]>`SELECT * FROM tenants WHERE id = ${id}`;
    return row ? toTenant(row) : null;
  }

  async listTenants(): Promise<Tenant[]> {
    const rows = await this.sql<TenantRow[]>`SELECT * FROM tenants ORDER BY created_at, id`;
    return rows.map(toTenant);
  }

  async updateTenant(id: string, patch: TenantPatch): Promise<Tenant> {
    return this.sql.begin(async (tx) => {
      const [current] = await tx<TenantRow[]>`SELECT * FROM tenants WHERE id = ${id} FOR UPDATE`;
      if (!current) throw new RecordNotFound('tenant', id);
      const next = { ...toTenant(current), ...pickDefined(patch, TENANT_PATCH_FIELDS) };
      const [row] = await tx<TenantRow[]>`
        UPDATE tenants
        SET name = ${next.name}, tier = ${next.tier}, metadata = ${json(this.sql, next.metadata)},
            policy = ${nullableJson(this.sql, next.policy)}
        WHERE id = ${id} RETURNING *`;
      return toTenant(row!);
    });
  }

  async deleteTenant(id: string): Promise<void> {
    await this.sql.begin(async (tx) => {
      const deleted = await tx`DELETE FROM tenants WHERE id = ${id} RETURNING id`;
      if (deleted.length === 0) throw new RecordNotFound('tenant', id);
      await tx`UPDATE api_keys SET revoked_at = ${Date.now()} WHERE tenant_id = ${id} AND revoked_at IS NULL`;
    });
  }

  async createKey(k: NewApiKey): Promise<ApiKeyRecord> {
    const id = k.id ?? newRecordId('key_');
    const allowed = k.allowedModels === null ? null : json(this.sql, k.allowedModels);
    return this.sql.begin(async (tx) => {
      // KEY SHARE: a concurrent deleteTenant waits for this key, then revokes it too.
      const [tenant] = await tx`SELECT 1 FROM tenants WHERE id = ${k.tenantId} FOR KEY SHARE`;
      if (!tenant) throw new RecordNotFound('tenant', k.tenantId);
      try {
        const [row] = await tx<KeyRow[]>`
          INSERT INTO api_keys (id, tenant_id, name, kind, prefix, hash, tier, allowed_models, user_id,
                                created_at, expires_at, revoked_at, last_used_at, policy)
          VALUES (${id}, ${k.tenantId}, ${k.name}, ${k.kind}, ${k.prefix}, ${k.hash}, ${k.tier}, ${allowed},
                  ${k.userId}, ${Date.now()}, ${k.expiresAt}, NULL, NULL, ${nullableJson(this.sql, k.policy)})
          RETURNING *`;
        return toKey(row!);
      } catch (err) {
        if (isUniqueViolation(err, 'api_keys_pkey')) throw new RecordConflict(`api key '${id}' already exists`);
        if (isUniqueViolation(err, 'api_keys_hash_unique')) throw new RecordConflict('an api key with this secret already exists');
        throw err;
      }
    });
  }

  async getKey(id: string): Promise<ApiKeyRecord | null> {
    const [row] = await this.sql<KeyRow[]>`SELECT * FROM api_keys WHERE id = ${id}`;
    return row ? toKey(row) : null;
  }

  async getKeyByHash(hash: string): Promise<ApiKeyRecord | null> {
    const [row] = await this.sql<KeyRow[]>`SELECT * FROM api_keys WHERE hash = ${hash}`;
    return row ? toKey(row) : null;
  }

  async listKeys(filter: KeyListFilter = {}): Promise<ApiKeyRecord[]> {
    const sql = this.sql;
    const rows = await sql<KeyRow[]>`
      SELECT * FROM api_keys
      WHERE TRUE
        ${filter.tenantId !== undefined ? sql`AND tenant_id = ${filter.tenantId}` : sql``}
        ${filter.includeRevoked ? sql`` : sql`AND revoked_at IS NULL`}
      ORDER BY created_at, id`;
    return rows.map(toKey);
  }

  async updateKey(id: string, patch: KeyPatch): Promise<ApiKeyRecord> {
    return this.sql.begin(async (tx) => {
      const [current] = await tx<KeyRow[]>`SELECT * FROM api_keys WHERE id = ${id} FOR UPDATE`;
      if (!current) throw new RecordNotFound('api key', id);
      const next = { ...toKey(current), ...pickDefined(patch, KEY_PATCH_FIELDS) };
      const allowed = next.allowedModels === null ? null : json(this.sql, next.allowedModels);
      const [row] = await tx<KeyRow[]>`
        UPDATE api_keys
        SET name = ${next.name}, tier = ${next.tier}, allowed_models = ${allowed}, user_id = ${next.userId},
            expires_at = ${next.expiresAt}, policy = ${nullableJson(this.sql, next.policy)}
        WHERE id = ${id} RETURNING *`;
      return toKey(row!);
    });
  }

  async revokeKey(id: string): Promise<ApiKeyRecord> {
    // Two statements on purpose: the SELECT takes a fresh snapshot, so a concurrent revoke that
    // won the race is seen with its time (revoking twice keeps the first time).
    await this.sql`UPDATE api_keys SET revoked_at = ${Date.now()} WHERE id = ${id} AND revoked_at IS NULL`;
    const key = await this.getKey(id);
    if (!key) throw new RecordNotFound('api key', id);
    return key;
  }

  /** Moves lastUsedAt forward only (settles may arrive out of order); unknown ids are ignored. */
  async touchKey(id: string, at: number): Promise<void> {
    await this.sql`
      UPDATE api_keys SET last_used_at = ${at}
      WHERE id = ${id} AND (last_used_at IS NULL OR last_used_at < ${at})`;
  }

  /** Counts keys that are not revoked (expired ones included), optionally of one kind. */
  async countKeys(filter: { kind?: ApiKeyRecord['kind'] } = {}): Promise<number> {
    const sql = this.sql;
    const [row] = await sql<{ n: number }[]>`
      SELECT COUNT(*) AS n FROM api_keys
      WHERE revoked_at IS NULL ${filter.kind !== undefined ? sql`AND kind = ${filter.kind}` : sql``}`;
    return row?.n ?? 0;
  }

  async createKillSwitch(s: NewKillSwitch): Promise<KillSwitch> {
    try {
      const [row] = await this.sql<KillSwitchRow[]>`
        INSERT INTO kill_switches (id, scope, target, reason, created_by, created_at)
        VALUES (${newRecordId('ks_')}, ${s.scope}, ${s.target}, ${s.reason}, ${s.createdBy ?? null}, ${Date.now()})
        RETURNING *`;
      return toKillSwitch(row!);
    } catch (err) {
      if (isUniqueViolation(err, 'kill_switches_scope_target_unique')) throw new RecordConflict(killSwitchConflict(s.scope, s.target));
      throw err;
    }
  }

  async listKillSwitches(): Promise<KillSwitch[]> {
    const rows = await this.sql<KillSwitchRow[]>`SELECT * FROM kill_switches ORDER BY created_at, id`;
    return rows.map(toKillSwitch);
  }

  async deleteKillSwitch(id: string): Promise<void> {
    const deleted = await this.sql`DELETE FROM kill_switches WHERE id = ${id} RETURNING id`;
    if (deleted.length === 0) throw new RecordNotFound('kill switch', id);
  }

  /** Ends the pool (shared with other PostgreSQL adapters on it); idempotent. */
  async close(): Promise<void> {
    await this.sql.end({ timeout: 5 });
  }
}

/** A `json` parameter; postgres.js serializes it with JSON.stringify (same text SQLite stores). */
function json(sql: Sql, value: unknown): postgres.Parameter {
  return sql.json(value as JsonParam);
}

/** A nullable `json` parameter: SQL NULL (not JSON `null`) when there is no value. */
function nullableJson(sql: Sql, value: unknown): postgres.Parameter | null {
  return value == null ? null : json(sql, value);
}

function isUniqueViolation(err: unknown, constraint: string): boolean {
  return err instanceof postgres.PostgresError && err.code === '23505' && err.constraint_name === constraint;
}

/** postgres.js hands JSON columns over parsed. */
const asIs = (v: unknown): unknown => v;
const toTenant = (row: TenantRow): Tenant => rowToTenant(row, asIs);
const toKey = (row: KeyRow): ApiKeyRecord => rowToKey(row, asIs);
const toKillSwitch = rowToKillSwitch;
