/**
 * A Redis that stops answering without dropping the connection (paused with SIGSTOP: the same
 * as a network partition or a stalled server, TCP stays up and replies just never come). Every
 * Redis command has a deadline (`storage.redisCommandTimeoutMs`), so the documented failure
 * policy applies to a slow Redis exactly as to a dead one: rate limits fail open, budgets answer
 * 503 budget_unavailable, the cache is a miss, and each failure is counted.
 *
 * The test starts its own redis-server (a free port, no persistence) so that it can pause it;
 * it only ever signals the process it started, by its PID. No assertion on elapsed time: a
 * request that waited for Redis would hang until SIGCONT and the test would hit its timeout.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { connectRedis } from '../../src/storage/redis/client.js';
import { CounterCommandTimeout, RedisCounters } from '../../src/storage/redis/counters.js';
import { type TestGateway, FAST_MODELS, auth, hello, httpSimConfig, postJson, startGateway, startSim } from '../helpers/gateway.js';
import { PG_URL, dropDistributed, requireService, uniqueName } from '../helpers/services.js';

const redis = await requireService('redis'); // redis-server is installed where Redis runs
const pg = await requireService('postgres');

/** A TCP port nobody listens on right now. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Starts `redis-server` on `port` without persistence; resolves once it accepts connections. */
async function startRedisServer(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}: ${out}`)));
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('Ready to accept connections')) resolve();
    });
  });
  child.stdout!.resume();
  child.stderr!.resume();
  return child;
}

const ask = (content: string) => ({ model: 'sim-small', temperature: 0, max_tokens: 8, messages: [{ role: 'user', content }] });

describe.skipIf(!redis || !pg)('a paused Redis (stalled, connection still open)', () => {
  let sim: SimServer;
  let server: ChildProcess;
  let paused = false;
  let port: number;
  let gw: TestGateway;
  let budgetKey: string;
  let limitKey: string;
  const schema = uniqueName('tg_stall');

  const pause = () => {
    process.kill(server.pid!, 'SIGSTOP');
    paused = true;
  };
  const resume = () => {
    process.kill(server.pid!, 'SIGCONT');
    paused = false;
  };

  beforeAll(async () => {
    sim = await startSim(FAST_MODELS);
    port = await freePort();
    server = await startRedisServer(port);
    gw = await startGateway(
      httpSimConfig(
        { up: sim },
        { 'sim-small': { deployments: [{ provider: 'up' }], price: { input: 1, output: 2 } } },
        {
          storage: {
            kind: 'distributed',
            redisUrl: `redis://127.0.0.1:${port}`,
            postgresUrl: PG_URL,
            postgresSchema: schema,
            redisPrefix: `${schema}:`,
            redisCommandTimeoutMs: 1_000, // bounded, with room for a loaded test machine; a paused Redis still never answers
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
    if (server?.pid && paused) resume();
    await gw?.close();
    await sim?.close();
    if (server?.pid && server.exitCode === null) {
      const exited = new Promise((resolve) => server.once('exit', resolve));
      process.kill(server.pid, 'SIGTERM');
      await exited;
    }
    await dropDistributed(schema);
  });

  const chat = (key: string, body: unknown = hello('sim-small', { max_tokens: 8 })) =>
    postJson(`${gw.url}/v1/chat/completions`, body, auth(key));
  const failures = async (operation: string) => {
    const text = await (await fetch(`${gw.url}/metrics`)).text();
    const m = text.match(new RegExp(`tollgate_counter_store_failures_total\\{operation="${operation}"\\} (\\d+)`));
    return m ? Number(m[1]) : 0;
  };

  it('rate limits fail open, budgets answer 503, the cache misses, all counted; and it recovers after SIGCONT', async () => {
    expect((await chat(budgetKey)).status).toBe(200);
    expect((await chat(limitKey)).status).toBe(200);
    await gw.settled();
    const takesBefore = await failures('take');
    const reservesBefore = await failures('reserve');

    pause();

    const limited = await chat(limitKey);
    expect(limited.status).toBe(200); // served on this process's local bucket
    expect(limited.headers.get('x-ratelimit-limit-requests')).toBe('1000');

    const budgeted = await chat(budgetKey);
    expect(budgeted.status).toBe(503);
    expect(budgeted.body.error.code).toBe('budget_unavailable');
    expect(budgeted.headers.get('retry-after')).toBe('1');

    // The shared cache (exact and semantic, both in Redis) is a miss, not a wait.
    const cached = await chat(limitKey, ask('What is the capital of France?'));
    expect(cached.status).toBe(200);
    expect(cached.headers.get('x-tollgate-cache')).toBe('miss');
    await gw.settled(); // settling (usage, cache writes) ends too while Redis is still paused

    expect(await failures('take')).toBeGreaterThan(takesBefore);
    expect(await failures('reserve')).toBeGreaterThan(reservesBefore);

    resume();
    await expect.poll(async () => (await chat(budgetKey)).status, { timeout: 15_000, interval: 100 }).toBe(200);
    const takes = await failures('take');
    expect((await chat(limitKey)).status).toBe(200);
    expect(await failures('take')).toBe(takes); // the shared bucket again
  });

  it('a reservation refused by its deadline but made once Redis answers is given back', async () => {
    const counters = new RedisCounters(await connectRedis(`redis://127.0.0.1:${port}`), {
      prefix: `${schema}:direct:`,
      ownsClient: true,
      commandTimeoutMs: 200,
    });
    const probe = await connectRedis(`redis://127.0.0.1:${port}`);
    try {
      const key = 'tenant:t1:day';
      await counters.seedBudget(key, 1_000, 60_000);
      pause();
      await expect(counters.reserve([{ key, limit: 1_000_000, amount: 5_000, ttlMs: 3_600_000 }])).rejects.toBeInstanceOf(CounterCommandTimeout);
      resume();
      // Any read sent now is served after the reservation (same connection, in order), so the
      // counter reads 6,000 until the release lands, then 1,000 again.
      await vi.waitFor(async () => expect(await counters.budgetUsed(key)).toBe(1_000), { timeout: 10_000, interval: 5 });
      // ...and the reservation did run (its expiry, one hour, replaced the seed's minute).
      expect(await probe.pttl(`${schema}:direct:budget:${key}`)).toBeGreaterThan(60_000);
    } finally {
      if (paused) resume();
      probe.disconnect();
      await counters.close();
    }
  });
});
