/**
 * A throwaway PostgreSQL schema for a describe block: migrated before its tests, dropped after,
 * with every pool opened through `open()` ended. Call inside `describe`.
 */
import { afterAll, beforeAll } from 'vitest';
import { type Sql, migratePostgres, openPostgres } from '../../src/storage/postgres/database.js';
import { uniqueName } from './services.js';

export function usePgSchema(url: string, poolSize = 2): { schema: string; open(): Sql } {
  const schema = uniqueName('tg');
  const pools: Sql[] = [];
  beforeAll(async () => {
    const sql = openPostgres(url, { schema, max: 1 });
    await migratePostgres(sql);
    await sql.end();
  });
  afterAll(async () => {
    const admin = openPostgres(url, { schema, max: 1 });
    await admin.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await Promise.all([admin, ...pools].map((sql) => sql.end()));
  });
  return {
    schema,
    open() {
      const sql = openPostgres(url, { schema, max: poolSize });
      pools.push(sql);
      return sql;
    },
  };
}
