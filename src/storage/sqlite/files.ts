/**
 * `FileStore` on the embedded SQLite database (tables `files` and `batches`, migrations 7 and 9).
 * A file's bytes are a file of its own in the store's folder (`<dir>/<file id>`, mode 0600),
 * written before its row is inserted and removed after its row is deleted, so deleting a file
 * gives its space back at once (a BLOB would leave free pages in the database and pass through
 * the WAL twice). Files written before migration 9 keep their bytes in the row's `content` column
 * (`location = 'db'`) until they are deleted. A file left in the folder without a row (a crash
 * between the two steps) is removed when the store is opened. Listings
 * are newest first by (created_at, id); the cursor is the last item's id. `updateBatch` reads,
 * checks the status and writes in one IMMEDIATE transaction, so of two processes moving a batch
 * from the same status only one wins. better-sqlite3 is synchronous: each method does its work at
 * once and returns a settled promise.
 */
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { copyFile, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Statement } from 'better-sqlite3';
import type { BatchRecord, BatchStatus, FileContent, FilePurpose, FileRecord, FileStore } from '../../jobs/types.js';
import { type BatchPatch, type BatchRow as SharedBatchRow, type FileRow, batchToRow, fileToRow, patchBatch, rowToBatch, rowToFile } from '../file-rows.js';
import { clampLimit, toPage } from '../paging.js';
import type { Database } from './database.js';

const FILE_NAME = /^file-[0-9a-f]{24}$/;

/** JSON columns as text. */
type BatchRow = SharedBatchRow<string>;

const FILE_COLUMNS = 'id, tenant_id, purpose, filename, bytes, created_at, expires_at';
const BATCH_COLUMNS = `id, tenant_id, key_id, endpoint, input_file_id, completion_window, status, output_file_id, error_file_id,
  errors, request_total, request_completed, request_failed, metadata, created_at, in_progress_at, expires_at, finalizing_at,
  completed_at, failed_at, expired_at, cancelling_at, cancelled_at`;
const BATCH_VALUES = BATCH_COLUMNS.split(',')
  .map((c) => `@${c.trim()}`)
  .join(', ');

type ListParams = { tenant: string; purpose: string | null; after: string | null; limit: number };

