/**
 * Async jobs: the storage interfaces of the job queue, the webhook outbox, files and batches.
 *
 * Part of the contract (test/contracts/job-store.contract.ts, file-store.contract.ts), held by
 * every adapter (SQLite embedded, PostgreSQL distributed):
 * - A job accepted by `enqueue` is durable when the promise resolves (committed).
 * - `enqueue` with an idempotency key already used by the same tenant returns the first job
 *   (`created: false`) and writes nothing.
 * - `claim` hands each queued job to at most one worker at a time: a job is `running` with a
 *   lease (owner + `leaseUntil`) until its owner completes, fails or releases it, or the lease
 *   passes (the owner died), after which it is claimable again (at-least-once execution).
 *   Order: the lowest `priority` value first; within it, the tenant with the fewest running jobs
 *   (fairness: one tenant's flood cannot starve another's single job by more than one worker
 *   slot); within a tenant, the oldest (`seq`) first. Jobs whose `runAfter` is in the future
 *   (backoff) and jobs of `excludeModels` are skipped.
 * - `complete`, `fail`, `release` and `heartbeat` act only while the caller still holds the
 *   lease (same owner, status `running`): they return false/omit the job otherwise (the job was
 *   cancelled, expired or taken over), and the caller must discard its result.
 * - A terminal job (succeeded, failed, cancelled, expired) with a webhook URL has its webhook
 *   outbox entry (`webhook.state = 'pending'`) written in the same transaction as the status.
 * Private to each adapter: schema, SQL, indexes, how the lease is taken (SQLite IMMEDIATE
 * transaction; PostgreSQL a transaction-level advisory lock per schema, src/storage/postgres/job-claim.ts).
 */

export type JobKind = 'chat' | 'embeddings';
export type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled' | 'expired';
export const TERMINAL_STATUSES: readonly JobStatus[] = ['succeeded', 'failed', 'cancelled', 'expired'];

export interface JobError {
  /** Tollgate's error code (src/errors.ts), e.g. `upstream_error`, `budget_exceeded`, `deadline_exceeded`. */
  code: string;
  message: string;
  /** The HTTP status the same failure has on the synchronous API. */
  status: number;
}

export type WebhookState = 'pending' | 'delivered' | 'failed';

export interface JobRecord {
  /** `job_` + 24 hex characters. */
  id: string;
  /** Insertion order (monotonic per store): FIFO within a tenant, and the cursor of listings. */
  seq: number;
  tenantId: string;
  keyId: string;
  /** The end user (the key's fixed user, else the body's `user`), '' when none. */
  userId: string;
  kind: JobKind;
  /** The requested model (a listing filter; also how workers skip a saturated provider). */
  model: string;
  /** The request body as accepted (chat completions or embeddings). */
  body: Record<string, unknown>;
  /** Lower runs first (tier class * 3 + request priority). */
  priority: number;
  status: JobStatus;
  webhookUrl: string | null;
  /** Epoch ms; a job not finished by then ends `expired` (queued) or is stopped (running). */
  deadlineAt: number | null;
  metadata: Record<string, string>;
  idempotencyKey: string | null;
  /** The batch it belongs to (Batch API), with the line's custom_id. */
  batchId: string | null;
  customId: string | null;
  /** Executions started (claims); a release on shutdown gives one back. */
  attempts: number;
  maxAttempts: number;
  /** The answer body (chat.completion or embeddings list) once succeeded. */
  result: Record<string, unknown> | null;
  /** The last error (kept on retries and in the dead letter). */
  error: JobError | null;
  /** True when it failed because it used up `maxAttempts` (the dead letter). */
  deadLettered: boolean;
  costPico: number;
  promptTokens: number;
  completionTokens: number;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  /** Not claimable before this (retry backoff). */
  runAfter: number;
  leaseOwner: string | null;
  leaseUntil: number | null;
  webhook: { state: WebhookState; attempts: number; nextAt: number } | null;
}

/** A job as submitted: the fields of its record that the submission sets (the store sets the rest). */
export type NewJob = Pick<
  JobRecord,
  | 'id'
  | 'tenantId'
  | 'keyId'
  | 'userId'
  | 'kind'
  | 'model'
  | 'body'
  | 'priority'
  | 'webhookUrl'
  | 'deadlineAt'
  | 'metadata'
  | 'idempotencyKey'
  | 'batchId'
  | 'customId'
  | 'maxAttempts'
  | 'createdAt'
>;

