import { describe } from 'vitest';
import { openPostgres } from '../../src/storage/postgres/database.js';
import { PostgresShadowStore } from '../../src/storage/postgres/shadow.js';
import { requireService } from '../helpers/services.js';
import { useMigratedSchema } from '../helpers/pg.js';
import { runShadowStoreContract } from './shadow.contract.js';

const pg = await requireService('postgres');

describe.skipIf(!pg)('PostgresShadowStore', () => {
  const { schema, admin: adminSql } = useMigratedSchema(pg!);

  // Each store has its own pool, on this file's schema, emptied first.
  runShadowStoreContract('postgres', async () => {
    await adminSql()`TRUNCATE shadow_pairs`;
    const sql = openPostgres(pg!, { schema, max: 2 });
    return { store: new PostgresShadowStore(sql), close: () => sql.end({ timeout: 5 }) };
  });
});
