/**
 * The composition root: config -> storage -> services -> HTTP app. Everything is wired here,
 * explicitly; nothing else in the code base creates process-wide singletons.
 */
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Authenticator } from './auth/authenticator.js';
import { type BootstrapResult, KeyService, bootstrapKeys } from './auth/key-service.js';
import type { CacheService } from './cache/service.js';
import type { Config } from './config/schema.js';
import { tenantShares } from './config/cache-schema.js';
import { buildApp } from './http/app.js';
import { OpenStreams } from './http/sink.js';
import { GatewayError } from './errors.js';
import { type Logger, createLogger } from './observability/logger.js';
import { GatewayMetrics } from './observability/metrics.js';
import { Gauge } from 'prom-client';
import { RequestLogWriter } from './observability/request-log.js';
import { UsageRollup } from './metering/usage-rollup.js';
import { LiveStats } from './observability/live-stats.js';
import { dashboardSummary } from './observability/dashboard-summary.js';
import { createTracer } from './observability/tracing.js';
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import { createPipeline } from './pipeline/pipeline.js';
import { authenticateStage } from './pipeline/stages/authenticate.js';
import { admitStage } from './pipeline/stages/admit.js';
import { cacheStage, cachedInvoke } from './pipeline/stages/cache.js';
import { escalatingInvoke } from './routing/escalation.js';
import { Router } from './routing/router.js';
import { type BatchTimer, EmbedBatcher } from './providers/embed-batcher.js';
import { Experiments } from './routing/experiments.js';
import { FlagService } from './routing/flags.js';
import { ShadowService, shadowRoutesOf } from './routing/shadow.js';
import { createCache, createEmbedder } from './cache/index.js';
import { CacheJudge } from './cache/judge.js';
import { invokeStage } from './pipeline/stages/invoke.js';
import { killSwitchStage } from './pipeline/stages/kill-switch.js';
import { routeStage } from './pipeline/stages/route.js';
import { recordUsage, settleStage } from './pipeline/stages/settle.js';
import type { RequestContext } from './pipeline/context.js';
import { ProviderRegistry } from './providers/registry.js';
import { BreakerRegistry } from './resilience/circuit-breaker.js';
import { BudgetAlerts } from './metering/budget-alerts.js';
import { BudgetSeeding } from './metering/budget-seeding.js';
import { BudgetGuard, type SettledBudget } from './metering/budgets.js';
import { StorageQuotas } from './metering/storage-quotas.js';
import { resolvePolicy } from './metering/policy.js';
import { QueueAdmission } from './jobs/admission.js';
import { type UploadObserver, UploadGuard } from './jobs/upload-guard.js';
import { AlertEngine, BudgetBoard, trafficSignals } from './observability/alerts.js';
import { WebhookSender } from './observability/webhook.js';
import { KillSwitches } from './metering/kill-switches.js';
import { LedgerWriter } from './metering/ledger-writer.js';
import { RateLimiter } from './metering/rate-limiter.js';
import { ModelCatalog } from './routing/catalog.js';
import { type Storage, openStorage } from './storage/index.js';
import type { Counters } from './storage/types.js';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { type JobEvents, LocalJobEvents } from './jobs/events.js';
import { JobService } from './jobs/service.js';
import { BatchService } from './jobs/batches.js';
import { JobWorker } from './jobs/worker.js';
import { WebhookDispatcher, resolveMasterSecret, tenantWebhookSecret } from './jobs/webhooks.js';
import { DriftDetector } from './observability/drift.js';
import { AbuseDetector } from './observability/abuse.js';
import { abuseGuardStage } from './pipeline/stages/abuse-guard.js';
import { abuseSignals, driftSignals } from './http/routes/signals.js';
import { alertSignals } from './http/routes/alerts.js';

