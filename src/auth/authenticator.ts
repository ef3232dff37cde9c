/**
 * Turns an API key into the caller's identity: tenant, tier, allowed models, fixed end user, and
 * the tenant's and key's policy overrides. Results (including misses) are cached in memory so the
 * hot path does not hit storage on every request:
 *
 * - A key's state younger than `ttlMs` is used as it is.
 * - Older (stale-while-revalidate): a known key is answered at once from its last known state and
 *   one background re-read starts (shared by concurrent callers). A re-read that succeeds replaces
 *   the state; one that fails keeps it (and its age) and is retried at most every
 *   `refreshRetryMs`. So while storage is healthy a key revoked through another process is refused
 *   within `ttlMs` plus one re-read; through this process's admin API (or the change bus) at once,
 *   because the admin routes call {@link Authenticator.invalidate}.
 * - A known key whose state could not be re-read for `maxStaleMs` is no longer answered from it:
 *   its requests wait for a read like an unknown key's. This bounds how long a key revoked during
 *   a storage outage keeps working.
 * - A miss (unknown key) is cached for `ttlMs` only, never served stale: past it the key is read
 *   again, so a key created since works.
 *
 * Every read a request waits for has a deadline (`lookupTimeoutMs`): past it the request gets 503
 * `storage_unavailable` (the read goes on, and its answer is cached when it comes). While storage
 * fails, at most one read is in flight: other requests that need one get 503 at once instead of
 * queueing on a dead pool.
 */
import { GatewayError } from '../errors.js';
import type { ApiKeyRecord, PolicyOverride, Records, Tenant } from '../storage/types.js';
import type { MergedPolicy } from '../metering/policy.js';
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
  /** The tier's, tenant's and key's limits and budgets merged, worked out on first use (src/metering/policy.ts). */
  mergedPolicy?: MergedPolicy;
}

interface CacheEntry {
  /** null: the key is unknown (negative cache). */
  key: ApiKeyRecord | null;
  info: AuthInfo | null;
  /** When this state was read from storage. */
  cachedAt: number;
  /** When a background re-read last failed (the next waits `refreshRetryMs`). */
  failedAt?: number;
}

export interface AuthenticatorOptions {
  records: Records;
  /** Told of each invalidation made through this process, to tell the other processes (src/storage/change-bus.ts). */
  onInvalidate?: ((keyId: string | undefined) => void) | undefined;
  ttlMs: number;
  /** How long a known key may be answered from a state that cannot be re-read (default 10 min). */
  maxStaleMs?: number;
  /** Deadline of a read a request waits for (default 5000 ms). */
  lookupTimeoutMs?: number;
  /** Least time between two background re-reads of a key after one failed (default 1000 ms). */
  refreshRetryMs?: number;
  /** Models allowed per tier (from config); a tier absent here allows every model. */
  tierModels: Record<string, readonly string[] | undefined>;
  now?: () => number;
  maxEntries?: number;
}

/** A storage read pending this long is given up (see Authenticator.load). */
const ABANDON_MS = 30_000;

const UNAVAILABLE = 'API keys cannot be checked right now (the record store is unreachable). Retry shortly.';

export class Authenticator {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly records: Records;
  private readonly ttlMs: number;
  private readonly maxStaleMs: number;
  private readonly lookupTimeoutMs: number;
  private readonly refreshRetryMs: number;
  /** Set while storage reads fail (cleared by the next one that succeeds). */
  private failingSince: number | undefined;
  /** Bumped by every invalidation: a read started before one must not cache what it read. */
  private generation = 0;
  private readonly tierModels: AuthenticatorOptions['tierModels'];
  private readonly now: () => number;
  private readonly maxEntries: number;
  /** Concurrent look-ups of the same uncached key share one storage read. */
  private readonly pending = new Map<string, Promise<CacheEntry>>();
  /** When each pending read started: one older than ABANDON_MS no longer counts (see load). */
  private readonly pendingSince = new Map<string, number>();
  /** Key id -> hash of its secret, for jobs (they run by key id). */
  private readonly hashById = new Map<string, string>();

