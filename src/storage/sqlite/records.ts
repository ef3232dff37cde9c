/**
 * `Records` on the embedded SQLite database. better-sqlite3 is synchronous: each method does its
 * work at once and returns a settled promise. Statements are prepared once, in the constructor.
 *
 * Every transaction that writes is IMMEDIATE: it takes the write lock first, waiting for it (the
 * busy timeout) when another connection (the ledger's writer thread, a CLI command) holds it. A
 * DEFERRED one that reads first cannot wait: SQLite refuses the upgrade of its read to a write
 * at once with SQLITE_BUSY ("database is locked"), whatever the busy timeout.
 */
import type { Statement } from 'better-sqlite3';
import { type KeyRow as SharedKeyRow, type KillSwitchRow, type TenantRow as SharedTenantRow, DEFAULT_TENANT_TIER, KEY_PATCH_FIELDS, TENANT_PATCH_FIELDS, killSwitchConflict, newRecordId, pickDefined, rowToKey, rowToKillSwitch, rowToTenant } from '../record-helpers.js';
import { type ApiKeyRecord, type KeyListFilter, type KillSwitch, type NewApiKey, type NewKillSwitch, type NewTenant, type PolicyOverride, type Records, type Tenant, RecordConflict, RecordNotFound } from '../types.js';
import { type Database, isConstraint } from './database.js';

type TenantRow = SharedTenantRow<string>;
type KeyRow = SharedKeyRow<string>;

type KeyPatch = Parameters<Records['updateKey']>[1];
type TenantPatch = Parameters<Records['updateTenant']>[1];

