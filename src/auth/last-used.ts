/**
 * A key's last-used time (`last_used_at` in the admin API): written after a request settles, at
 * most once per `intervalMs` per key, off the hot path. A failed write is logged, never retried.
 */
import type { Logger } from '../observability/logger.js';
import type { Records } from '../storage/types.js';

export class LastUsed {
  private readonly lastTouched = new Map<string, number>();

  constructor(
    private readonly records: Pick<Records, 'touchKey'>,
    private readonly log: Pick<Logger, 'warn'>,
    private readonly intervalMs = 60_000,
  ) {}

  touch(keyId: string, now: number): void {
    if (now - (this.lastTouched.get(keyId) ?? 0) < this.intervalMs) return;
    if (this.lastTouched.size > 100_000) this.lastTouched.clear();
    this.lastTouched.set(keyId, now);
    this.records.touchKey(keyId, now).catch((err: unknown) => this.log.warn({ err, keyId }, 'could not record key use'));
  }
}
