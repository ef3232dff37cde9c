import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { connectRedis } from '../../src/storage/redis/client.js';
import { RedisExactStore, escapeGlob } from '../../src/storage/redis/exact-cache.js';
import { deleteRedisKeys, requireService, uniqueName } from '../helpers/services.js';
import { runExactCacheContract } from './exact-cache.contract.js';

const url = await requireService('redis');
const PREFIX = `${uniqueName('tg_exact')}:`;
const MINUTE = 60_000;

/** Redis's own clock (TIME), in ms: the one its key expiries run on. */
async function redisNow(redis: Redis): Promise<number> {
  const [sec, usec] = await redis.time();
  return Number(sec) * 1_000 + Number(usec) / 1_000;
}

describe.skipIf(!url)('RedisExactStore', () => {
  let redis: Redis;
  let n = 0;
  const nextPrefix = () => `${PREFIX}${n++}:`;

  beforeAll(async () => {
    redis = await connectRedis(url!);
  });

  afterAll(async () => {
    await redis?.quit();
    await deleteRedisKeys(PREFIX);
  });

  runExactCacheContract(
    'redis',
    async (shares) => new RedisExactStore({ redis, prefix: nextPrefix(), ...shares }),
    // Redis keeps its own time: wait until its clock has moved that far.
    async (ms) => {
      const until = (await redisNow(redis)) + ms;
      await vi.waitFor(async () => expect(await redisNow(redis)).toBeGreaterThanOrEqual(until), { timeout: ms + 10_000, interval: 5 });
    },
  );

  it('stores each answer as <prefix>cx:<key> with a PX expiry', async () => {
    const prefix = nextPrefix();
    const store = new RedisExactStore({ redis, prefix });
    const before = await redisNow(redis);
    await store.set('t1/chat/abc', 'answer', 5_000);
    const after = await redisNow(redis);
    expect(await redis.get(`${prefix}cx:t1/chat/abc`)).toBe('answer');
    // Expires 5 s after the write, on Redis's clock (the write ran between the two readings).
    const expiresAt = Number(await redis.call('PEXPIRETIME', `${prefix}cx:t1/chat/abc`));
    expect(expiresAt).toBeGreaterThanOrEqual(Math.floor(before) + 5_000);
    expect(expiresAt).toBeLessThanOrEqual(Math.ceil(after) + 5_000);
  });

  it('keeps stores with different prefixes apart, invalidation included', async () => {
    const a = new RedisExactStore({ redis, prefix: nextPrefix() });
    const b = new RedisExactStore({ redis, prefix: nextPrefix() });
    await a.set('t/r/k', 'a', MINUTE);
    await b.set('t/r/k', 'b', MINUTE);
    expect(await a.invalidate({})).toBe(1);
    expect(await b.get('t/r/k')).toBe('b');
    expect(await b.size()).toBe(1);
  });

  it('takes glob metacharacters in its own prefix literally', async () => {
    const base = nextPrefix();
    const wild = new RedisExactStore({ redis, prefix: `${base}*` });
    const victim = new RedisExactStore({ redis, prefix: `${base}x` });
    await wild.set('t/r/k', 'w', MINUTE);
    await victim.set('t/r/k', 'v', MINUTE);
    expect(await wild.invalidate({})).toBe(1);
    expect(await wild.size()).toBe(0);
    expect(await victim.get('t/r/k')).toBe('v');
  });

  it('invalidates thousands of keys across SCAN pages and UNLINK batches, counting each once', async () => {
    const prefix = nextPrefix();
    const store = new RedisExactStore({ redis, prefix });
    const pipeline = redis.pipeline();
    for (let i = 0; i < 500; i++) pipeline.set(`${prefix}other:t1/chat/${i}`, 'x'); // another namespace under the prefix
    await pipeline.exec();
    await Promise.all(Array.from({ length: 2_500 }, (_, i) => store.set(`t${i % 2}/chat/${i}`, 'x'.repeat(100), MINUTE)));
    expect(await store.size()).toBe(2_500);
    expect(await store.invalidate({ tenantId: 't1' })).toBe(1_250);
    expect(await store.invalidate({ route: 'chat' })).toBe(1_250);
    expect(await store.size()).toBe(0);
    expect(await redis.exists(`${prefix}other:t1/chat/1`, `${prefix}other:t1/chat/499`)).toBe(2);
  });

  it('round-trips values of tens of KB', async () => {
    const store = new RedisExactStore({ redis, prefix: nextPrefix() });
    const value = JSON.stringify({ choices: [{ message: { content: 'é'.repeat(40_000) } }] });
    await store.set('t/r/big', value, MINUTE);
    expect(await store.get('t/r/big')).toBe(value);
  });

  it('does not quit a client it was given; refuses use after close', async () => {
    const store = new RedisExactStore({ redis, prefix: nextPrefix() });
    await store.close();
    await store.close();
    expect(await redis.ping()).toBe('PONG');
    await expect(store.get('t/r/k')).rejects.toThrow(/closed/);
  });

  it('quits the client with ownsClient', async () => {
    const own = await connectRedis(url!);
    const store = new RedisExactStore({ redis: own, prefix: nextPrefix(), ownsClient: true });
    await store.close();
    expect(own.status).toBe('end');
  });
});

