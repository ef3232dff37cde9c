/** Options of {@link backoffDelay}: the delay before the first retry and the ceiling. */
export interface BackoffOptions {
  baseDelayMs: number;
  maxDelayMs: number;
}

/**
 * Exponential backoff with full jitter (AWS "Exponential Backoff and Jitter"): a uniformly random
 * delay in `[0, min(maxDelayMs, baseDelayMs * 2 ** retryIndex))`. Full jitter spreads the retries
 * of many clients hit by the same failure instead of having them retry in lockstep.
 *
 * @param retryIndex 0 for the first retry, 1 for the second, ...
 * @param random a source of uniform numbers in [0, 1); injectable for tests.
 */
export function backoffDelay(
  retryIndex: number,
  opts: BackoffOptions,
  random: () => number = Math.random,
): number {
  const base = Math.max(0, opts.baseDelayMs);
  const max = Math.max(0, opts.maxDelayMs);
  if (base === 0 || max === 0) return 0;
  const index = Number.isNaN(retryIndex) ? 0 : Math.max(0, Math.floor(retryIndex));
  // 2 ** 1024 is Infinity; stop doubling as soon as the cap is reached so large indexes
  // never produce Infinity (or NaN) on the way.
  const ceiling = index >= Math.log2(max / base) ? max : Math.min(max, base * 2 ** index);
  const r = random();
  const jitter = Number.isFinite(r) ? Math.min(Math.max(r, 0), 1) : 0;
  return jitter * ceiling;
}
