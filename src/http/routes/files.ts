/**
 * OpenAI's Files API, for the Batch API: POST /v1/files (multipart/form-data: `purpose` and
 * `file`), GET /v1/files, GET /v1/files/:id, GET /v1/files/:id/content, DELETE /v1/files/:id.
 * Scoped to the API key's tenant.
 *
 * An upload is checked before any byte of its body is read (onRequest): the API key (401/403,
 * answered with `Connection: close` so an anonymous client cannot make the gateway read, or wait
 * for, a body it will refuse), a Content-Length over jobs.batch.maxFileBytes (413), then the
 * UploadGuard (src/jobs/upload-guard.ts: uploads in progress per key and in total, the key's
 * request rate limit, the tenant's file quotas). The body is then read by this plugin's
 * content-type parser, after the preParsing hooks (Idempotency-Key hashes it there), and streamed
 * to a spool file on disk (src/http/multipart-upload.ts), which the FileStore takes over: memory
 * stays bounded whatever the file's size.
 */
import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Authenticator, AuthInfo } from '../../auth/authenticator.js';
import { GatewayError, isGatewayError } from '../../errors.js';
import { type BatchService, fileTooLarge } from '../../jobs/batches.js';
import type { FilePurpose } from '../../jobs/types.js';
import type { UploadGuard, UploadSlot } from '../../jobs/upload-guard.js';
import { fileObject } from '../../jobs/wire.js';
import type { KillSwitches } from '../../metering/kill-switches.js';
import { type ReceivedUpload, receiveMultipart } from '../multipart-upload.js';
import { apiCaller } from './api-caller.js';
import { listObject, pageQuery } from './lists.js';

export interface FileRoutesOptions {
  batches: BatchService;
  authenticator: Pick<Authenticator, 'authenticate'>;
  killSwitches: Pick<KillSwitches, 'checkAccess'>;
  /** jobs.batch.maxFileBytes */
  maxFileBytes: number;
  /** Caps, rate limit and quota of uploads, checked before the body is read. */
  uploads: Pick<UploadGuard, 'admit' | 'checkReceived'>;
  /** Where uploads are spooled while they arrive (created, mode 0700; stale files removed). */
  spoolDir: string;
  /** jobs.batch.uploadIdleTimeoutMs and uploadTimeoutMs: an upload that stalls or drags is ended with 408. */
  idleTimeoutMs?: number;
  timeoutMs?: number;
}

/** Room for the multipart framing and the `purpose` field around the file itself. */
const MULTIPART_OVERHEAD = 64 * 1024;
const MAX_FILENAME = 255;
const FILE_PURPOSES: readonly FilePurpose[] = ['batch', 'batch_output'];

