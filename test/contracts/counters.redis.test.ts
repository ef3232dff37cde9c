import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { connectRedis, createRedis, ping } from '../../src/storage/redis/client.js';
import { RedisCounters } from '../../src/storage/redis/counters.js';
import { requireService, uniqueName } from '../helpers/services.js';
import { runCountersContract } from './counters.contract.js';

const url = await requireService('redis');
const PREFIX = `${uniqueName('tg_counters')}:`;

/** Redis's own clock (TIME), in ms: the one its counters and expiries run on. */
async function redisNow(redis: Redis): Promise<number> {
  const [sec, usec] = await redis.time();
  return Number(sec) * 1_000 + Number(usec) / 1_000;
}

async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1_000);
    if (keys.length > 0) await redis.del(...keys);
    cursor = next;
  } while (cursor !== '0');
}

describe.skipIf(!url)('RedisCounters', () => {
  let redis: Redis;
  let n = 0;
  const nextPrefix = () => `${PREFIX}${n++}:`;

  beforeAll(async () => {
    redis = await connectRedis(url!);
  });

  afterAll(async () => {
    if (!redis) return;
    await deleteKeys(redis, PREFIX);
    await redis.quit();
  });

  runCountersContract('redis', async () => ({ counters: new RedisCounters(redis, { prefix: nextPrefix() }), clock: () => redisNow(redis) }));

  describe('across processes (two connections)', () => {
    let other: Redis;
    beforeAll(async () => {
      other = await connectRedis(url!);
    });
    afterAll(async () => {
      await other?.quit();
    });

    it('two connections hammering one bucket admit exactly its capacity in total', async () => {
      const prefix = nextPrefix();
      const a = new RedisCounters(redis, { prefix });
      const b = new RedisCounters(other, { prefix });
      const spec = { capacity: 100, refillPerSec: 0.000_001 };
      const one = (c: RedisCounters) => c.take([{ key: 'tenant', spec, amount: 1 }]);
      // One unit each first (the bucket is full: both are admitted), then 598 at once from both.
      const firsts = await Promise.all([one(a), one(b)]);
      expect(firsts.map((r) => r.ok)).toEqual([true, true]);
      const results = await Promise.all(Array.from({ length: 598 }, (_, i) => one(i % 2 === 0 ? a : b)));
      const byA = 1 + results.filter((r, i) => r.ok && i % 2 === 0).length;
      const byB = 1 + results.filter((r, i) => r.ok && i % 2 === 1).length;
      expect(byA + byB).toBe(100);
    });

    it('with refill, what two connections admit over time never exceeds capacity plus the refill', async () => {
      const prefix = nextPrefix();
      const a = new RedisCounters(redis, { prefix });
      const b = new RedisCounters(other, { prefix });
      const spec = { capacity: 50, refillPerSec: 200 };
      let admitted = 0;
      // 40 clients take one unit at a time until 150 were admitted: 100 of them can only come from
      // refill. Every take ran between the two readings of Redis's clock, the one the bucket uses.
      const started = await redisNow(redis);
      const worker = async (c: RedisCounters) => {
        while (admitted < 150) {
          if ((await c.take([{ key: 'tenant', spec, amount: 1 }])).ok) admitted++;
        }
      };
      await Promise.all(Array.from({ length: 40 }, (_, i) => worker(i % 2 === 0 ? a : b)));
      const elapsedSec = ((await redisNow(redis)) - started) / 1_000;
      expect(admitted).toBeGreaterThanOrEqual(150); // it does refill and admit
      expect(admitted).toBeLessThanOrEqual(Math.floor(50 + 200 * elapsedSec) + 1);
    });

    it('two connections reserving on one budget admit exactly up to its limit', async () => {
      const prefix = nextPrefix();
      const a = new RedisCounters(redis, { prefix });
      const b = new RedisCounters(other, { prefix });
      await a.seedBudget('tenant', 0, 60_000);
      const item = { key: 'tenant', limit: 100_000, amount: 1_000, ttlMs: 60_000 };
      const results = await Promise.all(Array.from({ length: 600 }, (_, i) => (i % 2 === 0 ? a : b).reserve([item])));
      expect(results.filter((r) => r.ok)).toHaveLength(100);
      expect(await b.budgetUsed('tenant')).toBe(100_000);
    });

    it('takes its time from Redis: a process whose clock is an hour ahead sees no refill', async () => {
      const prefix = nextPrefix();
      const a = new RedisCounters(redis, { prefix });
      const b = new RedisCounters(other, { prefix });
      const spec = { capacity: 10, refillPerSec: 0.01 };
      expect((await a.take([{ key: 'k', spec, amount: 10 }])).ok).toBe(true);
      vi.useFakeTimers({ toFake: ['Date'] });
      try {
        vi.setSystemTime(Date.now() + 3_600_000);
        expect((await b.take([{ key: 'k', spec, amount: 1 }])).ok).toBe(false);
      } finally {
        vi.useRealTimers();
      }
    });
  });

  describe('key layout', () => {
    it('stores buckets as {tokens, ts} hashes that expire once full again, under the prefix', async () => {
      const prefix = nextPrefix();
      const counters = new RedisCounters(redis, { prefix });
      await counters.take([{ key: 'rl:tpm', spec: { capacity: 10, refillPerSec: 10 }, amount: 5 }]);
      const stored = await redis.hgetall(`${prefix}bucket:rl:tpm`);
      expect(Number(stored['tokens'])).toBeCloseTo(5, 1);
      expect(Number(stored['ts'])).toBeGreaterThan(Date.UTC(2024, 0, 1));
      // Expires (absolute, on Redis's clock) 500 ms to full after the take, plus the margin.
      const expiresIn = Number(await redis.call('PEXPIRETIME', `${prefix}bucket:rl:tpm`)) - Number(stored['ts']);
      expect(expiresIn).toBeGreaterThan(1_000);
      expect(expiresIn).toBeLessThanOrEqual(1_501);

      await counters.take([{ key: 'quota', spec: { capacity: 10, refillPerSec: 0 }, amount: 1 }]);
      expect(await redis.pttl(`${prefix}bucket:quota`)).toBe(-1); // never refills: kept
    });

    it('stores budgets as integers with the TTL of the last reservation; settle keeps it', async () => {
      const prefix = nextPrefix();
      const counters = new RedisCounters(redis, { prefix });
      await counters.seedBudget('day', 9_007_199_254_740_000, 60_000);
      const before = await redisNow(redis);
      await counters.reserve([{ key: 'day', limit: Number.MAX_SAFE_INTEGER, amount: 991, ttlMs: 120_000 }]);
      const after = await redisNow(redis);
      expect(await redis.get(`${prefix}budget:day`)).toBe('9007199254740991');
      // The reservation's TTL, counted from when it ran (between the two readings of Redis's clock).
      const expiresAt = Number(await redis.call('PEXPIRETIME', `${prefix}budget:day`));
      expect(expiresAt).toBeGreaterThanOrEqual(Math.floor(before) + 120_000);
      expect(expiresAt).toBeLessThanOrEqual(Math.ceil(after) + 120_000);
      await counters.settle('day', 991, 0, 5_000);
      expect(Number(await redis.call('PEXPIRETIME', `${prefix}budget:day`))).toBe(expiresAt); // kept
    });

    it('keeps adapters with different prefixes apart', async () => {
      const a = new RedisCounters(redis, { prefix: nextPrefix() });
      const b = new RedisCounters(redis, { prefix: nextPrefix() });
      const spec = { capacity: 1, refillPerSec: 0 };
      expect((await a.take([{ key: 'k', spec, amount: 1 }])).ok).toBe(true);
      expect((await b.take([{ key: 'k', spec, amount: 1 }])).ok).toBe(true);
      await a.seedBudget('m', 5, 60_000);
      expect(await b.budgetUsed('m')).toBe(0);
    });

    it('keeps working after the script cache is flushed (EVALSHA falls back to EVAL)', async () => {
      const counters = new RedisCounters(redis, { prefix: nextPrefix() });
      await redis.script('FLUSH');
      expect((await counters.take([{ key: 'k', spec: { capacity: 1, refillPerSec: 0 }, amount: 1 }])).ok).toBe(true);
    });
  });

  describe('close', () => {
    it('does not quit a client it was given', async () => {
      const counters = new RedisCounters(redis, { prefix: nextPrefix() });
      await counters.close();
      expect(await redis.ping()).toBe('PONG');
      await expect(counters.budgetUsed('k')).rejects.toThrow(/closed/);
    });

    it('quits the client with ownsClient', async () => {
      const own = await connectRedis(url!);
      const counters = new RedisCounters(own, { prefix: nextPrefix(), ownsClient: true });
      await counters.close();
      await counters.close();
      expect(own.status).toBe('end');
    });
  });
});

