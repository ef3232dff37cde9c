/**
 * The distributed failure policy, with the gateway's connections to Redis and PostgreSQL cut
 * midway (through loopback proxies; the shared servers keep running):
 *  - Redis down: rate limits fail open (local buckets, counted), budgets fail closed (503);
 *  - PostgreSQL down: keys already seen keep working, new keys get 503, usage events spool to
 *    local disk and reach the ledger once PostgreSQL is back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { type TestGateway, FAST_MODELS, auth, hello, httpSimConfig, postJson, startGateway, startSim } from '../helpers/gateway.js';
import { PG_URL, REDIS_URL, dropDistributed, requireService, uniqueName } from '../helpers/services.js';
import { type TcpProxy, startTcpProxy } from '../helpers/tcp-proxy.js';

const redis = await requireService('redis');
const pg = await requireService('postgres');

describe.skipIf(!redis || !pg)('failure policy when Redis or PostgreSQL goes away', () => {
  let sim: SimServer;
  let redisProxy: TcpProxy;
  let pgProxy: TcpProxy;
  let gw: TestGateway;
  let budgetKey: string;
  let limitKey: string;
  const schema = uniqueName('tg_fail');

  beforeAll(async () => {
    sim = await startSim(FAST_MODELS);
    const r = new URL(REDIS_URL);
    const p = new URL(PG_URL);
    redisProxy = await startTcpProxy(r.hostname, Number(r.port || 6379));
    pgProxy = await startTcpProxy(p.hostname, Number(p.port || 5432));
    const pgViaProxy = new URL(PG_URL);
    pgViaProxy.port = String(pgProxy.port);
    gw = await startGateway(
      httpSimConfig(
        { up: sim },
        { 'sim-small': { deployments: [{ provider: 'up' }], price: { input: 1, output: 2 } } },
        {
          storage: {
            kind: 'distributed',
            redisUrl: `redis://127.0.0.1:${redisProxy.port}`,
            postgresUrl: pgViaProxy.toString(),
            postgresSchema: schema,
            redisPrefix: `${schema}:`,
            redisCommandTimeoutMs: 5_000, // a cut drops the connection: commands fail at once; no deadline needed under load
          },
          tiers: {
            standard: { budgets: { tenant: { dailyUsd: 100 } } },
            free: { limits: { key: { requestsPerMinute: 1000 } } },
          },
        },
      ),
    );
    const mk = async (tier: string) => {
      const res = await fetch(`${gw.url}/admin/v1/keys`, {
        method: 'POST',
        headers: { ...auth(gw.adminKey), 'content-type': 'application/json' },
        body: JSON.stringify({ tenant_id: gw.tenantId, tier }),
      });
      return ((await res.json()) as { key: string }).key;
    };
    budgetKey = await mk('standard');
    limitKey = await mk('free');
  });
  afterAll(async () => {
    await gw?.close();
    await sim?.close();
    await redisProxy?.close();
    await pgProxy?.close();
    await dropDistributed(schema);
  });

  const chat = (key: string) => postJson(`${gw.url}/v1/chat/completions`, hello('sim-small', { max_tokens: 8 }), auth(key));

  it('Redis down: rate limits fail open and are counted; budgets fail closed with 503; both recover', async () => {
    expect((await chat(budgetKey)).status).toBe(200);
    expect((await chat(limitKey)).status).toBe(200);
    await redisProxy.cut();

    const limited = await chat(limitKey);
    expect(limited.status).toBe(200); // served on this process's local bucket
    expect(limited.headers.get('x-ratelimit-limit-requests')).toBe('1000');
    const budgeted = await chat(budgetKey);
    expect(budgeted.status).toBe(503);
    expect(budgeted.body.error.code).toBe('budget_unavailable');
    expect(budgeted.headers.get('retry-after')).toBe('1');
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toMatch(/tollgate_counter_store_failures_total\{operation="take"\} [1-9]/);
    expect(metrics).toMatch(/tollgate_counter_store_failures_total\{operation="reserve"\} [1-9]/);

    await redisProxy.restore();
    await expect.poll(async () => (await chat(budgetKey)).status, { timeout: 10_000, interval: 250 }).toBe(200);
  });

  it('PostgreSQL down: known keys keep working, new ones get 503, usage is spooled and written after', async () => {
    expect((await chat(budgetKey)).status).toBe(200); // cached now
    const fresh = await fetch(`${gw.url}/admin/v1/keys`, {
      method: 'POST',
      headers: { ...auth(gw.adminKey), 'content-type': 'application/json' },
      body: JSON.stringify({ tenant_id: gw.tenantId, tier: 'free' }),
    }).then((r) => r.json() as Promise<{ key: string }>);
    await pgProxy.cut();

    const served = await chat(budgetKey);
    expect(served.status).toBe(200);
    const eventId = served.headers.get('x-request-id')!;
    const unknown = await chat(fresh.key);
    expect(unknown.status).toBe(503);
    expect(unknown.body.error.code).toBe('storage_unavailable');
    await gw.gateway.settled(); // the served request's event is recorded (spooled)...
    await gw.gateway.ledger.flush(); // ...and a flush attempt ends (failing: PostgreSQL is down)
    expect(gw.gateway.ledger.pending).toBeGreaterThan(0); // a flush that had worked would have left none

    await pgProxy.restore();
    await expect.poll(() => gw.gateway.ledger.pending, { timeout: 15_000, interval: 250 }).toBe(0);
    expect(await gw.gateway.storage.ledger.get(eventId)).toMatchObject({ requestId: eventId, status: 200 });
  });
});
