import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { GatewayMetrics } from '../../observability/metrics.js';
import { healthRoutes } from './health.js';

async function readyz(required?: ReadonlySet<string>) {
  const app = Fastify();
  await app.register(healthRoutes, {
    metrics: new GatewayMetrics(),
    metricsEnabled: false,
    checks: { postgres: async () => Promise.reject(new Error('ECONNREFUSED')), redis: async () => undefined },
    ...(required ? { required } : {}),
    isShuttingDown: () => false,
  });
  const res = await app.inject({ method: 'GET', url: '/readyz' });
  await app.close();
  return { status: res.statusCode, body: res.json() as { status: string; checks: Record<string, string> } };
}

describe('/readyz', () => {
  it('answers 503 when any check fails, by default', async () => {
    expect(await readyz()).toEqual({ status: 503, body: { status: 'not ready', checks: { postgres: 'down: ECONNREFUSED', redis: 'ok' } } });
  });

  it('with server.readyzRequires, a failing check that is not required is reported (degraded) without taking the instance out of rotation', async () => {
    expect(await readyz(new Set())).toEqual({ status: 200, body: { status: 'degraded', checks: { postgres: 'down: ECONNREFUSED', redis: 'ok' } } });
    expect((await readyz(new Set(['postgres']))).status).toBe(503);
  });
});
