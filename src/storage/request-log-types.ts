/**
 * The `RequestLogStore` interface: one row of metadata per request, for GET /admin/v1/requests.
 * Re-exported by src/storage/types.ts.
 */
import type { CacheOutcome } from './ledger-types.js';

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
