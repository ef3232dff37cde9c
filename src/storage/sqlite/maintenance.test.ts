import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { applyMigrations, openDatabase, type Database } from './database.js';
import { SqliteJobStore } from './jobs.js';
import { JOURNAL_SIZE_LIMIT } from './maintenance.js';
import { SqliteWriterThread } from './writer-thread.js';

const MiB = 1024 * 1024;
const size = (path: string): number => {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
};

describe('embedded storage gives disk space back', () => {
  const dirs: string[] = [];
  const open: Database[] = [];
  const writers: SqliteWriterThread[] = [];
  const tempFile = (): string => {
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-vacuum-'));
    dirs.push(dir);
    return join(dir, 'tollgate.db');
  };
  afterEach(async () => {
    for (const w of writers.splice(0)) await w.stop();
    for (const db of open.splice(0)) if (db.open) db.close();
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('creates a new file with auto_vacuum INCREMENTAL and a WAL size limit', () => {
    const db = openDatabase(tempFile());
    open.push(db);
    expect(db.pragma('auto_vacuum', { simple: true })).toBe(2);
    expect(db.pragma('journal_size_limit', { simple: true })).toBe(JOURNAL_SIZE_LIMIT);
  });

  it('converts a file created without it (auto_vacuum NONE) when it is opened, keeping its data', () => {
    const file = tempFile();
    const old = new BetterSqlite3(file);
    old.pragma('journal_mode = WAL');
    applyMigrations(old);
    old.prepare("INSERT INTO tenants (id, name, tier, created_at) VALUES ('ten_old', 'Old', 'free', 1)").run();
    expect(old.pragma('auto_vacuum', { simple: true })).toBe(0);
    old.close();

    const db = openDatabase(file);
    open.push(db);
    expect(db.pragma('auto_vacuum', { simple: true })).toBe(2);
    expect(db.prepare("SELECT name FROM tenants WHERE id = 'ten_old'").pluck().get()).toBe('Old');
  });

  it('20 MB of jobs written then deleted: the file and its WAL shrink back after maintenance', async () => {
    const file = tempFile();
    const db = openDatabase(file);
    open.push(db);
    const writer = new SqliteWriterThread(db, file, 1_000, 3_600_000);
    writers.push(writer);
    const jobs = new SqliteJobStore(db);
    const T0 = Date.UTC(2025, 0, 1);
    const body = { model: 'sim-small', messages: [{ role: 'user', content: 'x'.repeat(512 * 1024) }] };
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) {
      const id = `job_${i.toString(16).padStart(24, '0')}`;
      ids.push(id);
      await jobs.enqueue({
        id, tenantId: 'ten_a', keyId: 'key_a', userId: '', kind: 'chat', model: 'sim-small', body, priority: 4, webhookUrl: null,
        deadlineAt: null, metadata: {}, idempotencyKey: null, batchId: null, customId: null, maxAttempts: 3, createdAt: T0,
      });
    }
    await writer.maintain(); // everything into the main file
    const full = size(file) + size(`${file}-wal`);
    expect(full).toBeGreaterThan(20 * MiB);

    for (const id of ids) await jobs.cancel(id, 'ten_a', T0 + 1);
    expect(await jobs.deleteFinished(T0 + 2, 1_000)).toBe(40);
    const result = await writer.maintain();
    expect(result.freedPages).toBeGreaterThan(0);
    expect(result.walTruncated).toBe(true);
    expect(size(`${file}-wal`)).toBe(0);
    expect(size(file)).toBeLessThan(2 * MiB);
  });
});
