/**
 * The `Records` interface (tenants, API keys, kill switches) and its shapes, including the policy
 * overrides a tenant or key carries. Re-exported by src/storage/types.ts, with the errors its
 * methods throw (`RecordNotFound`, `RecordConflict`).
 */

/** A rate-limit override: a field set wins over the tier's, `null` removes the tier's limit. */
export interface RateLimitOverride {
  tokensPerMinute?: number | null;
  requestsPerMinute?: number | null;
  burst?: number;
}

/** A budget override (USD): a field set wins over the tier's, `null` removes the tier's cap. */
export interface BudgetOverride {
  dailyUsd?: number | null;
  monthlyUsd?: number | null;
  lifetimeUsd?: number | null;
}

/**
 * Run-time overrides of a tier's limits and budgets, per scope, carried by a tenant or a key
 * (merged by src/metering/policy.ts; validated by `policyOverrideSchema` in src/config/tiers-schema.ts).
 * Stored as JSON, opaque to the adapters.
 */
export interface PolicyOverride {
  limits?: { tenant?: RateLimitOverride; key?: RateLimitOverride; user?: RateLimitOverride };
  budgets?: { tenant?: BudgetOverride; key?: BudgetOverride; user?: BudgetOverride };
  /** Tenants only: `content: true` keeps the tenant's prompt and answer text (redacted) in the request log. */
  requestLog?: { content: boolean };
}

export interface Tenant {
  id: string;
  name: string;
  /** Default tier of keys created for this tenant. */
  tier: string;
  createdAt: number;
  metadata: Record<string, unknown>;
  /** Overrides of the tier's limits and budgets for the tenant and defaults for its keys and users; null = none. */
  policy: PolicyOverride | null;
}

export interface ApiKeyRecord {
  id: string;
  tenantId: string;
  name: string;
  /** `admin` keys use /admin/v1; `api` keys use /v1. */
  kind: 'api' | 'admin';
  /** The first characters of the secret, shown in listings (never enough to use it). */
  prefix: string;
  /** sha256 of the secret, hex. The secret itself is never stored. */
  hash: string;
  tier: string;
  /** Public model names this key may use; null = every model its tier allows. */
  allowedModels: string[] | null;
  /** A fixed end-user id for every request of this key (overrides the request's `user`). */
  userId: string | null;
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
  lastUsedAt: number | null;
  /** Overrides for this key's own scope and its end users (over its tenant's and tier's); null = none. */
  policy: PolicyOverride | null;
}

export interface NewTenant {
  id?: string;
  name: string;
  tier?: string;
  metadata?: Record<string, unknown>;
  policy?: PolicyOverride | null;
}

export type NewApiKey = Omit<ApiKeyRecord, 'id' | 'createdAt' | 'revokedAt' | 'lastUsedAt' | 'policy'> & {
  id?: string;
  policy?: PolicyOverride | null;
};

export type KillSwitchScope = 'global' | 'tenant' | 'key' | 'model' | 'provider';

/**
 * An operator's switch that refuses traffic: everything (`global`), one tenant, one key, one
 * model (public name) or one provider (config id). Active while it exists.
 */
export interface KillSwitch {
  id: string;
  scope: KillSwitchScope;
  /** Tenant id, key id, public model name or provider id; '' for `global`. */
  target: string;
  reason: string;
  /** Who made it (an admin key id, `cli`...); null when unknown. */
  createdBy: string | null;
  createdAt: number;
}

export interface NewKillSwitch {
  scope: KillSwitchScope;
  target: string;
  reason: string;
  createdBy?: string | null;
}

export interface KeyListFilter {
  tenantId?: string;
  includeRevoked?: boolean;
}

/** Durable records: tenants, keys and kill switches. */
export interface Records {
  createTenant(t: NewTenant): Promise<Tenant>;
  getTenant(id: string): Promise<Tenant | null>;
  listTenants(): Promise<Tenant[]>;
  /** `policy: null` clears the tenant's policy; `undefined` members are left as they are. */
  updateTenant(id: string, patch: Partial<Pick<Tenant, 'name' | 'tier' | 'metadata' | 'policy'>>): Promise<Tenant>;
  /** Deletes the tenant and revokes its keys. */
  deleteTenant(id: string): Promise<void>;

  createKey(k: NewApiKey): Promise<ApiKeyRecord>;
  getKey(id: string): Promise<ApiKeyRecord | null>;
  /** Looks a key up by the hash of its secret (the authentication path). */
  getKeyByHash(hash: string): Promise<ApiKeyRecord | null>;
  listKeys(filter?: KeyListFilter): Promise<ApiKeyRecord[]>;
  updateKey(
    id: string,
    patch: Partial<Pick<ApiKeyRecord, 'name' | 'tier' | 'allowedModels' | 'userId' | 'expiresAt' | 'policy'>>,
  ): Promise<ApiKeyRecord>;
  /** Marks the key revoked (idempotent); it stops authenticating within the auth cache TTL. */
  revokeKey(id: string): Promise<ApiKeyRecord>;
  touchKey(id: string, at: number): Promise<void>;
  countKeys(filter?: { kind?: ApiKeyRecord['kind'] }): Promise<number>;

  /**
   * Adds a kill switch (id `ks_...`, createdAt now). At most one per scope and target:
   * a second one is a `RecordConflict`. Targets are stored as given (callers validate them).
   */
  createKillSwitch(s: NewKillSwitch): Promise<KillSwitch>;
  /** Every switch, by creation time then id. Polled by every gateway process: keep it cheap. */
  listKillSwitches(): Promise<KillSwitch[]>;
  /** Removes a switch (lifts it); `RecordNotFound` when there is none with that id. */
  deleteKillSwitch(id: string): Promise<void>;

  close(): Promise<void>;
}