export class SqliteFileStore implements FileStore {
  readonly #db: Database;
  readonly #sql: {
    putFile: Statement<[FileRow]>;
    getFile: Statement<[string, string], FileRow>;
    getContent: Statement<[string, string], { location: 'db' | 'disk'; content: Buffer }>;
    listFiles: Statement<[ListParams], FileRow>;
    deleteFile: Statement<[string, string], { id: string; location: 'db' | 'disk' }>;
    deleteExpired: Statement<[number], { id: string; location: 'db' | 'disk' }>;
    fileExists: Statement<[string], number>;
    createBatch: Statement<[BatchRow]>;
    getBatch: Statement<[string], BatchRow>;
    listBatches: Statement<[Omit<ListParams, 'purpose'>], BatchRow>;
    writeBatch: Statement<[BatchRow]>;
    batchesIn: Statement<[{ statuses: string; limit: number }], BatchRow>;
  };

  readonly #dir: string;

  /**
   * Uses a database opened (and migrated) by `openDatabase` (does not close it); files' bytes go
   * to `opts.dir` (created if needed, mode 0700).
   */
  constructor(db: Database, opts: { dir: string }) {
    this.#db = db;
    this.#dir = opts.dir;
    mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
    this.#sql = {
      putFile: db.prepare(
        `INSERT INTO files (${FILE_COLUMNS}, content, location)
         VALUES (@id, @tenant_id, @purpose, @filename, @bytes, @created_at, @expires_at, x'', 'disk')`,
      ),
      getFile: db.prepare(`SELECT ${FILE_COLUMNS} FROM files WHERE id = ? AND tenant_id = ?`),
      getContent: db.prepare('SELECT location, content FROM files WHERE id = ? AND tenant_id = ?'),
      listFiles: db.prepare(
        `SELECT ${FILE_COLUMNS} FROM files
         WHERE tenant_id = @tenant AND (@purpose IS NULL OR purpose = @purpose)
           AND (@after IS NULL OR (created_at, id) < (SELECT a.created_at, a.id FROM files a WHERE a.id = @after AND a.tenant_id = @tenant))
         ORDER BY created_at DESC, id DESC LIMIT @limit`,
      ),
      deleteFile: db.prepare('DELETE FROM files WHERE id = ? AND tenant_id = ? RETURNING id, location'),
      deleteExpired: db.prepare('DELETE FROM files WHERE expires_at IS NOT NULL AND expires_at <= ? RETURNING id, location'),
      fileExists: db.prepare('SELECT 1 FROM files WHERE id = ?').pluck() as Statement<[string], number>,
      createBatch: db.prepare(`INSERT INTO batches (${BATCH_COLUMNS}) VALUES (${BATCH_VALUES})`),
      getBatch: db.prepare('SELECT * FROM batches WHERE id = ?'),
      listBatches: db.prepare(
        `SELECT * FROM batches
         WHERE tenant_id = @tenant
           AND (@after IS NULL OR (created_at, id) < (SELECT a.created_at, a.id FROM batches a WHERE a.id = @after AND a.tenant_id = @tenant))
         ORDER BY created_at DESC, id DESC LIMIT @limit`,
      ),
      writeBatch: db.prepare(
        `UPDATE batches SET ${BATCH_COLUMNS.split(',')
          .map((c) => c.trim())
          .filter((c) => c !== 'id' && c !== 'tenant_id')
          .map((c) => `${c} = @${c}`)
          .join(', ')}
         WHERE id = @id`,
      ),
      batchesIn: db.prepare(
        `SELECT * FROM batches WHERE status IN (SELECT value FROM json_each(@statuses))
         ORDER BY created_at, id LIMIT @limit`,
      ),
    };
    this.#removeOrphans();
  }

  async putFile(f: FileRecord, content: FileContent): Promise<void> {
    const path = this.#path(f.id);
    if (Buffer.isBuffer(content)) {
      await writeFile(path, content, { mode: 0o600, flag: 'wx' });
    } else {
      // The upload's spool file, moved into place (same file system: the storage folder).
      await rename(content.path, path).catch(async (err: NodeJS.ErrnoException) => {
        if (err.code !== 'EXDEV') throw err;
        await copyFile(content.path, path);
      });
    }
    try {
      this.#sql.putFile.run(fileToRow(f));
    } catch (err) {
      await rm(path, { force: true });
      throw err;
    }
  }

  async getFile(id: string, tenantId: string): Promise<FileRecord | undefined> {
    const row = this.#sql.getFile.get(id, tenantId);
    return row ? rowToFile(row) : undefined;
  }

  async getContent(id: string, tenantId: string): Promise<Buffer | undefined> {
    const row = this.#sql.getContent.get(id, tenantId);
    if (!row) return undefined;
    if (row.location === 'db') return row.content;
    try {
      return await readFile(this.#path(id));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined; // deleted meanwhile
      throw err;
    }
  }

  async listFiles(tenantId: string, opts: { purpose?: FilePurpose; after?: string; limit: number }): Promise<{ data: FileRecord[]; hasMore: boolean }> {
    const limit = clampLimit(opts.limit);
    const rows = this.#sql.listFiles.all({ tenant: tenantId, purpose: opts.purpose ?? null, after: opts.after ?? null, limit: limit + 1 });
    return toPage(rows, limit, rowToFile);
  }

  async deleteFile(id: string, tenantId: string): Promise<boolean> {
    const gone = this.#sql.deleteFile.all(id, tenantId);
    await this.#unlink(gone);
    return gone.length === 1;
  }

  async deleteExpiredFiles(now: number): Promise<number> {
    const gone = this.#sql.deleteExpired.all(now);
    await this.#unlink(gone);
    return gone.length;
  }

  #path(id: string): string {
    if (!FILE_NAME.test(id)) throw new Error(`not a file id: '${id.slice(0, 40)}'`);
    return join(this.#dir, id);
  }

  async #unlink(rows: ReadonlyArray<{ id: string; location: 'db' | 'disk' }>): Promise<void> {
    for (const r of rows) if (r.location === 'disk') await rm(this.#path(r.id), { force: true });
  }

  /** Files of the folder that have no row (their write or their delete was cut short). */
  #removeOrphans(): void {
    for (const name of readdirSync(this.#dir)) {
      if (FILE_NAME.test(name) && this.#sql.fileExists.get(name) === undefined) rmSync(join(this.#dir, name), { force: true });
    }
  }

  async createBatch(b: BatchRecord): Promise<void> {
    this.#sql.createBatch.run(batchToRow(b));
  }

  async getBatch(id: string, tenantId?: string): Promise<BatchRecord | undefined> {
    const row = this.#sql.getBatch.get(id);
    return row && (tenantId === undefined || row.tenant_id === tenantId) ? toBatch(row) : undefined;
  }

  async listBatches(tenantId: string, opts: { after?: string; limit: number }): Promise<{ data: BatchRecord[]; hasMore: boolean }> {
    const limit = clampLimit(opts.limit);
    const rows = this.#sql.listBatches.all({ tenant: tenantId, after: opts.after ?? null, limit: limit + 1 });
    return toPage(rows, limit, toBatch);
  }

  async updateBatch(id: string, from: readonly BatchStatus[], patch: BatchPatch): Promise<BatchRecord | undefined> {
    return this.#db.transaction(() => {
      const row = this.#sql.getBatch.get(id);
      if (!row || !from.includes(row.status)) return undefined;
      const written = batchToRow(patchBatch(toBatch(row), patch));
      this.#sql.writeBatch.run(written);
      return toBatch(written);
    }).immediate();
  }

  async batchesIn(statuses: readonly BatchStatus[], limit: number): Promise<BatchRecord[]> {
    if (statuses.length === 0 || limit <= 0) return [];
    return this.#sql.batchesIn.all({ statuses: JSON.stringify(statuses), limit: Math.floor(limit) }).map(toBatch);
  }
}

function toBatch(r: BatchRow): BatchRecord {
  return rowToBatch(r, JSON.parse);
}
