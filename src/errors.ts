/**
 * The one list of errors. Every error the gateway can answer with is declared here with its
 * HTTP status and the OpenAI error `type`; it is thrown anywhere as a {@link GatewayError} and
 * rendered once, by src/http/error-handler.ts (OpenAI envelope on /v1, RFC 7807 on /admin).
 */

export interface ErrorSpec {
  status: number;
  /** OpenAI's `error.type`. */
  type: string;
}

export const ERROR_CODES = {
  invalid_json: { status: 400, type: 'invalid_request_error' },
  invalid_request: { status: 400, type: 'invalid_request_error' },
  missing_field: { status: 400, type: 'invalid_request_error' },
  invalid_type: { status: 400, type: 'invalid_request_error' },
  invalid_value: { status: 400, type: 'invalid_request_error' },
  unsupported_media_type: { status: 415, type: 'invalid_request_error' },
  invalid_api_key: { status: 401, type: 'invalid_request_error' },
  missing_api_key: { status: 401, type: 'invalid_request_error' },
  expired_api_key: { status: 401, type: 'invalid_request_error' },
  revoked_api_key: { status: 401, type: 'invalid_request_error' },
  model_not_allowed: { status: 403, type: 'permission_error' },
  admin_required: { status: 403, type: 'permission_error' },
  /** A kill switch (global, tenant or key) refuses the request. */
  access_disabled: { status: 403, type: 'permission_error' },
  not_found: { status: 404, type: 'invalid_request_error' },
  model_not_found: { status: 404, type: 'invalid_request_error' },
  route_not_found: { status: 404, type: 'invalid_request_error' },
  method_not_allowed: { status: 405, type: 'invalid_request_error' },
  /** A request body that stopped arriving, or took too long (uploads: jobs.batch.uploadIdleTimeoutMs / uploadTimeoutMs). */
  request_timeout: { status: 408, type: 'invalid_request_error' },
  conflict: { status: 409, type: 'invalid_request_error' },
  idempotency_key_in_progress: { status: 409, type: 'invalid_request_error' },
  body_too_large: { status: 413, type: 'invalid_request_error' },
  unprocessable: { status: 422, type: 'invalid_request_error' },
  idempotency_key_reused: { status: 422, type: 'invalid_request_error' },
  budget_exceeded: { status: 402, type: 'insufficient_quota' },
  /** The tenant keeps as much as a `quotas` setting allows (files, jobs, feedback): 402 like a budget, retrying cannot help. */
  storage_quota_exceeded: { status: 402, type: 'insufficient_quota' },
  rate_limit_exceeded: { status: 429, type: 'rate_limit_error' },
  /** The key or end user is throttled by the abuse detector (src/observability/abuse.ts). */
  abuse_throttled: { status: 429, type: 'rate_limit_error' },
  upstream_rate_limited: { status: 429, type: 'rate_limit_error' },
  /** Too many uploads in progress (jobs.batch.maxConcurrentUploadsPerKey / maxConcurrentUploads); Retry-After. */
  too_many_uploads: { status: 429, type: 'rate_limit_error' },
  internal_error: { status: 500, type: 'server_error' },
  upstream_error: { status: 502, type: 'server_error' },
  upstream_unavailable: { status: 503, type: 'server_error' },
  circuit_open: { status: 503, type: 'server_error' },
  /** A kill switch on the model, or on every provider of its chain, refuses the request. */
  model_disabled: { status: 503, type: 'server_error' },
  upstream_timeout: { status: 504, type: 'server_error' },
  shutting_down: { status: 503, type: 'server_error' },
  budget_unavailable: { status: 503, type: 'server_error' },
  storage_unavailable: { status: 503, type: 'server_error' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface GatewayErrorOptions {
  /** The request field the error is about, e.g. `messages[0].role`. */
  param?: string | null;
  /** Extra response headers (e.g. Retry-After). */
  headers?: Record<string, string>;
  cause?: unknown;
  /** Overrides the status of the code (e.g. an upstream 4xx passed through). */
  status?: number;
}

/** An error the gateway answers with. `message` is shown to the client: never put secrets in it. */
export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly type: string;
  readonly param: string | null;
  readonly headers: Record<string, string>;

  constructor(code: ErrorCode, message: string, opts: GatewayErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'GatewayError';
    this.code = code;
    this.status = opts.status ?? ERROR_CODES[code].status;
    this.type = ERROR_CODES[code].type;
    this.param = opts.param ?? null;
    this.headers = opts.headers ?? {};
  }
}

export function isGatewayError(err: unknown): err is GatewayError {
  return err instanceof GatewayError;
}

/** The OpenAI error envelope. */
export function toOpenAIErrorBody(err: GatewayError): {
  error: { message: string; type: string; param: string | null; code: string };
} {
  return { error: { message: err.message, type: err.type, param: err.param, code: err.code } };
}

/** RFC 7807 problem details, for the admin API. */
export function toProblemBody(err: GatewayError, instance?: string): Record<string, unknown> {
  return {
    type: `https://tollgate.dev/problems/${err.code}`,
    title: err.code.replace(/_/g, ' '),
    status: err.status,
    detail: err.message,
    ...(err.param ? { param: err.param } : {}),
    ...(instance ? { instance } : {}),
  };
}
