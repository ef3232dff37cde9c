import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { openDatabase } from '../../src/storage/sqlite/database.js';
import { SqliteRequestLog } from '../../src/storage/sqlite/request-log.js';
import { SqliteWriterThread } from '../../src/storage/sqlite/writer-thread.js';
import { runRequestLogContract } from './request-log.contract.js';

runRequestLogContract('sqlite (memory)', async () => new SqliteRequestLog(openDatabase(':memory:')));

// The gateway's embedded mode: writes and pruning committed on the writer thread, reads on the main connection.
const dir = mkdtempSync(join(tmpdir(), 'tollgate-request-log-'));
let files = 0;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

runRequestLogContract('sqlite (file, writer thread)', async () => {
  const file = join(dir, `log-${++files}.db`);
  const db = openDatabase(file);
  return new SqliteRequestLog(db, { writer: new SqliteWriterThread(db, file) });
});
