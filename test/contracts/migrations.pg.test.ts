/**
 * The PostgreSQL migration runner: several gateway processes starting at once against a new
 * database must apply each migration exactly once (advisory lock), and a failing migration must
 * leave nothing half-applied.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  appliedPostgresMigrations,
  migratePostgres,
  openPostgres,
  type Sql,
} from '../../src/storage/postgres/database.js';
import { POSTGRES_MIGRATIONS, type PostgresMigration } from '../../src/storage/postgres/migrations.js';
import { requireService, uniqueName } from '../helpers/services.js';

const pg = await requireService('postgres');

describe.skipIf(!pg)('migratePostgres', () => {
  const schemas: string[] = [];
  const pools: Sql[] = [];
  /** A pool on a schema of its own (`schema` to share one between pools). */
  const open = (schema = uniqueName('tg')): Sql => {
    if (!schemas.includes(schema)) schemas.push(schema);
    const sql = openPostgres(pg!, { schema, max: 2 });
    pools.push(sql);
    return sql;
  };
  const tables = async (sql: Sql): Promise<string[]> =>
    (await sql<{ name: string }[]>`
      SELECT table_name AS name FROM information_schema.tables
      WHERE table_schema = current_schema() ORDER BY table_name`).map((r) => r.name);

  afterEach(async () => {
    await Promise.all(pools.splice(0).map((sql) => sql.end()));
  });

  afterAll(async () => {
    const admin = openPostgres(pg!, { max: 1 });
    for (const schema of schemas) await admin.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin.end();
  });

  it('creates the schema and applies every migration to a new database', async () => {
    const sql = open();
    expect((await migratePostgres(sql)).map((m) => m.version)).toEqual(POSTGRES_MIGRATIONS.map((m) => m.version));
    expect(await tables(sql)).toEqual(['api_keys', 'batches', 'feedback', 'file_chunks', 'files', 'flag_audit', 'flags', 'idempotency_keys', 'jobs', 'kill_switches', 'request_log', 'schema_migrations', 'shadow_pairs', 'tenant_storage', 'tenants', 'usage_events', 'usage_rollups', 'webhook_deliveries']);
    expect(await migratePostgres(sql)).toEqual([]);
  });

  it('applies each migration exactly once when several processes start at the same time', async () => {
    const schema = uniqueName('tg');
    const processes = Array.from({ length: 5 }, () => open(schema)); // one pool per "process"
    const results = await Promise.all(processes.map((sql) => migratePostgres(sql)));
    const appliedNow = results.flat().map((m) => m.version).sort((a, b) => a - b);
    expect(appliedNow).toEqual(POSTGRES_MIGRATIONS.map((m) => m.version));
    const recorded = await appliedPostgresMigrations(processes[0]!);
    expect(recorded.map((m) => m.version)).toEqual(POSTGRES_MIGRATIONS.map((m) => m.version));
    expect(await tables(processes[1]!)).toEqual(['api_keys', 'batches', 'feedback', 'file_chunks', 'files', 'flag_audit', 'flags', 'idempotency_keys', 'jobs', 'kill_switches', 'request_log', 'schema_migrations', 'shadow_pairs', 'tenant_storage', 'tenants', 'usage_events', 'usage_rollups', 'webhook_deliveries']);
  });

  it('applies only the migrations appended since the last run', async () => {
    const schema = uniqueName('tg');
    const v1: PostgresMigration[] = [{ version: 1, name: 'one', sql: 'CREATE TABLE one (x INTEGER)' }];
    await migratePostgres(open(schema), v1);
    const v2 = [...v1, { version: 2, name: 'two', sql: 'CREATE TABLE two (y INTEGER); CREATE TABLE three (z INTEGER)' }];
    const sql = open(schema);
    expect((await migratePostgres(sql, v2)).map((m) => m.version)).toEqual([2]);
    expect(await migratePostgres(sql, v2)).toEqual([]);
    expect(await tables(sql)).toEqual(['one', 'schema_migrations', 'three', 'two']);
  });

  it('rolls a failing migration back whole and reports which one failed', async () => {
    const sql = open();
    const broken: PostgresMigration[] = [
      { version: 1, name: 'fine', sql: 'CREATE TABLE fine (x INTEGER)' },
      { version: 2, name: 'broken', sql: 'CREATE TABLE half (x INTEGER); CREATE TABLE oops (' },
    ];
    await expect(migratePostgres(sql, broken)).rejects.toThrow(/migration 2 \(broken\) failed/);
    expect(await tables(sql)).toEqual(['fine', 'schema_migrations']);
    expect((await appliedPostgresMigrations(sql)).map((m) => m.version)).toEqual([1]);
  });

  it('refuses a database migrated by a newer Tollgate', async () => {
    const schema = uniqueName('tg');
    await migratePostgres(open(schema), [
      { version: 1, name: 'one', sql: 'SELECT 1' },
      { version: 2, name: 'two', sql: 'SELECT 1' },
    ]);
    await expect(migratePostgres(open(schema), [{ version: 1, name: 'one', sql: 'SELECT 1' }])).rejects.toThrow(
      /newer than this Tollgate/,
    );
  });

  it('refuses migrations out of order', async () => {
    const unordered: PostgresMigration[] = [
      { version: 2, name: 'two', sql: 'SELECT 1' },
      { version: 1, name: 'one', sql: 'SELECT 1' },
    ];
    await expect(migratePostgres(open(), unordered)).rejects.toThrow(/strictly increasing/);
  });

  it('refuses a schema name that is not a plain identifier', () => {
    expect(() => openPostgres(pg!, { schema: 'x"; DROP SCHEMA public; --' })).toThrow(/invalid PostgreSQL schema name/);
  });

  it('reads BIGINT values as JS numbers', async () => {
    const sql = open();
    await migratePostgres(sql);
    const [row] = await sql<{ big: number; count: number }[]>`SELECT ${2 ** 52 + 1}::bigint AS big, COUNT(*) AS count FROM tenants`;
    expect(row).toEqual({ big: 2 ** 52 + 1, count: 0 });
  });

  it('keeps the shipped migrations strictly increasing from 1', () => {
    expect(POSTGRES_MIGRATIONS[0]?.version).toBe(1);
    POSTGRES_MIGRATIONS.forEach((m, i) => i > 0 && expect(m.version).toBeGreaterThan(POSTGRES_MIGRATIONS[i - 1]!.version));
  });
});
