/**
 * Opens a PostgreSQL connection pool (postgres.js) and brings its schema up to date. Private to the
 * PostgreSQL adapters: nothing outside src/storage/postgres/ should need the driver type.
 */
import postgres from 'postgres';
import { POSTGRES_MIGRATIONS, type PostgresMigration } from './migrations.js';

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

export interface OpenPostgresOptions {
  /**
   * A schema to work in instead of the default search path (`public`): created by
   * {@link migratePostgres} when missing, and the only entry of every connection's `search_path`.
   * Tests use one per file so parallel files do not collide.
   */
  schema?: string;
  /** Pool size (default 10). */
  max?: number;
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
  const sql = postgres(url, {
    max: opts.max ?? 10,
    idle_timeout: 30, // s: give idle connections back to the server
    connect_timeout: 10, // s
    onnotice: () => {}, // "relation already exists, skipping" and the like
    types: { int8: int8AsNumber },
    // A startup parameter applies to every connection of the pool, reconnects included.
    ...(schema !== undefined ? { connection: { search_path: `"${schema}"` } } : {}),
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
 * applied. Refuses a database migrated by a newer Tollgate.
 */
export async function migratePostgres(
  sql: Sql,
  migrations: readonly PostgresMigration[] = POSTGRES_MIGRATIONS,
): Promise<PostgresMigration[]> {
  checkOrder(migrations);
  const schema = schemaOf.get(sql);
  const lock = (tx: Queryable) =>
    tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK}, hashtext(${schema ?? ''}))`;

  const latestKnown = migrations.at(-1)?.version ?? 0;
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
  const latestApplied = done.at(-1);
  if (latestApplied !== undefined && latestApplied > latestKnown) {
    throw new Error(
      `database schema is at version ${latestApplied}, newer than this Tollgate knows (${latestKnown}); upgrade Tollgate`,
    );
  }

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
      throw new Error(`migration ${m.version} (${m.name}) failed: ${(err as Error).message}`, { cause: err });
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

function checkOrder(migrations: readonly PostgresMigration[]): void {
  let previous = 0;
  for (const m of migrations) {
    if (!Number.isInteger(m.version) || m.version <= previous) {
      throw new Error(`migrations must have strictly increasing positive integer versions (at '${m.name}')`);
    }
    previous = m.version;
  }
}
