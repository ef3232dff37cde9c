import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/storage/sqlite/database.js';
import { SqliteLedger } from '../../src/storage/sqlite/ledger.js';
import { SqliteRecords } from '../../src/storage/sqlite/records.js';
import { SqliteWriterThread } from '../../src/storage/sqlite/writer-thread.js';
import type { Ledger } from '../../src/storage/types.js';
import { runLedgerContract, usageEvent } from './ledger.contract.js';

runLedgerContract('sqlite (memory)', async () => new SqliteLedger(openDatabase(':memory:')));

// On a file, so a reopen is a real restart: the durability tests run here.
const dir = mkdtempSync(join(tmpdir(), 'tollgate-ledger-'));
const fileOf = new WeakMap<Ledger, string>();
let files = 0;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const openLedger = (file: string): Ledger => {
  const ledger = new SqliteLedger(openDatabase(file));
  fileOf.set(ledger, file);
  return ledger;
};

runLedgerContract('sqlite (file)', async () => openLedger(join(dir, `ledger-${++files}.db`)), {
  reopen: async (ledger) => {
    await ledger.close();
    return openLedger(fileOf.get(ledger)!);
  },
});

// The gateway's embedded mode: appends committed on the writer thread, reads on the main connection.
const openThreaded = (file: string): Ledger => {
  const db = openDatabase(file);
  const ledger = new SqliteLedger(db, { writer: new SqliteWriterThread(db, file) });
  fileOf.set(ledger, file);
  return ledger;
};

runLedgerContract('sqlite (file, writer thread)', async () => openThreaded(join(dir, `ledger-${++files}.db`)), {
  reopen: async (ledger) => {
    await ledger.close();
    return openThreaded(fileOf.get(ledger)!);
  },
});

describe('SqliteLedger next to SqliteRecords', () => {
  it('shares one database file with the records, and either may close it', async () => {
    const db = openDatabase(':memory:');
    const records = new SqliteRecords(db);
    const ledger = new SqliteLedger(db);
    await records.createTenant({ id: 'ten_a', name: 'A' });
    await ledger.append([usageEvent({ requestId: 'req_shared', tenantId: 'ten_a', costPico: 5 })]);
    expect(await records.getTenant('ten_a')).toMatchObject({ id: 'ten_a' });
    expect(await ledger.spent({ tenantId: 'ten_a' }, 0, Date.UTC(2030, 0, 1))).toBe(5);
    await ledger.close();
    await expect(records.close()).resolves.toBeUndefined();
  });
});
