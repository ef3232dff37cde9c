/**
 * The SQLite schema, as numbered migrations (TypeScript strings, because tsc does not copy .sql
 * files into dist/), kept by area (migrations/requests.ts: what serving requests stores;
 * migrations/jobs.ts: async jobs, files and batches) and merged here in version order. Rules:
 * - Append only. Never edit or renumber a migration that has shipped: databases in the field
 *   have applied it already and will not run it again. A new migration takes the next version
 *   and goes at the end of its area's list.
 * - Versions are strictly increasing; each migration runs once, in its own transaction, and is
 *   recorded in `schema_migrations` (see database.ts).
 * - Statements that SQLite ignores inside a transaction (`PRAGMA foreign_keys`, `VACUUM`) do not
 *   belong here; change a table's constraints with SQLite's create-copy-drop-rename procedure.
 */
import { inVersionOrder } from '../migration-list.js';
import { JOB_MIGRATIONS } from './migrations/jobs.js';
import { REQUEST_MIGRATIONS } from './migrations/requests.js';

export type { Migration } from '../migration-list.js';

export const MIGRATIONS = inVersionOrder(REQUEST_MIGRATIONS, JOB_MIGRATIONS);
