/** Liveness, readiness and Prometheus metrics. */
import type { FastifyInstance } from 'fastify';
import type { GatewayMetrics } from '../../observability/metrics.js';

export interface HealthOptions {
  metrics: GatewayMetrics;
  metricsEnabled: boolean;
  /** Throws when a dependency the gateway needs is not usable. */
  checks: Record<string, () => Promise<void>>;
  isShuttingDown: () => boolean;
}

export async function healthRoutes(app: FastifyInstance, opts: HealthOptions): Promise<void> {
  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const checks: Record<string, string> = {};
    let ready = !opts.isShuttingDown();
    if (!ready) checks['server'] = 'shutting down';
    for (const [name, check] of Object.entries(opts.checks)) {
      try {
        await check();
        checks[name] = 'ok';
      } catch (err) {
        ready = false;
        checks[name] = err instanceof Error ? err.message : String(err);
      }
    }
    reply.code(ready ? 200 : 503);
    return { status: ready ? 'ready' : 'not ready', checks };
  });

  if (opts.metricsEnabled) {
    app.get('/metrics', async (_request, reply) => {
      reply.type(opts.metrics.registry.contentType);
      return opts.metrics.registry.metrics();
    });
  }
}
