/**
 * Turns an API key into the caller's identity: tenant, tier, allowed models, fixed end user, and
 * the tenant's and key's policy overrides. Results (including misses) are cached in memory for
 * `ttlMs` so the hot path does not hit storage on every request. Consequence, documented in
 * docs/API.md: a key revoked (or a policy changed) through another process or the CLI is seen
 * within `ttlMs`; through this process's admin API at once, because the admin routes call
 * {@link Authenticator.invalidate}.
 */
import { GatewayError } from '../errors.js';
import type { ApiKeyRecord, PolicyOverride, Records, Tenant } from '../storage/types.js';
import { hashKey } from './keys.js';
import { isoOrNull } from '../util/time.js';

export interface AuthInfo {
  keyId: string;
  kind: ApiKeyRecord['kind'];
  tenantId: string;
  tenantName: string;
  tier: string;
  /** Public model names this caller may use; null = all. */
  allowedModels: ReadonlySet<string> | null;
  /** Fixed end-user id of the key, if any. */
  userId: string | null;
  /** The tenant's and the key's overrides of the tier's limits and budgets (src/metering/policy.ts). */
  tenantPolicy: PolicyOverride | null;
  keyPolicy: PolicyOverride | null;
}

interface CacheEntry {
  /** null: the key is unknown (negative cache). */
  key: ApiKeyRecord | null;
  info: AuthInfo | null;
  cachedAt: number;
}

export interface AuthenticatorOptions {
  records: Records;
  ttlMs: number;
  /** Models allowed per tier (from config); a tier absent here allows every model. */
  tierModels: Record<string, readonly string[] | undefined>;
  now?: () => number;
  maxEntries?: number;
}

export class Authenticator {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly records: Records;
  private readonly ttlMs: number;
  private readonly tierModels: AuthenticatorOptions['tierModels'];
  private readonly now: () => number;
  private readonly maxEntries: number;
  /** Concurrent look-ups of the same uncached key share one storage read. */
  private readonly pending = new Map<string, Promise<CacheEntry>>();
  /** Key id -> hash of its secret, for jobs (they run by key id). */
  private readonly hashById = new Map<string, string>();

  constructor(opts: AuthenticatorOptions) {
    this.records = opts.records;
    this.ttlMs = opts.ttlMs;
    this.tierModels = opts.tierModels;
    this.now = opts.now ?? Date.now;
    this.maxEntries = opts.maxEntries ?? 10_000;
  }

  /** Authenticates a secret; throws 401 GatewayErrors with a clear reason. */
  async authenticate(secret: string | undefined): Promise<AuthInfo> {
    if (!secret) {
      throw new GatewayError(
        'missing_api_key',
        'You did not provide an API key. Send it as "Authorization: Bearer <key>".',
      );
    }
    const hash = hashKey(secret);
    const now = this.now();
    const entry = await this.entryFor(hash, now);
    return this.check(entry, now, () => `Incorrect API key provided: ${redact(secret)}.`);
  }

  /**
   * The caller of a job, by the id of the key that submitted it (jobs keep the key's id, never
   * its secret): the same checks and cache as {@link authenticate}, so a key revoked since the
   * submit stops its queued jobs.
   */
  async authenticateKeyId(keyId: string): Promise<AuthInfo> {
    const now = this.now();
    let hash = this.hashById.get(keyId);
    if (hash === undefined) {
      let key: ApiKeyRecord | null;
      try {
        key = await this.records.getKey(keyId);
      } catch (err) {
        throw new GatewayError('storage_unavailable', 'API keys cannot be checked right now (the record store is unreachable). Retry shortly.', { cause: err });
      }
      if (!key) throw new GatewayError('invalid_api_key', `The API key ${keyId} no longer exists.`);
      hash = key.hash;
    }
    const entry = await this.entryFor(hash, now);
    return this.check(entry, now, () => `The API key ${keyId} no longer exists.`);
  }