export interface JobListQuery {
  tenantId: string;
  status?: JobStatus;
  model?: string;
  batchId?: string;
  /** Only jobs whose metadata has this key with this value. */
  metadata?: { key: string; value: string };
  /** Cursor: jobs created before this job (listings are newest first, by seq). */
  after?: string;
  /** 1..100 */
  limit: number;
}

export interface JobOutcome {
  result: Record<string, unknown>;
  costPico: number;
  promptTokens: number;
  completionTokens: number;
}

export interface QueueStats {
  /** Per priority value: queued jobs (runAfter included), the oldest one's createdAt, running jobs. */
  byPriority: Array<{ priority: number; queued: number; oldestCreatedAt: number | null; running: number }>;
}

/** One webhook delivery attempt, kept per job (GET /v1/jobs/:id/deliveries). */
export interface WebhookDelivery {
  jobId: string;
  attempt: number;
  at: number;
  /** The receiver's HTTP status; null when no answer came (connection, timeout, policy). */
  statusCode: number | null;
  /** '' when it was delivered. */
  error: string;
  durationMs: number;
}

export interface JobStore {
  /** Accepts a job (durable when resolved). Same tenant + idempotency key: the first job, `created: false`. */
  enqueue(job: NewJob): Promise<{ job: JobRecord; created: boolean }>;
  /** Accepts many jobs in one transaction (a batch's lines): all or none. */
  enqueueMany(jobs: NewJob[]): Promise<void>;
  /** A job by id; with `tenantId`, only that tenant's (another tenant's job is undefined). */
  get(id: string, tenantId?: string): Promise<JobRecord | undefined>;
  /** Newest first; `hasMore` when another page exists (pass the last id as `after`). */
  list(q: JobListQuery): Promise<{ data: JobRecord[]; hasMore: boolean }>;
  /**
   * Cancels a queued or running job (status `cancelled`, finishedAt now, lease dropped: the
   * running owner's next heartbeat or completion finds it gone). Returns the job after the call;
   * undefined when unknown to that tenant. A terminal job is returned unchanged.
   */
  cancel(id: string, tenantId: string, now: number): Promise<JobRecord | undefined>;
  /** Cancels every queued or running job of a batch; returns how many. */
  cancelBatch(batchId: string, now: number): Promise<number>;
  /**
   * Leases up to `limit` claimable jobs to `owner` until `now + leaseMs`: status `running`,
   * attempts + 1, startedAt set (first start only). Order and skips: see the header.
   */
  claim(opts: { owner: string; limit: number; leaseMs: number; now: number; excludeModels?: readonly string[] }): Promise<JobRecord[]>;
  /** Extends the leases of `ids` still held by `owner`; returns the ids still held (others were lost: stop them). */
  heartbeat(owner: string, ids: readonly string[], leaseMs: number, now: number): Promise<string[]>;
  /** Succeeds a held job (result, cost, tokens, finishedAt); false when the lease is no longer held. */
  complete(id: string, owner: string, outcome: JobOutcome, now: number): Promise<boolean>;
  /**
   * Fails a held job. With `retryAt` and attempts < maxAttempts: back to `queued` (runAfter =
   * retryAt, error kept). Otherwise terminal `failed` (`deadLettered` when attempts reached
   * maxAttempts and a retry was asked). `costPico`/tokens add what the failed run used.
   */
  fail(
    id: string,
    owner: string,
    failure: {
      error: JobError;
      retryAt?: number;
      /** The terminal status (default `failed`); `expired` when the run passed the job's deadline. */
      status?: 'failed' | 'expired';
      costPico?: number;
      promptTokens?: number;
      completionTokens?: number;
    },
    now: number,
  ): Promise<boolean>;
  /**
   * Hands a held job back to the queue, the attempt not counted: on shutdown, or when it was
   * refused by a rate limit (not the job's fault). Claimable again from `runAfter` (default now).
   */
  release(id: string, owner: string, now: number, runAfter?: number): Promise<boolean>;
  /**
   * Ends jobs past their deadline: queued ones `expired` (error `deadline_exceeded`); running
   * ones whose lease has also passed, too. Returns the jobs it ended.
   */
  expire(now: number): Promise<JobRecord[]>;
  /** Queue depth and running jobs by priority (for /metrics). */
  stats(now: number): Promise<QueueStats>;
  /** How many jobs of the batch are in each status. */
  batchCounts(batchId: string): Promise<Partial<Record<JobStatus, number>>>;
  /** Every job of a batch, in line order (seq). */
  batchJobs(batchId: string): Promise<JobRecord[]>;

