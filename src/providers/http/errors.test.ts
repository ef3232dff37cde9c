import { describe, expect, it } from 'vitest';
import { UpstreamError } from '../types.js';
import { abortError, extractErrorMessage, httpStatusError, toUpstreamError } from './errors.js';

describe('extractErrorMessage', () => {
  it('reads OpenAI, Anthropic and plain-string error bodies', () => {
    expect(extractErrorMessage('{"error":{"message":"Rate limit reached","type":"requests"}}')).toBe('Rate limit reached');
    expect(extractErrorMessage('{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}')).toBe('Overloaded');
    expect(extractErrorMessage('{"error":"model \\"x\\" not found"}')).toBe('model "x" not found');
    expect(extractErrorMessage('{"message":"bad"}')).toBe('bad');
  });

  it('falls back to the raw text and truncates to 500 characters', () => {
    expect(extractErrorMessage('  <html>Bad Gateway</html>\n')).toBe('<html>Bad Gateway</html>');
    const long = extractErrorMessage('x'.repeat(5000));
    expect(long).toHaveLength(500);
    expect(extractErrorMessage('')).toBeUndefined();
  });
});

describe('httpStatusError', () => {
  it('carries status, Retry-After and the upstream message', () => {
    const err = httpStatusError(429, { 'retry-after': '3' }, '{"error":{"message":"slow down"}}');
    expect(err).toBeInstanceOf(UpstreamError);
    expect(err.kind).toBe('http');
    expect(err.status).toBe(429);
    expect(err.retryAfterMs).toBe(3000);
    expect(err.upstreamMessage).toBe('slow down');
    expect(err.retryable).toBe(true);
    expect(httpStatusError(503, { 'retry-after-ms': '250', 'retry-after': '9' }, '').retryAfterMs).toBe(250);
  });
});

describe('toUpstreamError', () => {
  const live = new AbortController().signal;

  it('maps socket failures to connection and keeps UpstreamErrors', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    expect(toUpstreamError(refused, live, 'request').kind).toBe('connection');
    const wrapped = Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' });
    const mid = toUpstreamError(wrapped, live, 'stream');
    expect(mid.kind).toBe('connection');
    expect(mid.phase).toBe('stream');
    const own = new UpstreamError('protocol', 'x');
    expect(toUpstreamError(own, live, 'request')).toBe(own);
  });

  it('reports an aborted signal as its UpstreamError reason, else as aborted', () => {
    const timeout = new UpstreamError('timeout', 'attempt timed out');
    const a = new AbortController();
    a.abort(timeout);
    expect(toUpstreamError(new Error('whatever undici threw'), a.signal, 'request')).toBe(timeout);
    const b = new AbortController();
    b.abort();
    const err = abortError(b.signal, 'stream');
    expect(err.kind).toBe('aborted');
    expect(err.phase).toBe('stream');
    expect(err.retryable).toBe(false);
  });
});
