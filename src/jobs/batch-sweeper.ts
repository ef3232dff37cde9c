/**
 * The batch sweeper: moves every open batch along from what the store says. A batch moves
 * validating -> in_progress | failed; in_progress -> finalizing -> completed;
 * in_progress -> cancelling -> finalizing -> cancelled; in_progress -> finalizing -> expired (24 h
 * window passed). Every transition is a compare-and-set on the batch's status in the FileStore
 * (`updateBatch`), and the sweeper works from the store alone, never from memory: any process may
 * advance any batch, a restart loses nothing, and two processes never both finalize one batch
 * (the loser of the final compare-and-set deletes the files it wrote).
 *
 * Which end a finalizing batch is heading for is kept in the record itself, so a finalization cut
 * short by a crash is resumed by any process: `expiredAt` set -> expired, else `cancellingAt` set
 * -> cancelled, else completed.
 *
 * Now and then it also deletes expired files and finished jobs past jobs.retentionMs.
 */
import type { JobsConfig } from '../config/jobs-schema.js';
import type { Logger } from '../observability/logger.js';
import { requestCounts, resultLines, unfinished } from './batch-results.js';
import type { BatchRecord, BatchStatus, FileRecord, FileStore, JobStore } from './types.js';
import { newFileId } from './wire.js';

/** A batch still `validating` this long after its creation was abandoned (its process died). */
const VALIDATION_STALE_MS = 10 * 60_000;
/** A batch still `finalizing` this long after it started was abandoned: another process resumes it. */
const FINALIZATION_STALE_MS = 60_000;

const OPEN: readonly BatchStatus[] = ['validating', 'in_progress', 'cancelling', 'finalizing'];
/** Finished jobs deleted per statement by the retention sweep. */
const RETENTION_BATCH = 500;
const SWEEP_LIMIT = 1_000;

export interface BatchSweeperOptions {
  files: FileStore;
  jobs: JobStore;
  config: Pick<JobsConfig, 'batch' | 'maxDeadlineMs'> & Partial<Pick<JobsConfig, 'retentionMs'>>;
  log: Logger;
  /** A running job was cancelled (tells the process running it to stop it now, not at its next heartbeat). */
  onCancelled?: (jobId: string) => void;
  now?: () => number;
  /** How often the sweeper looks at the open batches (default 1 s). */
  sweepMs?: number;
  /** How often expired files, and finished jobs past jobs.retentionMs, are deleted (default 1 min). */
  fileSweepMs?: number;
  /** How long a poke waits for more of its batch's jobs to end before it looks (default 25 ms). */
  pokeDelayMs?: number;
}

export class BatchSweeper {
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private pokeTimer: NodeJS.Timeout | undefined;
  private readonly poked = new Set<string>();
  /** One advance at a time in this process (sweeps and pokes), so counts are never written out of order. */
  private chain: Promise<void> = Promise.resolve();
  private sweeping = false;
  private lastFileSweep = 0;
  private stopped = true;

  constructor(private readonly opts: BatchSweeperOptions) {
    this.now = opts.now ?? Date.now;
  }

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
  async cancelJobs(batch: Pick<BatchRecord, 'id' | 'tenantId'>, now: number): Promise<void> {
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
