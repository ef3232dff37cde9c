/**
 * OpenAI's Files API, for the Batch API: POST /v1/files (multipart/form-data: `purpose` and
 * `file`), GET /v1/files, GET /v1/files/:id, GET /v1/files/:id/content, DELETE /v1/files/:id.
 * Scoped to the API key's tenant.
 *
 * The upload is read whole by a content-type parser of this plugin only (so its size limit,
 * jobs.batch.maxFileBytes, is this route's: every other route keeps server.bodyLimitBytes), then
 * split into its parts here. It is not streamed by a multipart plugin reading the socket: the
 * body must pass through the preParsing hooks like any other (Idempotency-Key hashes it there,
 * and the official SDKs send that header on every POST), and a file is stored as one Buffer
 * anyway.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Authenticator, AuthInfo } from '../../auth/authenticator.js';
import { extractKey } from '../../auth/keys.js';
import { GatewayError } from '../../errors.js';
import { type BatchService, fileObject, fileTooLarge } from '../../jobs/batches.js';
import type { FilePurpose } from '../../jobs/types.js';
import type { KillSwitches } from '../../metering/kill-switches.js';

export interface FileRoutesOptions {
  batches: BatchService;
  authenticator: Pick<Authenticator, 'authenticate'>;
  killSwitches: Pick<KillSwitches, 'checkAccess'>;
  /** jobs.batch.maxFileBytes */
  maxFileBytes: number;
}

/** Room for the multipart framing and the `purpose` field around the file itself. */
const MULTIPART_OVERHEAD = 64 * 1024;
const MAX_FILENAME = 255;
const FILE_PURPOSES: readonly FilePurpose[] = ['batch', 'batch_output'];

/** The caller of a /v1 route: an API key (admin keys refused), not switched off. */
export async function apiCaller(
  request: FastifyRequest,
  authenticator: Pick<Authenticator, 'authenticate'>,
  killSwitches: Pick<KillSwitches, 'checkAccess'>,
): Promise<AuthInfo> {
  const auth = await authenticator.authenticate(extractKey(request.headers));
  if (auth.kind !== 'api') throw new GatewayError('invalid_api_key', 'An admin key cannot call the model API; use an API key.');
  killSwitches.checkAccess(auth);
  return auth;
}

/** A listing's `limit` (1..max) and `after` from the query string; 400 naming the field. */
export function pageQuery(query: unknown, max = 100, fallback = 20): { after: string | undefined; limit: number } {
  const q = (query ?? {}) as Record<string, unknown>;
  let limit = fallback;
  if (q['limit'] !== undefined) {
    limit = typeof q['limit'] === 'string' && /^\d+$/.test(q['limit']) ? Number(q['limit']) : NaN;
    if (!Number.isInteger(limit) || limit < 1 || limit > max) {
      throw new GatewayError('invalid_value', `Invalid value for 'limit': must be an integer from 1 to ${max}.`, { param: 'limit' });
    }
  }
  const after = q['after'];
  if (after !== undefined && (typeof after !== 'string' || after === '')) {
    throw new GatewayError('invalid_value', "Invalid value for 'after': must be an id from a previous page.", { param: 'after' });
  }
  return { after: after as string | undefined, limit };
}

export function listObject<T extends { id: string }>(page: { data: T[]; hasMore: boolean }, render: (item: T) => Record<string, unknown>) {
  return {
    object: 'list',
    data: page.data.map(render),
    first_id: page.data[0]?.id ?? null,
    last_id: page.data.at(-1)?.id ?? null,
    has_more: page.hasMore,
  };
}

