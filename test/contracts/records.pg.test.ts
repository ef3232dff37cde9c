import { afterAll, describe, expect, it } from 'vitest';
import { migratePostgres, openPostgres, type Sql } from '../../src/storage/postgres/database.js';
import { POSTGRES_MIGRATIONS } from '../../src/storage/postgres/migrations.js';
import { PostgresRecords } from '../../src/storage/postgres/records.js';
import { RecordConflict } from '../../src/storage/types.js';
import { requireService, uniqueName } from '../helpers/services.js';
import { useMigratedSchema, usePgSchema } from '../helpers/pg.js';
import { runRecordsContract } from './records.contract.js';

const pg = await requireService('postgres');

describe.skipIf(!pg)('PostgresRecords', () => {
  const { schema, admin: adminSql } = useMigratedSchema(pg!);

  // Each store has its own pool (close() ends it), on this file's schema, emptied first.
  runRecordsContract('postgres', async () => {
    await adminSql()`DELETE FROM api_keys`;
    await adminSql()`DELETE FROM tenants`;
    await adminSql()`DELETE FROM kill_switches`;
    return new PostgresRecords(openPostgres(pg!, { schema, max: 4 }));
  });
});

describe.skipIf(!pg)('PostgresRecords after an upgrade', () => {
  const schema = uniqueName('tg');
  let sql: Sql;
  afterAll(async () => {
    await sql?.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await sql?.end();
  });

  it('reads rows made before kill switches and policies as having no policy', async () => {
    sql = openPostgres(pg!, { schema, max: 1 });
    await migratePostgres(sql, POSTGRES_MIGRATIONS.filter((m) => m.version <= 2));
    await sql`INSERT INTO tenants (id, name, tier, metadata, created_at) VALUES ('ten_old', 'Old', 'standard', '{}', 1)`;
    await sql`INSERT INTO api_keys (id, tenant_id, name, kind, prefix, hash, tier, created_at)
              VALUES ('key_old', 'ten_old', 'k', 'api', 'tg-old', ${'d'.repeat(64)}, 'standard', 1)`;
    await migratePostgres(sql);
    const records = new PostgresRecords(openPostgres(pg!, { schema, max: 1 }));
    try {
      expect(await records.getTenant('ten_old')).toMatchObject({ id: 'ten_old', policy: null });
      expect(await records.getKey('key_old')).toMatchObject({ policy: null });
      expect(await records.listKillSwitches()).toEqual([]);
    } finally {
      await records.close();
    }
  });
});

describe.skipIf(!pg)('PostgresRecords across processes', () => {
  const db = usePgSchema(pg!, 2);
  const open = () => new PostgresRecords(db.open());

  it('lets exactly one of two processes create a tenant id or a key secret', async () => {
    const [a, b] = [open(), open()];
    const tenants = await Promise.allSettled([a.createTenant({ id: 'ten_race', name: 'A' }), b.createTenant({ id: 'ten_race', name: 'B' })]);
    expect(tenants.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(tenants.find((r) => r.status === 'rejected')).toMatchObject({ reason: expect.any(RecordConflict) });

    const key = { tenantId: 'ten_race', kind: 'api', prefix: 'tg-race', hash: 'e'.repeat(64), tier: 'standard', allowedModels: null, userId: null, expiresAt: null } as const;
    const keys = await Promise.allSettled([a.createKey({ ...key, name: 'a' }), b.createKey({ ...key, name: 'b' })]);
    expect(keys.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(keys.find((r) => r.status === 'rejected')).toMatchObject({ reason: expect.any(RecordConflict) });
    expect(await a.listKeys()).toHaveLength(1);
  });
});
