/**
 * Maps transport failures to {@link UpstreamError}s, the one failure type adapters reject with.
 */
import { UpstreamError, parseRetryAfter } from '../types.js';

/** Longest upstream error message kept (they end up in logs and in passed-through 4xx bodies). */
export const MAX_UPSTREAM_MESSAGE = 500;

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EHOSTDOWN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
  'UND_ERR_DESTROYED',
]);

const PROTOCOL_CODES = new Set([
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
  'UND_ERR_RES_EXCEEDED_MAX_SIZE',
  'HPE_INVALID_CHUNK_SIZE',
  'HPE_INVALID_CONSTANT',
  'HPE_INVALID_HEADER_TOKEN',
]);

/**
 * The error to raise once `signal` has aborted: its reason when that is an UpstreamError (the
 * caller's way to say "timeout"), else a plain 'aborted' failure.
 */
export function abortError(signal: AbortSignal, phase: 'request' | 'stream' = 'request'): UpstreamError {
  const reason: unknown = signal.reason;
  if (reason instanceof UpstreamError) return reason;
  return new UpstreamError('aborted', 'request aborted', { phase, cause: reason });
}

/** The first known errno/undici code on the error or its causes (undici wraps socket errors). */
function errorCode(err: unknown): string | undefined {
  let first: string | undefined;
  for (let e: unknown = err, depth = 0; typeof e === 'object' && e !== null && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') {
      if (CONNECTION_CODES.has(code) || PROTOCOL_CODES.has(code)) return code;
      first ??= code;
    }
    e = (e as { cause?: unknown }).cause;
  }
  return first;
}

/** Normalizes any failure of an HTTP exchange. UpstreamErrors pass through unchanged. */
export function toUpstreamError(err: unknown, signal: AbortSignal, phase: 'request' | 'stream'): UpstreamError {
  if (err instanceof UpstreamError) return err;
  if (signal.aborted) return abortError(signal, phase);
  const code = errorCode(err);
  const detail = err instanceof Error ? err.message : String(err);
  if (code !== undefined && PROTOCOL_CODES.has(code)) {
    return new UpstreamError('protocol', `upstream sent a malformed response: ${detail}`, { phase, cause: err });
  }
  // Anything else that broke the exchange (known socket codes and the unexpected alike) is a
  // connection failure: the request may or may not have reached upstream.
  const what = phase === 'stream' ? 'connection to upstream lost mid-stream' : 'connection to upstream failed';
  return new UpstreamError('connection', `${what}: ${code ?? detail}`, { phase, cause: err });
}

/** Cuts an upstream message to {@link MAX_UPSTREAM_MESSAGE} characters. */
export function truncateMessage(s: string): string {
  return s.length > MAX_UPSTREAM_MESSAGE ? `${s.slice(0, MAX_UPSTREAM_MESSAGE - 1)}…` : s;
}

/**
 * The human message of an upstream error body: OpenAI `{error:{message}}`, Anthropic
 * `{type:'error',error:{message}}`, `{error:'...'}` or `{message}` (Ollama, vLLM...), else the raw
 * text. Truncated to {@link MAX_UPSTREAM_MESSAGE} characters; undefined for an empty body.
 */
export function extractErrorMessage(text: string): string | undefined {
  const trimmed = text.trim();
  if (trimmed === '') return undefined;
  if (trimmed.startsWith('{')) {
    try {
      const body = JSON.parse(trimmed) as unknown;
      if (body && typeof body === 'object') {
        const b = body as { error?: unknown; message?: unknown; detail?: unknown };
        if (typeof b.error === 'string' && b.error !== '') return truncateMessage(b.error);
        if (b.error && typeof b.error === 'object') {
          const m = (b.error as { message?: unknown }).message;
          if (typeof m === 'string' && m !== '') return truncateMessage(m);
        }
        if (typeof b.message === 'string' && b.message !== '') return truncateMessage(b.message);
        if (typeof b.detail === 'string' && b.detail !== '') return truncateMessage(b.detail);
      }
    } catch {
      // not JSON after all: fall through to the raw text
    }
  }
  return truncateMessage(trimmed);
}

/** A non-2xx answer as an UpstreamError ('http'), with Retry-After and the body's message. */
export function httpStatusError(
  status: number,
  headers: Record<string, string | string[] | undefined>,
  bodyText: string,
  phase: 'request' | 'stream' = 'request',
): UpstreamError {
  const upstreamMessage = extractErrorMessage(bodyText);
  const retryAfterMs = parseRetryAfter(headers['retry-after'], headers['retry-after-ms']);
  const message = upstreamMessage === undefined ? `upstream answered ${status}` : `upstream answered ${status}: ${upstreamMessage}`;
  return new UpstreamError('http', message, {
    status,
    phase,
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    ...(upstreamMessage === undefined ? {} : { upstreamMessage }),
  });
}
