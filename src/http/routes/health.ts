/** Liveness, readiness and Prometheus metrics. */
import type { FastifyInstance } from 'fastify';
import type { GatewayMetrics } from '../../observability/metrics.js';

/**
 * A readiness check: throws when the dependency is not usable. With `timeoutMs`, one that has not
 * answered by then reports the dependency slow (default {@link DEFAULT_CHECK_TIMEOUT_MS}).
 */
export type ReadinessCheck = (() => Promise<void>) | { run: () => Promise<void>; timeoutMs: number };

export const DEFAULT_CHECK_TIMEOUT_MS = 2_000;

export interface HealthOptions {
  metrics: GatewayMetrics;
  metricsEnabled: boolean;
  /** Throws when a dependency the gateway needs is not usable. */
  checks: Record<string, ReadinessCheck>;
  /** The checks that make /readyz 503 when they fail; the others only show in its body (status "degraded"). Absent: all. */
  required?: ReadonlySet<string>;
  isShuttingDown: () => boolean;
}

export async function healthRoutes(app: FastifyInstance, opts: HealthOptions): Promise<void> {
  app.get('/healthz', async () => ({ status: 'ok' }));

  // A check still running when the next probe comes is joined, not started again: a slow
  // dependency gets one probe at a time however often /readyz is asked.
  const running = new Map<string, Promise<void>>();
  const probe = (name: string, run: () => Promise<void>): Promise<void> => {
    let p = running.get(name);
    if (!p) {
      p = Promise.resolve()
        .then(run)
        .finally(() => running.delete(name));
      running.set(name, p);
    }
    return p;
  };

  /** 'ok', 'slow: ...' (no answer within its deadline) or 'down: ...' (it failed). Never waits longer than the deadline. */
  const status = async (name: string, check: ReadinessCheck): Promise<string> => {
    const { run, timeoutMs } = typeof check === 'function' ? { run: check, timeoutMs: DEFAULT_CHECK_TIMEOUT_MS } : check;
    let timer: NodeJS.Timeout | undefined;
    const slow = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve(`slow: no answer within ${timeoutMs} ms`), timeoutMs);
    });
    const answer = probe(name, run).then(
      () => 'ok',
      (err: unknown) => `down: ${err instanceof Error ? err.message : String(err)}`,
    );
    try {
      return await Promise.race([answer, slow]);
    } finally {
      clearTimeout(timer);
    }
  };

  app.get('/readyz', async (_request, reply) => {
    const checks: Record<string, string> = {};
    let ready = !opts.isShuttingDown();
    let degraded = false;
    if (!ready) checks['server'] = 'shutting down';
    const names = Object.keys(opts.checks);
    const results = await Promise.all(names.map((name) => status(name, opts.checks[name]!)));
    names.forEach((name, i) => {
      checks[name] = results[i]!;
      if (results[i] === 'ok') return;
      if (!opts.required || opts.required.has(name)) ready = false;
      else degraded = true;
    });
    reply.code(ready ? 200 : 503);
    return { status: ready ? (degraded ? 'degraded' : 'ready') : 'not ready', checks };
  });

  if (opts.metricsEnabled) {
    app.get('/metrics', async (_request, reply) => {
      reply.type(opts.metrics.registry.contentType);
      return opts.metrics.registry.metrics();
    });
  }
}