export async function fileRoutes(app: FastifyInstance, opts: FileRoutesOptions): Promise<void> {
  const { batches, authenticator, killSwitches, maxFileBytes, uploads, spoolDir } = opts;
  const caller = (request: FastifyRequest) => apiCaller(request, authenticator, killSwitches);
  prepareSpool(spoolDir);
  const admitted = new WeakMap<FastifyRequest, { auth: AuthInfo; slot: UploadSlot; /** The spool file of the received body, removed when the exchange ends. */ spooled?: string }>();
  const unsupported = () =>
    new GatewayError('unsupported_media_type', "Unsupported Content-Type: send 'multipart/form-data' with the fields 'purpose' and 'file'.");

  // In this plugin only: multipart bodies, streamed to the spool (after the preParsing hooks), nothing else.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('multipart/form-data', async (request: FastifyRequest, payload: AsyncIterable<Buffer>) => {
    const slot = admitted.get(request)?.slot;
    if (!slot) throw unsupported(); // not the upload route
    const upload = await receiveMultipart(payload, request.headers['content-type'] ?? '', {
      spoolDir,
      maxFileBytes,
      maxBodyBytes: maxFileBytes + MULTIPART_OVERHEAD,
      tooLarge: () => fileTooLarge(maxFileBytes),
      onBuffered: (maxBufferedBytes) => slot.report({ bytes: 0, maxBufferedBytes }),
      ...(opts.idleTimeoutMs !== undefined ? { idleTimeoutMs: opts.idleTimeoutMs } : {}),
      ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
      timedOut: (why) =>
        new GatewayError(
          'request_timeout',
          why === 'idle'
            ? `The upload stopped: no bytes came for ${opts.idleTimeoutMs} ms (jobs.batch.uploadIdleTimeoutMs).`
            : `The upload took longer than ${opts.timeoutMs} ms (jobs.batch.uploadTimeoutMs).`,
        ),
    }).catch((err: unknown) => {
      throw closing(err); // refused mid-body: the rest of it is not read
    });
    slot.report({ bytes: upload.file?.bytes ?? 0, maxBufferedBytes: upload.maxBufferedBytes });
    // Removed when the exchange ends, whatever answers it (the route, an idempotency replay, a
    // validation error between parsing and the route): a spooled upload never outlives it.
    if (upload.file) admitted.get(request)!.spooled = upload.file.path;
    return upload;
  });
  // This plugin's framework errors say what this route takes; the rest go to the app's handler.
  app.setErrorHandler((err: FastifyError, _request, _reply) => {
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') throw closing(fileTooLarge(maxFileBytes));
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') throw closing(unsupported()); // its body is not read
    throw err;
  });

  /** Before any byte of the body is read: who is calling, how much they announce, whether they may upload now. */
  async function admitUpload(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    try {
      const auth = await caller(request);
      const declared = contentLength(request);
      if (declared !== undefined && declared > maxFileBytes + MULTIPART_OVERHEAD) throw fileTooLarge(maxFileBytes);
      const slot = await uploads.admit(auth, declared);
      // Given back when the exchange ends: answered, failed, or the client gone.
      const entry: { auth: AuthInfo; slot: UploadSlot; spooled?: string } = { auth, slot };
      reply.raw.once('close', () => {
        slot.release();
        if (entry.spooled) void rm(entry.spooled, { force: true }).catch(() => undefined);
      });
      admitted.set(request, entry);
    } catch (err) {
      // The body is not read: the connection must not be reused (the rest of it would follow).
      throw closing(err);
    }
  }

  app.post('/v1/files', { bodyLimit: maxFileBytes + MULTIPART_OVERHEAD, onRequest: admitUpload }, async (request, reply) => {
    const { auth } = admitted.get(request)!;
    const upload = request.body as ReceivedUpload | undefined;
    if (!upload || !(upload.fields instanceof Map)) throw unsupported();
    try {
      if (!upload.file) throw new GatewayError('missing_field', "Missing required parameter: 'file'.", { param: 'file' });
      const filename = basename(upload.file.filename ?? 'file').slice(0, MAX_FILENAME) || 'file';
      await uploads.checkReceived(auth, upload.file.bytes);
      const record = await batches.uploadFile(auth, {
        purpose: upload.fields.get('purpose'),
        filename,
        content: { path: upload.file.path },
        bytes: upload.file.bytes,
      });
      reply.header('x-request-id', request.id);
      return fileObject(record);
    } finally {
      if (upload.file) await rm(upload.file.path, { force: true }); // moved by the store, or refused
    }
  });

  app.get('/v1/files', async (request, reply) => {
    const auth = await caller(request);
    const { after, limit } = pageQuery(request.query);
    const purpose = (request.query as Record<string, unknown>)['purpose'];
    if (purpose !== undefined && !FILE_PURPOSES.includes(purpose as FilePurpose)) {
      throw new GatewayError('invalid_value', `Invalid value for 'purpose': must be one of ${FILE_PURPOSES.map((p) => `'${p}'`).join(', ')}.`, {
        param: 'purpose',
      });
    }
    const page = await batches.listFiles(auth, { purpose: purpose as FilePurpose | undefined, after, limit });
    reply.header('x-request-id', request.id);
    return listObject(page, fileObject);
  });

  app.get<{ Params: { id: string } }>('/v1/files/:id', async (request, reply) => {
    const auth = await caller(request);
    const file = await batches.getFile(auth, request.params.id);
    reply.header('x-request-id', request.id);
    return fileObject(file);
  });

  app.get<{ Params: { id: string } }>('/v1/files/:id/content', async (request, reply: FastifyReply) => {
    const auth = await caller(request);
    const { file, content } = await batches.fileContent(auth, request.params.id);
    reply
      .header('x-request-id', request.id)
      .header('content-disposition', `attachment; filename="${file.filename.replace(/[^\x20-\x7e]|["\\]/g, '_')}"`)
      .type(file.filename.endsWith('.jsonl') ? 'application/jsonl' : 'application/octet-stream');
    return reply.send(content);
  });

  app.delete<{ Params: { id: string } }>('/v1/files/:id', async (request, reply) => {
    const auth = await caller(request);
    await batches.deleteFile(auth, request.params.id);
    reply.header('x-request-id', request.id);
    return { id: request.params.id, object: 'file', deleted: true };
  });
}

/** The Content-Length header as a number; undefined when absent or not a plain number. */
function contentLength(request: FastifyRequest): number | undefined {
  const value = request.headers['content-length'];
  return typeof value === 'string' && /^\d{1,16}$/.test(value) ? Number(value) : undefined;
}

/** The error with `Connection: close`: answered before its body was read whole. */
function closing<T>(err: T): T {
  if (isGatewayError(err)) err.headers['connection'] = 'close';
  return err;
}

/** Creates the spool folder; removes spool files a day old (an upload cut short by a crash). */
function prepareSpool(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const cutoff = Date.now() - 24 * 3_600_000;
  for (const name of readdirSync(dir)) {
    if (!name.endsWith('.part')) continue;
    const path = join(dir, name);
    try {
      if (statSync(path).mtimeMs < cutoff) rmSync(path, { force: true });
    } catch {
      /* gone meanwhile */
    }
  }
}

function basename(name: string): string {
  return name.split(/[\\/]/).pop() ?? name;
}
