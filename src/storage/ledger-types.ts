/**
 * The `Ledger` interface: one usage event per request, written exactly once, and the reports
 * read from it; with the cache outcome a request records. Re-exported by src/storage/types.ts.
 */

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
