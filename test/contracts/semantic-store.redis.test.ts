import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { SemanticChange } from '../../src/cache/types.js';
import { connectRedis } from '../../src/storage/redis/client.js';
import { RedisSemanticStore } from '../../src/storage/redis/semantic-cache.js';
import { deleteRedisKeys, requireService, uniqueName } from '../helpers/services.js';
import { plainEntry, runSemanticStoreContract, semanticEntry } from './semantic-store.contract.js';

const url = await requireService('redis');
const PREFIX = `${uniqueName('tg_semantic')}:`;
/** Resolves once `check` holds (a change has arrived); the timeout only bounds a failure. */
async function until(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  await vi.waitFor(() => expect(check()).toBe(true), { timeout: timeoutMs, interval: 5 });
}

/** Redis's own clock (TIME), in ms: the one its key expiries run on. */
async function redisNow(redis: Redis): Promise<number> {
  const [sec, usec] = await redis.time();
  return Number(sec) * 1_000 + Number(usec) / 1_000;
}

describe.skipIf(!url)('RedisSemanticStore', () => {
  let redis: Redis;
  let n = 0;
  const nextPrefix = () => `${PREFIX}${n++}:`;
  const stores: RedisSemanticStore[] = [];
  const open = (prefix: string, extra: Partial<ConstructorParameters<typeof RedisSemanticStore>[0]> = {}) => {
    const store = new RedisSemanticStore({ redis, prefix, ...extra });
    stores.push(store);
    return store;
  };

  beforeAll(async () => {
    redis = await connectRedis(url!);
  });

  afterAll(async () => {
    for (const s of stores) await s.close();
    await redis?.quit();
    await deleteRedisKeys(PREFIX);
  });

  let lastPrefix = '';
  runSemanticStoreContract(
    'redis',
    async (shares) => open((lastPrefix = nextPrefix()), shares),
    async () => new RedisSemanticStore({ redis, prefix: lastPrefix }), // closed by the contract
  );

  describe('two processes (two stores, each with its own subscriber connection)', () => {
    it('reports put, threshold, delete and invalidate made by one to the other, never to itself', async () => {
      const prefix = nextPrefix();
      const a = open(prefix);
      const b = open(prefix);
      const seenByA: SemanticChange[] = [];
      const seenByB: SemanticChange[] = [];
      a.subscribe((c) => seenByA.push(c));
      b.subscribe((c) => seenByB.push(c));
      await Promise.all([a.whenSubscribed(), b.whenSubscribed()]);

      const e = semanticEntry({ vector: Float32Array.from([0.1, -0, 1e-42, 7]), threshold: 0.8 });
      await a.put(e);
      await until(() => seenByB.length === 1);
      const put = seenByB[0]!;
      expect(put.kind).toBe('put');
      if (put.kind === 'put') expect(plainEntry(put.entry)).toEqual(plainEntry(e));

      await a.setThreshold(e.id, 0.95);
      await until(() => seenByB.length === 2);
      expect(seenByB[1]).toEqual({ kind: 'threshold', id: e.id, threshold: 0.95 });
      await a.setThreshold(e.id, null);
      await until(() => seenByB.length === 3);
      expect(seenByB[2]).toEqual({ kind: 'threshold', id: e.id, threshold: null });

      await a.delete([e.id, 't1/chat/other']);
      await until(() => seenByB.length === 4);
      expect(seenByB[3]).toEqual({ kind: 'delete', ids: [e.id, 't1/chat/other'] });

      await a.invalidate({ tenantId: 't1', route: 'chat' });
      await until(() => seenByB.length === 5);
      expect(seenByB[4]).toEqual({ kind: 'invalidate', filter: { tenantId: 't1', route: 'chat' } });

      // And the other way round. Changes arrive in the order they were made: once A sees B's put, it
      // would have seen its own five before it, had they been reported to it.
      const f = semanticEntry({ tenantId: 't2' });
      await b.put(f);
      await until(() => seenByA.length > 0);
      expect(seenByA.map((c) => c.kind === 'put' && c.entry.id)).toEqual([f.id]);
      // Likewise, once B sees A's next change, its own put (made before) would have come first.
      await a.delete(['t9/chat/marker']);
      await until(() => seenByB.length > 5);
      expect(seenByB).toHaveLength(6);
      expect(seenByB[5]).toEqual({ kind: 'delete', ids: ['t9/chat/marker'] });
    });

    it('delivers changes in the order they were made (a put quickly deleted never ends up present)', async () => {
      const prefix = nextPrefix();
      const a = open(prefix);
      const b = open(prefix);
      const present = new Set<string>();
      let deletes = 0;
      b.subscribe((c) => {
        if (c.kind === 'put') present.add(c.entry.id);
        if (c.kind === 'delete') {
          deletes++;
          for (const id of c.ids) present.delete(id);
        }
      });
      await b.whenSubscribed();
      const entries = Array.from({ length: 50 }, () => semanticEntry());
      await Promise.all(entries.map((e) => a.put(e)));
      for (const e of entries.slice(0, 25)) await a.delete([e.id]);
      await until(() => deletes === 25);
      await until(() => present.size === 25);
      expect([...present].sort()).toEqual(entries.slice(25).map((e) => e.id).sort());
    });

    it('does not report puts of entries already gone when the message is handled', async () => {
      const prefix = nextPrefix();
      const a = open(prefix);
      const b = open(prefix);
      const seen: SemanticChange[] = [];
      b.subscribe((c) => seen.push(c));
      await b.whenSubscribed();
      const e = semanticEntry();
      await Promise.all([a.put(e), a.delete([e.id])]);
      await until(() => seen.some((c) => c.kind === 'delete'));
      expect(seen.filter((c) => c.kind === 'put')).toEqual([]);
    });

    it('calls onResync after its subscriber reconnects, and keeps receiving', async () => {
      const prefix = nextPrefix();
      let subscriber: Redis | undefined;
      const a = open(prefix);
      const b = open(prefix, {
        subscriber: async () => (subscriber = await connectRedis(url!)),
      });
      const seen: SemanticChange[] = [];
      let resyncs = 0;
      b.subscribe((c) => seen.push(c));
      b.onResync(() => resyncs++);
      await b.whenSubscribed();
      expect(resyncs).toBe(0);

      subscriber!.disconnect(true); // drop the connection; ioredis reconnects
      await until(() => resyncs === 1, 5_000);
      const e = semanticEntry();
      await a.put(e);
      await until(() => seen.length === 1);
      expect(seen[0]!.kind === 'put' && seen[0]!.entry.id).toBe(e.id);

      await b.close();
      expect(subscriber!.status).toBe('end');
    });

    it('stops delivering to a listener once unsubscribed', async () => {
      const prefix = nextPrefix();
      const a = open(prefix);
      const b = open(prefix);
      const first: SemanticChange[] = [];
      const second: SemanticChange[] = [];
      const off = b.subscribe((c) => first.push(c));
      b.subscribe((c) => second.push(c));
      await b.whenSubscribed();
      await a.put(semanticEntry());
      await until(() => first.length === 1 && second.length === 1);
      off();
      await a.put(semanticEntry());
      await until(() => second.length === 2);
      expect(first).toHaveLength(1); // the same message reached every listener at once: not this one
    });
  });

  describe('key layout and expiry', () => {
    it('stores a hash per entry with a PEXPIRE, and two sorted sets by creation and expiry', async () => {
      const prefix = nextPrefix();
      const store = open(prefix);
      const e = semanticEntry({ expiresAt: Date.now() + 10_000 });
      const before = await redisNow(redis);
      await store.put(e);
      const after = await redisNow(redis);
      const hash = await redis.hgetallBuffer(`${prefix}sc:e:${e.id}`);
      expect(hash['vector']!.equals(Buffer.from(e.vector.buffer))).toBe(true);
      expect(hash['question']!.toString()).toBe(e.question);
      expect(hash['threshold']!.toString()).toBe('');
      // PEXPIRE'd for what was left of its life when written (between the two readings of Redis's clock).
      const expiresAt = Number(await redis.call('PEXPIRETIME', `${prefix}sc:e:${e.id}`));
      expect(expiresAt).toBeGreaterThanOrEqual(Math.floor(before) + (e.expiresAt - Math.ceil(after)));
      expect(expiresAt).toBeLessThanOrEqual(Math.ceil(after) + 10_000);
      expect(Number(await redis.zscore(`${prefix}sc:idx`, e.id))).toBe(e.createdAt);
      expect(Number(await redis.zscore(`${prefix}sc:exp`, e.id))).toBe(e.expiresAt);
    });

    it('lets Redis expire the entry at expiresAt, and cleans the sets lazily (scan) or by purgeExpired', async () => {
      const prefix = nextPrefix();
      const store = open(prefix);
      const short = [semanticEntry({ expiresAt: Date.now() + 80 }), semanticEntry({ expiresAt: Date.now() + 80 })];
      const long = semanticEntry();
      for (const e of [...short, long]) await store.put(e);
      // Redis expires the short ones by itself (its own clock): wait for that, and for our clock to be past expiresAt.
      await vi.waitFor(
        async () => {
          expect(await redis.exists(`${prefix}sc:e:${short[0]!.id}`, `${prefix}sc:e:${short[1]!.id}`)).toBe(0);
          expect(Date.now()).toBeGreaterThan(short[1]!.expiresAt);
        },
        { timeout: 10_000, interval: 5 },
      );
      expect(await store.get(short[0]!.id)).toBeUndefined();

      expect(await store.purgeExpired(Date.now(), 1)).toBe(1);
      const ids: string[] = [];
      await store.scan((batch) => void ids.push(...batch.map((e) => e.id)));
      expect(ids).toEqual([long.id]);
      expect(await redis.zrange(`${prefix}sc:idx`, 0, -1)).toEqual([long.id]); // scan removed the other one
      expect(await redis.zrange(`${prefix}sc:exp`, 0, -1)).toEqual([long.id]);
      expect(await store.purgeExpired()).toBe(0);
    });

    it('does not keep an entry put already expired', async () => {
      const prefix = nextPrefix();
      const store = open(prefix);
      const e = semanticEntry();
      await store.put(e);
      await store.put({ ...e, expiresAt: Date.now() - 1 });
      expect(await store.get(e.id)).toBeUndefined();
      expect(await redis.zcard(`${prefix}sc:idx`)).toBe(0);
    });

    it('scans thousands of entries, many created in the same millisecond, in order and once each', async () => {
      const prefix = nextPrefix();
      const store = open(prefix);
      const t = Date.now();
      const entries = Array.from({ length: 1_300 }, (_, i) => semanticEntry({ createdAt: t + Math.floor(i / 400), tenantId: `t${i % 7}` }));
      await Promise.all(entries.map((e) => store.put(e)));
      const expected = [...entries]
        .sort((x, y) => x.createdAt - y.createdAt || Buffer.compare(Buffer.from(x.id), Buffer.from(y.id)))
        .map((e) => e.id);
      const ids: string[] = [];
      await store.scan((batch) => void ids.push(...batch.map((e) => e.id)), 250);
      expect(ids).toEqual(expected);
      expect((await store.invalidate({ tenantId: 't3' })).length).toBe(entries.filter((e) => e.tenantId === 't3').length);
    });
  });

  describe('close', () => {
    it('disconnects its subscriber, leaves the client it was given, refuses use after', async () => {
      let subscriber: Redis | undefined;
      const store = new RedisSemanticStore({ redis, prefix: nextPrefix(), subscriber: () => (subscriber = redis.duplicate()) });
      store.subscribe(() => {});
      await store.whenSubscribed();
      await store.close();
      await store.close();
      expect(subscriber!.status).toBe('end');
      expect(await redis.ping()).toBe('PONG');
      await expect(store.get('t/r/x')).rejects.toThrow(/closed/);
    });

    it('quits the client with ownsClient', async () => {
      const own = await connectRedis(url!);
      const store = new RedisSemanticStore({ redis: own, prefix: nextPrefix(), ownsClient: true });
      await store.close();
      expect(own.status).toBe('end');
    });
  });
});

