import { afterAll, beforeAll, describe } from 'vitest';
import { migratePostgres, openPostgres, type Sql } from '../../src/storage/postgres/database.js';
import { PostgresShadowStore } from '../../src/storage/postgres/shadow.js';
import { requireService, uniqueName } from '../helpers/services.js';
import { runShadowStoreContract } from './shadow.contract.js';

const pg = await requireService('postgres');

describe.skipIf(!pg)('PostgresShadowStore', () => {
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

  // Each store has its own pool, on this file's schema, emptied first.
  runShadowStoreContract('postgres', async () => {
    await admin`TRUNCATE shadow_pairs`;
    const sql = openPostgres(pg!, { schema, max: 2 });
    return { store: new PostgresShadowStore(sql), close: () => sql.end({ timeout: 5 }) };
  });
});
