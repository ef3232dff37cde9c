/**
 * Renders every error once: OpenAI's envelope on /v1 (and everything else), RFC 7807
 * problem+json on /admin. Fastify's own errors (bad JSON, body too large, schema validation,
 * wrong content type) are translated to GatewayErrors that name the field or the limit (schema
 * failures by src/wire/validation-error.ts). Anything unexpected becomes a 500 with the request
 * id, logged, never a crash.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError, isGatewayError, toOpenAIErrorBody, toProblemBody } from '../errors.js';
import { type AjvError, validationError } from '../wire/validation-error.js';

/** Maps Fastify's framework errors to the gateway's error list. */
export function toGatewayError(err: FastifyError | Error, bodyLimitBytes: number): GatewayError | undefined {
  if (isGatewayError(err)) return err;
  const fe = err as FastifyError & { validation?: AjvError[] };
  if (fe.validation) return validationError(fe.validation, bodyLimitBytes);
  switch (fe.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new GatewayError('body_too_large', `Request body is larger than the limit of ${bodyLimitBytes} bytes.`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new GatewayError('unsupported_media_type', "Unsupported Content-Type: send 'application/json'.");
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new GatewayError('invalid_json', 'The request body is empty; expected a JSON object.');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new GatewayError('invalid_request', 'Content-Length does not match the body.');
  }
  if (err instanceof SyntaxError || fe.code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
    return new GatewayError('invalid_json', `We could not parse the JSON body of your request: ${err.message}.`);
  }
  if (fe.statusCode === 400 && /proto/i.test(err.message)) {
    return new GatewayError('invalid_json', 'The JSON body contains a forbidden __proto__ or constructor key.');
  }
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return new GatewayError('invalid_request', err.message, { status: fe.statusCode });
  }
  if (isDatabaseBusy(err)) {
    return new GatewayError('storage_unavailable', 'The database is busy: another connection held its lock longer than storage.busyTimeoutMs. Retry shortly.', {
      headers: { 'retry-after': '1' },
    });
  }
  return undefined;
}

/**
 * SQLite's "database is locked" (SQLITE_BUSY*, SQLITE_LOCKED*), however deep in `cause`: the
 * embedded store waited its busy timeout for another connection's lock in vain. A 503 the client
 * may retry, not a 500: nothing is wrong with the request or the gateway.
 */
export function isDatabaseBusy(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^SQLITE_(BUSY|LOCKED)/.test(code)) return true;
  }
  return false;
}

export function isAdminUrl(url: string): boolean {
  return url.startsWith('/admin/');
}

export function sendGatewayError(request: FastifyRequest, reply: FastifyReply, err: GatewayError): FastifyReply {
  reply.code(err.status).header('x-request-id', request.id);
  for (const [k, v] of Object.entries(err.headers)) reply.header(k, v);
  if (isAdminUrl(request.url)) {
    return reply.type('application/problem+json').send(JSON.stringify(toProblemBody(err, request.url)));
  }
  return reply.type('application/json; charset=utf-8').send(JSON.stringify(toOpenAIErrorBody(err)));
}

export function errorHandler(bodyLimitBytes: number) {
  return function handleError(this: unknown, err: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
    let gw = toGatewayError(err, bodyLimitBytes);
    if (!gw) {
      request.log.error({ err, reqId: request.id }, 'unhandled error');
      gw = new GatewayError('internal_error', `Internal error (request ${request.id}).`);
    }
    return sendGatewayError(request, reply, gw);
  };
}
