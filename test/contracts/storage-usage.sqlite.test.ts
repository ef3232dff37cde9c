import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { applyMigrations, openDatabase } from '../../src/storage/sqlite/database.js';
import { SqliteFeedbackStore } from '../../src/storage/sqlite/feedback.js';
import { SqliteFileStore } from '../../src/storage/sqlite/files.js';
import { SqliteJobStore } from '../../src/storage/sqlite/jobs.js';
import { MIGRATIONS } from '../../src/storage/sqlite/migrations.js';
import { SqliteStorageUsage } from '../../src/storage/sqlite/storage-usage.js';
import { newJob } from './job-store.contract.js';
import { runStorageUsageContract } from './storage-usage.contract.js';

runStorageUsageContract('sqlite', async () => {
  const db = openDatabase(':memory:');
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-usage-'));
  return {
    usage: new SqliteStorageUsage(db),
    files: new SqliteFileStore(db, { dir }),
    jobs: new SqliteJobStore(db),
    feedback: new SqliteFeedbackStore(db),
    close: async () => {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

describe('SqliteStorageUsage: migration 9', () => {
  it('counts what a database stored before the migration', async () => {
    const db = openDatabase(':memory:', MIGRATIONS.filter((m) => m.version < 9));
    const jobs = [newJob({ tenantId: 'ten_old' }), newJob({ tenantId: 'ten_old' })];
    await new SqliteJobStore(db).enqueueMany(jobs);
    db.prepare(`INSERT INTO files (id, tenant_id, purpose, filename, bytes, created_at, expires_at, content) VALUES ('file-1', 'ten_old', 'batch', 'a', 3, 1, NULL, x'616263')`).run();
    db.prepare(`INSERT INTO feedback (tenant_id, request_id, rating, comment, created_at) VALUES ('ten_old', 'r', 1, '', 1)`).run();
    applyMigrations(db);
    expect(await new SqliteStorageUsage(db).usage('ten_old')).toEqual({
      files: 1,
      fileBytes: 3,
      jobs: 2,
      jobBytes: jobs.reduce((n, j) => n + Buffer.byteLength(JSON.stringify(j.body)), 0),
      feedback: 1,
    });
    db.close();
  });
});
