/**
 * Opens the storage backend the config chooses: embedded (SQLite + memory counters) or
 * distributed (PostgreSQL + Redis). A driver is imported only when its backend is chosen, so an
 * embedded gateway never loads Redis or PostgreSQL clients.
 */
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import type { ExactStore, SemanticStore } from '../cache/types.js';
import type { FeedbackStore, FlagStore } from '../routing/types.js';
import type { FileStore, JobStore } from '../jobs/types.js';
import type { StorageUsageStore } from './storage-usage.js';
import type { Counters, IdempotencyStore, Ledger, Records, RequestLogStore } from './types.js';
import type { ExperimentResultsSource } from './experiment-rows.js';
import type { ShadowStore } from './shadow-rows.js';
import { type ChangeBus, LocalChangeBus, RedisChangeBus } from './change-bus.js';

/** The cache stores' bounds (src/config/cache-schema.ts `tenantShares` resolves the per-tenant ones). */
export interface CacheStoreBounds {
  maxEntries: number;
  maxBytes: number;
  maxEntriesPerTenant?: number;
  maxBytesPerTenant?: number;
  semanticEntriesPerTenant?: number;
  now?: () => number;
}

export interface Storage {
  records: Records;
  ledger: Ledger;
  /** Rate-limit buckets and budget counters (memory in embedded mode). */
  counters: Counters;
  /** Idempotency-Key answers (same database as the records). */
  idempotency: IdempotencyStore;
  /** A local folder for process-local state (the ledger spool). */
  localDir: string;
  /** Tells every process of the deployment about changes (src/storage/change-bus.ts). */
  bus: ChangeBus;
  /**
   * The cache's stores: exact answers (embedded: an in-memory LRU with these bounds; distributed:
   * Redis, shared) and semantic entries (opened on first call: SQLite | Redis). The cache closes them.
   * `now`: the in-memory LRU's clock for TTLs (tests); Redis keeps its own time.
   * Fair shares: `maxEntriesPerTenant` (both modes) and `maxBytesPerTenant` (the LRU) bound each
   * tenant's exact entries, `semanticEntriesPerTenant` its semantic entries (SQLite | Redis).
   */
  cacheStores(bounds: CacheStoreBounds): { exact: () => Promise<ExactStore>; semantic: () => Promise<SemanticStore> };
  /** Feature flags and their audit trail. */
  flags: FlagStore;
  /** Client verdicts (POST /v1/feedback). */
  feedback: FeedbackStore;
  /** Per-variant figures of an A/B experiment, from the ledger and the feedback. */
  experimentResults: ExperimentResultsSource;
  /** Shadow traffic's answer pairs and their aggregates per candidate. */
  shadow: ShadowStore;
  /** Async jobs: the queue, its leases and the webhook outbox (same database as the records). */
  jobs: JobStore;
  /** Files and batches of the Batch API (same database as the records). */
  files: FileStore;
  /** What each tenant keeps stored (files, jobs, feedback), for the storage quotas. */
  usage: StorageUsageStore;
  /** Every request's metadata (GET /admin/v1/requests); closed with the storage. */
  requestLog: RequestLogStore;
  /** Throws when the backend is not usable (readiness). */
  ping(): Promise<void>;
  /**
   * Readiness checks per dependency (distributed: `postgres`, `redis`), each with the deadline the
   * request path gives that dependency: past it /readyz reports it slow. Embedded: none (`ping`).
   */
  readiness?: Record<string, { run: () => Promise<void>; timeoutMs: number }>;
  close(): Promise<void>;
}

export async function openStorage(config: Pick<Config, 'storage'>): Promise<Storage> {
  return config.storage.kind === 'distributed' ? openDistributed(config.storage) : openEmbedded(config.storage);
}

