/**
 * A leader lease in Redis: one process of a deployment holds it at a time (alert evaluation runs
 * only there). Taken with SET NX PX, kept by its holder with a compare-and-extend script, let go
 * on close. A holder that dies loses it after `ttlMs`; a holder cut off from Redis stops believing
 * it holds it (a failed command counts as not holding).
 */
import type { Redis } from 'ioredis';

const EXTEND = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;

export class RedisLease {
  constructor(
    private readonly redis: Redis,
    private readonly key: string,
    private readonly owner: string,
    private readonly ttlMs: number,
  ) {}

  /** Takes or extends the lease; true while this process holds it. */
  async held(): Promise<boolean> {
    try {
      if ((await this.redis.eval(EXTEND, 1, this.key, this.owner, String(this.ttlMs))) === 1) return true;
      return (await this.redis.set(this.key, this.owner, 'PX', this.ttlMs, 'NX')) === 'OK';
    } catch {
      return false;
    }
  }

  /** Lets the lease go (if held) and closes the connection. */
  async close(): Promise<void> {
    try {
      await this.redis.eval(RELEASE, 1, this.key, this.owner);
    } catch {
      // expires by itself
    }
    this.redis.disconnect();
  }
}
