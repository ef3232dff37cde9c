/**
 * The PostgreSQL schema, as numbered migrations (TypeScript strings, because tsc does not copy .sql
 * files into dist/), kept by area (migrations/requests.ts: what serving requests stores;
 * migrations/jobs.ts: async jobs, files and batches) and merged here in version order. Same
 * rules as the SQLite list (src/storage/sqlite/migrations.ts):
 * - Append only. Never edit or renumber a migration that has shipped. A new migration takes the
 *   next version and goes at the end of its area's list.
 * - Versions are strictly increasing; each runs once, in its own transaction, under an advisory
 *   lock, and is recorded in `schema_migrations` (see database.ts). Several gateway processes
 *   starting at once apply each migration exactly once.
 * - No `CREATE INDEX CONCURRENTLY` (it cannot run inside a transaction).
 * Conventions: epoch ms and pico-dollar amounts are BIGINT (they exceed int32); ids and the text we
 * group and sort by use COLLATE "C" so listings sort byte-wise, exactly like SQLite; JSON is `json`
 * (kept as written, like SQLite's TEXT) rather than `jsonb` (which reorders keys).
 */
import { type Migration, inVersionOrder } from '../migration-list.js';
import { JOB_MIGRATIONS } from './migrations/jobs.js';
import { REQUEST_MIGRATIONS } from './migrations/requests.js';

/** A PostgreSQL migration (the shape both backends share). */
export type PostgresMigration = Migration;

export const POSTGRES_MIGRATIONS = inVersionOrder(REQUEST_MIGRATIONS, JOB_MIGRATIONS);