async function openEmbedded(cfg: Extract<Config['storage'], { kind: 'embedded' }>): Promise<Storage> {
  const { openDatabase } = await import('./sqlite/database.js');
  const { SqliteRecords } = await import('./sqlite/records.js');
  const { SqliteLedger } = await import('./sqlite/ledger.js');
  const { MemoryCounters } = await import('./memory/counters.js');
  const { SqliteIdempotencyStore } = await import('./sqlite/idempotency.js');
  const { SqliteWriterThread } = await import('./sqlite/writer-thread.js');
  const file = join(cfg.dir, 'tollgate.db');
  const db = openDatabase(file, undefined, { busyTimeoutMs: cfg.busyTimeoutMs });
  const writer = new SqliteWriterThread(db, file);
  const records = new SqliteRecords(db);
  const counters = new MemoryCounters();
  const { SqliteFlagStore } = await import('./sqlite/flags.js');
  const { SqliteFeedbackStore } = await import('./sqlite/feedback.js');
  const { SqliteExperimentResults } = await import('./sqlite/experiments.js');
  const { SqliteShadowStore } = await import('./sqlite/shadow.js');
  const { SqliteJobStore } = await import('./sqlite/jobs.js');
  const { SqliteFileStore } = await import('./sqlite/files.js');
  const { SqliteRequestLog } = await import('./sqlite/request-log.js');
  return {
    records,
    ledger: new SqliteLedger(db, { writer }),
    counters,
    idempotency: new SqliteIdempotencyStore(db),
    bus: new LocalChangeBus(),
    localDir: cfg.dir,
    flags: new SqliteFlagStore(db),
    feedback: new SqliteFeedbackStore(db),
    experimentResults: new SqliteExperimentResults(db),
    shadow: new SqliteShadowStore(db),
    jobs: new SqliteJobStore(db),
    files: new SqliteFileStore(db, { dir: join(cfg.dir, 'files') }),
    usage: new (await import('./sqlite/storage-usage.js')).SqliteStorageUsage(db),
    requestLog: new SqliteRequestLog(db, { writer }),
    cacheStores: ({ semanticEntriesPerTenant, ...bounds }) => ({
      exact: async () => new (await import('./memory/exact-cache.js')).MemoryExactStore(bounds),
      semantic: async () =>
        new (await import('./sqlite/semantic-cache.js')).SqliteSemanticStore(db, { maxEntriesPerTenant: semanticEntriesPerTenant }),
    }),
    async ping() {
      db.prepare('select 1').get();
    },
    async close() {
      await counters.close();
      await writer.stop();
      await records.close();
    },
  };
}

/**
 * PostgreSQL for records and the ledger (migrated under an advisory lock, so processes may start
 * together), Redis for counters. Failures at start-up are fatal and name the service.
 */
