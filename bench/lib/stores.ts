/**
 * The Redis and PostgreSQL a distributed-mode benchmark runs against: reachability, a unique
 * PostgreSQL schema and Redis key prefix per run (removed even when the run is cut short), what
 * Tollgate left there, and their removal. Connections are short-lived and every call is bounded.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { onCleanup } from './process.js';
import { fileStamp } from './results.js';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
export const DEFAULT_POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/test';

/** Names only this run uses: `tollgate_bench_<scenario>_<stamp>_<random>` and `tollgate-bench:<...>:`. */
export function uniqueStoreNames(scenario: string, date: Date): { postgresSchema: string; redisPrefix: string } {
  const tag = `${scenario}_${fileStamp(date).replace(/[^0-9]/g, '')}_${randomBytes(3).toString('hex')}`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  return { postgresSchema: `tollgate_bench_${tag}`.slice(0, 63), redisPrefix: `tollgate-bench:${tag}:` };
}

const SCHEMA = /^[a-z_][a-z0-9_]{0,62}$/;

function checkSchema(schema: string): string {
  if (!SCHEMA.test(schema)) throw new Error(`not a plain lower-case schema name: '${schema}'`);
  return schema;
}

/** A URL without its password, for messages. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(invalid URL)';
  }
}

async function withPostgres<T>(url: string, fn: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(url, { max: 1, connect_timeout: 5, idle_timeout: 1, onnotice: () => {} });
  try {
    return await fn(sql);
  } finally {
    await sql.end({ timeout: 2 }).catch(() => undefined);
  }
}

async function withRedis<T>(url: string, fn: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis(url, { lazyConnect: true, connectTimeout: 3_000, maxRetriesPerRequest: 1, enableOfflineQueue: false, retryStrategy: () => null });
  redis.on('error', () => {});
  try {
    await redis.connect();
    return await fn(redis);
  } finally {
    redis.disconnect();
  }
}

/** Throws, naming the service and its (redacted) URL, unless both answer; `skip` says how to run without them. */
export async function checkStores(redisUrl: string, postgresUrl: string, skip?: string): Promise<void> {
  const or = skip ? `, or ${skip}` : '';
  try {
    await withRedis(redisUrl, (r) => r.ping());
  } catch (err) {
    throw new Error(`Redis at ${redact(redisUrl)} does not answer (${(err as Error).message}); set BENCH_REDIS_URL${or}`);
  }
  try {
    await withPostgres(postgresUrl, (sql) => sql`select 1`);
  } catch (err) {
    throw new Error(`PostgreSQL at ${redact(postgresUrl)} does not answer (${(err as Error).message}); set BENCH_POSTGRES_URL${or}`);
  }
}

/**
 * Checks both stores answer (`checkStores`), and has the run's key prefix and schemas removed
 * should the run be cut short (Ctrl-C, a failure: `onCleanup`). Returns the function that
 * unregisters that removal, for when the scenario has cleaned up by itself.
 */
export async function reserveStores(o: { redisUrl: string; postgresUrl: string; redisPrefix: string; schemas: string[]; skip?: string }): Promise<() => void> {
  await checkStores(o.redisUrl, o.postgresUrl, o.skip);
  return onCleanup(async () => {
    await deleteRedisKeys(o.redisUrl, o.redisPrefix).catch(() => undefined);
    for (const schema of o.schemas) await dropSchema(o.postgresUrl, schema).catch(() => undefined);
  });
}

/** Rows of `table` in `schema` (undefined when the table is not there). */
export async function countRows(postgresUrl: string, schema: string, table: string): Promise<number | undefined> {
  return withPostgres(postgresUrl, async (sql) => {
    const [found] = await sql`select 1 from information_schema.tables where table_schema = ${checkSchema(schema)} and table_name = ${table}`;
    if (!found) return undefined;
    const [row] = await sql`select count(*)::int as n from ${sql(schema)}.${sql(table)}`;
    return (row as { n: number } | undefined)?.n;
  });
}

/** DROP SCHEMA ... CASCADE; returns whether it existed. */
export async function dropSchema(postgresUrl: string, schema: string): Promise<boolean> {
  return withPostgres(postgresUrl, async (sql) => {
    const [found] = await sql`select 1 from information_schema.schemata where schema_name = ${checkSchema(schema)}`;
    await sql`drop schema if exists ${sql(schema)} cascade`;
    return found !== undefined;
  });
}

/** Every Redis key starting with `prefix` (SCAN, bounded to 100,000 keys). */
export async function redisKeys(redisUrl: string, prefix: string): Promise<string[]> {
  if (prefix.length < 8) throw new Error(`refusing to scan Redis for the short prefix '${prefix}'`);
  return withRedis(redisUrl, async (redis) => {
    const keys = new Set<string>();
    const pattern = `${prefix.replace(/[*?[\]\\]/g, (c) => `\\${c}`)}*`;
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1_000);
      for (const k of batch) keys.add(k);
      cursor = next;
    } while (cursor !== '0' && keys.size < 100_000);
    return [...keys];
  });
}

/** Deletes every key starting with `prefix`; returns how many there were. */
export async function deleteRedisKeys(redisUrl: string, prefix: string): Promise<number> {
  const keys = await redisKeys(redisUrl, prefix);
  if (keys.length === 0) return 0;
  await withRedis(redisUrl, async (redis) => {
    for (let i = 0; i < keys.length; i += 500) await redis.del(...keys.slice(i, i + 500));
  });
  return keys.length;
}

/**
 * Rows of `table` in an embedded-mode SQLite file (read-only; undefined when the file or table is
 * not there). Open it after the gateway has stopped: its last ledger flush happens on close.
 */
export async function countSqliteRows(file: string, table: string): Promise<number | undefined> {
  const { default: Database } = await import('better-sqlite3');
  let db;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
  } catch {
    return undefined;
  }
  try {
    const found = db.prepare(`select 1 from sqlite_master where type = 'table' and name = ?`).get(table);
    if (!found) return undefined;
    return (db.prepare(`select count(*) as n from "${table.replace(/"/g, '""')}"`).get() as { n: number }).n;
  } finally {
    db.close();
  }
}
