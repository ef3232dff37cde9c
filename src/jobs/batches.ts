/**
 * OpenAI's Batch API on the job queue: files (upload, list, read, delete) and batches (a JSONL
 * input file whose every line becomes one low-priority job; its answers gathered into an output
 * file and an error file once every job has ended).
 *
 * A batch moves validating -> in_progress | failed; in_progress -> finalizing -> completed;
 * in_progress -> cancelling -> finalizing -> cancelled; in_progress -> finalizing -> expired (24 h
 * window passed). Every transition is a compare-and-set on the batch's status in the FileStore
 * (`updateBatch`), and the sweeper works from the store alone, never from memory: any process may
 * advance any batch, a restart loses nothing, and two processes never both finalize one batch
 * (the loser of the final compare-and-set deletes the files it wrote).
 *
 * Which end a finalizing batch is heading for is kept in the record itself, so a finalization cut
 * short by a crash is resumed by any process: `expiredAt` set -> expired, else `cancellingAt` set
 * -> cancelled, else completed.
 */
import { randomBytes } from 'node:crypto';
import { findTooDeepInText, jsonTooDeepError } from '../http/json-depth.js';
import type { AuthInfo } from '../auth/authenticator.js';
import type { JobsConfig } from '../config/jobs-schema.js';
import { ERROR_CODES, type ErrorSpec, GatewayError, isGatewayError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { JobAdmission } from './admission.js';
import type { JobOptions } from './service.js';
import type { BatchRecord, BatchStatus, FileContent, FilePurpose, FileRecord, FileStore, JobKind, JobRecord, JobStatus, JobStore, NewJob } from './types.js';

export type BatchEndpoint = BatchRecord['endpoint'];
export type BatchLineError = BatchRecord['errors'][number];

/** The endpoints a batch may target, and the kind of job each line becomes. */
export const BATCH_ENDPOINTS: Readonly<Record<BatchEndpoint, JobKind>> = {
  '/v1/chat/completions': 'chat',
  '/v1/embeddings': 'embeddings',
};

/** The completion windows OpenAI accepts (only 24 h). */
export const COMPLETION_WINDOWS: Readonly<Record<string, number>> = { '24h': 24 * 3_600_000 };

/** At most this many line errors are kept on a failed batch (the first ones, in line order). */
export const MAX_REPORTED_ERRORS = 1_000;
/** Longest custom_id accepted. */
export const MAX_CUSTOM_ID = 512;

/** A batch still `validating` this long after its creation was abandoned (its process died). */
const VALIDATION_STALE_MS = 10 * 60_000;
/** A batch still `finalizing` this long after it started was abandoned: another process resumes it. */
const FINALIZATION_STALE_MS = 60_000;

export function newFileId(): string {
  return `file-${randomBytes(12).toString('hex')}`;
}

export function newBatchId(): string {
  return `batch_${randomBytes(12).toString('hex')}`;
}

const seconds = (ms: number | null): number | null => (ms === null ? null : Math.floor(ms / 1000));

/** OpenAI's `file` object. */
export function fileObject(f: FileRecord): Record<string, unknown> {
  return {
    id: f.id,
    object: 'file',
    bytes: f.bytes,
    created_at: seconds(f.createdAt),
    expires_at: seconds(f.expiresAt),
    filename: f.filename,
    purpose: f.purpose,
    status: 'processed',
    status_details: null,
  };
}

/** OpenAI's `batch` object. */
export function batchObject(b: BatchRecord): Record<string, unknown> {
  return {
    id: b.id,
    object: 'batch',
    endpoint: b.endpoint,
    errors: b.errors.length === 0 ? null : { object: 'list', data: b.errors.map((e) => ({ code: e.code, message: e.message, param: e.param, line: e.line })) },
    input_file_id: b.inputFileId,
    completion_window: b.completionWindow,
    status: b.status,
    output_file_id: b.outputFileId,
    error_file_id: b.errorFileId,
    created_at: seconds(b.createdAt),
    in_progress_at: seconds(b.inProgressAt),
    expires_at: seconds(b.expiresAt),
    finalizing_at: seconds(b.finalizingAt),
    completed_at: seconds(b.completedAt),
    failed_at: seconds(b.failedAt),
    expired_at: seconds(b.expiredAt),
    cancelling_at: seconds(b.cancellingAt),
    cancelled_at: seconds(b.cancelledAt),
    request_counts: { ...b.requestCounts },
    metadata: b.metadata,
  };
}

// --- The input file ---

export interface InputLine {
  /** 1-based, counting every line of the file (blank ones too), as an editor shows it. */
  line: number;
  text: string;
}

/** The file's request lines: UTF-8, LF or CRLF, a leading BOM and blank lines skipped. */
export function splitLines(content: Buffer): InputLine[] {
  let text = content.toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const out: InputLine[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let t = lines[i]!;
    if (t.endsWith('\r')) t = t.slice(0, -1);
    if (t.trim() !== '') out.push({ line: i + 1, text: t });
  }
  return out;
}

const YIELD_EVERY = 500;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Checks every line as OpenAI does (a JSON object; `custom_id` a string unique in the file;
 * `method` POST; `url` the batch's endpoint; `body` an object), then the body itself through
 * `prepare` (JobService.prepare: schema, model, its type against the endpoint, the key's
 * allowed models), whose GatewayError becomes the line's error. Returns the jobs of the valid
 * lines and one error per invalid line, in line order.
 */
export async function validateLines(
  lines: readonly InputLine[],
  endpoint: BatchEndpoint,
  prepare: (body: Record<string, unknown>, customId: string) => NewJob,
  maxJsonDepth = 64,
): Promise<{ jobs: NewJob[]; errors: BatchLineError[] }> {
  const jobs: NewJob[] = [];
  const errors: BatchLineError[] = [];
  const seen = new Map<string, number>();
  let checked = 0;
  for (const { line, text } of lines) {
    // A large file is checked in slices, so online requests are not held up meanwhile.
    if (++checked % YIELD_EVERY === 0) await new Promise((resolve) => setImmediate(resolve));
    const fail = (code: string, message: string, param: string | null = null) => errors.push({ code, message, line, param });
    // Too deep (server.maxJsonDepth) is refused before parsing, like a request body (src/http/json-depth.ts).
    const tooDeep = findTooDeepInText(text, maxJsonDepth);
    if (tooDeep !== undefined) {
      const err = jsonTooDeepError(tooDeep, maxJsonDepth);
      fail(err.code, err.message, err.param);
      continue;
    }
    let request: unknown;
    try {
      request = JSON.parse(text);
    } catch {
      fail('invalid_json_line', 'This line is not parseable as valid JSON.');
      continue;
    }
    if (!isObject(request)) {
      fail('invalid_json_line', 'This line is not a JSON object.');
      continue;
    }
    const customId = request['custom_id'];
    if (customId === undefined || customId === null) {
      fail('missing_field', "Missing required parameter: 'custom_id'.", 'custom_id');
      continue;
    }
    if (typeof customId !== 'string') {
      fail('invalid_type', "Invalid type for 'custom_id': expected string.", 'custom_id');
      continue;
    }
    if (customId === '' || customId.length > MAX_CUSTOM_ID) {
      fail('invalid_value', `Invalid value for 'custom_id': it must be 1 to ${MAX_CUSTOM_ID} characters long.`, 'custom_id');
      continue;
    }
    const first = seen.get(customId);
    if (first !== undefined) {
      fail(
        'duplicate_custom_id',
        `The custom_id '${customId}' is a duplicate of line ${first}; each request's custom_id must be unique in the batch.`,
        'custom_id',
      );
      continue;
    }
    seen.set(customId, line);
    const method = request['method'];
    if (method === undefined || method === null) {
      fail('missing_field', "Missing required parameter: 'method'.", 'method');
      continue;
    }
    if (method !== 'POST') {
      fail('invalid_value', "Invalid value for 'method': only 'POST' is supported.", 'method');
      continue;
    }
    const url = request['url'];
    if (url === undefined || url === null) {
      fail('missing_field', "Missing required parameter: 'url'.", 'url');
      continue;
    }
    if (url !== endpoint) {
      fail('url_mismatch', `The url '${String(url)}' does not match the batch's endpoint '${endpoint}'.`, 'url');
      continue;
    }
    const body = request['body'];
    if (body === undefined || body === null) {
      fail('missing_field', "Missing required parameter: 'body'.", 'body');
      continue;
    }
    if (!isObject(body)) {
      fail('invalid_type', "Invalid type for 'body': expected object.", 'body');
      continue;
    }
    try {
      jobs.push(prepare(body, customId));
    } catch (err) {
      if (!isGatewayError(err)) throw err;
      fail(err.code, err.message, err.param);
    }
  }
  return { jobs, errors };
}

// --- The output and error files ---

const NOT_RUN: Record<'cancelled' | 'expired', { code: string; message: string }> = {
  cancelled: { code: 'batch_cancelled', message: 'This request was not executed because the batch was cancelled.' },
  expired: { code: 'batch_expired', message: 'This request could not be executed before the completion window expired.' },
};

function errorType(code: string, status: number): string {
  return (ERROR_CODES as Record<string, ErrorSpec>)[code]?.type ?? (status >= 500 ? 'server_error' : 'invalid_request_error');
}

/**
 * The lines of the output file (succeeded jobs) and of the error file (every other job), in
 * input order (`jobs` as JobStore.batchJobs gives them). A job that ran and failed has its
 * HTTP status and OpenAI error body as its response; one that never ran (cancelled, expired, or
 * still unfinished when the batch ended) has no response and an error naming why.
 */
export function resultLines(jobs: readonly JobRecord[], end: 'completed' | 'cancelled' | 'expired'): { output: string[]; errors: string[] } {
  const output: string[] = [];
  const errors: string[] = [];
  for (const job of jobs) {
    const id = `batch_req_${job.id}`;
    const customId = job.customId;
    if (job.status === 'succeeded') {
      output.push(JSON.stringify({ id, custom_id: customId, response: { status_code: 200, request_id: job.id, body: job.result }, error: null }));
    } else if (job.status === 'failed') {
      const e = job.error ?? { code: 'internal_error', message: 'The request failed.', status: 500 };
      const body = { error: { message: e.message, type: errorType(e.code, e.status), param: null, code: e.code } };
      errors.push(JSON.stringify({ id, custom_id: customId, response: { status_code: e.status, request_id: job.id, body }, error: null }));
    } else {
      // Cancelled or expired (or, defensively, not ended): it produced no response.
      const why = job.status === 'expired' || end === 'expired' ? NOT_RUN.expired : NOT_RUN.cancelled;
      errors.push(JSON.stringify({ id, custom_id: customId, response: null, error: why }));
    }
  }
  return { output, errors };
}

/** request_counts from JobStore.batchCounts: completed = succeeded, failed = every other end. */
export function requestCounts(counts: Partial<Record<JobStatus, number>>, total: number): BatchRecord['requestCounts'] {
  return {
    total,
    completed: counts.succeeded ?? 0,
    failed: (counts.failed ?? 0) + (counts.cancelled ?? 0) + (counts.expired ?? 0),
  };
}

const unfinished = (counts: Partial<Record<JobStatus, number>>): number => (counts.queued ?? 0) + (counts.running ?? 0);

// --- The service ---

export interface BatchServiceOptions {
  files: FileStore;
  jobs: JobStore;
  /** JobService: checks each line's body and queues the jobs (all or none). */
  service: {
    prepare(auth: AuthInfo, kind: JobKind, body: unknown, options: JobOptions, paramPrefix?: string): NewJob;
    submitMany(jobs: NewJob[]): Promise<void>;
  };
  config: Pick<JobsConfig, 'batch' | 'maxDeadlineMs'> & Partial<Pick<JobsConfig, 'retentionMs'>>;
  log: Logger;
  /** Checked before a batch is created: a budget already used up (402), the tenant's job quotas (src/jobs/admission.ts). */
  admission?: JobAdmission;
  /** A running job was cancelled (tells the process running it to stop it now, not at its next heartbeat). */
  onCancelled?: (jobId: string) => void;
  now?: () => number;
  /** Deepest nesting of a line (server.maxJsonDepth); default 64. */
  maxJsonDepth?: number;
  /** How often the sweeper looks at the open batches (default 1 s). */
  sweepMs?: number;
  /** How often expired files, and finished jobs past jobs.retentionMs, are deleted (default 1 min). */
  fileSweepMs?: number;
  /** How long a poke waits for more of its batch's jobs to end before it looks (default 25 ms). */
  pokeDelayMs?: number;
}

export interface CreateBatchInput {
  inputFileId: string;
  endpoint: BatchEndpoint;
  completionWindow: string;
  metadata?: Record<string, string> | null | undefined;
}

type Caller = Pick<AuthInfo, 'tenantId'>;

const OPEN: readonly BatchStatus[] = ['validating', 'in_progress', 'cancelling', 'finalizing'];
/** Finished jobs deleted per statement by the retention sweep. */
const RETENTION_BATCH = 500;
const SWEEP_LIMIT = 1_000;

export class BatchService {
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private pokeTimer: NodeJS.Timeout | undefined;
  private readonly poked = new Set<string>();
  /** One advance at a time in this process (sweeps and pokes), so counts are never written out of order. */
  private chain: Promise<void> = Promise.resolve();
  private sweeping = false;
  private lastFileSweep = 0;
  private stopped = true;

  constructor(private readonly opts: BatchServiceOptions) {
    this.now = opts.now ?? Date.now;
  }

  // --- Files ---

  /**
   * Stores an uploaded file (purpose `batch`, at most jobs.batch.maxFileBytes): its bytes in
   * memory, or spooled to disk (`{ path }`, with `bytes`), which the store takes over.
   */
  async uploadFile(auth: Caller, input: { purpose: string | undefined; filename: string; content: FileContent; bytes?: number }): Promise<FileRecord> {
    if (input.purpose === undefined) throw new GatewayError('missing_field', "Missing required parameter: 'purpose'.", { param: 'purpose' });
    if (input.purpose !== 'batch') {
      throw new GatewayError('invalid_value', `Invalid value for 'purpose': only 'batch' is supported (got '${input.purpose.slice(0, 40)}').`, {
        param: 'purpose',
      });
    }
    const max = this.opts.config.batch.maxFileBytes;
    const bytes = Buffer.isBuffer(input.content) ? input.content.length : (input.bytes ?? 0);
    if (bytes > max) throw fileTooLarge(max);
    const now = this.now();
    const file: FileRecord = {
      id: newFileId(),
      tenantId: auth.tenantId,
      purpose: 'batch',
      filename: input.filename,
      bytes,
      createdAt: now,
      expiresAt: now + this.opts.config.batch.fileTtlMs,
    };
    await this.opts.files.putFile(file, input.content);
    return file;
  }

  async getFile(auth: Caller, id: string, param = 'file_id'): Promise<FileRecord> {
    const file = await this.opts.files.getFile(id, auth.tenantId);
    if (!file || this.isExpired(file)) throw noFile(id, param);
    return file;
  }

  async fileContent(auth: Caller, id: string): Promise<{ file: FileRecord; content: Buffer }> {
    const file = await this.getFile(auth, id);
    const content = await this.opts.files.getContent(id, auth.tenantId);
    if (!content) throw noFile(id, 'file_id');
    return { file, content };
  }

  listFiles(
    auth: Caller,
    q: { purpose?: FilePurpose | undefined; after?: string | undefined; limit: number },
  ): Promise<{ data: FileRecord[]; hasMore: boolean }> {
    return this.opts.files.listFiles(auth.tenantId, {
      ...(q.purpose ? { purpose: q.purpose } : {}),
      ...(q.after ? { after: q.after } : {}),
      limit: q.limit,
    });
  }

  async deleteFile(auth: Caller, id: string): Promise<void> {
    if (!(await this.opts.files.deleteFile(id, auth.tenantId))) throw noFile(id, 'file_id');
  }

  private isExpired(file: FileRecord): boolean {
    return file.expiresAt !== null && file.expiresAt <= this.now();
  }

  // --- Batches ---

  /**
   * Creates a batch from an uploaded file: every line checked; any invalid line -> the batch is
   * `failed` with the lines' errors; else every line queued as a low-priority job (all or none)
   * and the batch is `in_progress`.
   */
  async create(auth: AuthInfo, input: CreateBatchInput): Promise<BatchRecord> {
    const { files } = this.opts;
    const windowMs = COMPLETION_WINDOWS[input.completionWindow];
    if (windowMs === undefined) {
      throw new GatewayError('invalid_value', "Invalid value for 'completion_window': must be '24h'.", { param: 'completion_window' });
    }
    const kind = BATCH_ENDPOINTS[input.endpoint];
    if (kind === undefined) {
      throw new GatewayError('invalid_value', `Invalid value for 'endpoint': must be one of ${Object.keys(BATCH_ENDPOINTS).map((e) => `'${e}'`).join(', ')}.`, {
        param: 'endpoint',
      });
    }
    const file = await this.getFile(auth, input.inputFileId, 'input_file_id');
    if (file.purpose !== 'batch') {
      throw new GatewayError('invalid_value', `The file '${file.id}' has purpose '${file.purpose}'; a batch's input file must have purpose 'batch'.`, {
        param: 'input_file_id',
      });
    }
    const content = await files.getContent(file.id, auth.tenantId);
    if (!content) throw noFile(file.id, 'input_file_id');
    const lines = splitLines(content);
    const max = this.opts.config.batch.maxRequests;
    if (lines.length > max) {
      throw new GatewayError('invalid_value', `The input file has ${lines.length} requests; a batch may hold at most ${max} (jobs.batch.maxRequests).`, {
        param: 'input_file_id',
      });
    }
    // Its lines as jobs: the file's size bounds their bodies' (checked before anything is recorded).
    await this.opts.admission?.check(auth, { jobs: lines.length, bytes: content.length, endUser: null, param: 'input_file_id' });

    const now = this.now();
    const batch: BatchRecord = {
      id: newBatchId(),
      tenantId: auth.tenantId,
      keyId: auth.keyId,
      endpoint: input.endpoint,
      inputFileId: file.id,
      completionWindow: input.completionWindow,
      status: 'validating',
      outputFileId: null,
      errorFileId: null,
      errors: [],
      requestCounts: { total: 0, completed: 0, failed: 0 },
      metadata: { ...(input.metadata ?? {}) },
      createdAt: now,
      inProgressAt: null,
      expiresAt: now + windowMs,
      finalizingAt: null,
      completedAt: null,
      failedAt: null,
      expiredAt: null,
      cancellingAt: null,
      cancelledAt: null,
    };
    // Recorded first: jobs never exist without their batch. A process that dies before the
    // batch leaves `validating` is made good by the sweeper (see advance()).
    await files.createBatch(batch);

    // The jobs' own deadline is a backstop just past the window (the sweeper ends the batch at
    // expiresAt), within what a job may ask for (jobs.maxDeadlineMs).
    const deadlineAt = Math.min(Math.ceil(batch.expiresAt / 1000), Math.floor((now + this.opts.config.maxDeadlineMs) / 1000));
    let jobs: NewJob[];
    let errors: BatchLineError[];
    try {
      ({ jobs, errors } = await validateLines(lines, input.endpoint, (body, customId) =>
        this.opts.service.prepare(auth, kind, body, { priority: 'low', batchId: batch.id, customId, deadlineAt }, 'body.'),
      this.opts.maxJsonDepth,
      ));
      if (lines.length === 0) errors.push({ code: 'empty_file', message: 'The batch input file is empty.', line: null, param: null });
      if (errors.length === 0) await this.opts.service.submitMany(jobs);
    } catch (err) {
      // Nothing was queued (submitMany is all or none): the batch fails, the caller sees why.
      await files
        .updateBatch(batch.id, ['validating'], {
          status: 'failed',
          failedAt: this.now(),
          errors: [{ code: 'internal_error', message: 'The batch could not be queued; create it again.', line: null, param: null }],
        })
        .catch((e: unknown) => this.opts.log.error({ err: e, batchId: batch.id }, 'batch: could not mark a batch failed'));
      throw err;
    }

    if (errors.length > 0) {
      const failed = await files.updateBatch(batch.id, ['validating'], {
        status: 'failed',
        failedAt: this.now(),
        errors: errors.slice(0, MAX_REPORTED_ERRORS),
      });
      return failed ?? (await this.mustGet(batch.id));
    }
    const started = await files.updateBatch(batch.id, ['validating'], {
      status: 'in_progress',
      inProgressAt: this.now(),
      requestCounts: { total: jobs.length, completed: 0, failed: 0 },
    });
    if (started) return started;
    // Someone moved it meanwhile: cancelled while validating, or taken for abandoned by a
    // sweeper. Unless it is running after all, the jobs just queued must not run.
    const current = await this.mustGet(batch.id);
    if (current.status !== 'in_progress') {
      await this.cancelJobs(batch, this.now());
      this.poke(batch.id);
    }
    return current;
  }

  async get(auth: Caller, id: string): Promise<BatchRecord> {
    const batch = await this.opts.files.getBatch(id, auth.tenantId);
    if (!batch) throw new GatewayError('not_found', `No batch with id '${id}'.`, { param: 'batch_id' });
    return batch;
  }

  list(auth: Caller, q: { after?: string | undefined; limit: number }): Promise<{ data: BatchRecord[]; hasMore: boolean }> {
    return this.opts.files.listBatches(auth.tenantId, { ...(q.after ? { after: q.after } : {}), limit: q.limit });
  }

  /**
   * Cancels a validating or in-progress batch: `cancelling`, its queued and running jobs
   * cancelled; it becomes `cancelled` (with the files of what had finished) once none runs,
   * within a sweep. Cancelling a cancelling or cancelled batch returns it unchanged.
   */
  async cancel(auth: Caller, id: string): Promise<BatchRecord> {
    let batch = await this.get(auth, id);
    for (;;) {
      if (batch.status === 'cancelling' || batch.status === 'cancelled') return batch;
      if (batch.status !== 'validating' && batch.status !== 'in_progress') {
        throw new GatewayError('conflict', `Batch '${id}' is ${batch.status}; only a validating or in-progress batch can be cancelled.`, { param: 'batch_id' });
      }
      const now = this.now();
      const next = await this.opts.files.updateBatch(id, ['validating', 'in_progress'], { status: 'cancelling', cancellingAt: now });
      if (next) {
        await this.cancelJobs(next, now);
        this.poke(id);
        return next;
      }
      batch = await this.get(auth, id); // it moved meanwhile: look again
    }
  }

  private async mustGet(id: string): Promise<BatchRecord> {
    const batch = await this.opts.files.getBatch(id);
    if (!batch) throw new GatewayError('internal_error', `Batch '${id}' vanished.`);
    return batch;
  }

  // --- The sweeper ---

  /** Starts the sweeper (a first sweep at once: it resumes what a restart left open). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.timer = setInterval(() => this.sweepSoon(), this.opts.sweepMs ?? 1_000);
    this.timer.unref();
    this.sweepSoon();
  }

  /** Stops the sweeper; resolves when the work in hand is done (before the storage closes). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.pokeTimer);
    this.timer = undefined;
    this.pokeTimer = undefined;
    this.poked.clear();
    await this.chain;
  }

  /** A job of this batch ended (called by the worker): the batch is looked at shortly. */
  poke(batchId: string): void {
    if (this.stopped) return;
    this.poked.add(batchId);
    if (this.pokeTimer) return;
    this.pokeTimer = setTimeout(() => {
      this.pokeTimer = undefined;
      const ids = [...this.poked];
      this.poked.clear();
      this.enqueue(async () => {
        for (const id of ids) {
          const batch = await this.opts.files.getBatch(id);
          if (batch) await this.advance(batch, this.now());
        }
      });
    }, this.opts.pokeDelayMs ?? 25);
    this.pokeTimer.unref();
  }

  private sweepSoon(): void {
    if (this.sweeping || this.stopped) return;
    this.sweeping = true;
    this.enqueue(() => this.sweep()).finally(() => {
      this.sweeping = false;
    });
  }

  private enqueue(work: () => Promise<void>): Promise<void> {
    const run = this.chain.then(work).catch((err: unknown) => this.opts.log.error({ err }, 'batch sweeper failed'));
    this.chain = run;
    return run;
  }

  /**
   * One pass over the open batches (request counts, finalization, expiry, abandoned work),
   * and now and then the deletion of expired files and of finished jobs past jobs.retentionMs
   * (every process runs it; each deletion is one statement, so two processes never both delete a
   * row). Public for tests.
   */
  async sweep(): Promise<void> {
    const now = this.now();
    const open = await this.opts.files.batchesIn(OPEN, SWEEP_LIMIT);
    for (const batch of open) {
      try {
        await this.advance(batch, now);
      } catch (err) {
        this.opts.log.error({ err, batchId: batch.id }, 'batch: could not advance a batch');
      }
    }
    if (now - this.lastFileSweep >= (this.opts.fileSweepMs ?? 60_000)) {
      this.lastFileSweep = now;
      const deleted = await this.opts.files.deleteExpiredFiles(now);
      if (deleted > 0) this.opts.log.info({ deleted }, 'batch: expired files deleted');
      const retentionMs = this.opts.config.retentionMs;
      if (retentionMs !== undefined) {
        let jobs = 0;
        for (let n = RETENTION_BATCH; n === RETENTION_BATCH; jobs += n) {
          n = await this.opts.jobs.deleteFinished(now - retentionMs, RETENTION_BATCH);
          await new Promise((resolve) => setImmediate(resolve)); // a backlog does not hold the event loop
        }
        if (jobs > 0) this.opts.log.info({ deleted: jobs }, 'jobs: finished jobs past their retention deleted');
      }
    }
  }

  /** Moves one batch along, from what the store says. */
  private async advance(batch: BatchRecord, now: number): Promise<void> {
    const { files, jobs } = this.opts;
    switch (batch.status) {
      case 'validating': {
        if (now - batch.createdAt < VALIDATION_STALE_MS) return;
        // Its creator died: the jobs were queued (all of them) or none was.
        const counts = await jobs.batchCounts(batch.id);
        const total = Object.values(counts).reduce((a, n) => a + (n ?? 0), 0);
        if (total > 0) {
          await files.updateBatch(batch.id, ['validating'], { status: 'in_progress', inProgressAt: now, requestCounts: requestCounts(counts, total) });
        } else {
          await files.updateBatch(batch.id, ['validating'], {
            status: 'failed',
            failedAt: now,
            errors: [{ code: 'internal_error', message: 'The batch was interrupted while it was being validated; create it again.', line: null, param: null }],
          });
        }
        return;
      }
      case 'in_progress': {
        if (now >= batch.expiresAt) {
          const taken = await files.updateBatch(batch.id, ['in_progress'], { status: 'finalizing', finalizingAt: now, expiredAt: now });
          if (taken) await this.finalize(taken, now);
          return;
        }
        const counts = await jobs.batchCounts(batch.id);
        const rc = requestCounts(counts, batch.requestCounts.total);
        if (unfinished(counts) === 0) {
          const taken = await files.updateBatch(batch.id, ['in_progress'], { status: 'finalizing', finalizingAt: now, requestCounts: rc });
          if (taken) await this.finalize(taken, now);
        } else if (rc.completed !== batch.requestCounts.completed || rc.failed !== batch.requestCounts.failed) {
          await files.updateBatch(batch.id, ['in_progress'], { requestCounts: rc });
        }
        return;
      }
      case 'cancelling': {
        let counts = await jobs.batchCounts(batch.id);
        if (unfinished(counts) > 0) {
          // Queued after the cancel (a batch cancelled while validating), or a cancel cut short.
          await this.cancelJobs(batch, now);
          counts = await jobs.batchCounts(batch.id);
          if (unfinished(counts) > 0) return;
        }
        const taken = await files.updateBatch(batch.id, ['cancelling'], {
          status: 'finalizing',
          finalizingAt: now,
          requestCounts: requestCounts(counts, batch.requestCounts.total),
        });
        if (taken) await this.finalize(taken, now);
        return;
      }
      case 'finalizing': {
        // Normally finalized by whoever set it; resumed when that process died midway.
        if (batch.finalizingAt !== null && now - batch.finalizingAt < FINALIZATION_STALE_MS) return;
        await this.finalize(batch, now);
        return;
      }
      default:
        return;
    }
  }

  /**
   * Writes the output and error files of a `finalizing` batch and ends it. Safe to run twice
   * (a resumed finalization): only one final compare-and-set wins, the loser deletes its files.
   */
  private async finalize(batch: BatchRecord, now: number): Promise<void> {
    const { files, jobs } = this.opts;
    const end = batch.expiredAt !== null ? 'expired' : batch.cancellingAt !== null ? 'cancelled' : 'completed';
    if (end !== 'completed') await this.cancelJobs(batch, now);
    const all = await jobs.batchJobs(batch.id);
    const { output, errors } = resultLines(all, end);
    const outputFile = output.length > 0 ? await this.writeResults(batch, 'output', output, now) : null;
    const errorFile = errors.length > 0 ? await this.writeResults(batch, 'error', errors, now) : null;
    const at = this.now();
    const done = await files.updateBatch(batch.id, ['finalizing'], {
      status: end,
      ...(end === 'completed' ? { completedAt: at } : end === 'cancelled' ? { cancelledAt: at } : {}),
      outputFileId: outputFile,
      errorFileId: errorFile,
      requestCounts: { total: batch.requestCounts.total || all.length, completed: output.length, failed: errors.length },
    });
    if (!done) {
      // Another process finished it first: its files are the batch's, these are orphans.
      for (const id of [outputFile, errorFile]) if (id) await files.deleteFile(id, batch.tenantId);
      return;
    }
    this.opts.log.info(
      { batchId: batch.id, tenantId: batch.tenantId, status: end, completed: output.length, failed: errors.length },
      'batch ended',
    );
  }

  /** Cancels the batch's queued and running jobs; the processes running some are told to stop them. */
  private async cancelJobs(batch: Pick<BatchRecord, 'id' | 'tenantId'>, now: number): Promise<void> {
    const { jobs, onCancelled } = this.opts;
    const running: string[] = [];
    if (onCancelled) {
      let after: string | undefined;
      for (;;) {
        const page = await jobs.list({ tenantId: batch.tenantId, batchId: batch.id, status: 'running', limit: 100, ...(after ? { after } : {}) });
        for (const job of page.data) running.push(job.id);
        if (!page.hasMore || page.data.length === 0) break;
        after = page.data.at(-1)!.id;
      }
    }
    await jobs.cancelBatch(batch.id, now);
    for (const id of running) onCancelled?.(id);
  }

  private async writeResults(batch: BatchRecord, which: 'output' | 'error', lines: string[], now: number): Promise<string> {
    const content = Buffer.from(`${lines.join('\n')}\n`);
    const file: FileRecord = {
      id: newFileId(),
      tenantId: batch.tenantId,
      purpose: 'batch_output',
      filename: `${batch.id}_${which}.jsonl`,
      bytes: content.length,
      createdAt: now,
      expiresAt: now + this.opts.config.batch.fileTtlMs,
    };
    await this.opts.files.putFile(file, content);
    return file.id;
  }
}

export function fileTooLarge(maxFileBytes: number): GatewayError {
  return new GatewayError('body_too_large', `The file is larger than the limit of ${maxFileBytes} bytes (jobs.batch.maxFileBytes).`, { param: 'file' });
}

function noFile(id: string, param: string): GatewayError {
  return new GatewayError('not_found', `No file with id '${id}'.`, { param });
}
