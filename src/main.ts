/**
 * The composition root: opens the core (config, storage, bus, ledger, providers, catalog,
 * breakers, metrics), builds the capabilities (src/capabilities/) in dependency order, hands
 * their stages and settle steps to the pipeline and their routes to the HTTP app, starts them
 * once listening and stops them in reverse order. Nothing else creates process-wide singletons.
 */
import type { FastifyInstance } from 'fastify';
import type { BootstrapResult, KeyService } from './auth/key-service.js';
import type { CacheService } from './cache/service.js';
import { apiCapability } from './capabilities/api.js';
import { alertsCapability } from './capabilities/alerts.js';
import { authCapability } from './capabilities/auth.js';
import { cacheCapability } from './capabilities/cache.js';
import type { Capability } from './capabilities/capability.js';
import { type Core, type GatewayOptions, openCore } from './capabilities/core.js';
import { dashboardCapability } from './capabilities/dashboard.js';
import { invokeCapability } from './capabilities/invoke.js';
import { jobsCapability } from './capabilities/jobs.js';
import { killSwitchCapability } from './capabilities/kill-switches.js';
import { meteringCapability } from './capabilities/metering.js';
import { observabilityCapability } from './capabilities/observability.js';
import { routingCapability } from './capabilities/routing.js';
import { shadowCapability } from './capabilities/shadow.js';
import { signalsCapability } from './capabilities/signals.js';
import type { Config } from './config/schema.js';
import { buildApp } from './http/app.js';
import type { JobService } from './jobs/service.js';
import type { JobWorker } from './jobs/worker.js';
import type { AbuseDetector } from './observability/abuse.js';
import type { DriftDetector } from './observability/drift.js';
import type { LiveStats } from './observability/live-stats.js';
import { createPipeline, mergeParts } from './pipeline/pipeline.js';

export type { GatewayOptions } from './capabilities/core.js';

export interface Gateway extends Pick<Core, 'config' | 'log' | 'storage' | 'ledger' | 'catalog' | 'providers' | 'breakers' | 'metrics'> {
  app: FastifyInstance;
  keys: KeyService;
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
  /** Resolves once every request received so far has settled (tests wait on it rather than sleeping). */
  settled(): Promise<void>;
  /** Starts listening; resolves with the base URL (e.g. http://127.0.0.1:8080). */
  listen(): Promise<string>;
  /** Stops taking requests, lets in-flight ones finish (up to the grace period), frees everything. */
  close(): Promise<void>;
}

export async function createGateway(config: Config, opts: GatewayOptions = {}): Promise<Gateway> {
  const core = await openCore(config, opts);
  const auth = authCapability(core);
  const { authenticator } = auth;
  const kill = await killSwitchCapability(core, { authenticator });
  const { killSwitches } = kill;
  const routing = await routingCapability(core, { authenticator, killSwitches });
  const metering = meteringCapability(core);
  const cache = await cacheCapability(core, { authenticator, killSwitches, quotas: metering.quotas });
  const embedder = cache.cache.semantic?.embedder;
  const shadow = await shadowCapability(core, { embedder });
  const invoke = invokeCapability(core, { router: routing.router });
  const signals = signalsCapability(core, { authenticator, embedder, canonical: routing.canonical });
  const observability = await observabilityCapability(core, { authenticator });
  const request: Capability[] = [auth, kill, routing, metering, cache, shadow, invoke, signals, observability];
  const pipeline = createPipeline({
    stages: mergeParts(request.map((c) => c.stages), 'stage'),
    settle: mergeParts(request.map((c) => c.settle), 'settle step'),
    respond: { streamOverBudget: config.metering.streamOverBudget, record: metering.record },
    tracer: observability.tracer,
    afterRespond: opts.afterRespond,
    log: core.log,
  });
  const { budgets, rateLimiter, quotas, budgetBoard } = metering;
  const jobs = await jobsCapability(core, { pipeline, authenticator, killSwitches, router: routing.router, rateLimiter, budgets, quotas });
  const alerts = await alertsCapability(core, { liveStats: observability.liveStats, budgetBoard, drift: signals.drift, abuse: signals.abuse });
  const dashboard = dashboardCapability(core, {
    authenticator,
    liveStats: observability.liveStats,
    queueStats: jobs.queueStats,
    signals: () => ({ ...signals.dashboard(), alerts: alerts.dashboard() }),
  });
  const api = apiCapability(core, { pipeline, authenticator, killSwitches, router: routing.router, jobs: jobs.jobs });
  const capabilities: Capability[] = [...request, jobs, alerts, dashboard, api];

  for (const c of capabilities) for (const [kind, handle] of Object.entries(c.messages ?? {})) core.storage.bus.subscribe((m) => m.kind === kind && handle(m));
  const app = await buildApp({
    config,
    log: core.log,
    authenticator,
    idempotency: core.storage.idempotency,
    isShuttingDown: () => core.shuttingDown,
    routes: capabilities.flatMap((c) => c.routes ?? []),
    adminRoutes: capabilities.flatMap((c) => c.adminRoutes ?? []),
  });

  let closed: Promise<void> | undefined;
  return {
    ...{ app, config, log: core.log, storage: core.storage, ledger: core.ledger, catalog: core.catalog, providers: core.providers },
    ...{ breakers: core.breakers, metrics: core.metrics, liveStats: observability.liveStats, drift: signals.drift, abuse: signals.abuse },
    ...{ cache: cache.cache, jobs: jobs.jobs, worker: jobs.worker, keys: auth.keys, bootstrap: auth.bootstrap },
    settled: () => pipeline.idle(),
    async listen() {
      const url = await app.listen({ host: config.server.host, port: config.server.port });
      for (const c of capabilities) c.start?.();
      return url;
    },
    close() {
      closed ??= (async () => {
        core.shuttingDown = true;
        const grace = config.server.shutdownGraceMs;
        // Stop taking requests: idle keep-alive sockets close now, busy ones after their answer; at
        // the grace deadline, streams still open end with an SSE error event and the sockets go.
        app.server.closeIdleConnections?.();
        const appClosed = app.close();
        const drained = Promise.allSettled(capabilities.map((c) => c.drain?.(grace))); // their grace timers first: job streams end before sockets are cut
        const timer = setTimeout(() => void api.cutStreams().finally(() => app.server.closeAllConnections?.()), grace);
        timer.unref();
        try {
          for (const r of await drained) if (r.status === 'rejected') core.log.error({ err: r.reason }, 'drain failed');
          await appClosed;
        } finally {
          clearTimeout(timer);
          await pipeline.drain(grace); // requests still finishing (a stream whose client left) settle first
          for (const c of [...capabilities].reverse()) await c.close?.(grace).catch((err: unknown) => core.log.error({ err, capability: c.name }, 'close failed'));
          await core.close();
        }
      })();
      return closed;
    },
  };
}
