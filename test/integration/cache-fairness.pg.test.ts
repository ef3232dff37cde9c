/**
 * Fair shares of the cache in distributed mode (issue 14, item 9): two gateways sharing Redis and
 * PostgreSQL; a tenant flooding both with more unique cacheable requests than the cache holds is
 * held to its share in Redis (exact answers and semantic entries) and in each process's index,
 * and another tenant's answers stay hits on both gateways.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { RawConfig } from '../../src/config/schema.js';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { type PeerGateway, type TestGateway, auth, httpSimConfig, postJson, startGateway, startPeer, startSim } from '../helpers/gateway.js';
import { REDIS_URL, distributedStorage, dropDistributed, requireService, uniqueName } from '../helpers/services.js';

const redisUp = await requireService('redis');
const pg = await requireService('postgres');

const ask = (content: string) => ({ model: 'chat', temperature: 0, messages: [{ role: 'user', content }] });
const SHARE = 20; // a quarter of the global bounds below (the default share)
const FLOOD = 100;

describe.skipIf(!redisUp || !pg)('cache fair shares (distributed)', () => {
  const schema = uniqueName('tg_fair');
  let sim: SimServer;
  let a: TestGateway;
  let b: PeerGateway;
  let redis: Redis;

  beforeAll(async () => {
    sim = await startSim();
    const raw: RawConfig = httpSimConfig(
      { up: sim },
      { chat: { deployments: [{ provider: 'up', model: 'sim-small' }], price: { input: 1, output: 2 } } },
      { storage: distributedStorage(schema), cache: { exact: { maxEntries: 80 }, semantic: { maxEntries: 80 } } },
    );
    a = await startGateway(raw);
    b = await startPeer(raw);
    redis = new Redis(REDIS_URL);
  });
  afterAll(async () => {
    redis?.disconnect();
    await b?.close();
    await a?.close();
    await sim?.close();
    await dropDistributed(schema);
  });

  const outcome = async (url: string, content: string, key: string) =>
    (await postJson(`${url}/v1/chat/completions`, ask(content), auth(key))).headers.get('x-tollgate-cache');
  /** Every answer a and b were given so far is written (stores run after the response). */
  const stored = async () => {
    await a.settled();
    await b.gateway.settled();
    await a.gateway.cache.idle();
    await b.gateway.cache.idle();
  };
  const countKeys = async (pattern: string) => {
    let n = 0;
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1_000);
      cursor = next;
      n += keys.length;
    } while (cursor !== '0');
    return n;
  };

  it("a flooding tenant is held to its share in Redis and in every process; another tenant's answers stay hits", async () => {
    const questions = ['Which port does PostgreSQL listen on by default?', 'How can I reset my account password?'];
    for (const q of questions) expect(await outcome(a.url, q, a.apiKey)).toBe('miss');
    await stored();
    await vi.waitFor(() => expect(b.gateway.cache.semantic!.size).toBeGreaterThanOrEqual(2), { timeout: 10_000, interval: 5 });

    const admin = async (path: string, body: unknown) =>
      (await postJson(`${a.url}/admin/v1${path}`, body, auth(a.adminKey))).body as { id: string; secret?: string; key?: string };
    const flooderTenant = (await admin('/tenants', { name: 'flooder' })).id;
    const k = await admin('/keys', { tenant_id: flooderTenant, name: 'k' });
    const flooder = (k.secret ?? k.key) as string;
    for (let i = 0; i < FLOOD; i++) {
      const url = i % 2 ? b.url : a.url; // through both processes
      expect(await outcome(url, `Give me catalogue fact number ${i + 1} of the spring collection.`, flooder)).toBe('miss');
    }
    await stored();

    const prefix = `${schema}:`;
    // Exact answers (and the feedback records of its requests) and semantic entries, in Redis.
    expect(await countKeys(`${prefix}cx:${flooderTenant}/*`)).toBeLessThanOrEqual(SHARE);
    expect(await countKeys(`${prefix}sc:e:${flooderTenant}/*`)).toBeLessThanOrEqual(SHARE);
    expect(await redis.zcard(`${prefix}sc:t:${flooderTenant}`)).toBeLessThanOrEqual(SHARE);

    const calls = sim.engine.stats().total;
    const paraphrase = 'How do I reset my account password?';
    const onB = [await outcome(b.url, paraphrase, a.apiKey)];
    for (const q of questions) onB.push(await outcome(b.url, q, a.apiKey));
    expect(onB).toEqual(['semantic', 'hit', 'hit']);
    await stored(); // the semantic hit is now also an exact entry (promoted)
    const onA = [await outcome(a.url, paraphrase, a.apiKey)];
    for (const q of questions) onA.push(await outcome(a.url, q, a.apiKey));
    expect(onA).toEqual(['hit', 'hit', 'hit']);
    expect(sim.engine.stats().total).toBe(calls);
  });
});
