import { describe } from 'vitest';
import { openPostgres } from '../../src/storage/postgres/database.js';
import { PostgresRequestLog } from '../../src/storage/postgres/request-log.js';
import { requireService } from '../helpers/services.js';
import { useMigratedSchema } from '../helpers/pg.js';
import { runRequestLogContract } from './request-log.contract.js';

const pg = await requireService('postgres');

describe.skipIf(!pg)('PostgresRequestLog', () => {
  const { schema, admin: adminSql } = useMigratedSchema(pg!);

  // Each store has its own pool (close() ends it), on this file's schema, emptied first.
  runRequestLogContract('postgres', async () => {
    await adminSql()`TRUNCATE request_log`;
    return new PostgresRequestLog(openPostgres(pg!, { schema, max: 2 }));
  });
});