export async function fileRoutes(app: FastifyInstance, opts: FileRoutesOptions): Promise<void> {
  const { batches, authenticator, killSwitches, maxFileBytes } = opts;
  const caller = (request: FastifyRequest) => apiCaller(request, authenticator, killSwitches);

  // In this plugin only: multipart bodies, read whole (after the preParsing hooks), nothing else.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('multipart/form-data', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
  // This plugin's framework errors say what this route takes; the rest go to the app's handler.
  app.setErrorHandler((err: FastifyError, _request, _reply) => {
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') throw fileTooLarge(maxFileBytes);
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      throw new GatewayError('unsupported_media_type', "Unsupported Content-Type: send 'multipart/form-data' with the fields 'purpose' and 'file'.");
    }
    throw err;
  });

  app.post('/v1/files', { bodyLimit: maxFileBytes + MULTIPART_OVERHEAD }, async (request, reply) => {
    const auth = await caller(request);
    const body = request.body;
    if (!Buffer.isBuffer(body)) {
      throw new GatewayError('unsupported_media_type', "Unsupported Content-Type: send 'multipart/form-data' with the fields 'purpose' and 'file'.");
    }
    const parts = parseMultipart(body, request.headers['content-type'] ?? '');
    const purpose = parts.find((p) => p.name === 'purpose' && p.filename === undefined);
    const files = parts.filter((p) => p.name === 'file');
    if (files.length === 0) throw new GatewayError('missing_field', "Missing required parameter: 'file'.", { param: 'file' });
    if (files.length > 1) throw new GatewayError('invalid_value', "Invalid value for 'file': send exactly one file.", { param: 'file' });
    const file = files[0]!;
    const filename = basename(file.filename ?? 'file').slice(0, MAX_FILENAME) || 'file';
    const record = await batches.uploadFile(auth, { purpose: purpose?.data.toString('utf8'), filename, content: file.data });
    reply.header('x-request-id', request.id);
    return fileObject(record);
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

// --- multipart/form-data (RFC 7578) over a body already in memory ---

export interface FormPart {
  name: string;
  /** Present on file parts. */
  filename: string | undefined;
  contentType: string | undefined;
  /** A view into the body (not a copy). */
  data: Buffer;
}

const CRLF = Buffer.from('\r\n');
const HEADER_END = Buffer.from('\r\n\r\n');

function malformed(why: string): GatewayError {
  return new GatewayError('invalid_request', `The multipart/form-data body could not be read: ${why}.`);
}

/** Splits a multipart/form-data body into its parts; 400 when it is not well formed. */
export function parseMultipart(body: Buffer, contentType: string): FormPart[] {
  const m = /;\s*boundary=(?:"([^"]{1,70})"|([^\s;]{1,70}))/i.exec(contentType);
  const boundary = m?.[1] ?? m?.[2];
  if (!boundary) throw malformed('the Content-Type header has no boundary');
  const delimiter = Buffer.from(`--${boundary}`);
  const next = Buffer.from(`\r\n--${boundary}`);
  let pos = body.indexOf(delimiter);
  if (pos < 0) throw malformed('no part starts with the boundary');
  const parts: FormPart[] = [];
  for (;;) {
    pos += delimiter.length;
    if (body[pos] === 0x2d && body[pos + 1] === 0x2d) return parts; // the closing delimiter
    while (body[pos] === 0x20 || body[pos] === 0x09) pos++; // transport padding
    if (!body.subarray(pos, pos + 2).equals(CRLF)) throw malformed('a boundary line is not followed by CRLF');
    pos += 2;
    let headerEnd: number;
    let dataStart: number;
    if (body.subarray(pos, pos + 2).equals(CRLF)) {
      headerEnd = pos; // a part without headers
      dataStart = pos + 2;
    } else {
      headerEnd = body.indexOf(HEADER_END, pos);
      if (headerEnd < 0) throw malformed("a part's headers do not end");
      dataStart = headerEnd + 4;
    }
    const end = body.indexOf(next, dataStart);
    if (end < 0) throw malformed('the body ends before the closing boundary');
    const headers = partHeaders(body.toString('utf8', pos, headerEnd));
    const disposition = headers.get('content-disposition');
    const params = disposition ? dispositionParams(disposition) : undefined;
    if (params?.name !== undefined) {
      parts.push({ name: params.name, filename: params.filename, contentType: headers.get('content-type'), data: body.subarray(dataStart, end) });
    }
    pos = end + 2; // at the next delimiter
  }
}

function partHeaders(text: string): Map<string, string> {
  const headers = new Map<string, string>();
  for (const line of text.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return headers;
}

/** `form-data; name="file"; filename="a.jsonl"` (quoted or bare values; RFC 5987 `filename*`). */
function dispositionParams(value: string): { name?: string; filename?: string } {
  const out: { name?: string; filename?: string } = {};
  const re = /;\s*([A-Za-z*]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))/g;
  for (let m = re.exec(value); m; m = re.exec(value)) {
    const key = m[1]!.toLowerCase();
    const raw = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]!.trim();
    if (key === 'name') out.name = raw;
    else if (key === 'filename' && out.filename === undefined) out.filename = raw;
    else if (key === 'filename*') {
      const ext = /^[\w-]+'[^']*'(.*)$/.exec(raw);
      try {
        out.filename = decodeURIComponent(ext?.[1] ?? raw);
      } catch {
        /* keep the plain filename */
      }
    }
  }
  return out;
}

function basename(name: string): string {
  return name.split(/[\\/]/).pop() ?? name;
}
