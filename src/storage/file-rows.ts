/**
 * What the SQL `FileStore` adapters (src/storage/{sqlite,postgres}/files.ts) share, so SQLite and
 * PostgreSQL cannot drift apart on it: the rows of `files` and `batches`, their mapping to
 * `FileRecord` and `BatchRecord` (and back, for the batch writes), and how a batch update's
 * patch applies.
 *
 * `J` is how a JSON column travels: text in SQLite both ways and in PostgreSQL's parameters
 * (encoded with JSON.stringify), already parsed in the rows PostgreSQL returns (decoded as is).
 */
import type { BatchRecord, BatchStatus, FilePurpose, FileRecord } from '../jobs/types.js';

/** A `files` row without its content (epoch ms and sizes as JS numbers in both databases). */
export interface FileRow {
  id: string;
  tenant_id: string;
  purpose: FilePurpose;
  filename: string;
  bytes: number;
  created_at: number;
  expires_at: number | null;
}

export interface BatchRow<J> {
  id: string;
  tenant_id: string;
  key_id: string;
  endpoint: BatchRecord['endpoint'];
  input_file_id: string;
  completion_window: string;
  status: BatchStatus;
  output_file_id: string | null;
  error_file_id: string | null;
  errors: J;
  request_total: number;
  request_completed: number;
  request_failed: number;
  metadata: J;
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

export function rowToFile(r: FileRow): FileRecord {
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

/** A file's row from its record (what `putFile` inserts besides the content). */
export function fileToRow(f: FileRecord): FileRow {
  return {
    id: f.id,
    tenant_id: f.tenantId,
    purpose: f.purpose,
    filename: f.filename,
    bytes: f.bytes,
    created_at: f.createdAt,
    expires_at: f.expiresAt,
  };
}

/** A batch's row, its JSON columns encoded as text. */
export function batchToRow(b: BatchRecord): BatchRow<string> {
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

export function rowToBatch<J>(r: BatchRow<J>, decode: (v: J) => unknown): BatchRecord {
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
    errors: decode(r.errors) as BatchRecord['errors'],
    requestCounts: { total: r.request_total, completed: r.request_completed, failed: r.request_failed },
    metadata: decode(r.metadata) as Record<string, string>,
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

/** What `updateBatch` may change. */
export type BatchPatch = Partial<Omit<BatchRecord, 'id' | 'tenantId'>>;

/**
 * The batch `updateBatch` writes: `current` with the patch's members that are set (`undefined`
 * leaves a field as it is); its id and tenant never change.
 */
export function patchBatch(current: BatchRecord, patch: BatchPatch): BatchRecord {
  const set = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)) as Partial<BatchRecord>;
  return { ...current, ...set, id: current.id, tenantId: current.tenantId };
}
