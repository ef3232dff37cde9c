import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/storage/sqlite/database.js';
import { SqliteFlagStore } from '../../src/storage/sqlite/flags.js';
import { runFlagStoreContract } from './flags.contract.js';

runFlagStoreContract('sqlite', async () => {
  const db = openDatabase(':memory:');
  return { store: new SqliteFlagStore(db), close: async () => void db.close() };
});

describe('SqliteFlagStore on a file', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('keeps flags and their trail across a reopen; two connections see each other', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-flags-'));
    dirs.push(dir);
    const file = join(dir, 'tollgate.db');
    const [dbA, dbB] = [openDatabase(file), openDatabase(file)];
    const [a, b] = [new SqliteFlagStore(dbA), new SqliteFlagStore(dbB)];
    const flag = { name: 'f', description: '', enabled: true, targeting: { percentage: 5 }, effect: { route: 'auto', model: 'm' } };
    await a.create(flag, 'key_a');
    await expect(b.create(flag, 'key_b')).rejects.toThrow(/already exists/);
    await b.update('f', { targeting: { percentage: 25 } }, 'key_b');
    expect((await a.get('f'))?.targeting).toEqual({ percentage: 25 });
    dbA.close();
    dbB.close();

    const dbC = openDatabase(file);
    const c = new SqliteFlagStore(dbC);
    expect(await c.get('f')).toMatchObject({ updatedBy: 'key_b', targeting: { percentage: 25 } });
    expect((await c.audit()).map((e) => `${e.action}:${e.actor}`)).toEqual(['update:key_b', 'create:key_a']);
    dbC.close();
  });
});
