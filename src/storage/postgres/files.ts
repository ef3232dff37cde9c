/**
 * `FileStore` on PostgreSQL (tables `files`, `file_chunks` and `batches`, migrations 7 and 9),
 * with the semantics of `SqliteFileStore` (same contract suite). A file's bytes are rows of
 * `file_chunks` (1 MiB each), written in the transaction that inserts the file's row (a reader
 * sees all of them or none) and deleted by the statement that deletes it: postgres.js sends a
 * bytea parameter as hex text, so one value per file would take three times the file's size in
 * memory, and a spooled upload is read from disk a chunk at a time. Space of deleted chunks is
 * reused after autovacuum. Listings are newest first by (created_at, id); the cursor is the last item's
 * id. `updateBatch` locks the batch's row only when its status is one of `from` (`FOR UPDATE`
 * re-checks the status on the latest version), so of two processes moving a batch from the same
 * status only one wins. Times come from the caller, never the server's clock.
 */
import { createReadStream } from 'node:fs';
import type { BatchRecord, BatchStatus, FileContent, FilePurpose, FileRecord, FileStore } from '../../jobs/types.js';
import type { Queryable, Sql } from './database.js';

/** Bytes per `file_chunks` row. */
const CHUNK_BYTES = 1024 * 1024;

/** int8 arrive as numbers (database.ts); JSON columns parsed (postgres.js). */
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
  errors: BatchRecord['errors'];
  request_total: number;
  request_completed: number;
  request_failed: number;
  metadata: Record<string, string>;
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

export class PostgresFileStore implements FileStore {
  readonly #sql: Sql;

  /** Uses a pool opened by `openPostgres` and migrated by `migratePostgres`; does not end it. */
  constructor(sql: Sql) {
    this.#sql = sql;
  }

