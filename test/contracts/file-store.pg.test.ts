import { describe } from 'vitest';
import { openPostgres } from '../../src/storage/postgres/database.js';
import { PostgresFileStore } from '../../src/storage/postgres/files.js';
import { requireService } from '../helpers/services.js';
import { useMigratedSchema } from '../helpers/pg.js';
import { runFileStoreContract } from './file-store.contract.js';

const pg = await requireService('postgres');

describe.skipIf(!pg)('PostgresFileStore', () => {
  const { schema, admin: adminSql } = useMigratedSchema(pg!);

  // Each store has its own pool, on this file's schema, emptied first (several connections, so
  // the contract's concurrent batch updates really race).
  runFileStoreContract('postgres', async () => {
    await adminSql()`TRUNCATE files, file_chunks, batches, tenant_storage`;
    const sql = openPostgres(pg!, { schema, max: 4 });
    return { store: new PostgresFileStore(sql), close: () => sql.end({ timeout: 5 }) };
  });
});