  /**
   * Retention: deletes up to `limit` finished jobs (succeeded, failed, cancelled, expired) that
   * ended before `before` and whose webhook is not pending, with their delivery logs; returns how
   * many jobs it deleted (the caller repeats while it gets `limit`).
   */
  deleteFinished(before: number, limit: number): Promise<number>;

  /** Webhook outbox: up to `limit` jobs with a pending delivery due at `now`, leased to `owner` for `leaseMs`. */
  claimWebhooks(opts: { owner: string; limit: number; leaseMs: number; now: number }): Promise<JobRecord[]>;
  /**
   * Records one delivery attempt of a job's webhook and its new state: `delivered`, `failed`
   * (gave up), or still `pending` with the next attempt at `nextAt`.
   */
  recordDelivery(delivery: WebhookDelivery, next: { state: WebhookState; nextAt: number }): Promise<void>;
  /** A job's delivery attempts, oldest first. */
  deliveries(jobId: string): Promise<WebhookDelivery[]>;

  close(): Promise<void>;
}

// --- Files and batches (OpenAI's Batch API) ---

export type FilePurpose = 'batch' | 'batch_output';

export interface FileRecord {
  /** `file-` + 24 hex characters. */
  id: string;
  tenantId: string;
  purpose: FilePurpose;
  filename: string;
  bytes: number;
  createdAt: number;
  /** Epoch ms after which the file is deleted; null = kept. */
  expiresAt: number | null;
}

export type BatchStatus = 'validating' | 'failed' | 'in_progress' | 'finalizing' | 'completed' | 'expired' | 'cancelling' | 'cancelled';

export interface BatchRecord {
  /** `batch_` + 24 hex characters. */
  id: string;
  tenantId: string;
  keyId: string;
  endpoint: '/v1/chat/completions' | '/v1/embeddings';
  inputFileId: string;
  completionWindow: string;
  status: BatchStatus;
  outputFileId: string | null;
  errorFileId: string | null;
  /** Validation errors of the input file (OpenAI's `errors.data`). */
  errors: Array<{ code: string; message: string; line: number | null; param: string | null }>;
  requestCounts: { total: number; completed: number; failed: number };
  metadata: Record<string, string>;
  createdAt: number;
  inProgressAt: number | null;
  expiresAt: number;
  finalizingAt: number | null;
  completedAt: number | null;
  failedAt: number | null;
  expiredAt: number | null;
  cancellingAt: number | null;
  cancelledAt: number | null;
}

/**
 * A file's bytes as given to `putFile`: in memory, or a file on local disk (an upload spooled
 * there) that the store consumes: it may move it (the caller removes it afterwards if it is still
 * there). Either way the store never needs the whole file in memory for a path.
 */
export type FileContent = Buffer | { path: string };

export interface FileStore {
  /** Stores a file; its bytes are complete when the promise resolves (a reader never sees part of them). */
  putFile(f: FileRecord, content: FileContent): Promise<void>;
  getFile(id: string, tenantId: string): Promise<FileRecord | undefined>;
  /** The file's bytes; undefined when unknown to that tenant. */
  getContent(id: string, tenantId: string): Promise<Buffer | undefined>;
  listFiles(tenantId: string, opts: { purpose?: FilePurpose; after?: string; limit: number }): Promise<{ data: FileRecord[]; hasMore: boolean }>;
  deleteFile(id: string, tenantId: string): Promise<boolean>;
  /** Deletes files past their expiry; returns how many. */
  deleteExpiredFiles(now: number): Promise<number>;

  createBatch(b: BatchRecord): Promise<void>;
  getBatch(id: string, tenantId?: string): Promise<BatchRecord | undefined>;
  listBatches(tenantId: string, opts: { after?: string; limit: number }): Promise<{ data: BatchRecord[]; hasMore: boolean }>;
  /**
   * Applies `patch` when the batch's status is one of `from` (compare-and-set, so two processes
   * finalizing the same batch cannot both win); returns the batch after it, or undefined when the
   * status did not match.
   */
  updateBatch(id: string, from: readonly BatchStatus[], patch: Partial<Omit<BatchRecord, 'id' | 'tenantId'>>): Promise<BatchRecord | undefined>;
  /** Batches in one of these statuses (the sweeper's work list). */
  batchesIn(statuses: readonly BatchStatus[], limit: number): Promise<BatchRecord[]>;
}
