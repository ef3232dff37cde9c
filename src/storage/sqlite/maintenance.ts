/**
 * Giving disk space back in embedded mode. SQLite keeps the pages of deleted rows as free pages
 * of the file (it never shrinks on its own), and a WAL file stays at its largest size. So:
 *
 * - `auto_vacuum = INCREMENTAL` on every database file: free pages are tracked so that
 *   `PRAGMA incremental_vacuum(N)` can move up to N of them to the end of the file and cut it
 *   there. A new file gets it before its first table. A file created before Tollgate set it
 *   (auto_vacuum NONE) is converted once, when it is opened: the mode only takes effect through a
 *   `VACUUM`, which rewrites the whole file (as long as copying it takes; it needs as much free
 *   disk again) and cannot run inside a transaction, so not in a migration. When another process
 *   holds the file busy, the conversion is left for the next open.
 * - `journal_size_limit`: after a checkpoint resets the WAL, SQLite truncates the file to this
 *   size instead of leaving it at its peak.
 * - maintenance, run by the writer thread (src/storage/sqlite/writer-thread.ts, `maintain()`)
 *   every `MAINTENANCE_MS`, off the event loop: when at least `MIN_FREE_PAGES` pages are free,
 *   `incremental_vacuum` in slices of `SLICE_PAGES` with a pause between two (each slice is a
 *   short write transaction, so the main connection never waits for more than one), then a
 *   PASSIVE checkpoint and, when it caught up, `wal_checkpoint(TRUNCATE)`, which empties the WAL.
 */
import type { Database } from './database.js';

/** Bytes the WAL file is cut back to after each checkpoint. */
export const JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024;
/** Free pages moved per incremental_vacuum step (4 MiB at 4 KiB pages). */
export const SLICE_PAGES = 1_024;
/** Free pages below which maintenance leaves the file as it is (16 MiB at 4 KiB pages). */
export const MIN_FREE_PAGES = 4_096;
/** How often the writer thread runs maintenance, ms. */
export const MAINTENANCE_MS = 60_000;

const INCREMENTAL = 2;

export type VacuumSetup = 'new' | 'incremental' | 'converted' | 'busy' | 'memory';

/**
 * Sets auto_vacuum INCREMENTAL and the WAL size limit on a freshly opened connection (before
 * migrations: a new file's tables are then created with it). Converts an older file with a VACUUM
 * (see the header); 'busy' when another connection kept it from running (tried again next open).
 */
export function prepareSpaceReclaim(db: Database, inMemory: boolean): VacuumSetup {
  if (inMemory) return 'memory';
  db.pragma(`journal_size_limit = ${JOURNAL_SIZE_LIMIT}`);
  if (db.pragma('auto_vacuum', { simple: true }) === INCREMENTAL) return 'incremental';
  const hasTables = (db.prepare("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'").pluck().get() as number) > 0;
  db.pragma('auto_vacuum = INCREMENTAL');
  // Even an empty file needs it once its header is written (journal_mode = WAL does): instant then.
  try {
    db.exec('VACUUM');
  } catch (err) {
    if (/busy|locked/i.test((err as Error).message)) return 'busy';
    throw err;
  }
  return hasTables ? 'converted' : 'new';
}
