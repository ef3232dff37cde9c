/**
 * Opens a PostgreSQL connection pool (postgres.js) and brings its schema up to date. Private to the
 * PostgreSQL adapters: nothing outside src/storage/postgres/ should need the driver type.
 */
import { createConnection } from 'node:net';
import postgres from 'postgres';
import { checkMigrationOrder, migrationFailed, refuseNewerSchema } from '../migration-checks.js';
import { POSTGRES_MIGRATIONS, type PostgresMigration } from './migrations.js';
import { WatchGroup, watchSocket } from './watchdog.js';

/**
 * BIGINT (int8) columns hold epoch ms and pico-dollar amounts. postgres.js returns int8 as a string
 * by default; ours stay below 2^53, so they are read as JS numbers. (Sums are `numeric`, converted
 * by the adapters.)
 */
const int8AsNumber = {
  to: 20,
  from: [20],
  serialize: (value: number) => String(value),
  parse: (raw: string) => Number(raw),
};

/** A postgres.js pool whose int8 values are JS numbers. */
export type Sql = postgres.Sql<{ int8: number }>;
/** A pool or a transaction of one: what a query helper needs. */
export type Queryable = postgres.ISql<{ int8: number }>;

/**
 * The base of the PostgreSQL adapters: the pool they query, opened by {@link openPostgres} and
 * migrated by {@link migratePostgres}. The pool is shared by every adapter on it; the adapters
 * with a `close()` end it (any of them may), the others never do.
 */
export abstract class PostgresAdapter {
  protected readonly sql: Sql;

  constructor(sql: Sql) {
    this.sql = sql;
  }
}

export interface OpenPostgresOptions {
  /**
   * A schema to work in instead of the default search path (`public`): created by
   * {@link migratePostgres} when missing, and the only entry of every connection's `search_path`.
   * Tests use one per file so parallel files do not collide.
   */
  schema?: string;
  /** Pool size (default 10). */
  max?: number;
  /**
   * Server-side `statement_timeout` of every connection (ms; default none): a statement that runs
   * or waits for a lock longer fails with "canceling statement due to statement timeout". It also
   * arms the stall watchdog (src/storage/postgres/watchdog.ts): a connection owed an answer that
   * has received nothing for this long plus {@link STALL_GRACE_MS} is destroyed (partition,
   * paused server, middlebox dropping bytes), so nothing waits on it forever.
   */
  statementTimeoutMs?: number;
  /** Deadline of opening a connection, TCP connect to first ReadyForQuery (ms; default 10000). */
  connectTimeoutMs?: number;
}

/** How long past the statement timeout a silent connection is given before it is dropped. */
export const STALL_GRACE_MS = 1_000;

/**
 * Delay before reconnecting after a connection failed, in seconds (postgres.js `backoff`, given
 * the failures in a row of the pool): 100-200 ms doubling up to 0.5-1 s, so a PostgreSQL that comes
 * back is used again within a second (postgres.js's default grows to 20 s).
 */
export function reconnectDelaySeconds(failures: number): number {
  return Math.min(0.1 * 2 ** failures, 1) * (0.5 + Math.random() / 2);
}

/** Schema names we accept: plain identifiers, so they can be quoted without escaping. */
const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** The schema each pool was opened with, for migratePostgres to create. */
const schemaOf = new WeakMap<Sql, string>();

/**
 * Opens a pool (connections are made lazily, on the first query). Call {@link migratePostgres}
 * before using the adapters; end it with `sql.end()` (the adapters' `close()` does that).
 */
