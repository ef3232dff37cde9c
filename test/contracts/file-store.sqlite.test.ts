import { openDatabase } from '../../src/storage/sqlite/database.js';
import { SqliteFileStore } from '../../src/storage/sqlite/files.js';
import { runFileStoreContract } from './file-store.contract.js';

runFileStoreContract('sqlite', async () => {
  const db = openDatabase(':memory:');
  return { store: new SqliteFileStore(db), close: async () => void db.close() };
});
