import { describe } from 'vitest';
import { openPostgres } from '../../src/storage/postgres/database.js';
import { PostgresLedger } from '../../src/storage/postgres/ledger.js';
import type { Ledger } from '../../src/storage/types.js';
import { requireService } from '../helpers/services.js';
import { useMigratedSchema } from '../helpers/pg.js';
import { runLedgerContract } from './ledger.contract.js';

const pg = await requireService('postgres');

describe.skipIf(!pg)('PostgresLedger', () => {
  const { schema, admin: adminSql } = useMigratedSchema(pg!);

  // Each ledger has its own pool (close() ends it), on this file's schema, emptied first.
  const open = (): Ledger => new PostgresLedger(openPostgres(pg!, { schema, max: 4 }));

  runLedgerContract(
    'postgres',
    async () => {
      await adminSql()`DELETE FROM usage_events`;
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
