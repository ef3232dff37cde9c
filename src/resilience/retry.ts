import type { RetryConfig } from '../config/schema.js';
import type { UpstreamError } from '../providers/types.js';
import { backoffDelay } from './backoff.js';

/**
 * What to do after a failed attempt:
 *  - `retry`: the same deployment again, after `delayMs`;
 *  - `next`: give up on this deployment and try the next one in the chain;
 *  - `fail`: stop and return the error to the client (no fallback would help).
 */
export type RetryDecision =
  | { action: 'retry'; delayMs: number }
  | { action: 'next'; reason: string }
  | { action: 'fail'; reason: string };

/**
 * Decides what follows a failed attempt on one deployment. Pure: no clock, no I/O.
 *
 * The caller still owns what this function cannot see: the request deadline (do not sleep past
 * it), whether bytes already reached the client (then nothing may be retried), and the breaker.
 *
 * @param retriesDone retries already made on this deployment (0 after the first attempt).
 * @param random injectable jitter source, see {@link backoffDelay}.
 */
export function decideRetry(
  err: UpstreamError,
  retriesDone: number,
  cfg: RetryConfig,
  random: () => number = Math.random,
): RetryDecision {
  if (err.kind === 'aborted') return { action: 'fail', reason: 'aborted by the caller' };
  if (!err.retryable) return { action: 'fail', reason: `not retryable (${describe(err)})` };
  if (retriesDone >= cfg.maxRetries) {
    return { action: 'next', reason: `retries exhausted after ${retriesDone} (${describe(err)})` };
  }
  const backoff = backoffDelay(retriesDone, cfg, random);
  if (err.retryAfterMs !== undefined) {
    if (err.retryAfterMs > cfg.maxRetryAfterMs) {
      return {
        action: 'next',
        reason: `Retry-After of ${err.retryAfterMs}ms exceeds maxRetryAfterMs ${cfg.maxRetryAfterMs}ms (${describe(err)})`,
      };
    }
    return { action: 'retry', delayMs: Math.max(err.retryAfterMs, backoff) };
  }
  return { action: 'retry', delayMs: backoff };
}

function describe(err: UpstreamError): string {
  return err.kind === 'http' ? `http ${err.status ?? 'unknown status'}` : err.kind;
}

/**
 * Waits `ms` milliseconds. Rejects with `signal.reason` as soon as `signal` aborts (also when it
 * is already aborted), clearing the timer. Resolves at once for `ms <= 0`.
 *
 * The timer is not unref'd: a pending retry is real work that should keep the process alive.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  if (!(ms > 0)) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
