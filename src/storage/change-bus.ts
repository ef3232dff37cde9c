/**
 * Tells every gateway process about changes made through one of them, so caches drop stale state
 * at once (a key revoked, a kill switch lifted, a flag changed, jobs queued, a budget counter
 * reseeded...: each feature defines and handles its own messages; the bus carries them as opaque
 * JSON objects with a `kind`). Embedded mode has one process: messages are delivered in process.
 * Distributed mode publishes on a Redis channel that every process subscribes to. Delivery is
 * best effort: each feature's own expiry or poll (auth.cacheTtlMs, the kill switches' refreshMs)
 * still bounds staleness when a message is lost or Redis is down.
 */
import type { Redis } from 'ioredis';

/**
 * A message on the bus: opaque to storage. Each feature defines its own message types (a `kind`
 * and its fields) next to the code that publishes and handles them, and subscribes with
 * {@link onMessage}, which hands it only messages of its kind that pass its check.
 */
export interface BusMessage {
  readonly kind: string;
}

export interface ChangeBus {
  /** Sends a message to every process, this one included. Never throws. */
  publish<T extends BusMessage>(message: T): Promise<void>;
  subscribe(handler: (message: BusMessage) => void): void;
  close(): Promise<void>;
}

/**
 * Subscribes `handler` to the messages of one kind. `accept` checks what another process sent
 * (a message from Redis is untrusted JSON): one that fails it is dropped.
 */
export function onMessage<T extends BusMessage>(
  bus: Pick<ChangeBus, 'subscribe'>,
  kind: T['kind'],
  handler: (message: T) => void,
  accept: (message: BusMessage) => boolean = () => true,
): void {
  bus.subscribe((message) => {
    if (message.kind === kind && accept(message)) handler(message as T);
  });
}

export class LocalChangeBus implements ChangeBus {
  protected readonly handlers: Array<(message: BusMessage) => void> = [];

  async publish<T extends BusMessage>(message: T): Promise<void> {
    this.deliver(message);
  }

  subscribe(handler: (message: BusMessage) => void): void {
    this.handlers.push(handler);
  }

  protected deliver(message: BusMessage): void {
    for (const h of this.handlers) {
      try {
        h(message);
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
        const parsed: unknown = JSON.parse(message);
        if (typeof parsed === 'object' && parsed !== null && typeof (parsed as BusMessage).kind === 'string') bus.deliver(parsed as BusMessage);
      } catch (err) {
        onError(err);
      }
    });
    await subscriber.subscribe(channel);
    return bus;
  }

  override async publish<T extends BusMessage>(message: T): Promise<void> {
    try {
      await this.publisher.publish(this.channel, JSON.stringify(message)); // delivered here too, by the subscription
    } catch (err) {
      this.onError(err);
      this.deliver(message); // Redis down: at least this process knows
    }
  }

  override async close(): Promise<void> {
    this.subscriber.disconnect();
  }
}
