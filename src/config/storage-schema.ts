/**
 * The `storage` section of the config: embedded (SQLite in a folder) or distributed (PostgreSQL
 * and Redis shared by several processes). See src/storage/.
 */
import { z } from 'zod';
import { positiveInt, serviceUrl } from './primitives.js';

export const storageSchema = z.discriminatedUnion('kind', [
  z
    .object({
      kind: z.literal('embedded'),
      /** Folder of the SQLite file. */
      dir: z.string().min(1).default('./.tollgate'),
      /**
       * How long a write waits for the lock another connection to the file holds (the ledger's
       * writer thread, a `tollgate` CLI command) before it gives up: 503 storage_unavailable.
       */
      busyTimeoutMs: z.number().int().min(0).max(60_000).default(5_000),
    })
    .strict(),
  z
    .object({
      kind: z.literal('distributed'),
      /** Shared counters (rate limits, budgets). */
      redisUrl: serviceUrl(['redis:', 'rediss:'], 'redis://host:6379'),
      /** Tenants, keys, ledger. */
      postgresUrl: serviceUrl(['postgres:', 'postgresql:'], 'postgres://user@host:5432/db'),
      /** PostgreSQL schema of Tollgate's tables (created if missing). */
      postgresSchema: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a lower-case SQL identifier').default('tollgate'),
      /** Connections per process. */
      postgresPoolSize: positiveInt.default(10),
      /**
       * Deadline of the PostgreSQL reads a request waits for (an API key not in the auth
       * cache) and of the readiness check: past it the request gets 503 storage_unavailable
       * and /readyz reports postgres slow.
       */
      postgresQueryTimeoutMs: z.number().int().min(10).max(60_000).default(500),
      /**
       * Server-side statement_timeout of the gateway's connections (0: none). Also bounds a
       * silent connection: one owed an answer for this long + 1 s is dropped and reopened.
       */
      postgresStatementTimeoutMs: z.number().int().min(0).max(3_600_000).default(5_000),
      /** Deadline of opening a PostgreSQL connection (TCP connect to ready for queries). */
      postgresConnectTimeoutMs: z.number().int().min(100).max(60_000).default(2_000),
      /** Prefix of every Redis key, so several deployments can share one Redis. */
      redisPrefix: z.string().default('tollgate:'),
      /**
       * Deadline of every Redis command. A Redis that is slow, paused or cut off by a partition
       * (the connection still open, replies never coming) then fails like a dead one: rate
       * limits fail open, budgets 503 budget_unavailable, the cache misses.
       */
      redisCommandTimeoutMs: z.number().int().min(10).max(60_000).default(300),
      /** Folder for process-local state (the ledger spool that survives a PostgreSQL outage). */
      dir: z.string().min(1).default('./.tollgate'),
    })
    .strict(),
]);
