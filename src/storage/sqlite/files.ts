/**
 * `FileStore` on the embedded SQLite database (tables `files` and `batches`, migration 7). A
 * file's bytes are a BLOB in its row (the last column, so listings never read them). Listings
 * are newest first by (created_at, id); the cursor is the last item's id. `updateBatch` reads,
 * checks the status and writes in one IMMEDIATE transaction, so of two processes moving a batch
 * from the same status only one wins. better-sqlite3 is synchronous: each method does its work at
 * once and returns a settled promise.
 */
import type { Statement } from 'better-sqlite3';
import type { BatchRecord, BatchStatus, FilePurpose, FileRecord, FileStore } from '../../jobs/types.js';
import type { Database } from './database.js';

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
    putFile: Statement<[FileRow & { content: Buffer }]>;
    getFile: Statement<[string, string], FileRow>;
    getContent: Statement<[string, string], Buffer>;
    listFiles: Statement<[ListParams], FileRow>;
    deleteFile: Statement<[string, string]>;
    deleteExpired: Statement<[number]>;
    createBatch: Statement<[BatchRow]>;
    getBatch: Statement<[string], BatchRow>;
    listBatches: Statement<[Omit<ListParams, 'purpose'>], BatchRow>;
    writeBatch: Statement<[BatchRow]>;
    batchesIn: Statement<[{ statuses: string; limit: number }], BatchRow>;
  };

  /** Uses a database opened (and migrated) by `openDatabase`; does not close it. */
  constructor(db: Database) {
    this.#db = db;
    this.#sql = {
      putFile: db.prepare(
        `INSERT INTO files (${FILE_COLUMNS}, content)
         VALUES (@id, @tenant_id, @purpose, @filename, @bytes, @created_at, @expires_at, @content)`,
      ),
      getFile: db.prepare(`SELECT ${FILE_COLUMNS} FROM files WHERE id = ? AND tenant_id = ?`),
      getContent: db.prepare('SELECT content FROM files WHERE id = ? AND tenant_id = ?').pluck() as Statement<[string, string], Buffer>,
      listFiles: db.prepare(
        `SELECT ${FILE_COLUMNS} FROM files
         WHERE tenant_id = @tenant AND (@purpose IS NULL OR purpose = @purpose)
           AND (@after IS NULL OR (created_at, id) < (SELECT a.created_at, a.id FROM files a WHERE a.id = @after AND a.tenant_id = @tenant))
         ORDER BY created_at DESC, id DESC LIMIT @limit`,
      ),
      deleteFile: db.prepare('DELETE FROM files WHERE id = ? AND tenant_id = ?'),
      deleteExpired: db.prepare('DELETE FROM files WHERE expires_at IS NOT NULL AND expires_at <= ?'),
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
  }

  async putFile(f: FileRecord, content: Buffer): Promise<void> {
    this.#sql.putFile.run({
      id: f.id,
      tenant_id: f.tenantId,
      purpose: f.purpose,
      filename: f.filename,
      bytes: f.bytes,
      created_at: f.createdAt,
      expires_at: f.expiresAt,
      content,
    });
  }

  async getFile(id: string, tenantId: string): Promise<FileRecord | undefined> {
    const row = this.#sql.getFile.get(id, tenantId);
    return row ? toFile(row) : undefined;
  }

  async getContent(id: string, tenantId: string): Promise<Buffer | undefined> {
    return this.#sql.getContent.get(id, tenantId);
  }

  async listFiles(tenantId: string, opts: { purpose?: FilePurpose; after?: string; limit: number }): Promise<{ data: FileRecord[]; hasMore: boolean }> {
    const limit = clampLimit(opts.limit);
    const rows = this.#sql.listFiles.all({ tenant: tenantId, purpose: opts.purpose ?? null, after: opts.after ?? null, limit: limit + 1 });
    return { data: rows.slice(0, limit).map(toFile), hasMore: rows.length > limit };
  }

  async deleteFile(id: string, tenantId: string): Promise<boolean> {
    return this.#sql.deleteFile.run(id, tenantId).changes === 1;
  }

  async deleteExpiredFiles(now: number): Promise<number> {
    return this.#sql.deleteExpired.run(now).changes;
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