export interface Gateway {
  app: FastifyInstance;
  config: Config;
  log: Logger;
  storage: Storage;
  ledger: LedgerWriter;
  keys: KeyService;
  catalog: ModelCatalog;
  providers: ProviderRegistry;
  breakers: BreakerRegistry;
  metrics: GatewayMetrics;
  /** Per-second statistics of the last hour (the whole cluster in distributed mode). */
  liveStats: LiveStats;
  /** Input drift per route (this process): `scores()`. */
  drift: DriftDetector;
  /** Abuse flags per key and end user (this process): `activeFlags()`. */
  abuse: AbuseDetector;
  cache: CacheService;
  jobs: JobService;
  /** This process's job workers (undefined with `jobs.workers: false`). */
  worker: JobWorker | undefined;
  /** Creates the admin and demo keys on first start; undefined when they already exist. */
  bootstrap(): Promise<BootstrapResult | undefined>;
  /**
   * Resolves once every request received so far has settled: usage recorded, reservations
   * reconciled, observers called (tests wait on it rather than sleeping).
   */
  settled(): Promise<void>;
  /** Starts listening; resolves with the base URL (e.g. http://127.0.0.1:8080). */
  listen(): Promise<string>;
  /** Stops taking requests, lets in-flight ones finish (up to the grace period), frees everything. */
  close(): Promise<void>;
}

/** Shared counters with the failure policy of src/storage/failover-counters.ts, counted and logged. */
async function failover(shared: Counters, metrics: GatewayMetrics, log: Logger): Promise<Counters> {
  const { FailoverCounters } = await import('./storage/failover-counters.js');
  const { MemoryCounters } = await import('./storage/memory/counters.js');
  let lastLog = 0;
  return new FailoverCounters(shared, new MemoryCounters(), {
    onFailure(operation, err) {
      metrics.counterStoreFailures.inc({ operation });
      if (Date.now() - lastLog > 5_000) {
        lastLog = Date.now();
        log.error({ err, operation }, 'shared counter store unreachable: rate limits run per process, budgets refuse');
      }
    },
  });
}

async function redisJobEvents(url: string, prefix: string, log: Logger, commandTimeout?: number): Promise<JobEvents> {
  const { connectRedis } = await import('./storage/redis/client.js');
  const { RedisJobEvents } = await import('./jobs/events.js');
  let lastLog = 0;
  return new RedisJobEvents(await connectRedis(url, { commandTimeout }), await connectRedis(url), prefix, (err) => {
    if (Date.now() - lastLog > 5_000) {
      lastLog = Date.now();
      log.warn({ err }, 'job events: Redis pub/sub failed');
    }
  });
}

export interface GatewayOptions {
  logger?: Logger;
  /** Random source for backoff jitter (tests). */
  random?: () => number;
  /** How the invoke stage waits before a retry (tests: record the waits instead of timing them). */
  retrySleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** The drift and abuse detectors' clock (tests: their windows without waiting). */
  signalsClock?: () => number;
  /** The in-memory exact cache's clock for TTLs, ms (embedded mode; tests: expiry without waiting). */
  cacheClock?: () => number;
  /** How embeddings batches' windows are timed (tests: batches that leave only when full, or when told). */
  embedBatchTimer?: BatchTimer;
  /** Where spans go instead of OTLP when `tracing.enabled` (tests: an in-memory exporter). */
  spanExporter?: SpanExporter;
  /** Told when an upload starts and ends, with the bytes it held in memory (tests). */
  uploadObserver?: UploadObserver;
  /** Called after each request's answer is written, before it settles (tests: a crash at that point). */
  afterRespond?: (ctx: RequestContext) => void;
}

