/**
 * Small helpers the `Records` adapters share (ids, defaults, JSON copies, and the SQL adapters'
 * rows and their mapping), so the memory, SQLite and PostgreSQL adapters cannot drift apart on
 * them. Driver-free on purpose.
 */
import { randomBytes } from 'node:crypto';
import type { ApiKeyRecord, KillSwitch, PolicyOverride, Tenant } from './types.js';

/** Tier of a tenant created without one (one of the built-in tiers, see config/defaults.ts). */
export const DEFAULT_TENANT_TIER = 'standard';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** `prefix` + 16 random base62 characters (~95 bits), e.g. `ten_4fQ9...`. */
export function newRecordId(prefix: 'ten_' | 'key_' | 'ks_', length = 16): string {
  let out = prefix;
  while (out.length < prefix.length + length) {
    for (const byte of randomBytes(length)) {
      // 248 = 4 * 62: rejecting the top bytes keeps every character equally likely.
      if (byte < 248 && out.length < prefix.length + length) out += BASE62[byte % 62];
    }
  }
  return out;
}

/**
 * A deep copy with JSON semantics (what a SQL adapter storing JSON text returns): `undefined`
 * members vanish, Dates become strings. The memory adapter uses it so callers see the same thing
 * from every adapter and cannot mutate stored state through a returned object.
 */
export function copyJson<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

/** What `updateTenant` / `updateKey` may change. */
export const TENANT_PATCH_FIELDS = ['name', 'tier', 'metadata', 'policy'] as const;
export const KEY_PATCH_FIELDS = ['name', 'tier', 'allowedModels', 'userId', 'expiresAt', 'policy'] as const;

/** The order of every listing: creation time, then id (byte-wise, like SQL's COLLATE "C"). */
export function byCreatedThenId(a: { createdAt: number; id: string }, b: { createdAt: number; id: string }): number {
  return a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** The message of the `RecordConflict` for a second switch on the same scope and target. */
export function killSwitchConflict(scope: string, target: string): string {
  return scope === 'global' ? 'a global kill switch already exists' : `a kill switch for ${scope} '${target}' already exists`;
}

/**
 * The patch members a caller may change, minus those set to `undefined` (so `{ name: undefined }`
 * leaves the name as it is while `{ userId: null }` clears it). Anything else is ignored.
 */
export function pickDefined<T extends object, K extends keyof T>(patch: T, fields: readonly K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const f of fields) if (patch[f] !== undefined) out[f] = patch[f];
  return out;
}

/* Row shapes of the SQL adapters and their mapping, shared like ledger-helpers.ts. `J` is how a
 * JSON column arrives: text in SQLite (decoded with JSON.parse), already parsed in PostgreSQL. */

export interface TenantRow<J> {
  id: string;
  name: string;
  tier: string;
  metadata: J;
  created_at: number;
  policy: J | null;
}

export interface KeyRow<J> {
  id: string;
  tenant_id: string;
  name: string;
  kind: 'api' | 'admin';
  prefix: string;
  hash: string;
  tier: string;
  allowed_models: J | null;
  user_id: string | null;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
  last_used_at: number | null;
  policy: J | null;
}

export interface KillSwitchRow {
  id: string;
  scope: KillSwitch['scope'];
  target: string;
  reason: string;
  created_by: string | null;
  created_at: number;
}

export function rowToTenant<J>(row: TenantRow<J>, decode: (v: J) => unknown): Tenant {
  return {
    id: row.id,
    name: row.name,
    tier: row.tier,
    createdAt: row.created_at,
    metadata: decode(row.metadata) as Record<string, unknown>,
    policy: row.policy == null ? null : (decode(row.policy) as PolicyOverride),
  };
}

export function rowToKey<J>(row: KeyRow<J>, decode: (v: J) => unknown): ApiKeyRecord {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    name: row.name,
    kind: row.kind,
    prefix: row.prefix,
    hash: row.hash,
    tier: row.tier,
    allowedModels: row.allowed_models == null ? null : (decode(row.allowed_models) as string[]),
    userId: row.user_id,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
    lastUsedAt: row.last_used_at,
    policy: row.policy == null ? null : (decode(row.policy) as PolicyOverride),
  };
}

export function rowToKillSwitch(row: KillSwitchRow): KillSwitch {
  return { id: row.id, scope: row.scope, target: row.target, reason: row.reason, createdBy: row.created_by, createdAt: row.created_at };
}
