/**
 * `FlagStore` on the embedded SQLite database (tables `flags` and `flag_audit`, migration 6).
 * Every change and its audit entry are written in one IMMEDIATE transaction, so the trail never
 * misses a change nor records one that did not happen, even with several processes on the file.
 * Times come from the gateway's clock (`Date.now()`). better-sqlite3 is synchronous: each method
 * does its work at once and returns a settled promise.
 */
import type { Statement } from 'better-sqlite3';
import type { Flag, FlagAuditEntry, FlagPatch, FlagStore, NewFlag } from '../../routing/types.js';
import { type AuditRow as SharedAuditRow, FLAG_PATCH_FIELDS, type FlagRow as SharedFlagRow, auditLimit, rowToAuditEntry, rowToFlag } from '../flag-rows.js';
import { pickDefined } from '../record-helpers.js';
import { RecordConflict, RecordNotFound } from '../types.js';
import { type Database, isConstraint } from './database.js';

type FlagRow = SharedFlagRow<string>;
type AuditRow = SharedAuditRow<string>;
type AuditInsert = Omit<AuditRow, 'id'>;

export class SqliteFlagStore implements FlagStore {
  readonly #db: Database;
  readonly #sql: {
    list: Statement<[], FlagRow>;
    get: Statement<[string], FlagRow>;
    insert: Statement<[FlagRow]>;
    update: Statement<[FlagRow]>;
    delete: Statement<[string]>;
    insertAudit: Statement<[AuditInsert]>;
    audit: Statement<[{ flag: string | null; beforeId: number | null; limit: number }], AuditRow>;
  };

  /** Uses a database opened (and migrated) by `openDatabase`; does not close it. */
  constructor(db: Database) {
    this.#db = db;
    this.#sql = {
      list: db.prepare('SELECT * FROM flags ORDER BY name'),
      get: db.prepare('SELECT * FROM flags WHERE name = ?'),
      insert: db.prepare(
        `INSERT INTO flags (name, description, enabled, targeting, effect, created_at, updated_at, updated_by)
         VALUES (@name, @description, @enabled, @targeting, @effect, @created_at, @updated_at, @updated_by)`,
      ),
      update: db.prepare(
        `UPDATE flags SET description = @description, enabled = @enabled, targeting = @targeting, effect = @effect,
                          updated_at = @updated_at, updated_by = @updated_by
         WHERE name = @name`,
      ),
      delete: db.prepare('DELETE FROM flags WHERE name = ?'),
      insertAudit: db.prepare(
        'INSERT INTO flag_audit (flag, action, before, after, actor, at) VALUES (@flag, @action, @before, @after, @actor, @at)',
      ),
      audit: db.prepare(
        `SELECT * FROM flag_audit
         WHERE (@flag IS NULL OR flag = @flag) AND (@beforeId IS NULL OR id < @beforeId)
         ORDER BY id DESC LIMIT @limit`,
      ),
    };
  }

  async list(): Promise<Flag[]> {
    return this.#sql.list.all().map(toFlag);
  }

  async get(name: string): Promise<Flag | null> {
    const row = this.#sql.get.get(name);
    return row ? toFlag(row) : null;
  }

  async create(flag: NewFlag, actor: string): Promise<Flag> {
    const now = Date.now();
    const row = toRow({ ...flag, createdAt: now, updatedAt: now, updatedBy: actor });
    return this.#db.transaction(() => {
      try {
        this.#sql.insert.run(row);
      } catch (err) {
        if (isConstraint(err, 'SQLITE_CONSTRAINT_PRIMARYKEY')) throw new RecordConflict(`flag '${flag.name}' already exists`);
        throw err;
      }
      const created = toFlag(row);
      this.#sql.insertAudit.run({ flag: created.name, action: 'create', before: null, after: JSON.stringify(created), actor, at: now });
      return created;
    }).immediate();
  }

  async update(name: string, patch: FlagPatch, actor: string): Promise<Flag> {
    return this.#db.transaction(() => {
      const current = this.#sql.get.get(name);
      if (!current) throw new RecordNotFound('flag', name);
      const before = toFlag(current);
      const now = Date.now();
      const row = toRow({ ...before, ...pickDefined(patch, FLAG_PATCH_FIELDS), name, updatedAt: now, updatedBy: actor });
      this.#sql.update.run(row);
      const after = toFlag(row);
      this.#sql.insertAudit.run({ flag: name, action: 'update', before: JSON.stringify(before), after: JSON.stringify(after), actor, at: now });
      return after;
    }).immediate();
  }

  async delete(name: string, actor: string): Promise<void> {
    this.#db.transaction(() => {
      const current = this.#sql.get.get(name);
      if (!current) throw new RecordNotFound('flag', name);
      this.#sql.delete.run(name);
      this.#sql.insertAudit.run({ flag: name, action: 'delete', before: JSON.stringify(toFlag(current)), after: null, actor, at: Date.now() });
    }).immediate();
  }

  async audit(opts: { flag?: string; limit?: number; beforeId?: number } = {}): Promise<FlagAuditEntry[]> {
    return this.#sql.audit
      .all({ flag: opts.flag ?? null, beforeId: opts.beforeId ?? null, limit: auditLimit(opts.limit) })
      .map(toAuditEntry);
  }
}

/** A flag as its row: JSON as text, `enabled` as 0/1. */
function toRow(f: Flag): FlagRow {
  const { name, description, createdAt: created_at, updatedAt: updated_at, updatedBy: updated_by } = f;
  return { name, description, enabled: f.enabled ? 1 : 0, targeting: JSON.stringify(f.targeting), effect: JSON.stringify(f.effect), created_at, updated_at, updated_by };
}

const decodeJson = (text: string): unknown => JSON.parse(text);
const toFlag = (row: FlagRow): Flag => rowToFlag(row, decodeJson);
const toAuditEntry = (row: AuditRow): FlagAuditEntry => rowToAuditEntry(row, decodeJson);