export async function createGateway(config: Config, opts: GatewayOptions = {}): Promise<Gateway> {
  const log = opts.logger ?? createLogger(config.logging.level);
  const storage = await openStorage(config);
  const ledger = new LedgerWriter({
    ledger: storage.ledger,
    spoolDir: join(storage.localDir, 'spool'),
    log,
    flushIntervalMs: config.metering.ledgerFlushMs,
    // A PostgreSQL outage: retry at least every 2 s, so the spool drains within seconds of its end.
    ...(config.storage.kind === 'distributed' ? { maxRetryDelayMs: 2_000 } : {}),
  });
  await ledger.start(); // replays what a crash left behind
  // Job webhooks' signing key: configured, or kept in the storage folder (embedded). Distributed
  // mode without one: no webhooks (a submit with webhook_url is refused, naming the setting).
  const masterSecret =
    config.jobs.webhooks.signingSecret ?? (config.storage.kind === 'embedded' ? resolveMasterSecret(config.jobs.webhooks, storage.localDir, false) : undefined);
  const providers = await ProviderRegistry.create(config);
  const catalog = new ModelCatalog(config, providers);
  const metrics = new GatewayMetrics({ tenantLabels: config.metrics.tenantLabels });
  new Gauge({
    name: 'tollgate_ledger_spool_events',
    help: 'Usage events on local disk that the ledger has not confirmed yet (grows while the database is unreachable, drains after)',
    registers: [metrics.registry],
    collect() {
      this.set(ledger.pending);
    },
  });
  // Every deployment's breaker is in the metrics from the start (closed), not from its first change.
  for (const m of catalog.list()) for (const d of m.deployments) metrics.setBreakerState(d.id, 'closed');
  const breakers = new BreakerRegistry(config.resilience.breaker);
  const openBreakers = new Set<string>();
  breakers.onStateChange = (deployment, from, to) => {
    if (to === 'open') openBreakers.add(deployment);
    else openBreakers.delete(deployment);
    metrics.breakerTransition(deployment, from, to);
    log.warn({ deployment, from, to }, 'circuit breaker state change');
  };

  const tierModels = Object.fromEntries(Object.entries(config.tiers).map(([name, t]) => [name, t.models]));
  const authenticator = new Authenticator({
    records: storage.records,
    ttlMs: config.auth.cacheTtlMs,
    maxStaleMs: config.auth.maxStaleMs,
    // A read a request waits for: bounded like any PostgreSQL read on the request path (SQLite answers at once).
    ...(config.storage.kind === 'distributed' ? { lookupTimeoutMs: config.storage.postgresQueryTimeoutMs } : {}),
    tierModels,
  });
  const keys = new KeyService({
    records: storage.records,
    tiers: Object.keys(config.tiers),
    resolveModel: (name) => catalog.resolve(name)?.name,
  });
  const killSwitches = new KillSwitches({
    records: storage.records,
    refreshMs: config.killSwitches.refreshMs,
    resolveModel: (name) => catalog.resolve(name)?.name,
    providers: Object.keys(config.providers),
    log,
  });
  await killSwitches.start(); // stopped in close()
  // Changes made through any process reach every process's caches at once (Redis pub/sub in
  // distributed mode); the caches' TTL and the kill-switch poll remain the fallback.
  authenticator.onInvalidate = (keyId) => void storage.bus.publish({ kind: 'auth', keyId });
  killSwitches.onChange = () => void storage.bus.publish({ kind: 'kill-switches' });
  storage.bus.subscribe((change) => {
    if (change.kind === 'auth') authenticator.invalidateLocal(change.keyId);
    else if (change.kind === 'kill-switches') killSwitches.refresh().catch((err: unknown) => log.warn({ err }, 'could not reload kill switches'));
    else if (change.kind === 'flags') flags.refresh().catch((err: unknown) => log.warn({ err }, 'could not reload flags'));
  });

  const counters = config.storage.kind === 'distributed' ? await failover(storage.counters, metrics, log) : storage.counters;
  const rateLimiter = new RateLimiter(counters);
  // Counters are seeded from the ledger plus what this process's spool still holds, read once the
  // ledger has answered (no scan for a read that fails): the events still unconfirmed and those
  // confirmed since a second before the read began (counted twice rather than missed). The
  // other processes add theirs (BudgetSeeding).
  const budgets = new BudgetGuard(
    counters,
    {
      spent: async (scope, from, to) => {
        const readAt = Date.now();
        const inLedger = await storage.ledger.spent(scope, from, to);
        return inLedger + ledger.unflushedSpent(scope, from, to, readAt - 1_000);
      },
    },
    Date.now,
    config.storage.kind === 'distributed' ? config.storage.postgresQueryTimeoutMs : 5_000,
  );
  const budgetSeeding = new BudgetSeeding({ bus: storage.bus, counters, writer: ledger, node: `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`, log });
  budgetSeeding.start();
  budgets.onSeeded = (seeded) => budgetSeeding.announce(seeded);
  budgets.onReserved = (seen, epochs) => budgetSeeding.noticed(seen, epochs);
  // What each tenant may keep stored (files, jobs, feedback), and what work must pass before it is queued.
  const quotas = new StorageQuotas(storage.usage, config.quotas);
  const admission = new QueueAdmission({ tiers: config.tiers, budgets, quotas });
  const uploads = new UploadGuard({
    maxConcurrent: config.jobs.batch.maxConcurrentUploads,
    maxConcurrentPerKey: config.jobs.batch.maxConcurrentUploadsPerKey,
    // An upload is one request against the key's (tenant's, user's) requests-per-minute limits.
    rateLimit: async (auth) => void (await rateLimiter.admit(resolvePolicy(config.tiers, auth, auth.userId ?? null), 0, false)),
    quotas,
    ...(opts.uploadObserver ? { observer: opts.uploadObserver } : {}),
  });
  const feedbackStore = {
    async put(f: Parameters<typeof storage.feedback.put>[0]) {
      await quotas.checkFeedback(f.tenantId);
      await storage.feedback.put(f);
    },
  };
  const alerts = config.alerts.webhook
    ? new BudgetAlerts(counters, config.alerts.budgetThresholds, new WebhookSender(config.alerts.webhook, log))
    : undefined;
  // The `budget` alert rules read the latest spend settle saw of each budget (and each refusal).
  const budgetBoard = new BudgetBoard();
  budgets.onRefusal = (b) => {
    budgetBoard.observe([b]);
    if (alerts) void alerts.check([b]).catch((err: unknown) => log.error({ err }, 'budget alert failed'));
  };
  const budgetChecks = {
    async check(settled: SettledBudget[]) {
      budgetBoard.observe(settled);
      await alerts?.check(settled);
    },
  };
  const router = new Router(
    config.routes,
    catalog,
    breakers,
    (m) => killSwitches.modelAvailable(m),
    (providerId) => killSwitches.disabledProvider(providerId) !== undefined,
  );
  const canonical = (name: string) => router.resolve(name)?.name ?? catalog.resolve(name)?.name;
  const flags = new FlagService({
    store: storage.flags,
    refreshMs: config.flags.refreshMs,
    log,
    knownRoutes: (name) => router.resolve(name) !== undefined,
    knownModel: (name) => catalog.resolve(name) !== undefined,
    tierNamesOf: (name) => router.resolve(name)?.tiers.map((t) => t.name),
    resolveName: canonical,
  });
  await flags.start(); // stopped in close()
  flags.onChange = () => void storage.bus.publish({ kind: 'flags' });
  const experiments = new Experiments(config.experiments, { resolve: canonical });
  const shares = tenantShares(config.cache);
  const stores = storage.cacheStores({
    maxEntries: config.cache.exact.maxEntries,
    maxBytes: config.cache.exact.maxBytes,
    maxEntriesPerTenant: shares.exactEntries,
    maxBytesPerTenant: shares.exactBytes,
    semanticEntriesPerTenant: shares.semanticEntries,
    ...(opts.cacheClock ? { now: opts.cacheClock } : {}),
  });
  const cache = await createCache({ config, catalog, exact: await stores.exact(), semanticStore: stores.semantic, log });
  if (opts.random) cache.verifier.random = opts.random; // verified semantic caching's serve-or-verify draws (tests)
  metrics.cacheVerification = () => cache.verificationStats();
  cache.attachJudge(new CacheJudge({ resolve: (name) => catalog.resolve(name), log })); // borderline semantic candidates (cache.semantic.judge)
  metrics.cacheJudge = () => cache.judgeStats();
  const shadow = new ShadowService({
    routes: shadowRoutesOf(config.routes),
    catalog,
    counters,
    store: storage.shadow,
    ledger,
    // The answers' similarity: the cache's embedder, or the configured one when the cache is off.
    embedder:
      cache.semantic?.embedder ??
      (Object.values(config.routes).some((r) => r.shadow) ? await createEmbedder(config.cache.semantic.embedder, catalog) : undefined),
    log,
    defaultMaxOutputTokens: config.metering.defaultMaxOutputTokens,
  });
  const embedBatcher = new EmbedBatcher(config.embeddings.batching, opts.embedBatchTimer);
  embedBatcher.onBatch = (size) => {
    metrics.embeddingBatchCalls.inc();
    metrics.embeddingBatchRequests.inc(size);
  };
  // Traces: off by default, and then the OpenTelemetry SDK is not even loaded.
  const tracer = config.tracing.enabled ? await createTracer(config.tracing, { log, exporter: opts.spanExporter }) : undefined;
  // Per-second live statistics (dashboard, alert rules); in distributed mode merged with the peers' over the bus.
  const nodeId = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  const liveStats = new LiveStats({ bus: config.storage.kind === 'distributed' ? storage.bus : undefined, nodeId });
  // The request log: one row per request, queued by settle and written in bounded batches off the hot path.
  const requestLog = config.requestLog.enabled
    ? new RequestLogWriter({ store: storage.requestLog, config: config.requestLog, log, registry: metrics.registry })
    : undefined;
  requestLog?.start(); // closed in close(), before the storage
  // Usage events past ledger.detailRetentionDays become hourly roll-ups (one process at a time in distributed mode).
  const usageRollup = new UsageRollup({ ledger: storage.ledger, config: config.ledger, log, registry: metrics.registry });
  usageRollup.start(); // closed in close(), before the storage
  // Drift and abuse signals (per process): fed by settle, read by /metrics, the admin API, the dashboard and alerts.
  const drift = new DriftDetector({
    config: config.drift,
    embedder: cache.semantic?.embedder,
    embedderIsUpstream: config.cache.semantic.embedder.kind === 'deployment',
    isKnownRoute: (name) => canonical(name) === name,
    log,
    ...(opts.signalsClock ? { now: opts.signalsClock } : {}),
  });
  drift.registerMetrics(metrics.registry);
  const abuse = new AbuseDetector({ config: config.abuse, ...(opts.signalsClock ? { now: opts.signalsClock } : {}) });
  abuse.registerMetrics(metrics.registry);
  // Alert rules: evaluated by one process (distributed: the holder of a lease in Redis).
  const alertLease =
    config.storage.kind === 'distributed' && config.alerts.rules.length > 0
      ? new (await import('./storage/redis/lease.js')).RedisLease(
          await (await import('./storage/redis/client.js')).connectRedis(config.storage.redisUrl, { commandTimeout: config.storage.redisCommandTimeoutMs }),
          `${config.storage.redisPrefix}alerts:leader`,
          nodeId,
          config.alerts.evaluateMs * 3,
        )
      : undefined;
  const alertEngine = new AlertEngine({
    rules: config.alerts.rules,
    signals: {
      ...trafficSignals(liveStats),
      budgets: () => budgetBoard.list(),
      drift: () => drift.scores(),
      abuse: () => abuse.activeFlags(),
      openBreakers: () => [...openBreakers],
    },
    webhook: config.alerts.webhook ? new WebhookSender(config.alerts.webhook, log) : undefined,
    log,
    evaluateMs: config.alerts.evaluateMs,
    ...(alertLease ? { isLeader: () => alertLease.held() } : {}),
    onEvent: (e) => metrics.alertEvents.inc({ rule: e.alert.rule, type: e.type }),
  });
  metrics.alertsFiring = () => alertEngine.firing();
  const a = config.abuse;
  const throttling = a.enabled && [a.action, a.tokenSpike.action, a.repeatedPrompts.action, a.longPrompts.action].includes('throttle');
  const pipeline = createPipeline({
    tracer,
    stages: [
      authenticateStage({ authenticator }),
      ...(throttling ? [abuseGuardStage({ abuse })] : []),
      killSwitchStage({ killSwitches, catalog }),
      routeStage({ catalog, killSwitches, router, flags, experiments }),
      admitStage({ tiers: config.tiers, rateLimiter, budgets, defaultMaxOutputTokens: config.metering.defaultMaxOutputTokens }),
      cacheStage(cache),
      cachedInvoke(escalatingInvoke(invokeStage({ resilience: config.resilience, breakers, metrics, embedBatcher, ...(opts.random ? { random: opts.random } : {}), ...(opts.retrySleep ? { sleep: opts.retrySleep } : {}) }), router, config.resilience.deadlineMs), cache),
    ],
    settle: settleStage({ metrics, recordMetrics: config.metrics.enabled, log, records: storage.records, ledger, rateLimiter, budgets, alerts: budgetChecks, cache, shadow, observers: [...(requestLog ? [requestLog.observe] : []), liveStats.observe, drift.observe, abuse.observe] }),
    respond: { streamOverBudget: config.metering.streamOverBudget, record: (ctx) => ctx.deferUsageEvent || recordUsage(ledger, ctx) },
    afterRespond: opts.afterRespond,
    log,
  });

  // Async jobs: a durable queue in the store, workers running them through the same pipeline,
  // events for followers (Redis pub/sub in distributed mode), signed webhooks from an outbox.
  const owner = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  const jobEvents: JobEvents =
    config.storage.kind === 'distributed' ? await redisJobEvents(config.storage.redisUrl, config.storage.redisPrefix, log, config.storage.redisCommandTimeoutMs) : new LocalJobEvents();
  let worker: JobWorker | undefined;
  let lastWakePublished = 0;
  const jobs = new JobService({
    store: storage.jobs,
    events: jobEvents,
    config: config.jobs,
    catalog,
    router,
    webhooksEnabled: masterSecret !== undefined,
    admission,
    onQueued(count, priority) {
      metrics.jobsSubmitted.inc({ priority: String(priority) }, count);
      worker?.wake();
      // Other processes' idle workers look now (at most every 20 ms; their poll is the fallback).
      if (config.storage.kind === 'distributed' && Date.now() - lastWakePublished > 20) {
        lastWakePublished = Date.now();
        void storage.bus.publish({ kind: 'jobs' });
      }
    },
    onCancelled: (jobId) => void storage.bus.publish({ kind: 'job-cancelled', jobId }),
  });
  // The Batch API: files, batches, and the sweeper that finalizes them (every process; the store arbitrates).
  const batches = new BatchService({
    files: storage.files,
    jobs: storage.jobs,
    service: jobs,
    config: config.jobs,
    log,
    admission,
    maxJsonDepth: config.server.maxJsonDepth,
    onCancelled: (jobId) => void storage.bus.publish({ kind: 'job-cancelled', jobId }),
  });
  const webhooks =
    masterSecret === undefined || !config.jobs.workers
      ? undefined
      : new WebhookDispatcher({
          store: storage.jobs,
          policy: config.jobs.webhooks,
          masterSecret,
          owner,
          log,
          onDelivered: (_jobId, ok) => metrics.webhookDeliveries.inc({ outcome: ok ? 'delivered' : 'failed_attempt' }),
        });
  if (config.jobs.workers) {
    worker = new JobWorker({
      store: storage.jobs,
      pipeline,
      authenticator,
      events: jobEvents,
      config: config.jobs,
      catalog,
      router,
      log,
      owner,
      ...(opts.random ? { random: opts.random } : {}),
      onStarted(job) {
        metrics.jobsStarted.inc({ priority: String(job.priority) });
        if (job.attempts === 1) metrics.jobWait.observe({ priority: String(job.priority) }, Math.max(0, Date.now() - job.createdAt) / 1000);
        metrics.jobsRunning.set(worker?.runningCount ?? 0);
      },
      onFinished(job) {
        metrics.jobsFinished.inc({ priority: String(job.priority), status: job.status });
        metrics.jobsRunning.set(Math.max(0, (worker?.runningCount ?? 1) - 1));
        if (job.webhookUrl) webhooks?.wake();
        if (job.batchId) batches.poke(job.batchId);
      },
    });
  }
  storage.bus.subscribe((change) => {
    if (change.kind === 'jobs') worker?.wake();
    else if (change.kind === 'job-cancelled') worker?.cancelled(change.jobId);
  });
  metrics.queueStats = async () => {
    const now = Date.now();
    const stats = await storage.jobs.stats(now);
    return stats.byPriority.map((p) => ({
      priority: p.priority,
      queued: p.queued,
      oldestAgeSeconds: p.oldestCreatedAt === null ? 0 : Math.max(0, now - p.oldestCreatedAt) / 1000,
    }));
  };
  const jobStreams = new Set<() => void>();

  let shuttingDown = false;
  const sseStreams = new OpenStreams(() => shuttingDown); // chat streams, cut at the grace deadline
  const app = await buildApp({
    config,
    log,
    pipeline,
    killSwitches,
    authenticator,
    keys,
    records: storage.records,
    ledger: storage.ledger,
    idempotency: storage.idempotency,
    ledgerWriter: ledger,
    catalog,
    metrics,
    readinessChecks: storage.readiness ?? { storage: () => storage.ping() },
    isShuttingDown: () => shuttingDown,
    cache,
    routes: router.list(),
    feedback: feedbackStore,
    flags,
    experiments,
    experimentResults: storage.experimentResults,
    shadow,
    shadowStore: storage.shadow,
    shadowRoutes: shadowRoutesOf(config.routes),
    jobs,
    jobEvents,
    jobStreams,
    sseStreams,
    batches,
    uploads: { guard: uploads, spoolDir: join(storage.localDir, 'uploads') },
    requestLog: { store: storage.requestLog, ...(requestLog ? { flush: () => requestLog.flush() } : {}) },
    dashboard: {
      live: liveStats,
      summary: () => dashboardSummary({ ledger: storage.ledger, writer: ledger, records: storage.records, tiers: config.tiers }),
      queueStats: async () => (metrics.queueStats ? metrics.queueStats() : []),
      signals: () => ({ drift: driftSignals(drift), abuse: abuseSignals(abuse), ...(config.alerts.rules.length ? { alerts: alertSignals(alertEngine) } : {}) }),
    },
    signals: { drift, driftConfig: config.drift, abuse, abuseConfig: config.abuse },
    alerts: { alerts: alertEngine, rules: config.alerts.rules, delivering: config.alerts.webhook !== undefined },
    ...(masterSecret !== undefined ? { webhookSecret: (tenantId: string) => tenantWebhookSecret(masterSecret, tenantId) } : {}),
  });

  let closed: Promise<void> | undefined;
  return {
    app,
    config,
    log,
    storage,
    ledger,
    keys,
    catalog,
    providers,
    breakers,
    metrics,
    liveStats,
    drift,
    abuse,
    cache,
    jobs,
    worker,
    bootstrap: () => bootstrapKeys(storage.records, keys),
    settled: () => pipeline.idle(),
    async listen() {
      const url = await app.listen({ host: config.server.host, port: config.server.port });
      worker?.start();
      liveStats.start();
      alertEngine.start();
      webhooks?.start();
      batches.start();
      return url;
    },
    close() {
      closed ??= (async () => {
        shuttingDown = true;
        killSwitches.stop();
        liveStats.stop();
        flags.stop();
        app.server.closeIdleConnections?.(); // idle keep-alive sockets do not wait for the grace period; busy ones close after their answer
        const grace = config.server.shutdownGraceMs;
        const endStreams = () => {
          for (const end of [...jobStreams]) end();
        };
        const timer = setTimeout(() => {
          endStreams(); // cleanly, before their sockets are cut
          // Chat streams still open end with an SSE error event (shutting_down) before the sockets go.
          void sseStreams
            .cutAll(new GatewayError('shutting_down', 'The gateway is shutting down: the stream was cut at the end of its grace period. Retry the request.'))
            .finally(() => app.server.closeAllConnections?.());
        }, grace);
        timer.unref();
        try {
          // Stop taking requests; meanwhile running jobs finish (or go back to the queue) and
          // webhooks in flight are delivered, then the job event streams still open are ended.
          const appClosed = app.close();
          // Alert deliveries in flight get the same grace period (a webhook retries with backoff).
          let alertsTimer: NodeJS.Timeout | undefined;
          const alertsStopped = Promise.race([alertEngine.stop(), new Promise((r) => (alertsTimer = setTimeout(r, grace)))]).finally(() => clearTimeout(alertsTimer));
          await Promise.all([worker?.stop(grace), webhooks?.stop(grace), alertsStopped]);
          await alertLease?.close();
          await new Promise((r) => setTimeout(r, 50)); // followers read the last results
          endStreams();
          await appClosed;
        } finally {
          clearTimeout(timer);
          await pipeline.drain(grace); // requests still finishing (a stream whose client left) settle first
          await drift.drain(); // sampled embeddings, before the cache closes its embedder
          await tracer?.shutdown().catch((err: unknown) => log.warn({ err }, 'tracing: could not export the last spans'));
          await shadow.drain(grace); // shadow calls write their pair and ledger event at their end
          await requestLog?.close(); // writes the rows still waiting
          await usageRollup.close(); // the batch in flight ends
          await ledger.close();
          await cache.close();
          await jobEvents.close();
          await batches.stop(); // before the store closes
          await providers.close();
          await storage.close();
        }
      })();
      return closed;
    },
  };
}
