/**
 * The Fastify app: routes, validation, error rendering. Built by the composition root
 * (src/main.ts) from already-constructed services; holds no state of its own.
 */
import { randomUUID } from 'node:crypto';
import type { CacheService } from '../cache/service.js';
import type { CatalogModel } from '../routing/catalog.js';
import type { Experiments } from '../routing/experiments.js';
import type { ExperimentResultsSource } from '../routing/experiment-stats.js';
import type { FlagService } from '../routing/flags.js';
import type { ShadowConfig, ShadowService } from '../routing/shadow.js';
import type { ShadowStore } from '../routing/shadow-report.js';
import type { FeedbackStore } from '../routing/types.js';
import { feedbackRoutes } from './routes/cache.js';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import type { Authenticator } from '../auth/authenticator.js';
import { extractKey } from '../auth/keys.js';
import type { KeyService } from '../auth/key-service.js';
import type { Config } from '../config/schema.js';
import { GatewayError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { GatewayMetrics } from '../observability/metrics.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import type { ModelCatalog } from '../routing/catalog.js';
import type { IdempotencyStore, Ledger, Records } from '../storage/types.js';
import type { LedgerWriter } from '../metering/ledger-writer.js';
import type { KillSwitches } from '../metering/kill-switches.js';
import { errorHandler, sendGatewayError } from './error-handler.js';
import { idempotency } from './idempotency.js';
import { jsonBodyParser, rejectRepeatedQueryParams } from './request-guards.js';
import { adminRoutes } from './routes/admin.js';
import { type ReadinessCheck, healthRoutes } from './routes/health.js';
import { openaiRoutes } from './routes/openai.js';
import type { OpenStreams } from './sink.js';
import { jobRoutes } from './routes/jobs.js';
import type { JobService } from '../jobs/service.js';
import type { JobEvents } from '../jobs/events.js';
import type { BatchService } from '../jobs/batches.js';
import { batchRoutes } from './routes/batches.js';
import { fileRoutes } from './routes/files.js';
import type { UploadGuard } from '../jobs/upload-guard.js';
import { type RequestRoutesOptions, requestRoutes } from './routes/requests.js';
import { type DashboardRoutesOptions, dashboardRoutes } from './routes/dashboard.js';
import { type SignalRoutesOptions, signalRoutes } from './routes/signals.js';

export interface AppServices {
  config: Config;
  log: Logger;
  pipeline: Pipeline;
  killSwitches: KillSwitches;
  authenticator: Authenticator;
  keys: KeyService;
  records: Records;
  ledger: Ledger;
  idempotency: IdempotencyStore;
  ledgerWriter: Pick<LedgerWriter, 'flush'>;
  catalog: ModelCatalog;
  metrics: GatewayMetrics;
  readinessChecks: Record<string, ReadinessCheck>;
  isShuttingDown: () => boolean;
  cache: CacheService;
  /** Tiered routes (listed by /v1/models). */
  routes?: ReadonlyArray<{ name: string; model: CatalogModel }>;
  feedback: FeedbackStore;
  flags: FlagService;
  experiments: Experiments;
  experimentResults: ExperimentResultsSource;
  shadow: ShadowService;
  shadowStore: ShadowStore;
  shadowRoutes: Record<string, ShadowConfig>;
  jobs: JobService;
  jobEvents: JobEvents;
  /** Open job event streams (ended on shutdown). */
  jobStreams: Set<() => void>;
  /** Open SSE answers of /v1/chat/completions (cut at a shutdown's grace deadline). */
  sseStreams?: OpenStreams;
  /** A tenant's job webhook signing secret (absent: webhooks are off). */
  webhookSecret?: (tenantId: string) => string;
  /** The Batch API (files and batches). */
  batches: BatchService;
  /** Uploads (POST /v1/files): what they must pass before their body is read, and where they are spooled. */
  uploads: { guard: UploadGuard; spoolDir: string };
  /** The request log (GET /admin/v1/requests): its store, and this process's writer to flush first. */
  requestLog?: Omit<RequestRoutesOptions, 'authenticator'>;
  alerts?: import('./routes/alerts.js').AlertRoutesOptions;
  /** The live dashboard (/dashboard and /admin/v1/dashboard/*); absent: not served. */
  dashboard?: Omit<DashboardRoutesOptions, 'authenticator'>;
  /** Drift scores and abuse flags (GET /admin/v1/drift, /admin/v1/abuse); absent: not served. */
  signals?: Omit<SignalRoutesOptions, 'authenticator'>;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Bodies larger than this (or of unannounced length) are read only once the key is known. */
const PRE_AUTH_BODY_BYTES = 16 * 1024;

export async function buildApp(s: AppServices): Promise<FastifyInstance> {
  const app: FastifyInstance = Fastify({
    loggerInstance: s.log as FastifyBaseLogger,
    // One log line per request is written by the settle stage; Fastify's own would double it.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: s.config.server.bodyLimitBytes,
    trustProxy: s.config.server.trustProxy,
    return503OnClosing: true,
    // The client's x-request-id is kept when it is sane; otherwise a fresh one.
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : `req_${randomUUID().replace(/-/g, '')}`;
    },
    ajv: { customOptions: { coerceTypes: false, allErrors: false, removeAdditional: false, allowUnionTypes: true } },
  });

  // The API speaks JSON only: other content types get a 415 that says so.
  app.removeContentTypeParser('text/plain');
  // Every route: JSON nested deeper than server.maxJsonDepth, and a repeated query parameter, are 400s.
  jsonBodyParser(app, s.config.server.maxJsonDepth);
  app.addHook('preValidation', rejectRepeatedQueryParams);
  // A request with a large (or unannounced) body is refused before its body is read when its
  // route is unknown (404) or, on /v1 and /admin, when its key is not valid (401): no key, no
  // megabytes read. Small bodies go on to the routes, which refuse them as well (and the pipeline
  // keeps the refusal in the request log). The routes authenticate again (from the auth cache).
  app.addHook('onRequest', async (request, reply) => {
    if (request.method === 'GET' || request.method === 'HEAD' || request.method === 'DELETE') return;
    const length = Number(request.headers['content-length']);
    if (Number.isFinite(length) && length <= PRE_AUTH_BODY_BYTES) return;
    try {
      // An unknown route is answered before its body too (`//v1/...`, `/V1/...`, anything else).
      if (request.is404) throw new GatewayError('route_not_found', `Unknown route: ${request.method} ${request.url.split('?')[0]}.`);
      if (!request.url.startsWith('/v1/') && !request.url.startsWith('/admin/')) return;
      await s.authenticator.authenticate(extractKey(request.headers));
    } catch (err) {
      reply.header('connection', 'close'); // the unread body is not drained
      throw err;
    }
  });
  // While shutting down, every answer closes its connection: an idle keep-alive socket would hold
  // the process for the whole grace period (streams: see HttpSink).
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (s.isShuttingDown()) reply.header('connection', 'close');
    done(null, payload);
  });
  app.setErrorHandler(errorHandler(s.config.server.bodyLimitBytes));
  app.setNotFoundHandler((request, reply) =>
    sendGatewayError(request, reply, new GatewayError('route_not_found', `Unknown route: ${request.method} ${request.url.split('?')[0]}.`)),
  );

  // Before the routes: it adds its hooks to every POST route as it is registered.
  idempotency(app, { store: s.idempotency, ...s.config.idempotency, log: s.log });

  await app.register(openaiRoutes, {
    pipeline: s.pipeline,
    authenticator: s.authenticator,
    catalog: s.catalog,
    log: s.log,
    killSwitches: s.killSwitches,
    ...(s.routes ? { routes: s.routes } : {}),
    jobs: s.jobs,
    ...(s.sseStreams ? { streams: s.sseStreams } : {}),
  });
  await app.register(jobRoutes, {
    jobs: s.jobs,
    events: s.jobEvents,
    authenticator: s.authenticator,
    killSwitches: s.killSwitches,
    streams: s.jobStreams,
  });
  // The Batch API. The files plugin parses multipart/form-data with its own size limit (jobs.batch.maxFileBytes).
  const batchApi = { batches: s.batches, authenticator: s.authenticator, killSwitches: s.killSwitches };
  const batchCfg = s.config.jobs.batch;
  await app.register(fileRoutes, {
    ...batchApi,
    maxFileBytes: batchCfg.maxFileBytes,
    uploads: s.uploads.guard,
    spoolDir: s.uploads.spoolDir,
    idleTimeoutMs: batchCfg.uploadIdleTimeoutMs,
    timeoutMs: batchCfg.uploadTimeoutMs,
  });
  await app.register(batchRoutes, batchApi);
  await app.register(feedbackRoutes, { cache: s.cache, authenticator: s.authenticator, killSwitches: s.killSwitches, store: s.feedback });
  await app.register(adminRoutes, {
    prefix: '/admin/v1',
    cache: s.cache,
    flags: s.flags,
    experiments: s.experiments,
    experimentResults: s.experimentResults,
    shadow: s.shadow,
    shadowStore: s.shadowStore,
    shadowRoutes: s.shadowRoutes,
    records: s.records,
    keys: s.keys,
    authenticator: s.authenticator,
    killSwitches: s.killSwitches,
    ledger: s.ledger,
    writer: s.ledgerWriter,
    ...(s.alerts ? { alerts: s.alerts } : {}),
    ...(s.webhookSecret ? { webhookSecret: s.webhookSecret } : {}),
  });
  if (s.requestLog) await app.register(requestRoutes, { prefix: '/admin/v1', ...s.requestLog, authenticator: s.authenticator });
  if (s.dashboard) await app.register(dashboardRoutes, { ...s.dashboard, authenticator: s.authenticator });
  if (s.signals) await app.register(signalRoutes, { ...s.signals, authenticator: s.authenticator });
  await app.register(healthRoutes, {
    metrics: s.metrics,
    metricsEnabled: s.config.metrics.enabled,
    checks: s.readinessChecks,
    ...(s.config.server.readyzRequires ? { required: new Set<string>(s.config.server.readyzRequires) } : {}),
    isShuttingDown: s.isShuttingDown,
  });
  return app;
}
