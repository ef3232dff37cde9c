/**
 * The job workers of one process: claim jobs from the JobStore (priority, then per-tenant
 * fairness: see src/jobs/types.ts), run each through the same pipeline as a synchronous request
 * (auth by the submitting key's id, kill switches, routing, rate limits and budgets, cache,
 * resilience, metering), and store the outcome.
 *
 * - Concurrency: `jobs.concurrency` runs per process; `jobs.providerConcurrency` per provider
 *   (of the model's first deployment): jobs whose provider is saturated are left in the queue
 *   (src/jobs/provider-slots.ts).
 * - Leases: each running job's lease is renewed every leaseMs/3. A job whose lease was lost
 *   (cancelled, expired, taken over after this process stalled) is aborted and its result dropped.
 *   A process that dies (SIGKILL) leaves leases that pass: other or restarted processes take the
 *   jobs over (at-least-once execution).
 * - Exactly once as the client sees it: the stored result is written once (the first owner to
 *   complete wins), and the ledger event of the run that ends the job is keyed by the job id, so
 *   a re-run after a crash is not billed twice. A run that will be retried is billed as
 *   `<job id>~<attempt>`.
 * - Failures: a rate limit of the gateway (429 rate_limit_exceeded) hands the job back until its
 *   Retry-After without counting an attempt; retryable failures (timeouts, 5xx, upstream 429,
 *   storage unavailable) are retried with full-jitter backoff (Retry-After honoured) until
 *   `maxAttempts`, then dead-lettered (failed, last error kept); others fail at once.
 * - Deadline: a job still running at its deadline is stopped and ends `expired`.
 * - Shutdown (`stop`): no more claims; running jobs get the grace period to finish, then are
 *   aborted and handed back to the queue (not counted as attempts).
 */
