import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { RetryConfig } from '../config/schema.js';
import { UpstreamError } from '../providers/types.js';
import { decideRetry, sleep } from './retry.js';

const cfg: RetryConfig = { maxRetries: 2, baseDelayMs: 100, maxDelayMs: 5_000, maxRetryAfterMs: 10_000 };
const half = () => 0.5;
const http = (status: number, retryAfterMs?: number) =>
  new UpstreamError('http', `upstream answered ${status}`, { status, retryAfterMs });

describe('decideRetry', () => {
  it.each([400, 401, 403, 404, 422])('fails at once on %i (no retry, no fallback)', (status) => {
    const d = decideRetry(http(status), 0, cfg, half);
    expect(d.action).toBe('fail');
    expect(d).toMatchObject({ reason: expect.stringContaining(String(status)) });
  });

  it('retries a 500 with full-jitter backoff growing with the retry count', () => {
    expect(decideRetry(http(500), 0, cfg, half)).toEqual({ action: 'retry', delayMs: 50 });
    expect(decideRetry(http(503), 1, cfg, half)).toEqual({ action: 'retry', delayMs: 100 });
  });

  it('retries a 429 after its Retry-After when that is longer than the backoff', () => {
    expect(decideRetry(http(429, 2_000), 0, cfg, half)).toEqual({ action: 'retry', delayMs: 2_000 });
  });

  it('retries a 429 after the backoff when that is longer than a tiny Retry-After', () => {
    expect(decideRetry(http(429, 10), 1, cfg, () => 0.999)).toEqual({ action: 'retry', delayMs: 199.8 });
  });

  it('waits exactly maxRetryAfterMs but moves on beyond it', () => {
    expect(decideRetry(http(429, 10_000), 0, cfg, half)).toEqual({ action: 'retry', delayMs: 10_000 });
    const d = decideRetry(http(429, 10_001), 0, cfg, half);
    expect(d.action).toBe('next');
    expect(d).toMatchObject({ reason: expect.stringContaining('Retry-After') });
  });

  it('retries timeouts and connection failures', () => {
    expect(decideRetry(new UpstreamError('timeout', 'attempt timed out after 10ms'), 0, cfg, half)).toEqual({
      action: 'retry',
      delayMs: 50,
    });
    expect(decideRetry(new UpstreamError('connection', 'ECONNRESET'), 0, cfg, () => 0)).toEqual({
      action: 'retry',
      delayMs: 0,
    });
  });

  it('moves to the next deployment once retries are exhausted', () => {
    expect(decideRetry(http(500), 2, cfg, half)).toMatchObject({ action: 'next' });
    expect(decideRetry(http(429, 100), 3, cfg, half)).toMatchObject({ action: 'next' });
    expect(decideRetry(http(500), 0, { ...cfg, maxRetries: 0 }, half)).toMatchObject({ action: 'next' });
  });

  it('never retries or falls back after the caller aborted', () => {
    expect(decideRetry(new UpstreamError('aborted', 'client went away'), 0, cfg, half)).toEqual({
      action: 'fail',
      reason: 'aborted by the caller',
    });
  });

  it('fails on a non-retryable error even when retries are exhausted', () => {
    expect(decideRetry(http(400), 5, cfg, half)).toMatchObject({ action: 'fail' });
  });
});

describe('sleep', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('resolves after the delay, not before', async () => {
    let done = false;
    const p = sleep(1_000).then(() => {
      done = true;
    });
    await vi.advanceTimersByTimeAsync(999);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await p;
    expect(done).toBe(true);
  });

  it('resolves at once for 0 or negative delays', async () => {
    await expect(sleep(0)).resolves.toBeUndefined();
    await expect(sleep(-5)).resolves.toBeUndefined();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('rejects with the signal reason on abort and clears its timer', async () => {
    const ac = new AbortController();
    const p = sleep(10_000, ac.signal);
    expect(vi.getTimerCount()).toBe(1);
    const reason = new UpstreamError('aborted', 'client went away');
    ac.abort(reason);
    await expect(p).rejects.toBe(reason);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('rejects at once when the signal is already aborted', async () => {
    const reason = new Error('gone');
    await expect(sleep(100, AbortSignal.abort(reason))).rejects.toBe(reason);
    expect(vi.getTimerCount()).toBe(0);
  });
});
