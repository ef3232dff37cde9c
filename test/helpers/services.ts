/**
 * Redis and PostgreSQL for the distributed-mode suites. A suite that needs a service runs for
 * real against it; when the service is not reachable the suite is skipped with a visible notice,
 * except under CI=true, where a missing service fails the run (CI must prove distributed mode).
 *
 *   const redis = await requireService('redis');
 *   describe.skipIf(!redis)('counters on redis', () => { ... });
 *
 * URLs: TOLLGATE_TEST_REDIS_URL (default redis://127.0.0.1:6379),
 *       TOLLGATE_TEST_PG_URL (default postgres://postgres@127.0.0.1:5432/test).
 */
import { randomBytes } from 'node:crypto';
import { Socket } from 'node:net';

export const REDIS_URL = process.env['TOLLGATE_TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';
export const PG_URL = process.env['TOLLGATE_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

type Service = 'redis' | 'postgres';

/** Whether a TCP connection to the service's host and port succeeds within `timeoutMs`. */
export function reachable(url: string, defaultPort: number, timeoutMs = 1_000): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    socket.connect(Number(u.port || defaultPort), u.hostname, () => done(true));
  });
}

/** The service's URL when it is reachable; undefined (with a notice) when not; throws under CI=true. */
export async function requireService(service: Service): Promise<string | undefined> {
  const url = service === 'redis' ? REDIS_URL : PG_URL;
  if (await reachable(url, service === 'redis' ? 6379 : 5432)) return url;
  const message = `${service} is not reachable at ${url}`;
  if (process.env['CI'] === 'true') throw new Error(`${message}: distributed-mode suites must run on CI`);
  process.stderr.write(`\n[NOTICE] ${message}: skipping the suites that need it (they run on CI).\n\n`);
  return undefined;
}

/** A name unique to this test run, for Redis key prefixes and PostgreSQL schemas. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
}

/** Deletes every Redis key under `prefix` (test clean-up). */
export async function deleteRedisKeys(prefix: string): Promise<void> {
  const { Redis } = await import('ioredis');
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

/** The storage block of a distributed gateway on the test services, isolated under `name`. */
export function distributedStorage(name: string) {
  // Tests load the machine (parallel files, hundreds of concurrent requests on two cores): a
  // Redis command deadline of a few hundred ms would then fire on the gateway's own event-loop
  // lag. Suites that test a slow Redis set their own (redis-stall.redis.test.ts).
  return { kind: 'distributed' as const, redisUrl: REDIS_URL, postgresUrl: PG_URL, postgresSchema: name, redisPrefix: `${name}:`, redisCommandTimeoutMs: 5_000 };
}

/** Drops what `distributedStorage(name)` created: the PostgreSQL schemas and the Redis keys. */
export async function dropDistributed(name: string, schemas: string[] = [name]): Promise<void> {
  const { default: postgres } = await import('postgres');
  const sql = postgres(PG_URL, { onnotice: () => undefined });
  try {
    for (const schema of schemas) await sql.unsafe(`drop schema if exists "${schema}" cascade`);
  } finally {
    await sql.end();
  }
  await deleteRedisKeys(`${name}:`);
}
