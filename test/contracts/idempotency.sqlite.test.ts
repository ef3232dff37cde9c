import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/storage/sqlite/database.js';
import { SqliteIdempotencyStore } from '../../src/storage/sqlite/idempotency.js';
import { runIdempotencyContract, storedResponse } from './idempotency.contract.js';

runIdempotencyContract('sqlite', async () => new SqliteIdempotencyStore(openDatabase(':memory:')));

describe('SqliteIdempotencyStore on a file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-idempotency-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const DAY = 86_400_000;

  it('gives a key to exactly one of two connections (two processes) and keeps answers across a reopen', async () => {
    const file = join(dir, 'tollgate.db');
    const a = new SqliteIdempotencyStore(openDatabase(file));
    const b = new SqliteIdempotencyStore(openDatabase(file));
    const results = [await a.begin('s', 'k', 'h', DAY), await b.begin('s', 'k', 'h', DAY)];
    expect(results.map((r) => r.state).sort()).toEqual(['in_progress', 'new']);
    await a.complete('s', 'k', storedResponse({ status: 201 }));
    await a.close();
    await b.close();

    const reopened = new SqliteIdempotencyStore(openDatabase(file));
    const r = await reopened.begin('s', 'k', 'h', DAY);
    expect(r.state === 'done' && r.response.status).toBe(201);
    await reopened.close();
  });
});
