import { describe, expect, it } from 'vitest';
import { migratePostgres, openPostgres } from '../../src/storage/postgres/database.js';
import { PostgresFeedbackStore } from '../../src/storage/postgres/feedback.js';
import { PostgresFileStore } from '../../src/storage/postgres/files.js';
import { PostgresJobStore } from '../../src/storage/postgres/jobs.js';
import { POSTGRES_MIGRATIONS } from '../../src/storage/postgres/migrations.js';
import { PostgresStorageUsage } from '../../src/storage/postgres/storage-usage.js';
import { useMigratedSchema } from '../helpers/pg.js';
import { requireService, uniqueName } from '../helpers/services.js';
import { newJob } from './job-store.contract.js';
import { runStorageUsageContract } from './storage-usage.contract.js';

const pg = await requireService('postgres');

describe.skipIf(!pg)('PostgresStorageUsage', () => {
  const { schema, admin } = useMigratedSchema(pg!);

  runStorageUsageContract('postgres', async () => {
    await admin()`TRUNCATE files, file_chunks, jobs, webhook_deliveries, feedback, tenant_storage`;
    const sql = openPostgres(pg!, { schema, max: 4 });
    return {
      usage: new PostgresStorageUsage(sql),
      files: new PostgresFileStore(sql),
      jobs: new PostgresJobStore(sql),
      feedback: new PostgresFeedbackStore(sql),
      close: () => sql.end({ timeout: 5 }),
    };
  });

  it('counts concurrent writes of one tenant exactly (two pools)', async () => {
    await admin()`TRUNCATE jobs, webhook_deliveries, tenant_storage`;
    const pools = [openPostgres(pg!, { schema, max: 4 }), openPostgres(pg!, { schema, max: 4 })];
    try {
      const stores = pools.map((sql) => new PostgresJobStore(sql));
      const jobs = Array.from({ length: 60 }, () => newJob({ tenantId: 'ten_race' }));
      await Promise.all(jobs.map((j, i) => stores[i % 2]!.enqueue(j)));
      expect((await new PostgresStorageUsage(pools[0]!).usage('ten_race')).jobs).toBe(60);
    } finally {
      await Promise.all(pools.map((sql) => sql.end({ timeout: 5 })));
    }
  });

  it('migration 9 counts what was stored before it and moves file contents into chunks', async () => {
    const own = uniqueName('tg');
    const sql = openPostgres(pg!, { schema: own, max: 1 });
    try {
      await migratePostgres(sql, POSTGRES_MIGRATIONS.filter((m) => m.version < 9));
      await new PostgresJobStore(sql).enqueue(newJob({ tenantId: 'ten_old' }));
      await sql`INSERT INTO files (id, tenant_id, purpose, filename, bytes, created_at, expires_at, content)
                VALUES ('file-1', 'ten_old', 'batch', 'a', 3, 1, NULL, ${Buffer.from('abc')})`;
      await migratePostgres(sql);
      expect(await new PostgresStorageUsage(sql).usage('ten_old')).toMatchObject({ files: 1, fileBytes: 3, jobs: 1 });
      expect((await new PostgresFileStore(sql).getContent('file-1', 'ten_old'))?.toString()).toBe('abc');
    } finally {
      await sql.unsafe(`DROP SCHEMA IF EXISTS "${own}" CASCADE`);
      await sql.end({ timeout: 5 });
    }
  });
});
