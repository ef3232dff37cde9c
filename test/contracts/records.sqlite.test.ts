import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { appliedMigrations, openDatabase } from '../../src/storage/sqlite/database.js';
import { MIGRATIONS } from '../../src/storage/sqlite/migrations.js';
import { SqliteRecords } from '../../src/storage/sqlite/records.js';
import { runRecordsContract } from './records.contract.js';

runRecordsContract('sqlite', async () => new SqliteRecords(openDatabase(':memory:')));

describe('SqliteRecords on a file', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('keeps its data across a reopen and does not apply migrations twice', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-records-'));
    dirs.push(dir);
    const file = join(dir, 'nested', 'state', 'tollgate.db'); // parent folders do not exist yet

    const first = new SqliteRecords(openDatabase(file));
    const tenant = await first.createTenant({ name: 'Acme', metadata: { region: 'eu' } });
    const key = await first.createKey({
      tenantId: tenant.id,
      name: 'prod',
      kind: 'api',
      prefix: 'tg-abcd',
      hash: 'c'.repeat(64),
      tier: 'standard',
      allowedModels: ['m1'],
      userId: null,
      expiresAt: null,
    });
    await first.revokeKey(key.id);
    await first.close();

    const db = openDatabase(file);
    const migrationsBefore = appliedMigrations(db);
    const second = new SqliteRecords(db);
    expect(await second.getTenant(tenant.id)).toEqual(tenant);
    expect(await second.getKeyByHash(key.hash)).toMatchObject({ id: key.id, allowedModels: ['m1'], revokedAt: expect.any(Number) });
    expect(migrationsBefore.map((m) => m.version)).toEqual(MIGRATIONS.map((m) => m.version));
    await second.close();

    const third = openDatabase(file);
    expect(appliedMigrations(third)).toEqual(migrationsBefore); // same rows, same applied_at
    third.close();
  });

  it('upgrades a database made before kill switches and policies: rows keep working, with no policy', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-records-'));
    dirs.push(dir);
    const file = join(dir, 'tollgate.db');
    const old = openDatabase(file, MIGRATIONS.filter((m) => m.version <= 2));
    old.prepare(`INSERT INTO tenants (id, name, tier, metadata, created_at) VALUES ('ten_old', 'Old', 'standard', '{}', 1)`).run();
    old
      .prepare(
        `INSERT INTO api_keys (id, tenant_id, name, kind, prefix, hash, tier, created_at) VALUES ('key_old', 'ten_old', 'k', 'api', 'tg-old', ?, 'standard', 1)`,
      )
      .run('d'.repeat(64));
    old.close();

    const records = new SqliteRecords(openDatabase(file));
    expect(await records.getTenant('ten_old')).toMatchObject({ id: 'ten_old', policy: null });
    expect(await records.getKeyByHash('d'.repeat(64))).toMatchObject({ id: 'key_old', policy: null });
    expect(await records.listKillSwitches()).toEqual([]);
    const updated = await records.updateKey('key_old', { policy: { limits: { key: { requestsPerMinute: 1 } } } });
    expect(updated.policy).toEqual({ limits: { key: { requestsPerMinute: 1 } } });
    await records.close();
  });

  it('closes idempotently', async () => {
    const records = new SqliteRecords(openDatabase(':memory:'));
    await records.close();
    await expect(records.close()).resolves.toBeUndefined();
  });
});
