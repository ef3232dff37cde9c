/**
 * Async jobs (src/jobs/): a durable queue in the store, workers running jobs through the same
 * pipeline, events for followers (Redis pub/sub in distributed mode), signed webhooks from an
 * outbox, and the Batch API (files, batches, the sweeper that finalizes them). The jobs, files
 * and batches routes, job metrics, and the bus messages that wake idle workers and stop a
 * cancelled job wherever it runs.
 */
import { join } from 'node:path';
import type { Authenticator } from '../auth/authenticator.js';
import { batchRoutes } from '../http/routes/batches.js';
import { fileRoutes } from '../http/routes/files.js';
import { type JobStream, jobRoutes } from '../http/routes/jobs.js';
import { webhookSecretRoutes } from '../http/routes/webhook-secret.js';
import { QueueAdmission } from '../jobs/admission.js';
import { BatchService } from '../jobs/batches.js';
import { type JobEvents, LocalJobEvents } from '../jobs/events.js';
import { JobMetrics } from '../jobs/metrics.js';
import { JobService } from '../jobs/service.js';
import { UploadGuard } from '../jobs/upload-guard.js';
import { resolveMasterSecret, tenantWebhookSecret } from '../jobs/webhook-secret.js';
import { WebhookDispatcher } from '../jobs/webhooks.js';
import { JobWorker } from '../jobs/worker.js';
import type { BudgetGuard } from '../metering/budgets.js';
import type { KillSwitches } from '../metering/kill-switches.js';
import { resolvePolicy } from '../metering/policy.js';
import type { RateLimiter } from '../metering/rate-limiter.js';
import type { StorageQuotas } from '../metering/storage-quotas.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import type { Router } from '../routing/router.js';
import type { BusMessage } from '../storage/change-bus.js';
import { type Capability, routes } from './capability.js';
import type { Core } from './core.js';

/** A job was cancelled: the process running it stops it. */
interface JobCancelled extends BusMessage {
  kind: 'job-cancelled';
  jobId: string;
}

async function redisJobEvents(storage: { redisUrl: string; redisPrefix: string; redisCommandTimeoutMs: number }, log: Core['log']): Promise<JobEvents> {
  const { connectRedis } = await import('../storage/redis/client.js');
  const { RedisJobEvents } = await import('../jobs/events.js');
  const url = storage.redisUrl;
  let lastLog = 0;
  return new RedisJobEvents(await connectRedis(url, { commandTimeout: storage.redisCommandTimeoutMs }), await connectRedis(url), storage.redisPrefix, (err) => {
    if (Date.now() - lastLog > 5_000) {
      lastLog = Date.now();
      log.warn({ err }, 'job events: Redis pub/sub failed');
    }
  });
}

export interface JobsCapability extends Capability {
  readonly jobs: JobService;
  /** This process's job workers (undefined with `jobs.workers: false`). */
  readonly worker: JobWorker | undefined;
  /** The queue's depth per priority (all processes), read from the store. */
  queueStats(): Promise<Array<{ priority: number; queued: number; oldestAgeSeconds: number }>>;
}