export function openPostgres(url: string, opts: OpenPostgresOptions = {}): Sql {
  const { schema } = opts;
  if (schema !== undefined && !SCHEMA_NAME.test(schema)) {
    throw new Error(`invalid PostgreSQL schema name '${schema}': use letters, digits and _ (at most 63)`);
  }
  const statementTimeoutMs = opts.statementTimeoutMs ?? 0;
  const connection: Record<string, string> = {};
  // A startup parameter applies to every connection of the pool, reconnects included.
  if (schema !== undefined) connection['search_path'] = `"${schema}"`;
  if (statementTimeoutMs > 0) connection['statement_timeout'] = String(statementTimeoutMs);
  const stallMs = statementTimeoutMs > 0 ? statementTimeoutMs + STALL_GRACE_MS : 0;
  let nextHost = 0;
  const watched = new WatchGroup();
  const sql = postgres(url, {
    max: opts.max ?? 10,
    idle_timeout: 30, // s: give idle connections back to the server
    connect_timeout: (opts.connectTimeoutMs ?? 10_000) / 1000, // s
    keep_alive: 5, // s of idle before TCP keepalive probes (a dead peer)
    backoff: reconnectDelaySeconds,
    onnotice: () => {}, // "relation already exists, skipping" and the like
    types: { int8: int8AsNumber },
    ...(Object.keys(connection).length > 0 ? { connection } : {}),
    // Our own sockets, watched for stalls. postgres.js then neither connects them nor rotates
    // hosts: done here (a multi-host URL is tried in turn).
    ...(stallMs > 0
      ? {
          socket: (o: { host: string[]; port: number[]; path?: string | false }) => {
            const i = nextHost++;
            const host = o.host[i % o.host.length];
            const port = o.port[i % o.port.length] ?? 5432;
            const socket = o.path ? createConnection(o.path) : createConnection(port, host);
            // What postgres.js's connection errors name ("CONNECT_TIMEOUT host:port").
            Object.assign(socket, o.path ? { host: o.path } : { host, port });
            watchSocket(socket, stallMs, watched);
            return socket;
          },
        }
      : {}),
  });
  if (schema !== undefined) schemaOf.set(sql, schema);
  return sql;
}

export interface AppliedPostgresMigration {
  version: number;
  name: string;
  appliedAt: number;
}

/** First key of the advisory lock that serializes migrations ('toll'); the second is the schema. */
const MIGRATION_LOCK = 0x746f6c6c;

/**
 * Applies the migrations not yet recorded in `schema_migrations`, in order, each in its own
 * transaction holding a transaction-level advisory lock (per schema): when several gateway
 * processes start at once, each migration is applied by exactly one of them and the others wait,
 * then see it recorded. Creates the pool's schema when missing. Returns the migrations this call
 * applied. Refuses a database migrated by a newer Tollgate. Give it a pool opened without
 * `statementTimeoutMs`: waiting for another process's migration, or building an index, may
 * take longer than any request should.
 */
export async function migratePostgres(
  sql: Sql,
  migrations: readonly PostgresMigration[] = POSTGRES_MIGRATIONS,
): Promise<PostgresMigration[]> {
  checkMigrationOrder(migrations);
  const schema = schemaOf.get(sql);
  const lock = (tx: Queryable) =>
    tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK}, hashtext(${schema ?? ''}))`;

  const done = await sql.begin(async (tx) => {
    await lock(tx);
    if (schema !== undefined) await tx`CREATE SCHEMA IF NOT EXISTS ${tx(schema)}`;
    await tx`CREATE TABLE IF NOT EXISTS schema_migrations (
      version     INTEGER PRIMARY KEY,
      name        TEXT NOT NULL,
      applied_at  BIGINT NOT NULL
    )`;
    const rows = await tx<{ version: number }[]>`SELECT version FROM schema_migrations ORDER BY version`;
    return rows.map((r) => r.version);
  });
  refuseNewerSchema(done.at(-1), migrations);

  const applied: PostgresMigration[] = [];
  for (const m of migrations) {
    if (done.includes(m.version)) continue;
    try {
      const ran = await sql.begin(async (tx) => {
        await lock(tx);
        // Another process may have applied it while we waited for the lock.
        const [seen] = await tx`SELECT 1 FROM schema_migrations WHERE version = ${m.version}`;
        if (seen) return false;
        await tx.unsafe(m.sql); // no parameters: simple protocol, several statements allowed
        await tx`INSERT INTO schema_migrations (version, name, applied_at) VALUES (${m.version}, ${m.name}, ${Date.now()})`;
        return true;
      });
      if (ran) applied.push(m);
    } catch (err) {
      throw migrationFailed(m, err);
    }
  }
  return applied;
}

/** The migrations recorded in the database, oldest first. */
export async function appliedPostgresMigrations(sql: Sql): Promise<AppliedPostgresMigration[]> {
  const rows = await sql<AppliedPostgresMigration[]>`
    SELECT version, name, applied_at AS "appliedAt" FROM schema_migrations ORDER BY version`;
  return [...rows];
}