  constructor(opts: AuthenticatorOptions) {
    this.onInvalidate = opts.onInvalidate;
    this.records = opts.records;
    this.ttlMs = opts.ttlMs;
    this.maxStaleMs = opts.maxStaleMs ?? 600_000;
    this.lookupTimeoutMs = opts.lookupTimeoutMs ?? 5_000;
    this.refreshRetryMs = opts.refreshRetryMs ?? 1_000;
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
      this.failFastWhileFailing();
      let key: ApiKeyRecord | null;
      try {
        key = await this.withDeadline(this.records.getKey(keyId));
        this.failingSince = undefined;
      } catch (err) {
        if (err instanceof GatewayError) throw err;
        this.failingSince ??= this.now();
        throw unavailable(err);
      }
      if (!key) throw new GatewayError('invalid_api_key', `The API key ${keyId} no longer exists.`);
      hash = key.hash;
    }
    const entry = await this.entryFor(hash, now);
    return this.check(entry, now, () => `The API key ${keyId} no longer exists.`);
  }

  /**
   * The cached entry when it may be used (fresh, or a known key's stale state, then re-read in
   * the background); otherwise a read the caller waits for, within the deadline.
   */
  private async entryFor(hash: string, now: number): Promise<CacheEntry> {
    const entry = this.cache.get(hash);
    if (entry) {
      const age = now - entry.cachedAt;
      if (age < this.ttlMs) return entry;
      if (entry.info && age < this.maxStaleMs) {
        this.revalidate(hash, entry, now);
        return entry;
      }
    }
    if (!this.livePending(hash)) this.failFastWhileFailing();
    try {
      return await this.withDeadline(this.load(hash));
    } catch (err) {
      if (err instanceof GatewayError && err.code !== 'storage_unavailable') throw err;
      if (entry?.info) {
        // Its state is older than maxStaleMs and still cannot be read.
        throw new GatewayError(
          'storage_unavailable',
          `API keys cannot be checked right now: this key's state could not be re-read for ${Math.round((now - entry.cachedAt) / 1000)} s (auth.maxStaleMs). Retry shortly.`,
          { headers: { 'retry-after': '1' }, cause: err },
        );
      }
      throw err instanceof GatewayError ? err : unavailable(err);
    }
  }

  /** Starts a background re-read of a stale entry, unless one runs or one failed just now. */
  private revalidate(hash: string, entry: CacheEntry, now: number): void {
    if (this.livePending(hash)) return;
    if (entry.failedAt !== undefined && now - entry.failedAt < this.refreshRetryMs) return;
    // While storage fails, one read at a time probes it.
    if (this.failingSince !== undefined && this.reading > 0) return;
    this.load(hash).catch(() => undefined); // a failure marks the entry (fetch), which stays
  }

  /** While storage fails and a read is already in flight (probing it), refuse at once. */
  private failFastWhileFailing(): void {
    if (this.failingSince !== undefined && this.reading > 0) {
      const s = Math.round((this.now() - this.failingSince) / 1000);
      throw new GatewayError('storage_unavailable', `API keys cannot be checked right now (the record store has been failing for ${s} s). Retry shortly.`, {
        headers: { 'retry-after': '1' },
      });
    }
  }

  /** `p`, or 503 storage_unavailable once `lookupTimeoutMs` has passed (the read goes on). */
  private withDeadline<T>(p: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.failingSince ??= this.now();
        reject(
          new GatewayError('storage_unavailable', `API keys cannot be checked right now: the record store did not answer within ${this.lookupTimeoutMs} ms. Retry shortly.`, {
            headers: { 'retry-after': '1' },
          }),
        );
      }, this.lookupTimeoutMs);
    });
    p.catch(() => undefined); // a failure after the deadline is not unhandled
    return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
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

  /** Tells the other processes (AuthenticatorOptions.onInvalidate). */
  onInvalidate: ((keyId: string | undefined) => void) | undefined;

  /** Drops cached results in this process only (a change announced by another process). */
  invalidateLocal(keyId?: string): void {
    this.generation++;
    if (keyId === undefined) {
      this.cache.clear();
      return;
    }
    for (const [hash, e] of this.cache) if (e.key?.id === keyId) this.cache.delete(hash);
  }

  /**
   * The shared read of a key. A read pending for longer than ABANDON_MS is given up (a new one
   * starts): a connection the driver cannot tell is dead (TLS through a partition) must not hold
   * the key, or the fail-fast state, until TCP gives up on it.
   */
  private load(hash: string): Promise<CacheEntry> {
    let p = this.pending.get(hash);
    if (!p || !this.livePending(hash)) {
      const read: Promise<CacheEntry> = this.fetch(hash).finally(() => {
        if (this.pending.get(hash) !== read) return;
        this.pending.delete(hash);
        this.pendingSince.delete(hash);
      });
      p = read;
      this.pending.set(hash, p);
      this.pendingSince.set(hash, this.now());
    }
    return p;
  }

  /** Whether a read of this key is in flight and not given up. */
  private livePending(hash: string): boolean {
    const since = this.pendingSince.get(hash);
    return since !== undefined && this.now() - since < ABANDON_MS;
  }

  /** Reads in flight that still count (started less than ABANDON_MS ago). */
  private get reading(): number {
    const now = this.now();
    let n = 0;
    for (const since of this.pendingSince.values()) if (now - since < ABANDON_MS) n++;
    return n;
  }

  private async fetch(hash: string): Promise<CacheEntry> {
    const generation = this.generation;
    const startedAt = this.now();
    let key: ApiKeyRecord | null;
    let info: AuthInfo | null = null;
    try {
      key = await this.records.getKeyByHash(hash);
      if (key) {
        const tenant = await this.records.getTenant(key.tenantId);
        if (tenant) info = this.describe(key, tenant);
      }
    } catch (err) {
      // Keys already cached keep working; a key that must be looked up cannot be while the store fails.
      this.failingSince ??= this.now();
      const stale = this.cache.get(hash);
      if (stale && generation === this.generation) stale.failedAt = this.now();
      throw unavailable(err);
    }
    this.failingSince = undefined;
    // The state as of when the read started (an entry's age bounds how stale it may be).
    const entry: CacheEntry = { key: info ? key : null, info, cachedAt: startedAt };
    // Invalidated while reading: what was read may predate the change; answer with it, keep none.
    if (generation !== this.generation) return entry;
    if (key && info) {
      if (this.hashById.size >= this.maxEntries) this.hashById.clear();
      this.hashById.set(key.id, hash);
    }
    if (!this.cache.has(hash) && this.cache.size >= this.maxEntries) {
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
      mergedPolicy: undefined, // filled on first use (resolvePolicy): declared here so every AuthInfo has one shape
    };
  }
}

function unavailable(cause: unknown): GatewayError {
  return new GatewayError('storage_unavailable', UNAVAILABLE, { headers: { 'retry-after': '1' }, cause });
}

/** Shows enough of a presented secret to recognize it, like OpenAI does (sk-abc***xyz). */
function redact(secret: string): string {
  if (secret.length <= 10) return '***';
  return `${secret.slice(0, 6)}***${secret.slice(-4)}`;
}
