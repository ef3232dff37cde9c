/**
 * The Redis connection of distributed mode. Settings favour failing fast: a request must never
 * hang on a dead or unreachable Redis, it must fail and let the caller answer 503.
 *
 * - `enableOfflineQueue: false`: while disconnected, commands reject at once instead of queueing.
 * - `maxRetriesPerRequest: 1`: a command in flight when the connection drops is retried once.
 * - the client keeps reconnecting in the background (backoff up to 2 s), so service resumes by
 *   itself when Redis comes back.
 * - a Redis that is paused, overloaded or behind a partition keeps the connection open and just
 *   never answers, which none of the above notices: command clients on the request path get a
 *   deadline, ioredis `commandTimeout` (`storage.redisCommandTimeoutMs`; the counters use their
 *   own, see RedisCounters). Pub/sub connections get none (they wait for messages by design).
 *
 * Because nothing queues, a command sent before the connection is ready fails: use
 * {@link connectRedis} (or await {@link ping}) before the first command.
 */
import { Redis, type RedisOptions } from 'ioredis';

export interface CreateRedisOptions extends RedisOptions {
  /**
   * Connection errors (each failed reconnect). Default: ignored, since the commands themselves
   * reject and {@link ping} reports the state; without any listener ioredis would print each one.
   */
  onError?: (err: Error) => void;
}

/** A client connecting to `url` (`redis://[user:pass@]host:port[/db]`, `rediss://` for TLS). */
export function createRedis(url: string, opts: CreateRedisOptions = {}): Redis {
  const { onError, ...options } = opts;
  const redis = new Redis(url, {
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    connectTimeout: 2_000,
    lazyConnect: false,
    retryStrategy: (times) => Math.min(times * 100, 2_000),
    ...options,
  });
  redis.on('error', onError ?? (() => {}));
  return redis;
}

/** {@link createRedis}, then waits until it answers PING; on failure disconnects and throws. */
export async function connectRedis(url: string, opts: CreateRedisOptions & { timeoutMs?: number } = {}): Promise<Redis> {
  const { timeoutMs, ...options } = opts;
  const redis = createRedis(url, options);
  try {
    await ping(redis, timeoutMs);
    return redis;
  } catch (err) {
    redis.disconnect();
    throw err;
  }
}

/**
 * Resolves when Redis answers PING within `timeoutMs` (waiting for a connection in progress);
 * throws otherwise. The readiness check of distributed mode.
 */
export async function ping(redis: Redis, timeoutMs = 2_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  let lastError: Error | undefined;
  const onError = (err: Error) => (lastError = err);
  let onReady = () => {};
  let onEnd = () => {};
  redis.on('error', onError);
  try {
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const why = lastError ? `: ${lastError.message}` : '';
        reject(new Error(`redis did not answer within ${timeoutMs} ms (status ${redis.status})${why}`));
      }, timeoutMs);
    });
    const answer = (async () => {
      if (redis.status === 'end') throw new Error('redis connection is closed');
      if (redis.status === 'wait') redis.connect().catch(() => {});
      if (redis.status !== 'ready') {
        await new Promise<void>((resolve, reject) => {
          onReady = resolve;
          onEnd = () => reject(new Error(`redis connection closed${lastError ? `: ${lastError.message}` : ''}`));
          redis.once('ready', onReady);
          redis.once('end', onEnd);
        });
      }
      const reply = await redis.ping();
      if (reply !== 'PONG') throw new Error(`redis answered PING with ${String(reply)}`);
    })();
    answer.catch(() => {}); // settled after the deadline: nobody listens any more
    await Promise.race([answer, deadline]);
  } finally {
    clearTimeout(timer);
    redis.off('error', onError);
    redis.off('ready', onReady);
    redis.off('end', onEnd);
  }
}
