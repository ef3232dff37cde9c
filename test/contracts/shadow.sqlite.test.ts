import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { shadowReports } from '../../src/routing/shadow-report.js';
import { openDatabase } from '../../src/storage/sqlite/database.js';
import { SqliteShadowStore } from '../../src/storage/sqlite/shadow.js';
import { runShadowStoreContract } from './shadow.contract.js';

runShadowStoreContract('sqlite', async () => {
  const db = openDatabase(':memory:');
  return { store: new SqliteShadowStore(db), close: async () => void db.close() };
});

describe('SqliteShadowStore on a file', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('keeps pairs across a reopen; two connections see each other', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-shadow-'));
    dirs.push(dir);
    const file = join(dir, 'tollgate.db');
    const [dbA, dbB] = [openDatabase(file), openDatabase(file)];
    const base = {
      ts: 1_000, tenantId: 't', route: 'auto', primaryModel: 'sim-large', shadowModel: 'sim-small',
      primaryLatencyMs: 10, shadowLatencyMs: 5, primaryPromptTokens: 1, primaryCompletionTokens: 1,
      shadowPromptTokens: 1, shadowCompletionTokens: 1, primaryCostPico: 10, shadowCostPico: 5,
      similarity: 0.5, shadowStatus: 200, error: '',
    };
    await new SqliteShadowStore(dbA).put({ ...base, requestId: 'a' });
    await new SqliteShadowStore(dbB).put({ ...base, requestId: 'b' });
    dbA.close();
    dbB.close();
    const dbC = openDatabase(file);
    expect((await shadowReports(new SqliteShadowStore(dbC), 'auto', 0, 2_000, 0.8))[0]).toMatchObject({ pairs: 2, agreementRate: 0 });
    dbC.close();
  });
});
