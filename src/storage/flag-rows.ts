/**
 * Row shapes of the flag tables (`flags`, `flag_audit`) and their mapping, shared by the SQLite
 * and PostgreSQL `FlagStore` adapters (src/storage/{sqlite,postgres}/flags.ts), like
 * record-helpers.ts. `J` is how a JSON column arrives: text in SQLite (decoded with JSON.parse),
 * already parsed in PostgreSQL; `enabled` is 0/1 in SQLite, a boolean in PostgreSQL.
 */
import type { Flag, FlagAuditEntry } from '../routing/types.js';

export interface FlagRow<J> {
  name: string;
  description: string;
  enabled: number | boolean;
  targeting: J;
  effect: J;
  created_at: number;
  updated_at: number;
  updated_by: string;
}

export interface AuditRow<J> {
  id: number;
  flag: string;
  action: FlagAuditEntry['action'];
  before: J | null;
  after: J | null;
  actor: string;
  at: number;
}

/** What `update` may change. */
export const FLAG_PATCH_FIELDS = ['description', 'enabled', 'targeting', 'effect'] as const;

/** Entries returned by `audit()` when no limit is given. */
const DEFAULT_AUDIT_LIMIT = 100;

/** How many entries `audit()` returns: the default without a limit, whole and not negative otherwise. */
export function auditLimit(limit: number | undefined): number {
  return limit === undefined ? DEFAULT_AUDIT_LIMIT : Math.max(0, Math.floor(limit));
}

export function rowToFlag<J>(row: FlagRow<J>, decode: (v: J) => unknown): Flag {
  return {
    name: row.name,
    description: row.description,
    enabled: row.enabled === true || row.enabled === 1,
    targeting: decode(row.targeting) as Flag['targeting'],
    effect: decode(row.effect) as Flag['effect'],
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    updatedBy: row.updated_by,
  };
}

export function rowToAuditEntry<J>(row: AuditRow<J>, decode: (v: J) => unknown): FlagAuditEntry {
  const flag = (v: J | null) => (v === null ? null : (decode(v) as Flag));
  return { id: row.id, flag: row.flag, action: row.action, before: flag(row.before), after: flag(row.after), actor: row.actor, at: row.at };
}
