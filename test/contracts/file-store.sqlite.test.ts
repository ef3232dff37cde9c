import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/storage/sqlite/database.js';
import { SqliteFileStore } from '../../src/storage/sqlite/files.js';
import { runFileStoreContract } from './file-store.contract.js';

const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-files-'));
  dirs.push(dir);
  return dir;
};
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

runFileStoreContract('sqlite', async () => {
  const db = openDatabase(':memory:');
  return { store: new SqliteFileStore(db, { dir: tempDir() }), close: async () => void db.close() };
});

describe('SqliteFileStore: bytes on disk', () => {
  const file = (id: string) => ({ id, tenantId: 'ten_a', purpose: 'batch' as const, filename: 'a.jsonl', bytes: 3, createdAt: 1, expiresAt: 10 });

  it("keeps a file's bytes in the folder, not in the database, and removes them with the file (delete and expiry)", async () => {
    const db = openDatabase(':memory:');
    const dir = tempDir();
    const store = new SqliteFileStore(db, { dir });
    await store.putFile(file('file-000000000000000000000001'), Buffer.from('abc'));
    await store.putFile(file('file-000000000000000000000002'), Buffer.from('def'));
    expect(readdirSync(dir).sort()).toEqual(['file-000000000000000000000001', 'file-000000000000000000000002']);
    expect(db.prepare('SELECT SUM(length(content)) FROM files').pluck().get()).toBe(0);
    expect(await store.deleteFile('file-000000000000000000000001', 'ten_a')).toBe(true);
    expect(readdirSync(dir)).toEqual(['file-000000000000000000000002']);
    expect(await store.deleteExpiredFiles(10)).toBe(1);
    expect(readdirSync(dir)).toEqual([]);
    db.close();
  });

  it('moves a spooled upload into place (no copy in memory) and removes files left without a row when opened', async () => {
    const db = openDatabase(':memory:');
    const dir = tempDir();
    const spool = join(tempDir(), 'upload.part');
    writeFileSync(spool, 'xyz');
    const store = new SqliteFileStore(db, { dir });
    await store.putFile(file('file-000000000000000000000003'), { path: spool });
    expect(existsSync(spool)).toBe(false);
    expect((await store.getContent('file-000000000000000000000003', 'ten_a'))?.toString()).toBe('xyz');

    // A crash between writing the bytes and inserting the row leaves an orphan: gone at the next open.
    writeFileSync(join(dir, 'file-0000000000000000000000ff'), 'orphan');
    new SqliteFileStore(db, { dir });
    expect(readdirSync(dir)).toEqual(['file-000000000000000000000003']);
    db.close();
  });

  it('still reads and deletes a file written before migration 9 (bytes in the row)', async () => {
    const db = openDatabase(':memory:');
    const store = new SqliteFileStore(db, { dir: tempDir() });
    db.prepare(
      `INSERT INTO files (id, tenant_id, purpose, filename, bytes, created_at, expires_at, content) VALUES ('file-000000000000000000000004', 'ten_a', 'batch', 'old.jsonl', 3, 1, NULL, x'616263')`,
    ).run();
    expect((await store.getContent('file-000000000000000000000004', 'ten_a'))?.toString()).toBe('abc');
    expect(await store.deleteFile('file-000000000000000000000004', 'ten_a')).toBe(true);
    db.close();
  });
});
