/**
 * Opens the embedded SQLite database and brings its schema up to date. Private to the SQLite
 * adapters: nothing outside src/storage/sqlite/ should need the driver type.
 */
import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { ensurePrivateDir, ensurePrivateFile, tightenFiles } from '../../util/private-files.js';
import { checkMigrationOrder, migrationFailed, refuseNewerSchema } from '../migration-checks.js';
import { prepareSpaceReclaim } from './maintenance.js';
import { MIGRATIONS, type Migration } from './migrations.js';

export type Database = BetterSqlite3.Database;

/** Whether `err` is SQLite's refusal `code` (e.g. `SQLITE_CONSTRAINT_PRIMARYKEY`), for the adapters' conflict errors. */
export function isConstraint(err: unknown, code: string): boolean {
  return (err as { code?: unknown } | null)?.code === code;
}

export interface OpenDatabaseOptions {
  /**
   * How long a statement waits for a lock another connection holds before it fails with
   * SQLITE_BUSY (storage.busyTimeoutMs). Default 5,000 ms.
   */
  busyTimeoutMs?: number;
}

/** What Tollgate keeps in `storage.dir`: the folder is tightened to 0700 only when it holds nothing else. */
const isStoreEntry = (name: string) => /^(tollgate\.db.*|spool|files|uploads|webhook-signing-secret.*)$/.test(name);

/** Default of `busyTimeoutMs`. */
export const DEFAULT_BUSY_TIMEOUT_MS = 5_000;

/**
 * Opens (creating if needed, parent folder included) the SQLite file and applies pending
 * migrations. `':memory:'` gives a private in-memory database (tests). The file is created 0600
 * in a 0700 folder, and tightened so when it exists (it may hold prompts): SQLite gives its -wal
 * and -shm files the database file's mode.
 */
export function openDatabase(file: string, migrations: readonly Migration[] = MIGRATIONS, opts: OpenDatabaseOptions = {}): Database {
  const inMemory = file === ':memory:' || file === '';
  const onDisk = !inMemory && !file.startsWith('file:');
  if (onDisk) {
    ensurePrivateDir(dirname(file), isStoreEntry);
    ensurePrivateFile(file);
  }
  // The busy timeout is set at open, before the first statement (journal_mode may need a lock).
  const db = new BetterSqlite3(file, { timeout: opts.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS });
  try {
    db.pragma('journal_mode = WAL'); // stays 'memory' for in-memory databases
    if (onDisk) tightenFiles(`${file}-wal`, `${file}-shm`); // left 0644 by an older version
    db.pragma('synchronous = NORMAL'); // safe with WAL: a crash loses at most the last commits, never corrupts
    db.pragma('foreign_keys = ON');
    // auto_vacuum INCREMENTAL (an older file is converted by a VACUUM, once) and a WAL size limit: src/storage/sqlite/maintenance.ts.
    prepareSpaceReclaim(db, inMemory);
    applyMigrations(db, migrations);
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

export interface AppliedMigration {
  version: number;
  name: string;
  appliedAt: number;
}

/**
 * Applies the migrations not yet recorded in `schema_migrations`, in order, each in its own
 * IMMEDIATE transaction (so two processes opening the same file at once cannot both apply one).
 * Returns the migrations applied now. Refuses a database migrated by a newer Tollgate.
 */
export function applyMigrations(db: Database, migrations: readonly Migration[] = MIGRATIONS): Migration[] {
  checkMigrationOrder(migrations);
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version     INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    applied_at  INTEGER NOT NULL
  )`);
  refuseNewerSchema((db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number | null }).v, migrations);

  const isApplied = db.prepare('SELECT 1 FROM schema_migrations WHERE version = ?').pluck();
  const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
  const applyOne = db.transaction((m: Migration): boolean => {
    if (isApplied.get(m.version) !== undefined) return false;
    db.exec(m.sql);
    record.run(m.version, m.name, Date.now());
    return true;
  });

  const applied: Migration[] = [];
  for (const m of migrations) {
    try {
      if (applyOne.immediate(m)) applied.push(m);
    } catch (err) {
      throw migrationFailed(m, err);
    }
  }
  return applied;
}

/** The migrations recorded in the database, oldest first. */
export function appliedMigrations(db: Database): AppliedMigration[] {
  return db
    .prepare('SELECT version, name, applied_at AS appliedAt FROM schema_migrations ORDER BY version')
    .all() as AppliedMigration[];
}
