/**
 * `Records` in process memory (Maps). Same semantics as the SQLite adapter, checked by the same
 * contract suite; meant for unit tests of other modules. Every object going in or out is copied,
 * so callers can neither see nor cause changes behind the store's back.
 */
import { DEFAULT_TENANT_TIER, KEY_PATCH_FIELDS, TENANT_PATCH_FIELDS, byCreatedThenId, copyJson, killSwitchConflict, newRecordId, pickDefined } from '../record-helpers.js';
import { type ApiKeyRecord, type KeyListFilter, type KillSwitch, type NewApiKey, type NewKillSwitch, type NewTenant, type Records, type Tenant, RecordConflict, RecordNotFound } from '../types.js';

type KeyPatch = Parameters<Records['updateKey']>[1];
type TenantPatch = Parameters<Records['updateTenant']>[1];

export class MemoryRecords implements Records {
  readonly #tenants = new Map<string, Tenant>();
  readonly #keys = new Map<string, ApiKeyRecord>();
  /** hash -> key id */
  readonly #keyIdByHash = new Map<string, string>();
  readonly #killSwitches = new Map<string, KillSwitch>();

  async createTenant(t: NewTenant): Promise<Tenant> {
    const id = t.id ?? newRecordId('ten_');
    if (this.#tenants.has(id)) throw new RecordConflict(`tenant '${id}' already exists`);
    const tenant: Tenant = {
      id,
      name: t.name,
      tier: t.tier ?? DEFAULT_TENANT_TIER,
      createdAt: Date.now(),
      metadata: copyJson(t.metadata ?? {}),
      policy: t.policy ? copyJson(t.policy) : null,
    };
    this.#tenants.set(id, tenant);
    return copyJson(tenant);
  }

  async getTenant(id: string): Promise<Tenant | null> {
    const tenant = this.#tenants.get(id);
    return tenant ? copyJson(tenant) : null;
  }

  async listTenants(): Promise<Tenant[]> {
    return [...this.#tenants.values()].sort(byCreatedThenId).map(copyJson);
  }

  async updateTenant(id: string, patch: TenantPatch): Promise<Tenant> {
    return patchIn(this.#tenants, 'tenant', id, pickDefined(patch, TENANT_PATCH_FIELDS));
  }

  async deleteTenant(id: string): Promise<void> {
    if (!this.#tenants.delete(id)) throw new RecordNotFound('tenant', id);
    const now = Date.now();
    for (const key of this.#keys.values()) {
      if (key.tenantId === id && key.revokedAt === null) key.revokedAt = now;
    }
  }

  async createKey(k: NewApiKey): Promise<ApiKeyRecord> {
    if (!this.#tenants.has(k.tenantId)) throw new RecordNotFound('tenant', k.tenantId);
    const id = k.id ?? newRecordId('key_');
    if (this.#keys.has(id)) throw new RecordConflict(`api key '${id}' already exists`);
    if (this.#keyIdByHash.has(k.hash)) throw new RecordConflict('an api key with this secret already exists');
    const key: ApiKeyRecord = {
      id,
      tenantId: k.tenantId,
      name: k.name,
      kind: k.kind,
      prefix: k.prefix,
      hash: k.hash,
      tier: k.tier,
      allowedModels: k.allowedModels === null ? null : [...k.allowedModels],
      userId: k.userId,
      createdAt: Date.now(),
      expiresAt: k.expiresAt,
      revokedAt: null,
      lastUsedAt: null,
      policy: k.policy ? copyJson(k.policy) : null,
    };
    this.#keys.set(id, key);
    this.#keyIdByHash.set(key.hash, id);
    return copyJson(key);
  }

  async getKey(id: string): Promise<ApiKeyRecord | null> {
    const key = this.#keys.get(id);
    return key ? copyJson(key) : null;
  }

  async getKeyByHash(hash: string): Promise<ApiKeyRecord | null> {
    const id = this.#keyIdByHash.get(hash);
    return id === undefined ? null : this.getKey(id);
  }

  async listKeys(filter: KeyListFilter = {}): Promise<ApiKeyRecord[]> {
    return [...this.#keys.values()]
      .filter((k) => filter.tenantId === undefined || k.tenantId === filter.tenantId)
      .filter((k) => filter.includeRevoked || k.revokedAt === null)
      .sort(byCreatedThenId)
      .map(copyJson);
  }

  async updateKey(id: string, patch: KeyPatch): Promise<ApiKeyRecord> {
    return patchIn(this.#keys, 'api key', id, pickDefined(patch, KEY_PATCH_FIELDS));
  }

  async revokeKey(id: string): Promise<ApiKeyRecord> {
    const key = this.#keys.get(id);
    if (!key) throw new RecordNotFound('api key', id);
    key.revokedAt ??= Date.now();
    return copyJson(key);
  }

  /** Moves lastUsedAt forward only (settles may arrive out of order); unknown ids are ignored. */
  async touchKey(id: string, at: number): Promise<void> {
    const key = this.#keys.get(id);
    if (key && (key.lastUsedAt === null || key.lastUsedAt < at)) key.lastUsedAt = at;
  }

  /** Counts keys that are not revoked (expired ones included), optionally of one kind. */
  async countKeys(filter: { kind?: ApiKeyRecord['kind'] } = {}): Promise<number> {
    let n = 0;
    for (const k of this.#keys.values()) {
      if (k.revokedAt === null && (filter.kind === undefined || k.kind === filter.kind)) n++;
    }
    return n;
  }

  async createKillSwitch(s: NewKillSwitch): Promise<KillSwitch> {
    for (const existing of this.#killSwitches.values()) {
      if (existing.scope === s.scope && existing.target === s.target) throw new RecordConflict(killSwitchConflict(s.scope, s.target));
    }
    const { scope, target, reason } = s;
    const sw: KillSwitch = { id: newRecordId('ks_'), scope, target, reason, createdBy: s.createdBy ?? null, createdAt: Date.now() };
    this.#killSwitches.set(sw.id, sw);
    return copyJson(sw);
  }

  async listKillSwitches(): Promise<KillSwitch[]> {
    return [...this.#killSwitches.values()].sort(byCreatedThenId).map(copyJson);
  }

  async deleteKillSwitch(id: string): Promise<void> {
    if (!this.#killSwitches.delete(id)) throw new RecordNotFound('kill switch', id);
  }

  async close(): Promise<void> {}
}

/** Replaces the record `id` of `map` by a copy with `changes` applied; returns another copy. */
function patchIn<T extends object>(map: Map<string, T>, entity: string, id: string, changes: NoInfer<Partial<T>>): T {
  const current = map.get(id);
  if (!current) throw new RecordNotFound(entity, id);
  const next = copyJson({ ...current, ...changes });
  map.set(id, next);
  return copyJson(next);
}
