/**
 * Storage interfaces. Each is small, async and free of driver types, so the embedded adapters
 * (memory, SQLite) and the distributed ones (Redis, PostgreSQL) are interchangeable. A contract
 * suite per interface (test/contracts/*.contract.ts) runs against every adapter: a new backend is
 * correct when it passes it.
 *
 * Part of the contract: the methods, their errors (`RecordNotFound`, `RecordConflict`) and the
 * shapes below. Private to each adapter: schema, SQL, connection handling, migrations.
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
 * (merged by src/metering/policy.ts; validated by `policyOverrideSchema` in src/config/schema.ts).
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

/** Durable records: tenants, keys and kill switches (later: flags, experiments). */
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

/* ------------------------------------------------------------------------------------------ */
/* Counters: token buckets (rate limits) and budget counters, atomic across processes.          */
/* ------------------------------------------------------------------------------------------ */

/**
 * A token bucket: holds up to `capacity` units and refills continuously at `refillPerSec`.
 * "10,000 tokens per minute with a burst of 15,000" is `{ capacity: 15000, refillPerSec: 10000 / 60 }`.
 */
export interface BucketSpec {
  capacity: number;
  refillPerSec: number;
}

export interface BucketTake {
  /** A stable key, e.g. `rl:tpm:tenant:acme`. Adapters may prefix it. */
  key: string;
  spec: BucketSpec;
  /** Units to take (> 0). */
  amount: number;
}

export interface BucketState {
  key: string;
  /** Units left after this call (after the take when it succeeded). */
  remaining: number;
  /** Milliseconds until the bucket is full again. */
  resetMs: number;
}

export interface TakeResult {
  ok: boolean;
  /** One per requested bucket, in order. */
  buckets: BucketState[];
  /** When refused: the index of the first bucket that could not give its amount. */
  refusedIndex?: number;
  /** When refused: milliseconds until that bucket holds the amount (Infinity if it never can). */
  retryAfterMs?: number;
}

export interface BudgetReserve {
  /** A key naming the budget and its period, e.g. `budget:tenant:acme:day:2026-11-22`. */
  key: string;
  /** The cap for the period, in pico-dollars. */
  limit: number;
  /** What to reserve (>= 0), in pico-dollars. */
  amount: number;
  /** How long the counter lives (until the period ends, plus a margin). */
  ttlMs: number;
}

export interface ReserveResult {
  ok: boolean;
  /** Committed spend plus open reservations per budget, after this call, in order. */
  used: number[];
  /** When refused: the first budget that could not take its amount. */
  refusedIndex?: number;
  /**
   * Budgets whose counter did not exist (never used, or lost with the counter store): the
   * caller seeds them from the ledger with {@link Counters.seedBudget} and calls again. Nothing
   * was reserved when this is non-empty.
   */
  missing: string[];
  /**
   * Per budget, in order, the epoch of its counter: set anew each time a counter is seeded ('' for
   * one that predates epochs). A reservation settles against the epoch it was made in
   * ({@link Counters.settle}).
   */
  epochs?: string[];
}

/**
 * Atomic counters shared by every gateway process of a deployment. memory (embedded) | redis
 * (Lua scripts). Part of the contract: all-or-nothing multi-key operations, integer arithmetic,
 * TTLs. Private to adapters: key layout, scripts, clocks (Redis uses its own TIME).
 */
export interface Counters {
  /** Takes `amount` from every bucket, or from none (a refusal changes nothing). */
  take(takes: BucketTake[]): Promise<TakeResult>;
  /**
   * Corrects a bucket after the fact: a positive `delta` gives units back (capped at capacity),
   * a negative one takes more (the bucket may go below zero: real usage was higher than the
   * estimate, and later requests wait for it).
   */
  adjust(key: string, spec: BucketSpec, delta: number): Promise<void>;
  /** Reserves `amount` on every budget, or on none. */
  reserve(items: BudgetReserve[]): Promise<ReserveResult>;
  /**
   * Replaces a reservation by the actual cost: adds `actual - reserved` (either sign). Returns the
   * new `used`. With the `epoch` the reservation was made in: when the counter has been seeded
   * anew since (lost with Redis, then reseeded from the ledger), it never held the reservation, so
   * only `actual` is added (never subtracting what it did not hold).
   */
  settle(key: string, reserved: number, actual: number, ttlMs: number, epoch?: string): Promise<number>;
  /** Sets a budget counter that does not exist yet (from the ledger); no-op when it exists. Resolves with the new counter's epoch, or undefined when it existed. */
  seedBudget(key: string, spent: number, ttlMs: number): Promise<string | undefined>;
  /** The current `used` of a budget (0 when absent). */
  budgetUsed(key: string): Promise<number>;
  close(): Promise<void>;
}

/* ------------------------------------------------------------------------------------------ */
/* Ledger: one usage event per request, written exactly once.                                   */
/* ------------------------------------------------------------------------------------------ */

