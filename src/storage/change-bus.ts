/**
 * Tells every gateway process about changes made through one of them, so caches drop stale state
 * at once: a key revoked or changed, a tenant's policy changed (the auth cache), a kill switch
 * created or lifted (the kill-switch snapshot). Embedded mode has one process: changes are
 * delivered in process. Distributed mode publishes on a Redis channel that every process
 * subscribes to. Delivery is best effort: the caches' own expiry (auth.cacheTtlMs, the kill
 * switches' refreshMs poll) still bounds staleness when a message is lost or Redis is down.
 */
import type { Redis } from 'ioredis';

export type Change =
  | { kind: 'auth'; keyId?: string | undefined }
  | { kind: 'kill-switches' }
  | { kind: 'flags' }
  /** Jobs were queued: idle workers look now instead of at their next poll. */
  | { kind: 'jobs' }
  /** A job was cancelled: the process running it stops it. */
  | { kind: 'job-cancelled'; jobId: string }
  /** A process's last seconds of live statistics (src/observability/live-stats.ts); checked on receipt. */
  | { kind: 'live-stats'; node: string; buckets: unknown[] }
  /** A process seeded a budget counter from the ledger: the others add the spend still in their spools (src/metering/budget-seeding.ts). */
  | { kind: 'budget-seeded'; node: string; key: string; filter: { tenantId?: string; keyId?: string; userId?: string }; from: number; to: number; ttlMs: number; epoch: string; readAt: number };

export interface ChangeBus {
  /** Sends a change to every process, this one included. Never throws. */
  publish(change: Change): Promise<void>;
  subscribe(handler: (change: Change) => void): void;
  close(): Promise<void>;
}

export class LocalChangeBus implements ChangeBus {
  protected readonly handlers: Array<(change: Change) => void> = [];

  async publish(change: Change): Promise<void> {
    this.deliver(change);
  }

  subscribe(handler: (change: Change) => void): void {
    this.handlers.push(handler);
  }

  protected deliver(change: Change): void {
    for (const h of this.handlers) {
      try {
        h(change);
      } catch {
        /* a handler's failure is its own */
      }
    }
  }

  async close(): Promise<void> {}
}

export class RedisChangeBus extends LocalChangeBus {
  private constructor(
    private readonly publisher: Redis,
    private readonly subscriber: Redis,
    private readonly channel: string,
    private readonly onError: (err: unknown) => void,
  ) {
    super();
  }

  /** Subscribes a dedicated connection (Redis requires one for pub/sub) to `channel`. */
  static async open(publisher: Redis, subscriber: Redis, channel: string, onError: (err: unknown) => void): Promise<RedisChangeBus> {
    const bus = new RedisChangeBus(publisher, subscriber, channel, onError);
    subscriber.on('message', (ch: string, message: string) => {
      if (ch !== channel) return;
      try {
        bus.deliver(JSON.parse(message) as Change);
      } catch (err) {
        onError(err);
      }
    });
    await subscriber.subscribe(channel);
    return bus;
  }

  override async publish(change: Change): Promise<void> {
    try {
      await this.publisher.publish(this.channel, JSON.stringify(change)); // delivered here too, by the subscription
    } catch (err) {
      this.onError(err);
      this.deliver(change); // Redis down: at least this process knows
    }
  }

  override async close(): Promise<void> {
    this.subscriber.disconnect();
  }
}
