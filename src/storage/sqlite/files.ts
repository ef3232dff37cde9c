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
import type { Database } from './database.js';

const FILE_NAME = /^file-[0-9a-f]{24}$/;

interface FileRow {
  id: string;
  tenant_id: string;
  purpose: FilePurpose;
  filename: string;
  bytes: number;
  created_at: number;
  expires_at: number | null;
}

interface BatchRow {
  id: string;
  tenant_id: string;
  key_id: string;
  endpoint: BatchRecord['endpoint'];
  input_file_id: string;
  completion_window: string;
  status: BatchStatus;
  output_file_id: string | null;
  error_file_id: string | null;
  errors: string;
  request_total: number;
  request_completed: number;
  request_failed: number;
  metadata: string;
  created_at: number;
  in_progress_at: number | null;
  expires_at: number;
  finalizing_at: number | null;
  completed_at: number | null;
  failed_at: number | null;
  expired_at: number | null;
  cancelling_at: number | null;
  cancelled_at: number | null;
}

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
      this.#sql.putFile.run({
        id: f.id,
        tenant_id: f.tenantId,
        purpose: f.purpose,
        filename: f.filename,
        bytes: f.bytes,
        created_at: f.createdAt,
        expires_at: f.expiresAt,
      });
    } catch (err) {
      await rm(path, { force: true });
      throw err;
    }
  }

  async getFile(id: string, tenantId: string): Promise<FileRecord | undefined> {
    const row = this.#sql.getFile.get(id, tenantId);
    return row ? toFile(row) : undefined;
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
    return { data: rows.slice(0, limit).map(toFile), hasMore: rows.length > limit };
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
    this.#sql.createBatch.run(toBatchRow(b));
  }

  async getBatch(id: string, tenantId?: string): Promise<BatchRecord | undefined> {
    const row = this.#sql.getBatch.get(id);
    return row && (tenantId === undefined || row.tenant_id === tenantId) ? toBatch(row) : undefined;
  }

  async listBatches(tenantId: string, opts: { after?: string; limit: number }): Promise<{ data: BatchRecord[]; hasMore: boolean }> {
    const limit = clampLimit(opts.limit);
    const rows = this.#sql.listBatches.all({ tenant: tenantId, after: opts.after ?? null, limit: limit + 1 });
    return { data: rows.slice(0, limit).map(toBatch), hasMore: rows.length > limit };
  }

  async updateBatch(
    id: string,
    from: readonly BatchStatus[],
    patch: Partial<Omit<BatchRecord, 'id' | 'tenantId'>>,
  ): Promise<BatchRecord | undefined> {
    return this.#db.transaction(() => {
      const row = this.#sql.getBatch.get(id);
      if (!row || !from.includes(row.status)) return undefined;
      const next: BatchRecord = { ...toBatch(row), ...definedPatch(patch), id: row.id, tenantId: row.tenant_id };
      const written = toBatchRow(next);
      this.#sql.writeBatch.run(written);
      return toBatch(written);
    }).immediate();
  }

  async batchesIn(statuses: readonly BatchStatus[], limit: number): Promise<BatchRecord[]> {
    if (statuses.length === 0 || limit <= 0) return [];
    return this.#sql.batchesIn.all({ statuses: JSON.stringify(statuses), limit: Math.floor(limit) }).map(toBatch);
  }
}

function clampLimit(limit: number): number {
  return Math.min(100, Math.max(1, Math.floor(limit) || 1));
}

/** The patch members that are set (`undefined` leaves a field as it is). */
function definedPatch<T extends object>(patch: T): Partial<T> {
  return Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function toFile(r: FileRow): FileRecord {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    purpose: r.purpose,
    filename: r.filename,
    bytes: r.bytes,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
  };
}

function toBatchRow(b: BatchRecord): BatchRow {
  return {
    id: b.id,
    tenant_id: b.tenantId,
    key_id: b.keyId,
    endpoint: b.endpoint,
    input_file_id: b.inputFileId,
    completion_window: b.completionWindow,
    status: b.status,
    output_file_id: b.outputFileId,
    error_file_id: b.errorFileId,
    errors: JSON.stringify(b.errors),
    request_total: b.requestCounts.total,
    request_completed: b.requestCounts.completed,
    request_failed: b.requestCounts.failed,
    metadata: JSON.stringify(b.metadata),
    created_at: b.createdAt,
    in_progress_at: b.inProgressAt,
    expires_at: b.expiresAt,
    finalizing_at: b.finalizingAt,
    completed_at: b.completedAt,
    failed_at: b.failedAt,
    expired_at: b.expiredAt,
    cancelling_at: b.cancellingAt,
    cancelled_at: b.cancelledAt,
  };
}

function toBatch(r: BatchRow): BatchRecord {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    keyId: r.key_id,
    endpoint: r.endpoint,
    inputFileId: r.input_file_id,
    completionWindow: r.completion_window,
    status: r.status,
    outputFileId: r.output_file_id,
    errorFileId: r.error_file_id,
    errors: JSON.parse(r.errors) as BatchRecord['errors'],
    requestCounts: { total: r.request_total, completed: r.request_completed, failed: r.request_failed },
    metadata: JSON.parse(r.metadata) as Record<string, string>,
    createdAt: r.created_at,
    inProgressAt: r.in_progress_at,
    expiresAt: r.expires_at,
    finalizingAt: r.finalizing_at,
    completedAt: r.completed_at,
    failedAt: r.failed_at,
    expiredAt: r.expired_at,
    cancellingAt: r.cancelling_at,
    cancelledAt: r.cancelled_at,
  };
}
