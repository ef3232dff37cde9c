/**
 * Opens the storage backend the config chooses. A driver is imported only when its backend is
 * chosen, so an embedded gateway never loads Redis or PostgreSQL clients.
 */
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import type { Counters, Ledger, Records } from './types.js';

export interface Storage {
  records: Records;
  ledger: Ledger;
  /** Rate-limit buckets and budget counters (memory in embedded mode). */
  counters: Counters;
  /** A local folder for process-local state (the ledger spool). */
  localDir: string;
  /** Throws when the backend is not usable (readiness). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export async function openStorage(config: Pick<Config, 'storage'>): Promise<Storage> {
  const { openDatabase } = await import('./sqlite/database.js');
  const { SqliteRecords } = await import('./sqlite/records.js');
  const { SqliteLedger } = await import('./sqlite/ledger.js');
  const { MemoryCounters } = await import('./memory/counters.js');
  const db = openDatabase(join(config.storage.dir, 'tollgate.db'));
  const records = new SqliteRecords(db);
  const counters = new MemoryCounters();
  return {
    records,
    ledger: new SqliteLedger(db),
    counters,
    localDir: config.storage.dir,
    async ping() {
      db.prepare('select 1').get();
    },
    async close() {
      await counters.close();
      await records.close();
    },
  };
}
