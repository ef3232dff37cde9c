/**
 * OpenAI's Batch API on the job queue: files (upload, list, read, delete) and batches (a JSONL
 * input file whose every line becomes one low-priority job; its answers gathered into an output
 * file and an error file once every job has ended). This is the service the routes call; the
 * input file is checked by src/jobs/batch-input.ts, batches are moved along and finalized by
 * the sweeper (src/jobs/batch-sweeper.ts, which also draws their states).
 */
import type { AuthInfo } from '../auth/authenticator.js';
import { GatewayError } from '../errors.js';
import type { JobAdmission } from './admission.js';
import { type BatchLineError, splitLines, validateLines } from './batch-input.js';
import { BatchSweeper, type BatchSweeperOptions } from './batch-sweeper.js';
import type { JobOptions } from './service.js';
import type { BatchRecord, FileContent, FilePurpose, FileRecord, JobKind, NewJob } from './types.js';
import { BATCH_ENDPOINTS, type BatchEndpoint, COMPLETION_WINDOWS, newBatchId, newFileId } from './wire.js';

/** At most this many line errors are kept on a failed batch (the first ones, in line order). */
export const MAX_REPORTED_ERRORS = 1_000;

export interface BatchServiceOptions extends BatchSweeperOptions {
  /** JobService: checks each line's body and queues the jobs (all or none). */
  service: {
    prepare(auth: AuthInfo, kind: JobKind, body: unknown, options: JobOptions, paramPrefix?: string): NewJob;
    submitMany(jobs: NewJob[]): Promise<void>;
  };
  /** Checked before a batch is created: a budget already used up (402), the tenant's job quotas (src/jobs/admission.ts). */
  admission?: JobAdmission;
  /** Deepest nesting of a line (server.maxJsonDepth); default 64. */
  maxJsonDepth?: number;
}

export interface CreateBatchInput {
  inputFileId: string;
  endpoint: BatchEndpoint;
  completionWindow: string;
  metadata?: Record<string, string> | null | undefined;
}

type Caller = Pick<AuthInfo, 'tenantId'>;

export class BatchService {
  private readonly now: () => number;
  private readonly sweeper: BatchSweeper;

  constructor(private readonly opts: BatchServiceOptions) {
    this.now = opts.now ?? Date.now;
    this.sweeper = new BatchSweeper(opts);
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
    // batch leaves `validating` is made good by the sweeper (BatchSweeper.advance).
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
      await this.sweeper.cancelJobs(batch, this.now());
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
        await this.sweeper.cancelJobs(next, now);
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

  // --- The sweeper (src/jobs/batch-sweeper.ts) ---

  /** Starts the sweeper (a first sweep at once: it resumes what a restart left open). */
  start(): void {
    this.sweeper.start();
  }

  /** Stops the sweeper; resolves when the work in hand is done (before the storage closes). */
  stop(): Promise<void> {
    return this.sweeper.stop();
  }

  /** A job of this batch ended (called by the worker): the batch is looked at shortly. */
  poke(batchId: string): void {
    this.sweeper.poke(batchId);
  }

  /** One pass over the open batches (BatchSweeper.sweep). Public for tests. */
  sweep(): Promise<void> {
    return this.sweeper.sweep();
  }
}

export function fileTooLarge(maxFileBytes: number): GatewayError {
  return new GatewayError('body_too_large', `The file is larger than the limit of ${maxFileBytes} bytes (jobs.batch.maxFileBytes).`, { param: 'file' });
}

function noFile(id: string, param: string): GatewayError {
  return new GatewayError('not_found', `No file with id '${id}'.`, { param });
}