/** Nothing listens on port 1: connections are refused at once. */
const DEAD = 'redis://127.0.0.1:1';

describe('createRedis against a dead Redis', () => {
  it('fails commands at once instead of queueing them', async () => {
    const redis = createRedis(DEAD);
    try {
      // Refused by the client itself (its offline queue is off), not after waiting for a connection.
      await expect(redis.get('k')).rejects.toThrow(/enableOfflineQueue/);
      expect(redis.status).not.toBe('ready');
    } finally {
      redis.disconnect();
    }
  });

  it('ping and connectRedis fail when their timeout ends, not before', async () => {
    // Timers are the test's: ping's deadline (and the client's reconnect delays) fire when it says.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const redis = createRedis(DEAD);
    try {
      const refused = new Promise((resolve) => redis.once('error', resolve)); // the connection attempt fails
      let outcome: unknown;
      const pinging = ping(redis, 300).then(
        () => (outcome = 'answered'),
        (err: unknown) => (outcome = err),
      );
      await refused;
      await vi.advanceTimersByTimeAsync(299);
      expect(outcome).toBeUndefined(); // still waiting at 299 ms
      await vi.advanceTimersByTimeAsync(1);
      await pinging;
      expect(String(outcome)).toMatch(/did not answer within 300 ms.*ECONNREFUSED/);
      const connecting = connectRedis(DEAD, { timeoutMs: 300 }).then(
        () => 'connected',
        (err: unknown) => String(err),
      );
      await vi.advanceTimersByTimeAsync(300);
      expect(await connecting).toMatch(/did not answer within 300 ms/);
    } finally {
      redis.disconnect();
      vi.useRealTimers();
    }
  });

  it('counters on it reject at once instead of hanging', async () => {
    const redis = createRedis(DEAD);
    const counters = new RedisCounters(redis, { prefix: 'unused:' });
    try {
      await expect(counters.take([{ key: 'k', spec: { capacity: 1, refillPerSec: 1 }, amount: 1 }])).rejects.toThrow();
      await expect(counters.reserve([{ key: 'k', limit: 1, amount: 1, ttlMs: 1_000 }])).rejects.toThrow();
    } finally {
      redis.disconnect();
    }
  });
});

describe.skipIf(!url)('createRedis against a live Redis', () => {
  it('connects, answers ping, and fails fast by default', async () => {
    const redis = await connectRedis(url!);
    try {
      await expect(ping(redis)).resolves.toBeUndefined();
      expect(redis.options).toMatchObject({ enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: false });
    } finally {
      await redis.quit();
    }
  });

  it('ping waits for a connection in progress', async () => {
    const redis = createRedis(url!);
    try {
      await expect(ping(redis)).resolves.toBeUndefined();
    } finally {
      await redis.quit();
    }
  });

  it('ping rejects on a closed client', async () => {
    const redis = await connectRedis(url!);
    await redis.quit();
    await expect(ping(redis)).rejects.toThrow(/closed/);
  });
});
