/**
 * Distributed mode with two real gateway processes (the CLI, as deployed) sharing Redis and
 * PostgreSQL: one budget and one token limit across both, not one per process.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { connectRedis } from '../../src/storage/redis/client.js';
import { type RunningCli, bannerKeys, startCli } from '../helpers/cli.js';
import { FAST_MODELS, auth, hello, postJson, startSim } from '../helpers/gateway.js';
import { PG_URL, REDIS_URL, deleteRedisKeys, requireService, uniqueName } from '../helpers/services.js';

const redis = await requireService('redis');
const pg = await requireService('postgres');
const PICO = 1e12;

describe.skipIf(!redis || !pg)('two gateway processes sharing Redis and PostgreSQL', () => {
  let sim: SimServer;
  const schema = uniqueName('tg_e2e');
  const dirs: string[] = [];
  const running: RunningCli[] = [];

  beforeAll(async () => {
    sim = await startSim(FAST_MODELS);
  });
  afterAll(async () => {
    await Promise.all(running.map((p) => p.stop()));
    await sim.close();
    const sql = postgres(PG_URL, { onnotice: () => undefined });
    await sql.unsafe(`drop schema if exists ${schema}_b cascade; drop schema if exists ${schema}_t cascade`);
    await sql.end();
    await deleteRedisKeys(`${schema}:`);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  /** Starts two gateways on one config; returns their URLs and the demo key. */
  async function twoGateways(name: string, tiers: string): Promise<{ urls: string[]; key: string }> {
    const dir = mkdtempSync(join(tmpdir(), 'tg-2p-'));
    dirs.push(dir);
    writeFileSync(
      join(dir, 'tollgate.yaml'),
      `server: { port: 0 }
storage:
  kind: distributed
  redisUrl: ${REDIS_URL}
  postgresUrl: ${PG_URL}
  postgresSchema: ${schema}_${name}
  redisPrefix: "${schema}:${name}:"
  redisCommandTimeoutMs: 5000
providers:
  up: { kind: openai-compatible, baseUrl: "${sim.url}" }
models:
  sim-small: { deployments: [{ provider: up }], price: { input: 100, output: 200 } }
tiers:
${tiers}
`,
    );
    const a = await startCli(['--port', '0'], dir);
    running.push(a);
    const key = bannerKeys(a.output()).demo;
    const b = await startCli(['--port', '0'], dir);
    running.push(b);
    return { urls: [a.url, b.url], key };
  }

  it('500 concurrent requests over two processes against a $1.00 budget: spend stays within it', async () => {
    const { urls, key } = await twoGateways('b', '  standard: { budgets: { tenant: { dailyUsd: 1 } } }');
    const ask = (i: number) => postJson(`${urls[i % 2]}/v1/chat/completions`, hello('sim-small', { max_tokens: 30, seed: i }), auth(key));
    // One request through each first (the budget is untouched: both are served), then 498 at once.
    const firsts = [await ask(0), await ask(1)];
    expect(firsts.map((r) => r.status)).toEqual([200, 200]);
    const results = [...firsts, ...(await Promise.all(Array.from({ length: 498 }, (_, i) => ask(i + 2))))];
    const ok = results.filter((r) => r.status === 200);
    const spent = ok.reduce((n, r) => n + Math.round(Number(r.headers.get('x-tollgate-cost-usd')) * PICO), 0);
    expect(ok.length).toBeGreaterThan(50);
    expect(spent).toBeLessThanOrEqual(PICO);
    for (const r of results.filter((x) => x.status !== 200)) expect(r.body.error.code).toBe('budget_exceeded');
    // Both processes served some of them (request i went to process i % 2).
    expect(results.filter((r, i) => i % 2 === 0 && r.status === 200).length).toBeGreaterThan(0);
    expect(results.filter((r, i) => i % 2 === 1 && r.status === 200).length).toBeGreaterThan(0);
  });

  it('two processes sharing a 10,000 tokens/minute limit admit no more than the limit between them', async () => {
    const { urls, key } = await twoGateways('t', '  standard: { limits: { tenant: { tokensPerMinute: 10000 } } }');
    // ~1,000 prompt tokens each and max_tokens 5: the estimate is close to the real use.
    const big = 'word '.repeat(990);
    // The shared bucket refills on Redis's clock: read it around the run to bound the refill.
    const redisClient = await connectRedis(REDIS_URL);
    const redisNow = async () => {
      const [sec, usec] = await redisClient.time();
      return Number(sec) * 1_000 + Number(usec) / 1_000;
    };
    const t0 = await redisNow();
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        postJson(
          `${urls[i % 2]}/v1/chat/completions`,
          { model: 'sim-small', messages: [{ role: 'user', content: big }], max_tokens: 5 },
          auth(key),
        ),
      ),
    );
    const seconds = ((await redisNow()) - t0) / 1000;
    await redisClient.quit();
    const admitted = results.filter((r) => r.status === 200);
    const used = admitted.reduce((n, r) => n + r.body.usage.total_tokens, 0);
    const refill = (10_000 / 60) * seconds;
    expect(results.filter((r) => r.status === 429).length).toBeGreaterThan(0);
    expect(used).toBeLessThanOrEqual(10_000 + refill + 1_000); // + one request's estimate in flight
    // One limit, not two: what one bucket and its refill hold, at ~1,000 tokens taken per request
    // (each process alone would admit ~10: ~20 in all).
    expect(admitted.length).toBeLessThanOrEqual(Math.floor((10_000 + refill) / 990) + 1);
  });
});
