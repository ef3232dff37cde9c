/**
 * Observability (src/observability/): the per-request metrics and access log line, the request
 * log, per-second live statistics (merged across processes over the bus), traces, and the
 * health, readiness and /metrics routes.
 */
import type { Authenticator } from '../auth/authenticator.js';
import { healthRoutes } from '../http/routes/health.js';
import { requestRoutes } from '../http/routes/requests.js';
import { accessLog } from '../observability/access-log.js';
import { LiveStats } from '../observability/live-stats.js';
import { RequestLogWriter } from '../observability/request-log.js';
import { type GatewayTracer, createTracer } from '../observability/tracing.js';
import { type Capability, routes } from './capability.js';
import type { Core } from './core.js';

export interface ObservabilityCapability extends Capability {
  /** Per-second statistics of the last hour (the whole cluster in distributed mode). */
  readonly liveStats: LiveStats;
  /** Traces (off: undefined, and the OpenTelemetry SDK is not even loaded). */
  readonly tracer: GatewayTracer | undefined;
}

export async function observabilityCapability(core: Core, deps: { authenticator: Authenticator }): Promise<ObservabilityCapability> {
  const { config, storage, metrics, log, opts } = core;
  const tracer = config.tracing.enabled ? await createTracer(config.tracing, { log, exporter: opts.spanExporter }) : undefined;
  const liveStats = new LiveStats({ bus: core.distributed ? storage.bus : undefined, nodeId: core.nodeId });
  // The request log: one row per request, queued by settle and written in bounded batches off the hot path.
  const requestLog = config.requestLog.enabled ? new RequestLogWriter({ store: storage.requestLog, config: config.requestLog, log, registry: metrics.registry }) : undefined;
  requestLog?.start();
  const accessLine = accessLog(log, config.logging.access);
  return {
    name: 'observability',
    liveStats,
    tracer,
    settle: {
      ...(config.metrics.enabled ? { metrics: (ctx, settled) => metrics.observeRequest(ctx, settled.status, settled.latencyMs / 1000) } : {}),
      ...(requestLog ? { 'request log': requestLog.observe } : {}),
      'live stats': liveStats.observe,
      ...(accessLine ? { 'access log': accessLine } : {}),
    },
    routes: [
      routes(requestRoutes, { prefix: '/admin/v1', store: storage.requestLog, ...(requestLog ? { flush: () => requestLog.flush() } : {}), authenticator: deps.authenticator }),
      routes(healthRoutes, {
        metrics,
        metricsEnabled: config.metrics.enabled,
        checks: storage.readiness ?? { storage: () => storage.ping() },
        ...(config.server.readyzRequires ? { required: new Set<string>(config.server.readyzRequires) } : {}),
        isShuttingDown: () => core.shuttingDown,
      }),
    ],
    start: () => liveStats.start(),
    async drain() {
      liveStats.stop();
    },
    async close() {
      await tracer?.shutdown().catch((err: unknown) => log.warn({ err }, 'tracing: could not export the last spans'));
      await requestLog?.close(); // writes the rows still waiting
    },
  };
}
