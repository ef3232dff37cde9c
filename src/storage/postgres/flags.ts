/**
 * `FlagStore` on PostgreSQL (tables `flags` and `flag_audit`, migration 5), with exactly the
 * semantics of `SqliteFlagStore` (same contract suite). Every change and its audit entry are
 * written in one transaction; updates and deletes lock the flag's row first, so concurrent
 * gateway processes cannot lose each other's changes and the trail's before/after chain holds.
 * Times come from the gateway's clock (`Date.now()`), not the server's.
 */
import type { Flag, FlagAuditEntry, FlagPatch, FlagStore, NewFlag } from '../../routing/types.js';
import { type AuditRow as SharedAuditRow, FLAG_PATCH_FIELDS, type FlagRow as SharedFlagRow, auditLimit, rowToAuditEntry, rowToFlag } from '../flag-rows.js';
import { pickDefined } from '../record-helpers.js';
import { RecordConflict, RecordNotFound } from '../types.js';
import { PostgresAdapter, type Queryable } from './database.js';

/** JSON columns arrive parsed (postgres.js); int8 as numbers (database.ts). */
type FlagRow = SharedFlagRow<unknown>;
type AuditRow = SharedAuditRow<unknown>;

export class PostgresFlagStore extends PostgresAdapter implements FlagStore {
  async list(): Promise<Flag[]> {
    const rows = await this.sql<FlagRow[]>`SELECT * FROM flags ORDER BY name`;
    return rows.map(toFlag);
  }

  async get(name: string): Promise<Flag | null> {
    const [row] = await this.sql<FlagRow[]>`SELECT * FROM flags WHERE name = ${name}`;
    return row ? toFlag(row) : null;
  }

  async create(flag: NewFlag, actor: string): Promise<Flag> {
    const now = Date.now();
    return this.sql.begin(async (tx) => {
      // ON CONFLICT DO NOTHING: a second create of the name (even a concurrent one) returns no row.
      const [row] = await tx<FlagRow[]>`
        INSERT INTO flags (name, description, enabled, targeting, effect, created_at, updated_at, updated_by)
        VALUES (${flag.name}, ${flag.description}, ${flag.enabled},
                ${jsonText(flag.targeting)}::text::json, ${jsonText(flag.effect)}::text::json, ${now}, ${now}, ${actor})
        ON CONFLICT (name) DO NOTHING
        RETURNING *`;
      if (!row) throw new RecordConflict(`flag '${flag.name}' already exists`);
      const created = toFlag(row);
      await this.#audit(tx, { flag: created.name, action: 'create', before: null, after: created, actor, at: now });
      return created;
    });
  }

  async update(name: string, patch: FlagPatch, actor: string): Promise<Flag> {
    return this.sql.begin(async (tx) => {
      const [current] = await tx<FlagRow[]>`SELECT * FROM flags WHERE name = ${name} FOR UPDATE`;
      if (!current) throw new RecordNotFound('flag', name);
      const before = toFlag(current);
      const next = { ...before, ...pickDefined(patch, FLAG_PATCH_FIELDS) };
      const now = Date.now();
      const [row] = await tx<FlagRow[]>`
        UPDATE flags
        SET description = ${next.description}, enabled = ${next.enabled}, targeting = ${jsonText(next.targeting)}::text::json,
            effect = ${jsonText(next.effect)}::text::json, updated_at = ${now}, updated_by = ${actor}
        WHERE name = ${name}
        RETURNING *`;
      const after = toFlag(row!);
      await this.#audit(tx, { flag: name, action: 'update', before, after, actor, at: now });
      return after;
    });
  }

  async delete(name: string, actor: string): Promise<void> {
    await this.sql.begin(async (tx) => {
      const [deleted] = await tx<FlagRow[]>`DELETE FROM flags WHERE name = ${name} RETURNING *`;
      if (!deleted) throw new RecordNotFound('flag', name);
      await this.#audit(tx, { flag: name, action: 'delete', before: toFlag(deleted), after: null, actor, at: Date.now() });
    });
  }

  async audit(opts: { flag?: string; limit?: number; beforeId?: number } = {}): Promise<FlagAuditEntry[]> {
    const sql = this.sql;
    const rows = await sql<AuditRow[]>`
      SELECT * FROM flag_audit
      WHERE TRUE
        ${opts.flag !== undefined ? sql`AND flag = ${opts.flag}` : sql``}
        ${opts.beforeId !== undefined ? sql`AND id < ${opts.beforeId}` : sql``}
      ORDER BY id DESC
      LIMIT ${auditLimit(opts.limit)}`;
    return rows.map(toAuditEntry);
  }

  async #audit(tx: Queryable, e: Omit<FlagAuditEntry, 'id'>): Promise<void> {
    await tx`
      INSERT INTO flag_audit (flag, action, before, after, actor, at)
      VALUES (${e.flag}, ${e.action}, ${nullableJsonText(e.before)}::text::json, ${nullableJsonText(e.after)}::text::json,
              ${e.actor}, ${e.at})`;
  }
}

/**
 * JSON sent as text and cast to `json`, so the column keeps exactly the text SQLite stores, key
 * order included (`sql.json()` goes through `jsonb`, which reorders the keys of a tier mapping).
 * The `::text` matters: a parameter inferred as `json` would be JSON-encoded again by postgres.js.
 */
function jsonText(value: unknown): string {
  return JSON.stringify(value);
}

function nullableJsonText(value: unknown): string | null {
  return value === null ? null : JSON.stringify(value);
}

/** postgres.js hands JSON columns over parsed. */
const asIs = (v: unknown): unknown => v;
const toFlag = (row: FlagRow): Flag => rowToFlag(row, asIs);
const toAuditEntry = (row: AuditRow): FlagAuditEntry => rowToAuditEntry(row, asIs);
