/**
 * Storage interfaces. Each is small, async and free of driver types, so the embedded adapters
 * (memory, SQLite) and the distributed ones (Redis, PostgreSQL) are interchangeable. A contract
 * suite per interface (test/contracts/*.contract.ts) runs against every adapter: a new backend is
 * correct when it passes it.
 *
 * Part of the contract: the methods, their errors (`RecordNotFound`, `RecordConflict`) and the
 * shapes below. Private to each adapter: schema, SQL, connection handling, migrations.
 */

export interface Tenant {
  id: string;
  name: string;
  /** Default tier of keys created for this tenant. */
  tier: string;
  createdAt: number;
  metadata: Record<string, unknown>;
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
}

export interface NewTenant {
  id?: string;
  name: string;
  tier?: string;
  metadata?: Record<string, unknown>;
}

export type NewApiKey = Omit<ApiKeyRecord, 'id' | 'createdAt' | 'revokedAt' | 'lastUsedAt'> & { id?: string };

export interface KeyListFilter {
  tenantId?: string;
  includeRevoked?: boolean;
}

/** Durable records: tenants and keys (later: budgets, flags, experiments). */
export interface Records {
  createTenant(t: NewTenant): Promise<Tenant>;
  getTenant(id: string): Promise<Tenant | null>;
  listTenants(): Promise<Tenant[]>;
  updateTenant(id: string, patch: Partial<Pick<Tenant, 'name' | 'tier' | 'metadata'>>): Promise<Tenant>;
  /** Deletes the tenant and revokes its keys. */
  deleteTenant(id: string): Promise<void>;

  createKey(k: NewApiKey): Promise<ApiKeyRecord>;
  getKey(id: string): Promise<ApiKeyRecord | null>;
  /** Looks a key up by the hash of its secret (the authentication path). */
  getKeyByHash(hash: string): Promise<ApiKeyRecord | null>;
  listKeys(filter?: KeyListFilter): Promise<ApiKeyRecord[]>;
  updateKey(
    id: string,
    patch: Partial<Pick<ApiKeyRecord, 'name' | 'tier' | 'allowedModels' | 'userId' | 'expiresAt'>>,
  ): Promise<ApiKeyRecord>;
  /** Marks the key revoked (idempotent); it stops authenticating within the auth cache TTL. */
  revokeKey(id: string): Promise<ApiKeyRecord>;
  touchKey(id: string, at: number): Promise<void>;
  countKeys(filter?: { kind?: ApiKeyRecord['kind'] }): Promise<number>;

  close(): Promise<void>;
}

export class RecordNotFound extends Error {
  constructor(
    readonly entity: string,
    readonly id: string,
  ) {
    super(`${entity} '${id}' not found`);
    this.name = 'RecordNotFound';
  }
}

export class RecordConflict extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RecordConflict';
  }
}