import type { Authenticator } from '../auth/authenticator.js';
import type { JobsConfig } from '../config/jobs-schema.js';
import { GatewayError, isGatewayError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { type OperationRequest, createContext } from '../pipeline/context.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import type { ChatCompletionRequest, EmbeddingRequest } from '../providers/types.js';
import type { ModelCatalog } from '../routing/catalog.js';
import type { Router } from '../routing/router.js';
import type { JobEvents } from './events.js';
import { ProviderSlots } from './provider-slots.js';
import { JobSink } from './sink.js';
import type { JobError, JobRecord, JobStatus, JobStore } from './types.js';

/** Statuses worth another attempt: the failure may not happen again. */
const RETRYABLE_STATUS = new Set([408, 409, 429, 499, 500, 502, 503, 504]);

type StopReason = 'lease-lost' | 'deadline' | 'shutdown';

interface Running {
  job: JobRecord;
  controller: AbortController;
  reason: StopReason | undefined;
  provider: string | undefined;
  done: Promise<void>;
}

export interface JobWorkerOptions {
  store: JobStore;
  pipeline: Pipeline;
  authenticator: Pick<Authenticator, 'authenticateKeyId'>;
  events: JobEvents;
  config: JobsConfig;
  catalog: ModelCatalog;
  router?: Pick<Router, 'resolve'> | undefined;
  log: Logger;
  /** This process's name on the leases it holds. */
  owner: string;
  now?: () => number;
  random?: () => number;
  /** A job ended (any terminal status): webhooks, batches, metrics. */
  onFinished?: (job: JobRecord) => void;
  /** A job started running. */
  onStarted?: (job: JobRecord) => void;
}

export class JobWorker {
  private readonly running = new Map<string, Running>();
  private readonly slots: ProviderSlots;
  private active = false;
  private loopDone: Promise<void> | undefined;
  private wakeUp: (() => void) | undefined;
  private woken = false;
  private timers: NodeJS.Timeout[] = [];
  private readonly now: () => number;
  private readonly random: () => number;

  constructor(private readonly opts: JobWorkerOptions) {
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    this.slots = new ProviderSlots(opts.config, opts.catalog, opts.router);
  }

  /** Jobs running in this process. */
  get runningCount(): number {
    return this.running.size;
  }

  start(): void {
    if (this.active) return;
    this.active = true;
    const { leaseMs } = this.opts.config;
    this.timers.push(setInterval(() => void this.heartbeat(), Math.max(200, Math.floor(leaseMs / 3))));
    this.timers.push(setInterval(() => void this.expire(), 1_000));
    for (const t of this.timers) t.unref();
    this.loopDone = this.loop();
  }

  /** Look for jobs now (one was queued, or a slot freed). */
  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  /** A job was cancelled (through any process): stop it here if it runs here. */
  cancelled(jobId: string): void {
    const r = this.running.get(jobId);
    if (r && !r.reason) {
      r.reason = 'lease-lost';
      r.controller.abort(new GatewayError('invalid_request', 'The job was cancelled.'));
    }
  }

  /**
   * Stops claiming; running jobs get `graceMs` to finish, then are aborted and handed back to the
   * queue. Resolves when none runs.
   */
  async stop(graceMs: number): Promise<void> {
    if (!this.active) return;
    this.active = false;
    this.wake();
    await this.loopDone;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    const all = () => Promise.all([...this.running.values()].map((r) => r.done));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([all(), new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
    for (const r of this.running.values()) {
      if (!r.reason) {
        r.reason = 'shutdown';
        r.controller.abort(new GatewayError('shutting_down', 'The gateway is shutting down; the job goes back to the queue.'));
      }
    }
    await all();
  }

  private async loop(): Promise<void> {
    const { concurrency, pollMs, leaseMs } = this.opts.config;
    while (this.active) {
      const free = Math.min(concurrency - this.running.size, this.slots.headroom());
      this.woken = false;
      if (free > 0) {
        let jobs: JobRecord[] = [];
        try {
          jobs = await this.opts.store.claim({ owner: this.opts.owner, limit: free, leaseMs, now: this.now(), excludeModels: this.slots.saturatedModels() });
        } catch (err) {
          this.opts.log.error({ err }, 'could not claim jobs');
        }
        for (const job of jobs) this.launch(job);
        if (jobs.length > 0 && jobs.length === free) continue;
        if (jobs.length > 0) continue; // claimed some: there may be more once these are counted
      }
      if (!this.active) break;
      if (this.woken) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, pollMs);
        this.wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeUp = undefined;
    }
  }

  private launch(job: JobRecord): void {
    const provider = this.slots.provider(job.model);
    this.slots.take(provider);
    const entry: Running = { job, controller: new AbortController(), reason: undefined, provider, done: Promise.resolve() };
    this.running.set(job.id, entry);
    entry.done = this.execute(entry)
      .catch((err: unknown) => this.opts.log.error({ err, jobId: job.id }, 'job run failed unexpectedly'))
      .finally(() => {
        this.running.delete(job.id);
        this.slots.release(provider);
        this.wake();
      });
  }

  private async execute(r: Running): Promise<void> {
    const { job, controller } = r;
    const { store, events, log, owner } = this.opts;
    this.opts.onStarted?.(job);
    events.publish(job.id, { type: 'started', attempt: job.attempts });

    if (job.attempts > job.maxAttempts) {
      // Taken over after its lease passed more times than it may run: its runs kill their worker
      // (or outlive the lease); stop here rather than loop forever.
      return this.finishFailed(
        r,
        { code: 'upstream_error', message: `The job's runs stopped without an answer ${job.attempts - 1} times (worker lost); it is dead-lettered.`, status: 502 },
        'failed',
        { kind: 'dead-letter' },
      );
    }
    let deadlineTimer: NodeJS.Timeout | undefined;
    if (job.deadlineAt !== null) {
      const left = job.deadlineAt - this.now();
      if (left <= 0) return this.finishFailed(r, deadlineError(), 'expired', { kind: 'final' });
      deadlineTimer = setTimeout(() => {
        if (!r.reason) {
          r.reason = 'deadline';
          controller.abort(deadlineError());
        }
      }, left);
      deadlineTimer.unref();
    }

    try {
      let auth;
      try {
        auth = await this.opts.authenticator.authenticateKeyId(job.keyId);
      } catch (err) {
        const gw = isGatewayError(err) ? err : new GatewayError('internal_error', 'The job could not be authenticated.');
        const failure = { code: gw.code, message: gw.message, status: gw.status };
        if (gw.status !== 503) return await this.finishFailed(r, failure, 'failed', { kind: 'final' });
        return await this.finishFailed(r, failure, 'failed', this.retryMode(job, undefined));
      }

      let seq = 0;
      const sink = new JobSink(controller.signal, (index, content) =>
        events.publish(job.id, { type: 'delta', attempt: job.attempts, seq: ++seq, index, content }),
      );
      let eventId = `${job.id}~${job.attempts}`;
      // Settle (after the run) puts the usage event on local disk; the outcome is stored only
      // then, so a crash in between re-runs the job (billed once: same id) instead of leaving a
      // finished job unbilled.
      let recorded!: () => void;
      const billed = new Promise<void>((resolve) => (recorded = resolve));
      const ctx = createContext({
        ...this.request(job),
        id: job.id,
        // Read by settle, after the outcome below is known: the run that ends the job is billed as the job.
        eventId: () => eventId,
        route: job.batchId ? '/v1/batches' : '/v1/jobs',
        receivedAt: this.now(),
        headers: {},
        sink,
        log,
        auth,
        endUser: job.userId === '' ? null : job.userId,
        onRecorded: () => recorded(),
        deferUsageEvent: true,
      });
      await this.opts.pipeline.run(ctx);

      const used = { costPico: ctx.costPico ?? 0, promptTokens: ctx.usage?.prompt_tokens ?? 0, completionTokens: ctx.usage?.completion_tokens ?? 0 };
      if (r.reason === 'lease-lost') return; // cancelled or taken over: the result is not ours to store
      if (r.reason === 'shutdown') {
        await store.release(job.id, owner, this.now()).catch((err: unknown) => log.error({ err, jobId: job.id }, 'could not hand a job back'));
        return;
      }
      if (r.reason === 'deadline') {
        eventId = job.id;
        await billed;
        return await this.finishFailed(r, deadlineError(), 'expired', { kind: 'final' }, used);
      }
      if (sink.status === 200 && sink.body) {
        eventId = job.id;
        await billed;
        const ok = await store.complete(job.id, owner, { result: sink.body, ...used }, this.now());
        if (ok) this.finished({ ...job, status: 'succeeded', result: sink.body, error: null, finishedAt: this.now(), ...addUsed(job, used) });
        return;
      }
      const err = ctx.error ?? ctx.streamError;
      const failure: JobError = err
        ? { code: err.code, message: err.message, status: err.status }
        : { code: 'upstream_error', message: 'The answer ended before it was complete.', status: 502 };
      if (err?.code === 'rate_limit_exceeded') {
        // The tenant's own rate limit: wait for it without spending an attempt (the next run has
        // this run's attempt number, so this refusal's ledger event gets an id of its own).
        eventId = `${job.id}~${job.attempts}~limited-${this.now()}`;
        const retryAfter = Number(err.headers['retry-after'] ?? 1);
        await store.release(job.id, owner, this.now(), this.now() + Math.max(1, retryAfter) * 1000);
        return;
      }
      const retryable = RETRYABLE_STATUS.has(failure.status) || ctx.streamError !== undefined;
      const mode = retryable ? this.retryMode(job, err?.headers['retry-after']) : ({ kind: 'final' } as const);
      if (mode.kind !== 'retry') eventId = job.id;
      await billed;
      await this.finishFailed(r, failure, 'failed', mode, used);
    } finally {
      clearTimeout(deadlineTimer);
    }
  }

  /**
   * Fails the run: `retry` = queued again at `retryAt`; `dead-letter` = retryable but out of
   * attempts (failed for good, the last error kept); `final` = failed (or expired) for good.
   */
  private async finishFailed(
    r: Running,
    error: JobError,
    status: 'failed' | 'expired',
    mode: { kind: 'retry'; retryAt: number } | { kind: 'dead-letter' } | { kind: 'final' },
    used: { costPico: number; promptTokens: number; completionTokens: number } = { costPico: 0, promptTokens: 0, completionTokens: 0 },
  ): Promise<void> {
    const { job } = r;
    const now = this.now();
    // The store dead-letters a retry asked for with no attempt left.
    const retryAt = mode.kind === 'retry' ? mode.retryAt : mode.kind === 'dead-letter' ? now : undefined;
    const ok = await this.opts.store.fail(job.id, this.opts.owner, { error, status, ...(retryAt !== undefined ? { retryAt } : {}), ...used }, now);
    if (!ok) return;
    if (mode.kind === 'retry') {
      this.opts.events.publish(job.id, { type: 'retry', attempt: job.attempts, error, retryAt: mode.retryAt });
      this.opts.log.info({ jobId: job.id, attempt: job.attempts, error: error.code }, 'job will be retried');
      return;
    }
    this.finished({ ...job, status, error, deadLettered: mode.kind === 'dead-letter', finishedAt: now, ...addUsed(job, used) });
  }

  private finished(job: JobRecord): void {
    this.opts.events.publish(job.id, { type: 'completed', job });
    this.opts.onFinished?.(job);
  }

  /** A retryable failure: again later, or dead-lettered when out of attempts; failed when the deadline comes first. */
  private retryMode(job: JobRecord, retryAfter: string | undefined): { kind: 'retry'; retryAt: number } | { kind: 'dead-letter' } | { kind: 'final' } {
    if (job.attempts >= job.maxAttempts) return { kind: 'dead-letter' };
    const retryAt = this.retryAt(job.attempts, retryAfter);
    if (job.deadlineAt !== null && retryAt >= job.deadlineAt) return { kind: 'final' };
    return { kind: 'retry', retryAt };
  }

  private retryAt(attempt: number, retryAfter: string | undefined): number {
    const { baseDelayMs, maxDelayMs } = this.opts.config.retry;
    const backoff = this.random() * Math.min(maxDelayMs, baseDelayMs * 2 ** Math.max(0, attempt - 1));
    const asked = Number(retryAfter);
    const wait = Number.isFinite(asked) && asked > 0 ? Math.max(backoff, Math.min(maxDelayMs, asked * 1000)) : backoff;
    return this.now() + Math.round(wait);
  }

  /** Chat jobs run as streams (their tokens can be followed), except on routes that escalate JSON answers. */
  private request(job: JobRecord): OperationRequest {
    if (job.kind !== 'chat') return { operation: 'embeddings', body: { ...job.body } as unknown as EmbeddingRequest };
    const route = this.opts.router?.resolve(job.model);
    if (route?.config.escalate) return { operation: 'chat', body: { ...job.body, stream: false } as unknown as ChatCompletionRequest };
    return { operation: 'chat', body: { ...job.body, stream: true, stream_options: { include_usage: true } } as unknown as ChatCompletionRequest };
  }

  private async heartbeat(): Promise<void> {
    const ids = [...this.running.keys()];
    if (ids.length === 0) return;
    let held: string[];
    try {
      held = await this.opts.store.heartbeat(this.opts.owner, ids, this.opts.config.leaseMs, this.now());
    } catch (err) {
      this.opts.log.warn({ err }, 'could not renew job leases');
      return;
    }
    const keep = new Set(held);
    for (const id of ids) {
      const r = this.running.get(id);
      if (r && !keep.has(id) && !r.reason) {
        r.reason = 'lease-lost';
        r.controller.abort(new GatewayError('conflict', 'The job is no longer held by this worker (cancelled or taken over).'));
      }
    }
  }

  private async expire(): Promise<void> {
    try {
      for (const job of await this.opts.store.expire(this.now())) this.finished(job);
    } catch (err) {
      this.opts.log.warn({ err }, 'could not expire jobs');
    }
  }
}

function deadlineError(): JobError {
  return { code: 'deadline_exceeded', message: 'The job did not finish before its deadline.', status: 408 };
}

function addUsed(job: JobRecord, used: { costPico: number; promptTokens: number; completionTokens: number }) {
  return {
    costPico: job.costPico + used.costPico,
    promptTokens: job.promptTokens + used.promptTokens,
    completionTokens: job.completionTokens + used.completionTokens,
  };
}

export type { JobStatus };
