import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { applyMigrations, appliedMigrations, openDatabase, type Database } from './database.js';
import { MIGRATIONS, type Migration } from './migrations.js';

const tableNames = (db: Database): string[] =>
  db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all() as string[];

describe('openDatabase', () => {
  const dirs: string[] = [];
  const open: Database[] = [];
  const tempFile = (): string => {
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-db-'));
    dirs.push(dir);
    return join(dir, 'sub', 'tollgate.db');
  };
  const track = (db: Database): Database => (open.push(db), db);

  afterEach(() => {
    for (const db of open.splice(0)) if (db.open) db.close();
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('creates the parent folder and sets WAL, NORMAL sync, a busy timeout and foreign keys', () => {
    const db = track(openDatabase(tempFile()));
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('synchronous', { simple: true })).toBe(1); // NORMAL
    expect(db.pragma('busy_timeout', { simple: true })).toBe(5000);
    expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
  });

  it('applies every migration to a new database, in memory too', () => {
    const db = track(openDatabase(':memory:'));
    expect(appliedMigrations(db).map((m) => m.version)).toEqual(MIGRATIONS.map((m) => m.version));
    expect(tableNames(db)).toEqual(expect.arrayContaining(['api_keys', 'schema_migrations', 'tenants']));
  });

  it('applies only the migrations appended since the last open', () => {
    const file = tempFile();
    const v1: Migration[] = [{ version: 1, name: 'one', sql: 'CREATE TABLE one (x INTEGER)' }];
    openDatabase(file, v1).close();
    const v2 = [...v1, { version: 2, name: 'two', sql: 'CREATE TABLE two (y INTEGER)' }];
    const db = track(openDatabase(file, v1));
    expect(applyMigrations(db, v2).map((m) => m.version)).toEqual([2]);
    expect(applyMigrations(db, v2)).toEqual([]);
    expect(tableNames(db)).toEqual(['one', 'schema_migrations', 'two']);
  });

  it('rolls a failing migration back whole and reports which one failed', () => {
    const db = track(openDatabase(':memory:', []));
    const broken: Migration[] = [
      { version: 1, name: 'fine', sql: 'CREATE TABLE fine (x INTEGER)' },
      { version: 2, name: 'broken', sql: 'CREATE TABLE half (x INTEGER); CREATE TABLE oops (' },
    ];
    expect(() => applyMigrations(db, broken)).toThrow(/migration 2 \(broken\) failed/);
    expect(tableNames(db)).toEqual(['fine', 'schema_migrations']);
    expect(appliedMigrations(db).map((m) => m.version)).toEqual([1]);
  });

  it('refuses a database migrated by a newer Tollgate', () => {
    const file = tempFile();
    openDatabase(file, [
      { version: 1, name: 'one', sql: 'SELECT 1' },
      { version: 2, name: 'two', sql: 'SELECT 1' },
    ]).close();
    expect(() => openDatabase(file, [{ version: 1, name: 'one', sql: 'SELECT 1' }])).toThrow(/newer than this Tollgate/);
  });

  it('refuses migrations out of order', () => {
    const unordered: Migration[] = [
      { version: 2, name: 'two', sql: 'SELECT 1' },
      { version: 1, name: 'one', sql: 'SELECT 1' },
    ];
    expect(() => openDatabase(':memory:', unordered)).toThrow(/strictly increasing/);
  });

  it('keeps the shipped migrations strictly increasing from 1', () => {
    expect(MIGRATIONS[0]?.version).toBe(1);
    MIGRATIONS.forEach((m, i) => i > 0 && expect(m.version).toBeGreaterThan(MIGRATIONS[i - 1]!.version));
  });
});