/**
 * What the cache did: `hit` (exact), `semantic`, `stale` (last-resort answer when upstream failed),
 * `coalesced` (shared an identical request's upstream call), `miss` (looked up, not found: called
 * upstream), `bypass` (not cacheable: mode, directive or parameters), `none` (the cache did not
 * run: not a chat completion, or refused before it).
 */
export type CacheOutcome = 'miss' | 'hit' | 'semantic' | 'stale' | 'coalesced' | 'bypass' | 'none';

/** What one request cost. Amounts are integers: tokens, and pico-dollars (1e-12 USD). */
export interface UsageEvent {
  /** The request id (or job id): the idempotency key of the ledger. */
  requestId: string;
  /** Epoch ms when the request arrived. */
  ts: number;
  tenantId: string;
  keyId: string;
  /** The end user, '' when unknown. */
  userId: string;
  route: string;
  requestedModel: string;
  /** The public model that served it, '' when none did. */
  servedModel: string;
  /** The deployment (`model@provider`) that answered, '' when none did. */
  deployment: string;
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  costPico: number;
  /** What a cache hit saved, in pico-dollars. */
  savedPico: number;
  latencyMs: number;
  /** Time to first token for streams, else null. */
  ttftMs: number | null;
  cache: CacheOutcome;
  status: number;
  attempts: number;
  /** Whether usage came from upstream (false: counted locally with the tokenizer). */
  usageReported: boolean;
  /** The tier of a tiered route that served it (absent: not a tiered route). */
  tier?: string;
  /** The A/B experiment and variant it was assigned to (absent: none). */
  experiment?: string;
  variant?: string;
}

export type UsageGroupBy = 'tenant' | 'user' | 'model' | 'route' | 'day' | 'key';

export interface UsageQuery {
  /** Epoch ms, inclusive. */
  from: number;
  /** Epoch ms, exclusive. */
  to: number;
  groupBy: UsageGroupBy[];
  tenantId?: string;
  keyId?: string;
  userId?: string;
  model?: string;
}

export interface UsageRow {
  /** The group's values, by the names in `groupBy` (`day` as YYYY-MM-DD, UTC). */
  group: Partial<Record<UsageGroupBy, string>>;
  requests: number;
  errors: number;
  promptTokens: number;
  completionTokens: number;
  costPico: number;
  savedPico: number;
}

/**
 * The usage ledger. sqlite | postgres. Part of the contract: `append` is idempotent by
 * requestId (a second event with the same id is ignored, never double-counted) and durable when
 * its promise resolves; `aggregate` and `spent` read committed events.
 *
 * Roll-ups: `rollUp` folds the oldest events into hourly rows (per hour, tenant, key, user,
 * route, requested and served model) and deletes them, in one statement (a deleted event is
 * always in its roll-up, never twice). `aggregate` and `spent` read both, an hour's roll-up
 * counting as if its events had arrived at the hour's start: totals are unchanged for any range
 * whose bounds are whole UTC hours (budget periods, days), and for any range at all over events
 * still in detail. `get` and the experiment results see only events still in detail.
 */
export interface Ledger {
  /** Appends events; returns how many were new (duplicates by requestId are skipped). */
  append(events: UsageEvent[]): Promise<number>;
  aggregate(query: UsageQuery): Promise<UsageRow[]>;
  /** Total cost (pico-dollars) in [from, to) for a scope: the seed of a budget counter. */
  spent(scope: { tenantId?: string; keyId?: string; userId?: string }, from: number, to: number): Promise<number>;
  /** Events by request id (tests, idempotency checks); null once rolled up. */
  get(requestId: string): Promise<UsageEvent | null>;
  /**
   * Rolls up at most `limit` events (oldest first) that arrived before `before`, rounded down to
   * a whole UTC hour; returns how many. 0 when none are left, or (PostgreSQL) when another
   * process is rolling up at this moment. Optional: a ledger without it keeps every event.
   */
  rollUp?(before: number, limit: number): Promise<number>;
  close(): Promise<void>;
}

/* ------------------------------------------------------------------------------------------ */
/* Idempotency: a POST with an Idempotency-Key runs once; its final answer is replayed.         */
/* ------------------------------------------------------------------------------------------ */

/** A final answer as it was sent, replayed byte for byte. */
export interface StoredResponse {
  status: number;
  /** The headers to replay (lower-case names): content-type, x-request-id, x-tollgate-*. */
  headers: Record<string, string>;
  /** The body exactly as sent: a JSON document, or the whole SSE transcript of a stream. */
  body: Uint8Array;
  /** HTTP trailers sent after the body (a stream's x-tollgate-cost-usd); `{}` when none. */
  trailers: Record<string, string>;
}

export type IdempotencyBegin =
  /** The caller owns the key now: run the request, then `complete` or `release`. */
  | { state: 'new' }
  /** Another request with this key and body is running (its lease has not expired). */
  | { state: 'in_progress' }
  /** The key is held (running or done) for a different body. */
  | { state: 'mismatch' }
  /** Done: replay this answer. */
  | { state: 'done'; response: StoredResponse };