async function openDistributed(cfg: Extract<Config['storage'], { kind: 'distributed' }>): Promise<Storage> {
  const { openPostgres, migratePostgres } = await import('./postgres/database.js');
  const { PostgresRecords } = await import('./postgres/records.js');
  const { PostgresLedger } = await import('./postgres/ledger.js');
  const { PostgresIdempotencyStore } = await import('./postgres/idempotency.js');
  const { connectRedis, ping: pingRedis } = await import('./redis/client.js');
  const { RedisCounters } = await import('./redis/counters.js');
  // Migrations on a pool of their own without a statement timeout: one may wait for another
  // process's migration (advisory lock) or build an index for longer than requests may take.
  const migrations = openPostgres(cfg.postgresUrl, { schema: cfg.postgresSchema, max: 1 });
  try {
    await migratePostgres(migrations);
  } catch (err) {
    throw startupError('storage.postgresUrl', 'cannot open PostgreSQL', cfg.postgresUrl, err);
  } finally {
    await migrations.end({ timeout: 1 }).catch(() => undefined);
  }
  const sql = openPostgres(cfg.postgresUrl, {
    schema: cfg.postgresSchema,
    max: cfg.postgresPoolSize,
    statementTimeoutMs: cfg.postgresStatementTimeoutMs,
    connectTimeoutMs: cfg.postgresConnectTimeoutMs,
  });
  let redis: Awaited<ReturnType<typeof connectRedis>> | undefined;
  let countersRedis;
  try {
    // The cache's and the change bus's commands: ioredis bounds each (a late reply is dropped).
    redis = await connectRedis(cfg.redisUrl, { commandTimeout: cfg.redisCommandTimeoutMs });
    // The counters' own connection: they bound each operation themselves and still read a late
    // reply (a reservation made after its deadline is given back, see RedisCounters).
    countersRedis = await connectRedis(cfg.redisUrl);
  } catch (err) {
    redis?.disconnect();
    await sql.end({ timeout: 1 }).catch(() => undefined);
    throw startupError('storage.redisUrl', 'cannot reach Redis', cfg.redisUrl, err);
  }
  const counters = new RedisCounters(countersRedis, {
    prefix: `${cfg.redisPrefix}counters:`,
    ownsClient: true,
    commandTimeoutMs: cfg.redisCommandTimeoutMs,
  });
  let bus: ChangeBus;
  try {
    bus = await RedisChangeBus.open(redis, await connectRedis(cfg.redisUrl), `${cfg.redisPrefix}changes`, () => undefined);
  } catch (err) {
    await counters.close().catch(() => undefined);
    redis.disconnect();
    await sql.end({ timeout: 1 }).catch(() => undefined);
    throw startupError('storage.redisUrl', 'cannot subscribe to Redis', cfg.redisUrl, err);
  }
  const records = new PostgresRecords(sql);
  const { PostgresFlagStore } = await import('./postgres/flags.js');
  const { PostgresFeedbackStore } = await import('./postgres/feedback.js');
  const { PostgresExperimentResults } = await import('./postgres/experiments.js');
  const { PostgresShadowStore } = await import('./postgres/shadow.js');
  const { PostgresJobStore } = await import('./postgres/jobs.js');
  const { PostgresFileStore } = await import('./postgres/files.js');
  const { PostgresRequestLog } = await import('./postgres/request-log.js');
  return {
    records,
    ledger: new PostgresLedger(sql),
    counters,
    idempotency: new PostgresIdempotencyStore(sql),
    bus,
    localDir: cfg.dir,
    flags: new PostgresFlagStore(sql),
    feedback: new PostgresFeedbackStore(sql),
    experimentResults: new PostgresExperimentResults(sql),
    shadow: new PostgresShadowStore(sql),
    jobs: new PostgresJobStore(sql),
    files: new PostgresFileStore(sql),
    usage: new (await import('./postgres/storage-usage.js')).PostgresStorageUsage(sql),
    requestLog: new PostgresRequestLog(sql),
    cacheStores: (bounds) => ({
      exact: async () =>
        new (await import('./redis/exact-cache.js')).RedisExactStore({
          redis,
          prefix: cfg.redisPrefix,
          maxEntriesPerTenant: bounds.maxEntriesPerTenant,
        }),
      semantic: async () =>
        new (await import('./redis/semantic-cache.js')).RedisSemanticStore({
          redis,
          prefix: cfg.redisPrefix,
          subscriber: () => connectRedis(cfg.redisUrl),
          maxEntriesPerTenant: bounds.semanticEntriesPerTenant,
        }),
    }),
    async ping() {
      await sql`select 1`;
      await pingRedis(redis);
    },
    readiness: {
      // What authentication reads: a lock held on the keys table shows here, not only a dead server.
      postgres: { run: async () => void (await sql`SELECT 1 FROM api_keys LIMIT 1`), timeoutMs: cfg.postgresQueryTimeoutMs },
      redis: { run: () => pingRedis(redis), timeoutMs: cfg.redisCommandTimeoutMs },
    },
    async close() {
      await bus.close();
      await counters.close().catch(() => undefined);
      await redis.quit().catch(() => redis.disconnect()); // the cache's and the bus's connection
      await records.close(); // ends the shared pool (the ledger's too)
    },
  };
}

/** A start-up failure naming the setting and the service (its URL without the password). */
function startupError(setting: string, what: string, url: string, err: unknown): Error {
  return new Error(`${setting}: ${what} (${redactUrl(url)}): ${(err as Error).message}`, { cause: err });
}

/** A service URL without its password, for error messages. */
function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(invalid URL)';
  }
}