export async function jobsCapability(
  core: Core,
  deps: {
    pipeline: Pipeline;
    authenticator: Authenticator;
    killSwitches: KillSwitches;
    router: Router;
    rateLimiter: RateLimiter;
    budgets: BudgetGuard;
    quotas: StorageQuotas;
  },
): Promise<JobsCapability> {
  const { config, storage, catalog, log, opts } = core;
  const { authenticator, killSwitches, router } = deps;
  // Job webhooks' signing key: configured, or kept in the storage folder (embedded). Distributed
  // mode without one: no webhooks (a submit with webhook_url is refused, naming the setting).
  const masterSecret = config.jobs.webhooks.signingSecret ?? (core.distributed ? undefined : resolveMasterSecret(config.jobs.webhooks, storage.localDir, false));
  const events: JobEvents = config.storage.kind === 'distributed' ? await redisJobEvents(config.storage, log) : new LocalJobEvents();
  // What work must pass before it is queued: the tier's limits, budgets, the tenant's storage quota.
  const admission = new QueueAdmission({ tiers: config.tiers, budgets: deps.budgets, quotas: deps.quotas });
  const queueStats = async () => {
    const now = Date.now();
    const stats = await storage.jobs.stats(now);
    return stats.byPriority.map((p) => ({
      priority: p.priority,
      queued: p.queued,
      oldestAgeSeconds: p.oldestCreatedAt === null ? 0 : Math.max(0, now - p.oldestCreatedAt) / 1000,
    }));
  };
  const metrics = new JobMetrics(core.metrics.registry, { queueStats });
  let worker: JobWorker | undefined;
  let lastWakePublished = 0;
  const cancelled = (jobId: string) => void storage.bus.publish<JobCancelled>({ kind: 'job-cancelled', jobId });
  const jobs = new JobService({
    store: storage.jobs,
    events,
    config: config.jobs,
    catalog,
    router,
    webhooksEnabled: masterSecret !== undefined,
    admission,
    onQueued(count, priority) {
      metrics.submitted(priority, count);
      worker?.wake();
      // Other processes' idle workers look now (at most every 20 ms; their poll is the fallback).
      if (core.distributed && Date.now() - lastWakePublished > 20) {
        lastWakePublished = Date.now();
        void storage.bus.publish({ kind: 'jobs' });
      }
    },
    onCancelled: cancelled,
  });
  const batches = new BatchService({
    files: storage.files,
    jobs: storage.jobs,
    service: jobs,
    config: config.jobs,
    log,
    admission,
    maxJsonDepth: config.server.maxJsonDepth,
    onCancelled: cancelled,
  });
  const webhooks =
    masterSecret === undefined || !config.jobs.workers
      ? undefined
      : new WebhookDispatcher({
          store: storage.jobs,
          policy: config.jobs.webhooks,
          masterSecret,
          owner: core.nodeId,
          log,
          onDelivered: (_jobId, ok) => metrics.webhookDelivered(ok),
        });
  if (config.jobs.workers) {
    worker = new JobWorker({
      store: storage.jobs,
      pipeline: deps.pipeline,
      authenticator,
      events,
      config: config.jobs,
      catalog,
      router,
      log,
      owner: core.nodeId,
      ...(opts.random ? { random: opts.random } : {}),
      onStarted: (job) => metrics.started(job, worker?.runningCount ?? 0),
      onFinished(job) {
        metrics.finished(job, Math.max(0, (worker?.runningCount ?? 1) - 1));
        if (job.webhookUrl) webhooks?.wake();
        if (job.batchId) batches.poke(job.batchId);
      },
    });
  }
  // Uploads: an upload is one request against the key's (tenant's, user's) requests-per-minute limits.
  const uploads = new UploadGuard({
    maxConcurrent: config.jobs.batch.maxConcurrentUploads,
    maxConcurrentPerKey: config.jobs.batch.maxConcurrentUploadsPerKey,
    rateLimit: async (auth) => void (await deps.rateLimiter.admit(resolvePolicy(config.tiers, auth, auth.userId ?? null), 0, false)),
    quotas: deps.quotas,
    ...(opts.uploadObserver ? { observer: opts.uploadObserver } : {}),
  });
  const streams = new Set<JobStream>(); // open job event streams
  const batchCfg = config.jobs.batch;
  const batchApi = { batches, authenticator, killSwitches };
  return {
    name: 'jobs',
    jobs,
    worker,
    queueStats,
    routes: [
      routes(jobRoutes, { jobs, events, authenticator, killSwitches, streams }),
      // The files plugin parses multipart/form-data with its own size limit (jobs.batch.maxFileBytes).
      routes(fileRoutes, {
        ...batchApi,
        maxFileBytes: batchCfg.maxFileBytes,
        uploads,
        spoolDir: join(storage.localDir, 'uploads'),
        idleTimeoutMs: batchCfg.uploadIdleTimeoutMs,
        timeoutMs: batchCfg.uploadTimeoutMs,
      }),
      routes(batchRoutes, batchApi),
    ],
    adminRoutes: [
      routes(webhookSecretRoutes, { records: storage.records, ...(masterSecret !== undefined ? { webhookSecret: (tenantId: string) => tenantWebhookSecret(masterSecret, tenantId) } : {}) }),
    ],
    messages: {
      jobs: () => worker?.wake(),
      'job-cancelled': (m) => {
        const jobId = (m as JobCancelled).jobId;
        if (typeof jobId === 'string') worker?.cancelled(jobId);
      },
    },
    start() {
      worker?.start();
      webhooks?.start();
      batches.start();
    },
    async drain(graceMs) {
      // At the grace deadline the streams still open end cleanly, before their sockets are cut.
      let graceOver = () => {};
      const deadline = new Promise<void>((resolve) => (graceOver = resolve));
      const graceTimer = setTimeout(() => {
        for (const s of [...streams]) s.end();
        graceOver();
      }, graceMs);
      graceTimer.unref();
      // Running jobs finish (or go back to the queue) and webhooks in flight are delivered, then
      // the job event streams still open send their job's last state (read from the store) and end,
      // within what is left of the grace period.
      await Promise.all([worker?.stop(graceMs), webhooks?.stop(graceMs)]);
      await Promise.race([Promise.all([...streams].map((s) => s.finish())), deadline]);
      clearTimeout(graceTimer);
      for (const s of [...streams]) s.end();
    },
    async close() {
      await events.close();
      await batches.stop(); // before the store closes
    },
  };
}