/** How long a request in flight holds its key when nobody completes or releases it (its process died). */
export const DEFAULT_IDEMPOTENCY_LEASE_MS = 10 * 60_000;

/**
 * Idempotency keys: memory | sqlite | postgres. A key lives in a scope (the caller's credential,
 * hashed), so two callers never share keys.
 *
 * Part of the contract:
 * - `begin` is atomic: of concurrent begins of one (scope, key), across processes where the
 *   backend is shared, exactly one gets 'new'. A row whose expiry has passed (an answer older
 *   than its TTL, or an in-flight lease whose owner died) counts as absent.
 * - A different `bodyHash` for a held key is 'mismatch', whether that key is running or done.
 * - `complete` turns the caller's in-flight row into a done one, kept until `ttlMs` after its
 *   `begin`; `release` deletes an in-flight row so a retry can run. Neither touches a done row,
 *   and both are no-ops for an absent one. (A request that outlives its lease may see its key
 *   taken over; its `complete` then stores its own answer in place of the newcomer's. Both are
 *   answers to the same body.)
 * - Times come from the gateway's clock (`Date.now()`), never the database's.
 * Private to adapters: schema, encoding of headers and bodies.
 */
export interface IdempotencyStore {
  begin(scope: string, key: string, bodyHash: string, ttlMs: number, leaseMs?: number): Promise<IdempotencyBegin>;
  complete(scope: string, key: string, response: StoredResponse): Promise<void>;
  release(scope: string, key: string): Promise<void>;
  /** Deletes up to `limit` rows whose expiry is at or before `now`; returns how many it deleted. */
  purgeExpired(now: number, limit: number): Promise<number>;
  close(): Promise<void>;
}

/* ------------------------------------------------------------------------------------------ */
/* Request log: one row of metadata per request, for GET /admin/v1/requests.                    */
/* ------------------------------------------------------------------------------------------ */

/** One request as the request log keeps it. Absent facts are null (an unauthenticated request has no tenant). */
export interface RequestLogEntry {
  /** Unique per request (the ledger's event id; the x-request-id when the gateway made it). */
  id: string;
  /** The request id the client saw (x-request-id), possibly its own. */
  requestId: string;
  /** Epoch ms when the request arrived. */
  ts: number;
  tenantId: string | null;
  keyId: string | null;
  userId: string | null;
  route: string;
  requestedModel: string;
  /** The public model that answered (null: none did). */
  servedModel: string | null;
  /** The deployment (`model@provider`) that answered. */
  deployment: string | null;
  /** The tier of a tiered route that served it. */
  tier: string | null;
  status: number;
  errorCode: string | null;
  cache: CacheOutcome;
  latencyMs: number;
  ttftMs: number | null;
  /** Time spent in upstream attempts (their sum). */
  upstreamMs: number;
  attempts: number;
  promptTokens: number;
  completionTokens: number;
  costPico: number;
  stream: boolean;
  traceId: string | null;
  /** The job a run belongs to (routes /v1/jobs and /v1/batches). */
  jobId: string | null;
  /** Redacted prompt and answer text: only for tenants that opted in. */
  prompt: string | null;
  answer: string | null;
}

/** A page of the request log, newest first (ts descending, then id descending). */
export interface RequestLogQuery {
  tenantId?: string;
  userId?: string;
  /** Requested or served public model. */
  model?: string;
  /** Status in [min, max] (an exact status is min = max). */
  status?: { min: number; max: number };
  cache?: CacheOutcome;
  /** Epoch ms, inclusive. */
  from?: number;
  /** Epoch ms, exclusive. */
  to?: number;
  minLatencyMs?: number;
  /** Rows after this position in the order (exclusive): the previous page's last row. */
  after?: { ts: number; id: string };
  limit: number;
}

/**
 * The request log's store: sqlite | postgres (test/contracts/request-log.contract.ts).
 *
 * Part of the contract:
 * - `append` stores a batch (a row whose id is already stored is skipped) and returns how many
 *   were new; it is called off the hot path by the writer (src/observability/request-log.ts), which
 *   bounds what waits in memory. Text arrives already redacted and capped: stores keep it as given.
 * - `query` returns at most `limit` rows matching every filter given, ordered by ts descending,
 *   then id descending (byte order), strictly after `after`: paging by the last row's (ts, id) is
 *   stable while rows are added.
 * - `prune` deletes up to `limit` rows with ts before `before`, oldest first, and returns how
 *   many it deleted (retention runs it in bounded batches).
 * Private to adapters: schema and indexes, SQL, the embedded writer thread.
 */
export interface RequestLogStore {
  append(entries: RequestLogEntry[]): Promise<number>;
  query(q: RequestLogQuery): Promise<RequestLogEntry[]>;
  prune(before: number, limit: number): Promise<number>;
  close(): Promise<void>;
}
