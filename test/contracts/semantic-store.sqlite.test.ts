import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { appliedMigrations, openDatabase } from '../../src/storage/sqlite/database.js';
import { MIGRATIONS } from '../../src/storage/sqlite/migrations.js';
import { SqliteSemanticStore, bufferToVector, vectorToBuffer } from '../../src/storage/sqlite/semantic-cache.js';
import { plainEntry, runSemanticStoreContract, semanticEntry } from './semantic-store.contract.js';

runSemanticStoreContract('sqlite', async (shares) => new SqliteSemanticStore(openDatabase(':memory:'), shares));

describe('SqliteSemanticStore on a file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-semantic-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps entries across a reopen, and sees what another connection (process) wrote', async () => {
    const file = join(dir, 'tollgate.db');
    const a = new SqliteSemanticStore(openDatabase(file));
    const b = new SqliteSemanticStore(openDatabase(file));
    const e1 = semanticEntry({ createdAt: Date.now() - 10, threshold: 0.91 });
    const e2 = semanticEntry({ tenantId: 't2', vector: Float32Array.from({ length: 256 }, (_, i) => Math.sin(i)) });
    await a.put(e1);
    await b.put(e2);
    expect(plainEntry((await a.get(e2.id))!)).toEqual(plainEntry(e2));
    await a.close();
    await b.close();

    const reopened = new SqliteSemanticStore(openDatabase(file));
    const seen: string[] = [];
    await reopened.scan((batch) => void seen.push(...batch.map((e) => e.id)));
    expect(seen).toEqual([e1.id, e2.id]);
    expect(plainEntry((await reopened.get(e1.id))!)).toEqual(plainEntry(e1));
    expect(await reopened.invalidate({ tenantId: 't2' })).toEqual([e2.id]);
    await reopened.close();
  });

  it('is created by migration 5 (semantic cache)', () => {
    const db = openDatabase(':memory:');
    expect(appliedMigrations(db).find((m) => m.version === 5)?.name).toBe('semantic cache');
    db.close();
  });

  it('upgrades a file written before fair shares (migration 10): rows keep their order of use, tenants their counts', async () => {
    const file = join(dir, 'upgrade.db');
    const old = openDatabase(file, MIGRATIONS.filter((m) => m.version < 10));
    const t = Date.now();
    const rows = [0, 1, 2].map((i) => semanticEntry({ tenantId: 'b', createdAt: t + i }));
    const insert = old.prepare(
      `INSERT INTO semantic_cache (id, scope, tenant_id, route, embedder, question, vector, answer, created_at, expires_at, threshold)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)`,
    );
    for (const e of rows) insert.run(e.id, e.scope, e.tenantId, e.route, e.embedder, e.question, vectorToBuffer(e.vector), e.answer, e.createdAt, e.expiresAt);
    old.close();

    const store = new SqliteSemanticStore(openDatabase(file), { maxEntriesPerTenant: 3 });
    expect(await store.put(semanticEntry({ tenantId: 'b' }))).toEqual([rows[0]!.id]); // the oldest written before
    expect(await store.put(semanticEntry({ tenantId: 'a' }))).toEqual([]);
    await store.close();
  });

  it('purges expired rows a batch at a time, keeping live ones', async () => {
    const store = new SqliteSemanticStore(openDatabase(':memory:'));
    const now = Date.now();
    const expired = Array.from({ length: 5 }, () => semanticEntry({ createdAt: now - 2_000, expiresAt: now - 1_000 }));
    const live = semanticEntry();
    for (const e of [live, ...expired]) await store.put(e); // the first put also purges (at most once a minute)
    expect(await store.purgeExpired(now, 3)).toBe(3);
    expect(await store.purgeExpired(now, 100)).toBe(2);
    expect(await store.purgeExpired(now, 100)).toBe(0);
    expect(await store.get(live.id)).toBeDefined();
    await store.close();
  });
});

describe('vector bytes', () => {
  it('round-trips through an unaligned, pooled buffer as a fresh aligned copy', () => {
    const v = Float32Array.from([1.5, -2.25, 3e-40]);
    const pooled = Buffer.alloc(1 + 12);
    vectorToBuffer(v).copy(pooled, 1);
    const back = bufferToVector(pooled.subarray(1));
    expect(Array.from(back)).toEqual(Array.from(v));
    expect(back.byteOffset).toBe(0);
    pooled.fill(0);
    expect(back[0]).toBe(1.5);
    expect(() => bufferToVector(Buffer.alloc(7))).toThrow(/multiple of 4/);
  });
});