  async putFile(f: FileRecord, content: FileContent): Promise<void> {
    await this.#sql.begin(async (tx) => {
      await tx`
        INSERT INTO files (id, tenant_id, purpose, filename, bytes, created_at, expires_at)
        VALUES (${f.id}, ${f.tenantId}, ${f.purpose}, ${f.filename}, ${f.bytes}, ${f.createdAt}, ${f.expiresAt})`;
      let seq = 0;
      const put = (data: Buffer) => tx`INSERT INTO file_chunks (file_id, seq, data) VALUES (${f.id}, ${seq++}, ${data})`;
      if (Buffer.isBuffer(content)) {
        for (let at = 0; at < content.length; at += CHUNK_BYTES) await put(content.subarray(at, at + CHUNK_BYTES));
      } else {
        for await (const chunk of createReadStream(content.path, { highWaterMark: CHUNK_BYTES })) await put(chunk as Buffer);
      }
    });
  }

  async getFile(id: string, tenantId: string): Promise<FileRecord | undefined> {
    const [row] = await this.#sql<FileRow[]>`
      SELECT id, tenant_id, purpose, filename, bytes, created_at, expires_at FROM files
      WHERE id = ${id} AND tenant_id = ${tenantId}`;
    return row ? toFile(row) : undefined;
  }

  async getContent(id: string, tenantId: string): Promise<Buffer | undefined> {
    // No row: no such file; one row with no data: an empty file.
    const rows = await this.#sql<{ data: Buffer | null }[]>`
      SELECT c.data FROM files f LEFT JOIN file_chunks c ON c.file_id = f.id
      WHERE f.id = ${id} AND f.tenant_id = ${tenantId}
      ORDER BY c.seq`;
    if (rows.length === 0) return undefined;
    return Buffer.concat(rows.flatMap((r) => (r.data ? [r.data] : [])));
  }

  async listFiles(tenantId: string, opts: { purpose?: FilePurpose; after?: string; limit: number }): Promise<{ data: FileRecord[]; hasMore: boolean }> {
    const sql = this.#sql;
    const limit = clampLimit(opts.limit);
    const rows = await sql<FileRow[]>`
      SELECT id, tenant_id, purpose, filename, bytes, created_at, expires_at FROM files
      WHERE tenant_id = ${tenantId}
        ${opts.purpose !== undefined ? sql`AND purpose = ${opts.purpose}` : sql``}
        ${
          opts.after !== undefined
            ? sql`AND (created_at, id) < (SELECT a.created_at, a.id FROM files a WHERE a.id = ${opts.after} AND a.tenant_id = ${tenantId})`
            : sql``
        }
      ORDER BY created_at DESC, id DESC
      LIMIT ${limit + 1}`;
    return { data: rows.slice(0, limit).map(toFile), hasMore: rows.length > limit };
  }

  async deleteFile(id: string, tenantId: string): Promise<boolean> {
    const [row] = await this.#sql<{ n: number }[]>`
      WITH gone AS (DELETE FROM files WHERE id = ${id} AND tenant_id = ${tenantId} RETURNING id),
        chunks AS (DELETE FROM file_chunks WHERE file_id IN (SELECT id FROM gone))
      SELECT COUNT(*)::int AS n FROM gone`;
    return row!.n === 1;
  }

  async deleteExpiredFiles(now: number): Promise<number> {
    const [row] = await this.#sql<{ n: number }[]>`
      WITH gone AS (DELETE FROM files WHERE expires_at IS NOT NULL AND expires_at <= ${now} RETURNING id),
        chunks AS (DELETE FROM file_chunks WHERE file_id IN (SELECT id FROM gone))
      SELECT COUNT(*)::int AS n FROM gone`;
    return row!.n;
  }

  async createBatch(b: BatchRecord): Promise<void> {
    const r = toBatchRow(b);
    await this.#sql`
      INSERT INTO batches (id, tenant_id, key_id, endpoint, input_file_id, completion_window, status, output_file_id,
        error_file_id, errors, request_total, request_completed, request_failed, metadata, created_at, in_progress_at,
        expires_at, finalizing_at, completed_at, failed_at, expired_at, cancelling_at, cancelled_at)
      VALUES (${r.id}, ${r.tenant_id}, ${r.key_id}, ${r.endpoint}, ${r.input_file_id}, ${r.completion_window}, ${r.status},
        ${r.output_file_id}, ${r.error_file_id}, ${JSON.stringify(r.errors)}::text::json, ${r.request_total},
        ${r.request_completed}, ${r.request_failed}, ${JSON.stringify(r.metadata)}::text::json, ${r.created_at},
        ${r.in_progress_at}, ${r.expires_at}, ${r.finalizing_at}, ${r.completed_at}, ${r.failed_at}, ${r.expired_at},
        ${r.cancelling_at}, ${r.cancelled_at})`;
  }

  async getBatch(id: string, tenantId?: string): Promise<BatchRecord | undefined> {
    const sql = this.#sql;
    const [row] = await sql<BatchRow[]>`
      SELECT * FROM batches WHERE id = ${id} ${tenantId !== undefined ? sql`AND tenant_id = ${tenantId}` : sql``}`;
    return row ? toBatch(row) : undefined;
  }

  async listBatches(tenantId: string, opts: { after?: string; limit: number }): Promise<{ data: BatchRecord[]; hasMore: boolean }> {
    const sql = this.#sql;
    const limit = clampLimit(opts.limit);
    const rows = await sql<BatchRow[]>`
      SELECT * FROM batches
      WHERE tenant_id = ${tenantId}
        ${
          opts.after !== undefined
            ? sql`AND (created_at, id) < (SELECT a.created_at, a.id FROM batches a WHERE a.id = ${opts.after} AND a.tenant_id = ${tenantId})`
            : sql``
        }
      ORDER BY created_at DESC, id DESC
      LIMIT ${limit + 1}`;
    return { data: rows.slice(0, limit).map(toBatch), hasMore: rows.length > limit };
  }

  async updateBatch(
    id: string,
    from: readonly BatchStatus[],
    patch: Partial<Omit<BatchRecord, 'id' | 'tenantId'>>,
  ): Promise<BatchRecord | undefined> {
    if (from.length === 0) return undefined;
    return this.#sql.begin(async (tx) => {
      const [row] = await tx<BatchRow[]>`
        SELECT * FROM batches WHERE id = ${id} AND status = ANY(${[...from]}::text[]) FOR UPDATE`;
      if (!row) return undefined;
      const current = toBatch(row);
      const next = toBatchRow({ ...current, ...definedPatch(patch), id: current.id, tenantId: current.tenantId });
      const [written] = await writeBatch(tx, next);
      return toBatch(written!);
    });
  }

  async batchesIn(statuses: readonly BatchStatus[], limit: number): Promise<BatchRecord[]> {
    if (statuses.length === 0 || limit <= 0) return [];
    const rows = await this.#sql<BatchRow[]>`
      SELECT * FROM batches WHERE status = ANY(${[...statuses]}::text[])
      ORDER BY created_at, id
      LIMIT ${Math.floor(limit)}`;
    return rows.map(toBatch);
  }
}

function writeBatch(tx: Queryable, r: BatchRow) {
  return tx<BatchRow[]>`
    UPDATE batches SET key_id = ${r.key_id}, endpoint = ${r.endpoint}, input_file_id = ${r.input_file_id},
      completion_window = ${r.completion_window}, status = ${r.status}, output_file_id = ${r.output_file_id},
      error_file_id = ${r.error_file_id}, errors = ${JSON.stringify(r.errors)}::text::json,
      request_total = ${r.request_total}, request_completed = ${r.request_completed}, request_failed = ${r.request_failed},
      metadata = ${JSON.stringify(r.metadata)}::text::json, created_at = ${r.created_at}, in_progress_at = ${r.in_progress_at},
      expires_at = ${r.expires_at}, finalizing_at = ${r.finalizing_at}, completed_at = ${r.completed_at},
      failed_at = ${r.failed_at}, expired_at = ${r.expired_at}, cancelling_at = ${r.cancelling_at},
      cancelled_at = ${r.cancelled_at}
    WHERE id = ${r.id}
    RETURNING *`;
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
    errors: b.errors,
    request_total: b.requestCounts.total,
    request_completed: b.requestCounts.completed,
    request_failed: b.requestCounts.failed,
    metadata: b.metadata,
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
    errors: r.errors,
    requestCounts: { total: r.request_total, completed: r.request_completed, failed: r.request_failed },
    metadata: r.metadata,
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
