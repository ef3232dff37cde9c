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
import { type BatchPatch, type BatchRow, type FileRow, batchToRow, patchBatch, rowToBatch, rowToFile } from '../file-rows.js';
import { clampLimit, toPage } from '../paging.js';
import { PostgresAdapter, type Queryable, type Sql } from './database.js';

/** Bytes per `file_chunks` row. */
const CHUNK_BYTES = 1024 * 1024;

export class PostgresFileStore extends PostgresAdapter implements FileStore {
  async putFile(f: FileRecord, content: FileContent): Promise<void> {
    await this.sql.begin(async (tx) => {
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
    const [row] = await this.sql<FileRow[]>`
      SELECT id, tenant_id, purpose, filename, bytes, created_at, expires_at FROM files
      WHERE id = ${id} AND tenant_id = ${tenantId}`;
    return row ? rowToFile(row) : undefined;
  }

  async getContent(id: string, tenantId: string): Promise<Buffer | undefined> {
    // No row: no such file; one row with no data: an empty file.
    const rows = await this.sql<{ data: Buffer | null }[]>`
      SELECT c.data FROM files f LEFT JOIN file_chunks c ON c.file_id = f.id
      WHERE f.id = ${id} AND f.tenant_id = ${tenantId}
      ORDER BY c.seq`;
    if (rows.length === 0) return undefined;
    return Buffer.concat(rows.flatMap((r) => (r.data ? [r.data] : [])));
  }

  async listFiles(tenantId: string, opts: { purpose?: FilePurpose; after?: string; limit: number }): Promise<{ data: FileRecord[]; hasMore: boolean }> {
    const sql = this.sql;
    const limit = clampLimit(opts.limit);
    const rows = await sql<FileRow[]>`
      SELECT id, tenant_id, purpose, filename, bytes, created_at, expires_at FROM files
      WHERE tenant_id = ${tenantId}
        ${opts.purpose !== undefined ? sql`AND purpose = ${opts.purpose}` : sql``}
        ${createdBefore(sql, 'files', tenantId, opts.after)}
      ORDER BY created_at DESC, id DESC
      LIMIT ${limit + 1}`;
    return toPage(rows, limit, rowToFile);
  }

  async deleteFile(id: string, tenantId: string): Promise<boolean> {
    const [row] = await this.sql<{ n: number }[]>`
      WITH gone AS (DELETE FROM files WHERE id = ${id} AND tenant_id = ${tenantId} RETURNING id),
        chunks AS (DELETE FROM file_chunks WHERE file_id IN (SELECT id FROM gone))
      SELECT COUNT(*)::int AS n FROM gone`;
    return row!.n === 1;
  }

  async deleteExpiredFiles(now: number): Promise<number> {
    const [row] = await this.sql<{ n: number }[]>`
      WITH gone AS (DELETE FROM files WHERE expires_at IS NOT NULL AND expires_at <= ${now} RETURNING id),
        chunks AS (DELETE FROM file_chunks WHERE file_id IN (SELECT id FROM gone))
      SELECT COUNT(*)::int AS n FROM gone`;
    return row!.n;
  }

  async createBatch(b: BatchRecord): Promise<void> {
    const r = batchToRow(b);
    await this.sql`
      INSERT INTO batches (id, tenant_id, key_id, endpoint, input_file_id, completion_window, status, output_file_id,
        error_file_id, errors, request_total, request_completed, request_failed, metadata, created_at, in_progress_at,
        expires_at, finalizing_at, completed_at, failed_at, expired_at, cancelling_at, cancelled_at)
      VALUES (${r.id}, ${r.tenant_id}, ${r.key_id}, ${r.endpoint}, ${r.input_file_id}, ${r.completion_window}, ${r.status},
        ${r.output_file_id}, ${r.error_file_id}, ${r.errors}::text::json, ${r.request_total},
        ${r.request_completed}, ${r.request_failed}, ${r.metadata}::text::json, ${r.created_at},
        ${r.in_progress_at}, ${r.expires_at}, ${r.finalizing_at}, ${r.completed_at}, ${r.failed_at}, ${r.expired_at},
        ${r.cancelling_at}, ${r.cancelled_at})`;
  }

  async getBatch(id: string, tenantId?: string): Promise<BatchRecord | undefined> {
    const sql = this.sql;
    const [row] = await sql<BatchRow<unknown>[]>`
      SELECT * FROM batches WHERE id = ${id} ${tenantId !== undefined ? sql`AND tenant_id = ${tenantId}` : sql``}`;
    return row ? toBatch(row) : undefined;
  }

  async listBatches(tenantId: string, opts: { after?: string; limit: number }): Promise<{ data: BatchRecord[]; hasMore: boolean }> {
    const sql = this.sql;
    const limit = clampLimit(opts.limit);
    const rows = await sql<BatchRow<unknown>[]>`
      SELECT * FROM batches
      WHERE tenant_id = ${tenantId}
        ${createdBefore(sql, 'batches', tenantId, opts.after)}
      ORDER BY created_at DESC, id DESC
      LIMIT ${limit + 1}`;
    return toPage(rows, limit, toBatch);
  }

  async updateBatch(id: string, from: readonly BatchStatus[], patch: BatchPatch): Promise<BatchRecord | undefined> {
    if (from.length === 0) return undefined;
    return this.sql.begin(async (tx) => {
      const [row] = await tx<BatchRow<unknown>[]>`
        SELECT * FROM batches WHERE id = ${id} AND status = ANY(${[...from]}::text[]) FOR UPDATE`;
      if (!row) return undefined;
      const [written] = await writeBatch(tx, batchToRow(patchBatch(toBatch(row), patch)));
      return toBatch(written!);
    });
  }

  async batchesIn(statuses: readonly BatchStatus[], limit: number): Promise<BatchRecord[]> {
    if (statuses.length === 0 || limit <= 0) return [];
    const rows = await this.sql<BatchRow<unknown>[]>`
      SELECT * FROM batches WHERE status = ANY(${[...statuses]}::text[])
      ORDER BY created_at, id
      LIMIT ${Math.floor(limit)}`;
    return rows.map(toBatch);
  }
}

/** A listing's cursor: rows before the tenant's row `after` in (created_at, id) order (none after an unknown id). */
function createdBefore(sql: Sql, table: 'files' | 'batches', tenantId: string, after: string | undefined) {
  return after === undefined
    ? sql``
    : sql`AND (created_at, id) < (SELECT a.created_at, a.id FROM ${sql(table)} a WHERE a.id = ${after} AND a.tenant_id = ${tenantId})`;
}

function writeBatch(tx: Queryable, r: BatchRow<string>) {
  return tx<BatchRow<unknown>[]>`
    UPDATE batches SET key_id = ${r.key_id}, endpoint = ${r.endpoint}, input_file_id = ${r.input_file_id},
      completion_window = ${r.completion_window}, status = ${r.status}, output_file_id = ${r.output_file_id},
      error_file_id = ${r.error_file_id}, errors = ${r.errors}::text::json,
      request_total = ${r.request_total}, request_completed = ${r.request_completed}, request_failed = ${r.request_failed},
      metadata = ${r.metadata}::text::json, created_at = ${r.created_at}, in_progress_at = ${r.in_progress_at},
      expires_at = ${r.expires_at}, finalizing_at = ${r.finalizing_at}, completed_at = ${r.completed_at},
      failed_at = ${r.failed_at}, expired_at = ${r.expired_at}, cancelling_at = ${r.cancelling_at},
      cancelled_at = ${r.cancelled_at}
    WHERE id = ${r.id}
    RETURNING *`;
}

/** JSON columns arrive parsed (postgres.js). */
function toBatch(r: BatchRow<unknown>): BatchRecord {
  return rowToBatch(r, (v) => v);
}
