/**
 * How a SQL backend declares its schema (src/storage/{sqlite,postgres}/migrations.ts): numbered
 * migrations, kept in lists by area and merged into one list in version order.
 */

/** One schema migration: applied once, in version order, and recorded by version and name. */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** Every migration of `lists`, in version order. */
export function inVersionOrder(...lists: ReadonlyArray<readonly Migration[]>): readonly Migration[] {
  return lists.flat().sort((a, b) => a.version - b.version);
}