describe('escapeGlob', () => {
  it('escapes * ? [ ] and backslash, and nothing else', () => {
    expect(escapeGlob('a*b?c[d]e\\f/g-h^i')).toBe('a\\*b\\?c\\[d\\]e\\\\f/g-h^i');
  });
});

describe.skipIf(!url)('RedisExactStore fair shares', () => {
  let redis: Redis;
  let n = 0;
  const nextPrefix = () => `${PREFIX}shares${n++}:`;

  beforeAll(async () => {
    redis = await connectRedis(url!);
  });
  afterAll(async () => {
    await redis?.quit();
    await deleteRedisKeys(PREFIX);
  });

  it("keeps each tenant's keys by last use in <prefix>cxt:<tenant>, expiring with its longest-lived entry", async () => {
    const prefix = nextPrefix();
    const store = new RedisExactStore({ redis, prefix, maxEntriesPerTenant: 2 });
    await store.set('t1/chat/a', 'A', 5_000);
    await store.set('t1/chat/b', 'B', MINUTE);
    await store.set('t1/chat/c', 'C', 5_000); // evicts a, t1's least recently used
    expect(await redis.zrange(`${prefix}cxt:t1`, 0, -1)).toEqual(['t1/chat/b', 't1/chat/c']);
    expect(await redis.exists(`${prefix}cx:t1/chat/a`)).toBe(0);
    const setTtl = await redis.pttl(`${prefix}cxt:t1`);
    expect(setTtl).toBeGreaterThan(5_000); // the set outlives every entry in it (b: a minute)
    expect(setTtl).toBeLessThanOrEqual(MINUTE);
    expect(await store.get('t1/chat/b')).toBe('B');
    expect(await redis.zrange(`${prefix}cxt:t1`, 0, -1)).toEqual(['t1/chat/c', 't1/chat/b']);
    expect(await store.size()).toBe(2); // the sets are not entries
    expect(await store.invalidate({ tenantId: 't1' })).toBe(2);
    expect(await redis.exists(`${prefix}cxt:t1`)).toBe(0);
  });

  it('holds a tenant to its share when several processes write at once', async () => {
    const prefix = nextPrefix();
    const a = new RedisExactStore({ redis, prefix, maxEntriesPerTenant: 50 });
    const b = new RedisExactStore({ redis, prefix, maxEntriesPerTenant: 50 });
    await a.set('victim/chat/kept', 'v', MINUTE);
    await Promise.all(Array.from({ length: 400 }, (_, i) => (i % 2 ? a : b).set(`flood/chat/${i}`, 'x', MINUTE)));
    expect(await a.size()).toBe(51);
    expect(await redis.zcard(`${prefix}cxt:flood`)).toBe(50);
    expect(await b.get('victim/chat/kept')).toBe('v');
    await a.invalidate({});
    expect(await redis.exists(`${prefix}cxt:flood`, `${prefix}cxt:victim`)).toBe(0);
  });
});