  /** The cached entry, reloaded when older than the TTL. */
  private async entryFor(hash: string, now: number): Promise<CacheEntry> {
    const entry = this.cache.get(hash);
    if (entry && now - entry.cachedAt < this.ttlMs) return entry;
    // While the record store is unreachable, a key seen before keeps its last known state.
    return this.load(hash).catch((err: unknown) => {
      if (entry) return entry;
      throw err;
    });
  }

  private check(entry: CacheEntry, now: number, unknown: () => string): AuthInfo {
    const key = entry.key;
    if (!key || !entry.info) throw new GatewayError('invalid_api_key', unknown());
    if (key.revokedAt !== null) throw new GatewayError('revoked_api_key', `API key ${key.prefix}... has been revoked.`);
    if (key.expiresAt !== null && key.expiresAt <= now) {
      throw new GatewayError('expired_api_key', `API key ${key.prefix}... expired at ${isoOrNull(key.expiresAt)}.`);
    }
    return entry.info;
  }

  /** Drops cached results for a key, or all of them (after a change made through this process). */
  invalidate(keyId?: string): void {
    this.invalidateLocal(keyId);
    this.onInvalidate?.(keyId);
  }

  /** Set by the composition root: tells the other processes (src/storage/change-bus.ts). */
  onInvalidate: ((keyId: string | undefined) => void) | undefined;

  /** Drops cached results in this process only (a change announced by another process). */
  invalidateLocal(keyId?: string): void {
    if (keyId === undefined) {
      this.cache.clear();
      return;
    }
    for (const [hash, e] of this.cache) if (e.key?.id === keyId) this.cache.delete(hash);
  }

  private load(hash: string): Promise<CacheEntry> {
    let p = this.pending.get(hash);
    if (!p) {
      p = this.fetch(hash).finally(() => this.pending.delete(hash));
      this.pending.set(hash, p);
    }
    return p;
  }

  private async fetch(hash: string): Promise<CacheEntry> {
    let key: ApiKeyRecord | null;
    let info: AuthInfo | null = null;
    try {
      key = await this.records.getKeyByHash(hash);
      if (key) {
        const tenant = await this.records.getTenant(key.tenantId);
        if (tenant) info = this.describe(key, tenant);
      }
    } catch (err) {
      // Keys already cached keep working; a key that must be looked up cannot be, for now.
      throw new GatewayError('storage_unavailable', 'API keys cannot be checked right now (the record store is unreachable). Retry shortly.', {
        headers: { 'retry-after': '1' },
        cause: err,
      });
    }
    const entry: CacheEntry = { key: info ? key : null, info, cachedAt: this.now() };
    if (key && info) {
      if (this.hashById.size >= this.maxEntries) this.hashById.clear();
      this.hashById.set(key.id, hash);
    }
    if (this.cache.size >= this.maxEntries) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    this.cache.set(hash, entry);
    return entry;
  }

  private describe(key: ApiKeyRecord, tenant: Tenant): AuthInfo {
    const tierModels = this.tierModels[key.tier];
    let allowed: Set<string> | null = null;
    if (key.allowedModels && tierModels) allowed = new Set(key.allowedModels.filter((m) => tierModels.includes(m)));
    else if (key.allowedModels) allowed = new Set(key.allowedModels);
    else if (tierModels) allowed = new Set(tierModels);
    return {
      keyId: key.id,
      kind: key.kind,
      tenantId: key.tenantId,
      tenantName: tenant.name,
      tier: key.tier,
      allowedModels: allowed,
      userId: key.userId,
      tenantPolicy: tenant.policy ?? null,
      keyPolicy: key.policy ?? null,
    };
  }
}

/** Shows enough of a presented secret to recognize it, like OpenAI does (sk-abc***xyz). */
function redact(secret: string): string {
  if (secret.length <= 10) return '***';
  return `${secret.slice(0, 6)}***${secret.slice(-4)}`;
}