describe.skipIf(!url)('RedisSemanticStore fair shares', () => {
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

  it("keeps each tenant's ids by last use in <prefix>sc:t:<tenant>, outliving its entries; purge and delete clean it", async () => {
    const prefix = nextPrefix();
    const store = new RedisSemanticStore({ redis, prefix, maxEntriesPerTenant: 2 });
    try {
      const [e1, e2, e3] = [semanticEntry({ expiresAt: Date.now() + 60_000 }), semanticEntry(), semanticEntry()];
      await store.put(e1!);
      await store.put(e2!);
      expect(await redis.zrange(`${prefix}sc:t:t1`, 0, -1)).toEqual([e1!.id, e2!.id]);
      expect(await redis.pttl(`${prefix}sc:t:t1`)).toBeGreaterThan(60_000); // e2 lives an hour
      await store.get(e1!.id);
      expect(await redis.zrange(`${prefix}sc:t:t1`, 0, -1)).toEqual([e2!.id, e1!.id]);
      expect(await store.put(e3!)).toEqual([e2!.id]);
      expect(await redis.exists(`${prefix}sc:e:${e2!.id}`)).toBe(0);
      expect(await redis.zscore(`${prefix}sc:idx`, e2!.id)).toBeNull();
      expect(await redis.zscore(`${prefix}sc:exp`, e2!.id)).toBeNull();
      expect(await store.purgeExpired(e1!.expiresAt, 100)).toBe(1); // e1 counts as expired at that time
      expect(await redis.zrange(`${prefix}sc:t:t1`, 0, -1)).toEqual([e3!.id]);
      await store.delete([e3!.id]);
      expect(await redis.exists(`${prefix}sc:t:t1`)).toBe(0);
    } finally {
      await store.close();
    }
  });

  it('holds a tenant to its share when several processes put at once', async () => {
    const prefix = nextPrefix();
    const a = new RedisSemanticStore({ redis, prefix, maxEntriesPerTenant: 30 });
    const b = new RedisSemanticStore({ redis, prefix, maxEntriesPerTenant: 30 });
    try {
      const kept = semanticEntry({ tenantId: 'victim' });
      await a.put(kept);
      const evicted = await Promise.all(Array.from({ length: 200 }, (_, i) => (i % 2 ? a : b).put(semanticEntry({ tenantId: 'flood' }))));
      expect(evicted.flat()).toHaveLength(170);
      expect(await redis.zcard(`${prefix}sc:t:flood`)).toBe(30);
      expect(await redis.zcard(`${prefix}sc:idx`)).toBe(31);
      expect(await b.get(kept.id)).toBeDefined();
    } finally {
      await a.close();
      await b.close();
    }
  });
});
