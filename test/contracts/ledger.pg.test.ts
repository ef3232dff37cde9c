import { afterAll, beforeAll, describe } from 'vitest';
import { migratePostgres, openPostgres, type Sql } from '../../src/storage/postgres/database.js';
import { PostgresLedger } from '../../src/storage/postgres/ledger.js';
import type { Ledger } from '../../src/storage/types.js';
import { requireService, uniqueName } from '../helpers/services.js';
import { runLedgerContract } from './ledger.contract.js';

const pg = await requireService('postgres');

describe.skipIf(!pg)('PostgresLedger', () => {
  const schema = uniqueName('tg');
  let admin: Sql;

  beforeAll(async () => {
    admin = openPostgres(pg!, { schema, max: 1 });
    await migratePostgres(admin);
  });

  afterAll(async () => {
    await admin?.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin?.end();
  });

  // Each ledger has its own pool (close() ends it), on this file's schema, emptied first.
  const open = (): Ledger => new PostgresLedger(openPostgres(pg!, { schema, max: 4 }));

  runLedgerContract(
    'postgres',
    async () => {
      await admin`DELETE FROM usage_events`;
      return open();
    },
    {
      reopen: async (ledger) => {
        await ledger.close();
        return open();
      },
    },
  );
});
