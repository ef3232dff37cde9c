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

/**
 * A migrated throwaway schema with one admin connection kept open for the whole describe block
 * (tests empty tables through it between cases), dropped after. Call inside `describe`;
 * `admin()` is valid from `beforeAll` on.
 */
export function useMigratedSchema(url: string): { schema: string; admin(): Sql } {
  const schema = uniqueName('tg');
  let admin: Sql | undefined;
  beforeAll(async () => {
    admin = openPostgres(url, { schema, max: 1 });
    await migratePostgres(admin);
  });
  afterAll(async () => {
    await admin?.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin?.end();
  });
  return {
    schema,
    admin() {
      if (!admin) throw new Error('useMigratedSchema: admin() before beforeAll');
      return admin;
    },
  };
}