export class SqliteRecords implements Records {
  readonly #db: Database;
  readonly #sql: {
    insertTenant: Statement<[string, string, string, string, number, string | null]>;
    getTenant: Statement<[string], TenantRow>;
    listTenants: Statement<[], TenantRow>;
    updateTenant: Statement<[string, string, string, string | null, string]>;
    deleteTenant: Statement<[string]>;
    revokeTenantKeys: Statement<[number, string]>;
    insertKey: Statement<[KeyRow]>;
    getKey: Statement<[string], KeyRow>;
    getKeyByHash: Statement<[string], KeyRow>;
    listKeys: Statement<[{ tenantId: string | null; includeRevoked: number }], KeyRow>;
    updateKey: Statement<[string, string, string | null, string | null, number | null, string | null, string]>;
    revokeKey: Statement<[number, string]>;
    touchKey: Statement<[{ id: string; at: number }]>;
    countKeys: Statement<[{ kind: string | null }], number>;
    insertKillSwitch: Statement<[KillSwitchRow]>;
    listKillSwitches: Statement<[], KillSwitchRow>;
    deleteKillSwitch: Statement<[string]>;
  };

  constructor(db: Database) {
    this.#db = db;
    this.#sql = {
      insertTenant: db.prepare('INSERT INTO tenants (id, name, tier, metadata, created_at, policy) VALUES (?, ?, ?, ?, ?, ?)'),
      getTenant: db.prepare('SELECT * FROM tenants WHERE id = ?'),
      listTenants: db.prepare('SELECT * FROM tenants ORDER BY created_at, id'),
      updateTenant: db.prepare('UPDATE tenants SET name = ?, tier = ?, metadata = ?, policy = ? WHERE id = ?'),
      deleteTenant: db.prepare('DELETE FROM tenants WHERE id = ?'),
      revokeTenantKeys: db.prepare('UPDATE api_keys SET revoked_at = ? WHERE tenant_id = ? AND revoked_at IS NULL'),
      insertKey: db.prepare(
        `INSERT INTO api_keys (id, tenant_id, name, kind, prefix, hash, tier, allowed_models, user_id,
                               created_at, expires_at, revoked_at, last_used_at, policy)
         VALUES (@id, @tenant_id, @name, @kind, @prefix, @hash, @tier, @allowed_models, @user_id,
                 @created_at, @expires_at, @revoked_at, @last_used_at, @policy)`,
      ),
      getKey: db.prepare('SELECT * FROM api_keys WHERE id = ?'),
      getKeyByHash: db.prepare('SELECT * FROM api_keys WHERE hash = ?'),
      listKeys: db.prepare(
        `SELECT * FROM api_keys
         WHERE (@tenantId IS NULL OR tenant_id = @tenantId) AND (@includeRevoked = 1 OR revoked_at IS NULL)
         ORDER BY created_at, id`,
      ),
      updateKey: db.prepare(
        'UPDATE api_keys SET name = ?, tier = ?, allowed_models = ?, user_id = ?, expires_at = ?, policy = ? WHERE id = ?',
      ),
      revokeKey: db.prepare('UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL'),
      touchKey: db.prepare(
        'UPDATE api_keys SET last_used_at = @at WHERE id = @id AND (last_used_at IS NULL OR last_used_at < @at)',
      ),
      countKeys: db
        .prepare('SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL AND (@kind IS NULL OR kind = @kind)')
        .pluck() as Statement<[{ kind: string | null }], number>,
      insertKillSwitch: db.prepare(
        `INSERT INTO kill_switches (id, scope, target, reason, created_by, created_at)
         VALUES (@id, @scope, @target, @reason, @created_by, @created_at)`,
      ),
      listKillSwitches: db.prepare('SELECT * FROM kill_switches ORDER BY created_at, id'),
      deleteKillSwitch: db.prepare('DELETE FROM kill_switches WHERE id = ?'),
    };
  }

  async createTenant(t: NewTenant): Promise<Tenant> {
    const tenant: Tenant = {
      id: t.id ?? newRecordId('ten_'),
      name: t.name,
      tier: t.tier ?? DEFAULT_TENANT_TIER,
      createdAt: Date.now(),
      metadata: t.metadata ?? {},
      policy: t.policy ?? null,
    };
    try {
      this.#sql.insertTenant.run(tenant.id, tenant.name, tenant.tier, JSON.stringify(tenant.metadata), tenant.createdAt, policyText(tenant.policy));
    } catch (err) {
      if (isConstraint(err, 'SQLITE_CONSTRAINT_PRIMARYKEY')) throw new RecordConflict(`tenant '${tenant.id}' already exists`);
      throw err;
    }
    return this.#tenantOrThrow(tenant.id);
  }

  async getTenant(id: string): Promise<Tenant | null> {
    const row = this.#sql.getTenant.get(id);
    return row ? toTenant(row) : null;
  }

  async listTenants(): Promise<Tenant[]> {
    return this.#sql.listTenants.all().map(toTenant);
  }

  async updateTenant(id: string, patch: TenantPatch): Promise<Tenant> {
    return this.#db.transaction(() => {
      const current = this.#tenantOrThrow(id);
      const next = { ...current, ...pickDefined(patch, TENANT_PATCH_FIELDS) };
      this.#sql.updateTenant.run(next.name, next.tier, JSON.stringify(next.metadata), policyText(next.policy), id);
      return this.#tenantOrThrow(id);
    }).immediate();
  }

  async deleteTenant(id: string): Promise<void> {
    this.#db.transaction(() => {
      if (this.#sql.deleteTenant.run(id).changes === 0) throw new RecordNotFound('tenant', id);
      this.#sql.revokeTenantKeys.run(Date.now(), id);
    }).immediate();
  }

  async createKey(k: NewApiKey): Promise<ApiKeyRecord> {
    const row: KeyRow = {
      id: k.id ?? newRecordId('key_'),
      tenant_id: k.tenantId,
      name: k.name,
      kind: k.kind,
      prefix: k.prefix,
      hash: k.hash,
      tier: k.tier,
      allowed_models: k.allowedModels === null ? null : JSON.stringify(k.allowedModels),
      user_id: k.userId,
      created_at: Date.now(),
      expires_at: k.expiresAt,
      revoked_at: null,
      last_used_at: null,
      policy: policyText(k.policy ?? null),
    };
    return this.#db.transaction(() => {
      if (!this.#sql.getTenant.get(k.tenantId)) throw new RecordNotFound('tenant', k.tenantId);
      try {
        this.#sql.insertKey.run(row);
      } catch (err) {
        if (isConstraint(err, 'SQLITE_CONSTRAINT_PRIMARYKEY')) throw new RecordConflict(`api key '${row.id}' already exists`);
        if (isConstraint(err, 'SQLITE_CONSTRAINT_UNIQUE')) throw new RecordConflict('an api key with this secret already exists');
        throw err;
      }
      return this.#keyOrThrow(row.id);
    }).immediate();
  }

  async getKey(id: string): Promise<ApiKeyRecord | null> {
    const row = this.#sql.getKey.get(id);
    return row ? toKey(row) : null;
  }

  async getKeyByHash(hash: string): Promise<ApiKeyRecord | null> {
    const row = this.#sql.getKeyByHash.get(hash);
    return row ? toKey(row) : null;
  }

  async listKeys(filter: KeyListFilter = {}): Promise<ApiKeyRecord[]> {
    return this.#sql.listKeys
      .all({ tenantId: filter.tenantId ?? null, includeRevoked: filter.includeRevoked ? 1 : 0 })
      .map(toKey);
  }

  async updateKey(id: string, patch: KeyPatch): Promise<ApiKeyRecord> {
    return this.#db.transaction(() => {
      const next = { ...this.#keyOrThrow(id), ...pickDefined(patch, KEY_PATCH_FIELDS) };
      const allowed = next.allowedModels === null ? null : JSON.stringify(next.allowedModels);
      this.#sql.updateKey.run(next.name, next.tier, allowed, next.userId, next.expiresAt, policyText(next.policy), id);
      return this.#keyOrThrow(id);
    }).immediate();
  }

  async revokeKey(id: string): Promise<ApiKeyRecord> {
    return this.#db.transaction(() => {
      this.#sql.revokeKey.run(Date.now(), id);
      return this.#keyOrThrow(id);
    }).immediate();
  }

  /** Moves lastUsedAt forward only (settles may arrive out of order); unknown ids are ignored. */
  async touchKey(id: string, at: number): Promise<void> {
    this.#sql.touchKey.run({ id, at });
  }

  /** Counts keys that are not revoked (expired ones included), optionally of one kind. */
  async countKeys(filter: { kind?: ApiKeyRecord['kind'] } = {}): Promise<number> {
    return this.#sql.countKeys.get({ kind: filter.kind ?? null }) ?? 0;
  }

  async createKillSwitch(s: NewKillSwitch): Promise<KillSwitch> {
    const row: KillSwitchRow = {
      id: newRecordId('ks_'),
      scope: s.scope,
      target: s.target,
      reason: s.reason,
      created_by: s.createdBy ?? null,
      created_at: Date.now(),
    };
    try {
      this.#sql.insertKillSwitch.run(row);
    } catch (err) {
      if (isConstraint(err, 'SQLITE_CONSTRAINT_UNIQUE')) throw new RecordConflict(killSwitchConflict(s.scope, s.target));
      throw err;
    }
    return toKillSwitch(row);
  }

  async listKillSwitches(): Promise<KillSwitch[]> {
    return this.#sql.listKillSwitches.all().map(toKillSwitch);
  }

  async deleteKillSwitch(id: string): Promise<void> {
    if (this.#sql.deleteKillSwitch.run(id).changes === 0) throw new RecordNotFound('kill switch', id);
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }

  #tenantOrThrow(id: string): Tenant {
    const row = this.#sql.getTenant.get(id);
    if (!row) throw new RecordNotFound('tenant', id);
    return toTenant(row);
  }

  #keyOrThrow(id: string): ApiKeyRecord {
    const row = this.#sql.getKey.get(id);
    if (!row) throw new RecordNotFound('api key', id);
    return toKey(row);
  }
}

const decodeJson = (text: string): unknown => JSON.parse(text);
const toTenant = (row: TenantRow): Tenant => rowToTenant(row, decodeJson);
const toKey = (row: KeyRow): ApiKeyRecord => rowToKey(row, decodeJson);
const toKillSwitch = rowToKillSwitch;

function policyText(policy: PolicyOverride | null | undefined): string | null {
  return policy == null ? null : JSON.stringify(policy);
}
